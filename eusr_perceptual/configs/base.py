"""One configuration scheme for every run: frozen dataclasses, named presets, generated flags.

Every run configuration (pre-training, 4PP-EUSR fine-tuning, NIMA, the GAN presets) is a
frozen dataclass deriving from :class:`Config`. A field is declared with :func:`setting`,
which carries its help text, its allowed values and whether ``--resume`` may change it:

    @dataclass(frozen=True)
    class MyConfig(Config):
        steps: int = setting(1000, "training steps", resumable=True)
        loss: str = setting("l1", "pixel loss", choices=("l1", "mse"))

``replace``, ``to_dict`` / ``from_dict`` (a JSON round trip, nested dataclasses included)
and validation of ``choices`` come with the base class; the command line generates one flag
per field from the ``setting`` metadata (:mod:`eusr_perceptual.cli.flags`), and
:func:`apply_changes` applies the given ones to a preset. :func:`resumed_config` reads a
run's ``config.json`` (as its latest resume left it) and refuses, naming the setting and both
values, any flag that would change a non-resumable setting. The resumable ones are the step
count and the learning rates, what the recovery from a NaN stop needs.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

from eusr_perceptual.errors import ValueUsageError

C = TypeVar("C", bound="Config")


class ConfigError(ValueUsageError):
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


def field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def unwrap_optional(annotation):
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
    annotation = unwrap_optional(annotation)
    if value is None:
        return None
    if dataclasses.is_dataclass(annotation):
        if issubclass(annotation, Config):
            return annotation.from_dict(value)
        hints = field_types(annotation)
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
        hints = field_types(cls)
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


# -- changes and resume --------------------------------------------------------------------
def apply_changes(config: C, changes: dict[str, Any]) -> C:
    """``config`` with ``changes`` (nested dicts replace fields of nested dataclasses)."""
    resolved = {name: apply_changes(getattr(config, name), value)
                if isinstance(value, dict) and dataclasses.is_dataclass(getattr(config, name)) else value
                for name, value in changes.items()}
    return dataclasses.replace(config, **resolved) if not isinstance(config, Config) else config.replace(**resolved)



def saved_config(run_dir: Path) -> dict[str, Any]:
    """The settings a run continues with: the ``config`` record of its ``config.json``, or of
    its latest entry in ``resumes`` (where a resume that changed the steps or a learning rate
    recorded them); :class:`ConfigError` naming the file if absent."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ConfigError(f"--resume: {path} does not exist (is {run_dir} a run folder?)")
    try:
        record = json.loads(path.read_text())
        return (record.get("resumes") or [record])[-1]["config"]
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise ConfigError(f"--resume: {path} cannot be read ({error})") from None


def resumed_config(run_dir: Path, cls: type[C], changes: dict[str, Any]) -> C:
    """The run's recorded configuration, with only resumable settings changed.

    Raises :class:`ConfigError` naming every setting that ``changes`` would alter and that may not
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
        raise ConfigError(f"--resume continues {run_dir} with its recorded settings; these would change:\n"
                         f"{lines}\nOnly these settings may change on resume: {allowed}")
    return wanted
