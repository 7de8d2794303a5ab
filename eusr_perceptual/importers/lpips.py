"""Converting the published LPIPS weights (PyTorch) into the ``.npz`` :mod:`eusr_perceptual.metrics.lpips` loads.

Two PyTorch files are needed: LPIPS's linear layers (``weights/v0.1/alex.pth`` or
``vgg.pth`` of github.com/richzhang/PerceptualSimilarity, also inside the ``lpips`` wheel on
PyPI) and the torchvision ImageNet backbone (``alexnet-owt-7be5be79.pth`` or
``vgg16-397923af.pth``). They are read without PyTorch, through the restricted unpickler and
bounds-checked tensors of :mod:`eusr_perceptual.importers.torch_files` (both of torch's file
formats; a file that references anything but tensors is refused, nothing in it runs).

Layout changes: conv kernels ``[out, in, kh, kw]`` become Keras ``[kh, kw, in, out]``
(both frameworks cross-correlate, so nothing is flipped); lin weights ``[1, C, 1, 1]``
become ``[C]``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import numpy as np

from eusr_perceptual.errors import ValueUsageError
from eusr_perceptual.metrics.lpips import BACKBONE_CONVS, CHANNELS

#: Index of each convolution in torchvision's ``<net>.features`` (the state-dict keys).
TORCHVISION_FEATURE_INDICES = {
    "alex": (0, 3, 6, 8, 10),
    "vgg": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
}


def _backbone_index(key: str) -> tuple[int, str] | None:
    """``(feature index, 'weight' | 'bias')`` of a torchvision (``features.N.weight``) or
    LPIPS-package (``net.sliceK.N.weight``) backbone key."""
    match = re.search(r"(?:^|\.)(?:features|slice\d)\.(\d+)\.(weight|bias)$", key)
    return (int(match.group(1)), match.group(2)) if match else None


def convert_lpips_weights(
    linear_state: Mapping[str, np.ndarray], backbone_state: Mapping[str, np.ndarray], net: str
) -> dict[str, np.ndarray]:
    """Arrays for :func:`eusr_perceptual.metrics.lpips.load_lpips` from the two PyTorch state dicts.

    Raises:
        ValueUsageError: a layer is missing or has the wrong shape for ``net``.
    """
    if net not in CHANNELS:
        raise ValueUsageError(f"net must be one of {sorted(CHANNELS)}, got {net!r}")
    by_index = {}
    for key, value in backbone_state.items():
        found = _backbone_index(key)
        if found:
            by_index[found] = np.asarray(value)
    arrays: dict[str, np.ndarray] = {"net": np.array(net)}
    for name, index in zip(BACKBONE_CONVS[net], TORCHVISION_FEATURE_INDICES[net]):
        if (index, "weight") not in by_index or (index, "bias") not in by_index:
            raise ValueUsageError(f"backbone state dict has no features.{index}.weight/bias (the {name} of {net})")
        kernel = by_index[(index, "weight")]
        if kernel.ndim != 4:
            raise ValueUsageError(f"features.{index}.weight has shape {kernel.shape}, expected [out, in, kh, kw]")
        arrays[f"{name}/kernel"] = np.transpose(kernel, (2, 3, 1, 0)).astype(np.float32)
        arrays[f"{name}/bias"] = by_index[(index, "bias")].astype(np.float32)
    for i, channels in enumerate(CHANNELS[net]):
        key = next((k for k in (f"lin{i}.model.1.weight", f"lin{i}.model.0.weight") if k in linear_state), None)
        if key is None:
            raise ValueUsageError(f"LPIPS state dict has no lin{i}.model.1.weight (is it the {net} file?)")
        weight = np.asarray(linear_state[key], np.float32)
        if weight.shape != (1, channels, 1, 1):
            raise ValueUsageError(f"{key} has shape {weight.shape}, LPIPS-{net} needs (1, {channels}, 1, 1)")
        arrays[f"lin{i}"] = weight.reshape(channels)
    return arrays


def save_lpips_weights(arrays: Mapping[str, np.ndarray], path: str | Path) -> Path:
    """Writes converted arrays as the ``.npz`` :func:`..lpips.load_lpips` reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        np.savez(handle, **arrays)
    return path
