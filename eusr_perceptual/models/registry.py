"""Networks as named specs: ``{"type": "eusr", "channels": 64, ...}`` resolved by one table.

A builder is registered under a type name and a role (``"generator"`` or
``"discriminator"``) with :func:`register_network`; :func:`build_network` calls it with the
spec's other keys. A new generator or discriminator is one decorated function. Every
generator follows the project's protocol: ``model.scales``, ``model(x, scale=s)``, RGB in
[0, 255] in and out (float32), so evaluation, tiled upscaling and export take any of them.
Every discriminator is a functional model from [0, 255] RGB to float32 logits whose
``feature_layer_names`` list the pre-activation conv feature maps (see
:func:`with_features`).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

import keras

from eusr_perceptual.registry import Registry

ROLES = ("generator", "discriminator")
#: The builders of each role by type name (importing :mod:`eusr_perceptual.models` registers them).
NETWORKS: dict[str, Registry[Callable[..., keras.Model]]] = {
    role: Registry(f"{role} type", "eusr_perceptual.models") for role in ROLES}


def register_network(name: str, role: str):
    """Decorator: registers ``builder(**options) -> keras.Model`` as ``name`` for ``role``."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    return NETWORKS[role].register(name)


def registered_networks(role: str) -> tuple[str, ...]:
    return NETWORKS[role].names()


def build_network(spec: Mapping[str, Any], role: str, **context: Any) -> keras.Model:
    """Builds ``spec`` (``{"type": name, **options}``) registered for ``role``.

    ``context`` holds what the run decides (``scale`` of a generator, ``input_size`` of a
    discriminator = the HR patch side); each item is passed when the builder takes it and the
    spec does not set it.
    """
    options = dict(spec)
    name = options.pop("type", None)
    builder = NETWORKS[role].get(name)
    accepted = inspect.signature(builder).parameters
    options = {**{k: v for k, v in context.items() if k in accepted}, **options}
    try:
        return builder(**options)
    except TypeError as error:
        raise ValueError(f"{role} {name!r}: {error}") from None


def with_features(discriminator: keras.Model) -> keras.Model:
    """A model sharing ``discriminator``'s weights that returns ``[logits, *features]``: the
    pre-activation maps named by its ``feature_layer_names`` (after BN, before the activation)."""
    names = getattr(discriminator, "feature_layer_names", None)
    if not names:
        raise ValueError(f"discriminator {discriminator.name!r} declares no feature_layer_names")
    outputs = [discriminator.outputs[0], *(discriminator.get_layer(name).output for name in names)]
    return keras.Model(discriminator.input, outputs, name=f"{discriminator.name}_with_features")
