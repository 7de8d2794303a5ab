"""Generator loss terms as small named objects, found by name in one registry.

A preset lists its generator terms as ``(kind, weight)`` or ``(kind, weight, options)``:

    [("l1", 0.03, {"name": "l_r"}), ("adversarial", 0.1, {"name": "l_g"}),
     ("nima_score", 0.01, {"name": "l_as", "predictor": "aesthetic", "alpha": 0.8})]

``kind`` is a registered term class (:func:`register_term`); ``options`` go to its
constructor; ``name`` (default: the kind) is the term's log line. Ablation is weight 0 (the
term is then neither built nor computed) or the entry removed. Two entries with the same
name are refused, so no term is counted twice in a composition.

Each term is called with one :class:`~eusr_perceptual.training.context.StepContext` and
returns a float32 scalar (the per-replica mean over the batch); the trainer multiplies by the
weight and logs the unweighted value under the term's name. Heavy shared networks (VGG19,
ResNet-50, the NIMA predictors) come from the trainer's :class:`Resources`, so two terms on
the same network share one copy, and it is never trained nor checkpointed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import tensorflow as tf

from eusr_perceptual.registry import Registry

#: Every loss term class by kind (importing :mod:`eusr_perceptual.losses` registers the built-ins).
TERMS: Registry[type["LossTerm"]] = Registry("loss term", "eusr_perceptual.losses")


def register_term(kind: str, group: str) -> Callable[[type["LossTerm"]], type["LossTerm"]]:
    """Class decorator: registers a :class:`LossTerm` subclass under ``kind`` in ``group``
    ("pixel", "quality", "perceptual", "adversarial", "feature_matching", ...)."""

    def decorate(cls: type[LossTerm]) -> type[LossTerm]:
        cls.kind, cls.group = kind, group
        return TERMS.register(kind)(cls)

    return decorate


class Resources:
    """Frozen networks shared by the terms of one trainer, built once on first request.

    ``resources.get(key, factory)`` returns the network stored under ``key``, calling
    ``factory()`` the first time. Predictors passed to the trainer (``aesthetic``,
    ``subjective``) are pre-registered. Everything here is set non-trainable.
    """

    def __init__(self, initial: Mapping[str, Any] | None = None):
        self._items: dict[str, Any] = {}
        for key, value in (initial or {}).items():
            if value is not None:
                self._store(key, value)

    def _store(self, key: str, value: Any) -> Any:
        if hasattr(value, "trainable"):
            value.trainable = False
        self._items[key] = value
        return value

    def get(self, key: str, factory: Callable[[], Any] | None = None) -> Any:
        if key not in self._items:
            if factory is None:
                raise KeyError(f"no shared network {key!r}: pass it to the trainer (e.g. {key}=<model>)")
            self._store(key, factory())
        return self._items[key]

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def items(self):
        return self._items.items()


class LossTerm:
    """A weighted generator loss term. Subclasses set ``needs`` and implement ``compute``.

    ``needs`` names what the step must provide beyond ``lr``/``hr``/``sr``:
    ``"fake_logits"``, ``"real_logits"`` (discriminator logits of SR and HR), ``"features"``
    (the discriminator's pre-activation conv features of SR and HR).
    """

    kind: str = ""
    group: str = ""
    needs: frozenset[str] = frozenset()

    def __init__(self, name: str, weight: float, resources: Resources, **options: Any):
        if options:
            raise TypeError(f"loss term {self.kind!r} takes no options {sorted(options)}")
        self.name, self.weight, self.resources = name, float(weight), resources

    def compute(self, context) -> tf.Tensor:
        raise NotImplementedError

    def __call__(self, context) -> tf.Tensor:
        return tf.cast(self.compute(context), tf.float32)

    def describe(self) -> str:
        return f"{self.weight:g} * {self.name}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, weight={self.weight})"


@dataclass(frozen=True)
class TermSpec:
    """One entry of a preset's generator loss: kind, weight, options (``name`` = log line)."""

    kind: str
    weight: float
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.options.get("name", self.kind)

    @classmethod
    def parse(cls, entry: "TermSpec | tuple | list | dict") -> "TermSpec":
        if isinstance(entry, TermSpec):
            return entry
        if isinstance(entry, dict):
            return cls(entry["kind"], float(entry["weight"]), dict(entry.get("options", {})))
        if len(entry) == 2:
            return cls(entry[0], float(entry[1]))
        return cls(entry[0], float(entry[1]), dict(entry[2]))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_terms(entries: Iterable) -> tuple[TermSpec, ...]:
    """Specs from a preset's list, checked: known kinds, non-negative weights, unique names."""
    specs = tuple(TermSpec.parse(entry) for entry in entries)
    names: set[str] = set()
    for spec in specs:
        TERMS.get(spec.kind)  # ValueError naming the registered kinds
        if spec.weight < 0:
            raise ValueError(f"loss term {spec.name!r} has a negative weight {spec.weight}")
        if spec.name in names:
            raise ValueError(f"loss term {spec.name!r} appears twice; give one of them another 'name' option")
        names.add(spec.name)
    return specs


def build_terms(entries: Iterable, resources: Resources) -> list[LossTerm]:
    """The active terms (weight > 0) of a preset's list, in order."""
    terms = []
    for spec in parse_terms(entries):
        if spec.weight == 0:
            continue
        options = {k: v for k, v in spec.options.items() if k != "name"}
        terms.append(TERMS.get(spec.kind)(spec.name, spec.weight, resources, **options))
    if not terms:
        raise ValueError("every loss term is disabled: nothing would train the generator")
    return terms
