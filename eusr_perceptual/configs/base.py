"""One configuration scheme for every run: frozen dataclasses, named presets, generated flags.

Every run configuration (pre-training, 4PP-EUSR fine-tuning, NIMA, the GAN presets) is a
frozen dataclass deriving from :class:`Config`. A field is declared with :func:`setting`,
which carries its help text, its allowed values and whether ``--resume`` may change it:

    @dataclass(frozen=True)
    class MyConfig(Config):
        steps: int = setting(1000, "training steps", resumable=True)
        loss: str = setting("l1", "pixel loss", choices=("l1", "mse"))

``replace``, ``to_dict`` / ``from_dict`` (a JSON round trip, nested dataclasses included)
and validation of ``choices`` come with the base class. :func:`add_config_flags` makes one
command-line flag per field (``--learning-rate`` for ``learning_rate``; booleans as
``--name`` / ``--no-name``; nested dataclasses flattened by field name), and
:func:`config_from_flags` applies the given flags to a preset. :func:`resumed_config` reads a
run's ``config.json`` (as its latest resume left it) and refuses, naming the setting and both
values, any flag that would change a non-resumable setting. The resumable ones are the step
count and the learning rates, what the recovery from a NaN stop needs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

C = TypeVar("C", bound="Config")


class ConfigError(ValueError):
    """A configuration value is invalid, or a resumed run was asked to change a setting."""


def setting(default: Any, help: str, *, choices: Sequence[Any] | None = None, resumable: bool = False,
            flag: bool = True, short: str | None = None, compare: bool = True):
    """A dataclass field with its help text, allowed values and resume policy.

    Args:
        default: the default value (a dataclass instance or a tuple are fine: they are frozen).
        help: one sentence for ``--help``; cite the paper's section where it sets the value.
        choices: the allowed values, checked on construction and by the flag parser.
        resumable: ``--resume`` may change this setting (e.g. the total step count).
        flag: whether a command-line flag is generated (False for structured values set by presets).
        short: a shorter flag name for a boolean (``"jit"``: ``--jit`` / ``--no-jit`` beside
            ``--jit-compile`` / ``--no-jit-compile``).
        compare: False for a label that is not a setting (a preset's name): equality and
            :meth:`Config.differences` ignore it.
    """
    metadata = {"help": help, "choices": tuple(choices) if choices is not None else None,
                "resumable": resumable, "flag": flag, "short": short}
    if dataclasses.is_dataclass(default) or isinstance(default, (list, dict)):
        value = default
        return dataclasses.field(default_factory=lambda: value, metadata=metadata, compare=compare)
    return dataclasses.field(default=default, metadata=metadata, compare=compare)


def _resolve_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap_optional(annotation):
    """``X | None`` -> X; other annotations unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, float) and value == float("inf"):
        return "inf"
    return value


