"""Command-line flags generated from a configuration dataclass (:mod:`eusr_perceptual.configs.base`).

:func:`add_config_flags` makes one flag per field (``--learning-rate`` for ``learning_rate``;
booleans as ``--name`` / ``--no-name``, with an optional short form; nested dataclasses
flattened by field name); every flag defaults to None, "keep the preset's value".
:func:`flag_overrides` reads back the ones given and :func:`config_from_flags` applies them;
:func:`non_negative_int` is the argparse type of a size flag (``--tile``), checked at parse time.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any, TypeVar

from eusr_perceptual.configs.base import Config, ConfigError, field_types, unwrap_optional, apply_changes

C = TypeVar("C", bound=Config)


def _flag_fields(cls, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], dataclasses.Field, Any]]:
    """``(path, field, type)`` of every flag field; a nested dataclass field contributes its own
    fields under their names (``--channels`` for ``model.channels``)."""
    hints = field_types(cls)
    found = []
    for field in dataclasses.fields(cls):
        kind = unwrap_optional(hints[field.name])
        if not field.metadata.get("flag", True):
            continue
        if dataclasses.is_dataclass(kind):
            found += _flag_fields(kind, prefix + (field.name,))
        else:
            found.append((prefix + (field.name,), field, kind))
    return found


def _parse_float(text: str) -> float:
    return float("inf") if text.lower() in ("inf", "infinity") else float(text)


def _parse_tuple(inner):
    def parse(text: str):
        return tuple(inner(part) for part in text.split(",") if part.strip())
    return parse


def _value_at(config: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        config = getattr(config, name)
    return config


def add_config_flags(parser: argparse.ArgumentParser, cls: type[Config], defaults: Config | None = None) -> None:
    """Adds one flag per field of ``cls`` (see the module docstring); every flag defaults to
    None, meaning "keep the preset's value"."""
    group = parser.add_argument_group(f"{cls.__name__} settings (override the preset)")
    for path, field, kind in _flag_fields(cls):
        name = path[-1]
        flag = "--" + name.replace("_", "-")
        current = _value_at(defaults, path) if defaults is not None else field.default
        help_text = f"{field.metadata.get('help', '')} (preset: {current})"
        dest = ".".join(path)
        if kind is bool:
            short = field.metadata.get("short")
            group.add_argument(flag, *([f"--{short}"] if short else []), action="store_const", const=True, dest=dest,
                               help=help_text)
            group.add_argument("--no-" + flag[2:], *([f"--no-{short}"] if short else []), action="store_const",
                               const=False, dest=dest, help=argparse.SUPPRESS)
        elif kind in (int, float, str):
            group.add_argument(flag, type=_parse_float if kind is float else kind, dest=dest,
                               choices=field.metadata.get("choices"), help=help_text, metavar=name.upper())
        elif typing.get_origin(kind) is tuple:
            inner = (typing.get_args(kind) or (str,))[0]
            group.add_argument(flag, type=_parse_tuple(_parse_float if inner is float else inner), dest=dest,
                               help=help_text + "; comma-separated", metavar="A,B,...")


def flag_overrides(args: argparse.Namespace, cls: type[Config]) -> dict[str, Any]:
    """The settings the command line gave explicitly; nested ones as ``{"model": {"channels": 8}}``."""
    changes: dict[str, Any] = {}
    for path, _, _ in _flag_fields(cls):
        value = getattr(args, ".".join(path), None)
        if value is None:
            continue
        target = changes
        for name in path[:-1]:
            target = target.setdefault(name, {})
        target[path[-1]] = value
    return changes




def config_from_flags(args: argparse.Namespace, preset: C) -> C:
    """``preset`` with the command line's explicit settings applied; a value the configuration
    refuses is a :class:`~eusr_perceptual.configs.base.ConfigError` (one line, exit status 2)."""
    try:
        return apply_changes(preset, flag_overrides(args, type(preset)))
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(str(error)) from None


def non_negative_int(text: str) -> int:
    """argparse ``type=`` of a size (``--tile 0`` allowed, ``--tile -1`` an error at parse time)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse ``type=`` of a count that must be at least 1 (``--tile`` of a tiled signature)."""
    value = non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value
