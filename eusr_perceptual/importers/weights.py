"""Putting a released file's arrays into a built Keras network: one checked assignment plan.

An importer lists, per name in the source file (a state-dict key, a graph node), the Keras
variable it fills, the shape the file must hold and how its layout becomes Keras'. The plan
is checked as a whole before any variable changes: a name the network has no place for, a
place no name fills, or a shape that does not fit, is one :class:`WeightsImportError`
naming it (exit status 2 in the command line tools). Layouts:

* PyTorch conv weight ``[out, in, kh, kw]`` -> Keras ``[kh, kw, in, out]`` (both frameworks
  cross-correlate, nothing is flipped); :func:`torch_conv`;
* PyTorch ``Linear`` weight ``[out, in]`` -> Keras ``Dense`` kernel ``[in, out]``;
  :func:`torch_linear`;
* TensorFlow conv kernels and every bias / BN vector: as they are (:func:`as_is`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import numpy as np

from eusr_perceptual.errors import ValueUsageError

__all__ = ["Target", "WeightsImportError", "as_is", "assign_weights", "torch_conv", "torch_linear", "vector_permuted"]


class WeightsImportError(ValueUsageError):
    """A released file does not fit the network it is imported as (the message names the key)."""


@dataclass(frozen=True)
class Target:
    """Where one source array goes: ``variable``, the ``source_shape`` the file must hold,
    and ``convert`` from the file's layout to the variable's."""

    variable: object
    source_shape: tuple[int, ...]
    convert: Callable[[np.ndarray], np.ndarray]


def as_is(variable) -> Target:
    return Target(variable, tuple(variable.shape), lambda array: array)


def torch_conv(variable, out_permutation: np.ndarray | None = None) -> Target:
    """A conv kernel stored as PyTorch's ``[out, in, kh, kw]``; ``out_permutation`` reorders
    the output channels (sub-pixel convs: PyTorch's PixelShuffle and TensorFlow's
    depth_to_space read the channels in different orders)."""
    kh, kw, cin, cout = variable.shape

    def convert(array):
        kernel = np.transpose(array, (2, 3, 1, 0))
        return kernel if out_permutation is None else kernel[..., out_permutation]

    return Target(variable, (cout, cin, kh, kw), convert)


def torch_linear(variable, in_permutation: np.ndarray | None = None) -> Target:
    """A ``Dense`` kernel stored as PyTorch's ``Linear`` weight ``[out, in]``;
    ``in_permutation`` reorders its inputs (a flatten of NCHW vs NHWC maps)."""
    cin, cout = variable.shape

    def convert(array):
        kernel = np.transpose(array)
        return kernel if in_permutation is None else kernel[in_permutation]

    return Target(variable, (cout, cin), convert)


def vector_permuted(variable, permutation: np.ndarray) -> Target:
    """A bias whose entries are reordered like its conv's output channels."""
    return Target(variable, tuple(variable.shape), lambda array: array[permutation])


def assign_weights(plan: Mapping[str, Target], arrays: Mapping[str, np.ndarray], source: str,
                   kind: str = "key", ignored: Iterable[str] = ()) -> None:
    """Checks ``arrays`` against ``plan`` completely, then assigns every variable.

    Args:
        plan: source name -> :class:`Target`.
        arrays: what the file holds, by source name.
        source: the file, for the messages.
        kind: what a name is called in the messages ("key", "node").
        ignored: names the file may hold that carry nothing the network needs (BN batch counters).

    Raises:
        WeightsImportError: the first unknown name, missing name or shape mismatch, named.
    """
    ignored = set(ignored)
    unknown = [name for name in arrays if name not in plan and name not in ignored]
    if unknown:
        raise WeightsImportError(f"{source}: unknown {kind} {unknown[0]!r} ({len(unknown)} {kind}(s) the network has no place for)")
    missing = [name for name in plan if name not in arrays]
    if missing:
        raise WeightsImportError(f"{source}: missing {kind} {missing[0]!r} ({len(missing)} missing)")
    for name, target in plan.items():
        shape = tuple(np.shape(arrays[name]))
        if shape != target.source_shape:
            raise WeightsImportError(f"{source}: {kind} {name!r} has shape {shape}, the network needs {target.source_shape}")
    for name, target in plan.items():
        target.variable.assign(np.asarray(target.convert(np.asarray(arrays[name])), dtype=np.float32))
