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

from typing import Any, Callable, Mapping

import keras

ROLES = ("generator", "discriminator")
_BUILDERS: dict[str, dict[str, Callable[..., keras.Model]]] = {role: {} for role in ROLES}


def register_network(name: str, role: str):
    """Decorator: registers ``builder(**options) -> keras.Model`` as ``name`` for ``role``."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")

    def decorate(builder):
        _BUILDERS[role][name] = builder
        return builder

    return decorate


def registered_networks(role: str) -> tuple[str, ...]:
    import eusr_perceptual.models  # noqa: F401  (registers the built-in networks)

    return tuple(sorted(_BUILDERS[role]))


def build_network(spec: Mapping[str, Any], role: str, **context: Any) -> keras.Model:
    """Builds ``spec`` (``{"type": name, **options}``) registered for ``role``.

    ``context`` holds what the run decides (``scale`` of a generator, ``input_size`` of a
    discriminator = the HR patch side); each item is passed when the builder takes it and the
    spec does not set it.
    """
    import inspect

    import eusr_perceptual.models  # noqa: F401

    options = dict(spec)
    name = options.pop("type", None)
    if name not in _BUILDERS[role]:
        raise ValueError(f"unknown {role} type {name!r}; registered: {sorted(_BUILDERS[role])}")
    builder = _BUILDERS[role][name]
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