def _from_plain(annotation, value: Any) -> Any:
    annotation = _unwrap_optional(annotation)
    if value is None:
        return None
    if dataclasses.is_dataclass(annotation):
        if issubclass(annotation, Config):
            return annotation.from_dict(value)
        hints = _resolve_types(annotation)
        return annotation(**{name: _from_plain(hints[name], v) for name, v in value.items()})
    origin = typing.get_origin(annotation)
    if origin is tuple or annotation is tuple:
        args = typing.get_args(annotation)
        inner = args[0] if args else Any
        return tuple(_from_plain(inner, v) for v in value)
    if annotation is float and value == "inf":
        return float("inf")
    if isinstance(value, list):
        return tuple(_from_plain(Any, v) for v in value)
    return value


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of every run configuration (see the module docstring)."""

    def __post_init__(self):
        for field in dataclasses.fields(self):
            choices = field.metadata.get("choices")
            value = getattr(self, field.name)
            if choices and value not in choices:
                raise ConfigError(f"{field.name} must be one of {list(choices)}, got {value!r}")
        self.validate()

    def validate(self) -> None:
        """Cross-field checks; raise :class:`ConfigError`. Subclasses extend it."""

    def replace(self: C, **changes: Any) -> C:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"{type(self).__name__} has no setting {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (tuples as lists, infinity as "inf")."""
        return _to_plain(self)

    @classmethod
    def from_dict(cls: type[C], values: dict[str, Any]) -> C:
        """The inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        hints = _resolve_types(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ConfigError(f"{cls.__name__} has no setting {sorted(unknown)} (a config.json of another version?)")
        return cls(**{name: _from_plain(hints[name], value) for name, value in values.items()})

    def differences(self, other: "Config") -> list[tuple[str, Any, Any]]:
        """``(setting, self's value, other's value)`` for every differing field; nested
        dataclasses are compared field by field (``model.channels``)."""
        return _differences(self, other)


def _differences(a: Any, b: Any) -> list[tuple[str, Any, Any]]:
    found = []
    for field in dataclasses.fields(a):
        left, right = getattr(a, field.name), getattr(b, field.name)
        if left == right or not field.compare:
            continue
        if dataclasses.is_dataclass(left) and type(left) is type(right):
            found += [(f"{field.name}.{name}", x, y) for name, x, y in _differences(left, right)]
        else:
            found.append((field.name, left, right))
    return found


# -- command-line flags ----------------------------------------------------------------------

def _flag_fields(cls, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], dataclasses.Field, Any]]:
    """``(path, field, type)`` of every flag field; a nested dataclass field contributes its own
    fields under their names (``--channels`` for ``model.channels``)."""
    hints = _resolve_types(cls)
    found = []
    for field in dataclasses.fields(cls):
        kind = _unwrap_optional(hints[field.name])
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


def apply_changes(config: C, changes: dict[str, Any]) -> C:
    """``config`` with ``changes`` (nested dicts replace fields of nested dataclasses)."""
    resolved = {name: apply_changes(getattr(config, name), value)
                if isinstance(value, dict) and dataclasses.is_dataclass(getattr(config, name)) else value
                for name, value in changes.items()}
    return dataclasses.replace(config, **resolved) if not isinstance(config, Config) else config.replace(**resolved)


def config_from_flags(args: argparse.Namespace, preset: C) -> C:
    """``preset`` with the command line's explicit settings applied."""
    try:
        return apply_changes(preset, flag_overrides(args, type(preset)))
    except (ConfigError, TypeError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None


# -- resume ----------------------------------------------------------------------------------

def saved_config(run_dir: Path) -> dict[str, Any]:
    """The settings a run continues with: the ``config`` record of its ``config.json``, or of
    its latest entry in ``resumes`` (where a resume that changed the steps or a learning rate
    recorded them); SystemExit naming the file if absent."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise SystemExit(f"error: --resume: {path} does not exist (is {run_dir} a run folder?)")
    try:
        record = json.loads(path.read_text())
        return (record.get("resumes") or [record])[-1]["config"]
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise SystemExit(f"error: --resume: {path} cannot be read ({error})") from None


def resumed_config(run_dir: Path, cls: type[C], changes: dict[str, Any]) -> C:
    """The run's recorded configuration, with only resumable settings changed.

    Raises SystemExit naming every setting that ``changes`` would alter and that may not
    change on resume, with the recorded and the requested value.
    """
    recorded = cls.from_dict(saved_config(run_dir))
    resumable = {f.name for f in dataclasses.fields(cls) if f.metadata.get("resumable")}
    wanted = apply_changes(recorded, changes)
    refused = [(name, old, new) for name, old, new in recorded.differences(wanted)
               if name.split(".")[0] not in resumable]
    if refused:
        lines = "\n".join(f"  {name}: run has {old!r}, command line asks {new!r}" for name, old, new in refused)
        allowed = ", ".join(sorted(resumable)) or "none"
        raise SystemExit(f"error: --resume continues {run_dir} with its recorded settings; these would change:\n"
                         f"{lines}\nOnly these settings may change on resume: {allowed}")
    return wanted
