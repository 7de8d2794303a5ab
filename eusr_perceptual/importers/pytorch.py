"""PyTorch state dicts of the ESRGAN and BasicSR releases as the project's networks.

The file is read by the restricted unpickler and bounds-checked tensor reader of
:mod:`eusr_perceptual.importers.torch_files` (no code in a file runs, torch is not needed),
zip or legacy serialization. A BasicSR file wraps its state dict as ``{"params": ...}`` and/or
``{"params_ema": ...}``: the EMA weights are taken when present (what BasicSR tests with), or
the entry ``key`` names; ``"bare"`` is a file that is the state dict itself. A ``module.``
prefix (``DataParallel``) is dropped. Architecture, naming and sizes come from the keys and
shapes:

* **RRDBNet** (ESRGAN generator) -> :class:`~eusr_perceptual.models.rrdbnet.RRDBNet`, in three
  namings, rewritten to BasicSR's before the plan is made:

  - ``basicsr`` (``basicsr/archs/rrdbnet_arch.py``): ``conv_first``, ``body.N.rdbK.convJ``,
    ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``;
  - ``esrgan`` (the ESRGAN repository's ``RRDBNet_arch.py``): ``RRDB_trunk.N.RDBK.convJ``,
    ``trunk_conv``, ``upconv1/2``, ``HRconv``;
  - ``esrgan_legacy`` (the original ``RRDB_ESRGAN_x4.pth`` / ``RRDB_PSNR_x4.pth``, old BasicSR's
    sequential model): ``model.0`` = conv_first, ``model.1.sub.N.RDBK.convJ.0``, the trunk's
    closing conv ``model.1.sub.<num_block>``, then the remaining ``model.<i>`` convs in order:
    the upsampling convs (``model.3``, ``model.6`` at x4), HRconv (``model.8``), conv_last
    (``model.10``).

  ``num_feat`` = conv_first's output channels, ``num_grow_ch`` = a dense block's first conv's
  output channels, ``num_block`` = the number of RRDBs, scale = 2 ** (upsampling convs); with
  one upsampling conv the file cannot tell x2 (nearest x2) from x3 (nearest x3; DP's x3) and
  ``scale`` must say. BasicSR's x2/x1 RRDBNet (pixel-unshuffled input, conv_first taking 12 /
  48 channels) has no counterpart in the project's RRDBNet and is refused.
* **MSRResNet** (BasicSR ``basicsr`` naming: ``conv_first``, ``body.N.conv1/2``,
  ``upconv1[/2]``, ``conv_hr``, ``conv_last``; ``mmsr`` naming: ``recon_trunk``, ``HRconv``)
  -> :class:`~eusr_perceptual.models.srresnet.MSRResNet` with ``bilinear_base=True`` (BasicSR
  adds the bilinearly upsampled input). Scale: ``upconv2`` present = x4, else upconv1's output
  channels / num_feat = 4 (x2) or 9 (x3). The sub-pixel convs' output channels are reordered
  (PyTorch's PixelShuffle reads channel ``c * r * r + i * r + j`` where depth_to_space reads
  ``(i * r + j) * C + c``).
* **VGG-style discriminator** (BasicSR ``VGGStyleDiscriminator``, a ``net_d``: ``conv0_0`` ...
  ``conv4_1``, ``bn0_1`` ... ``bn4_1``, ``linear1``, ``linear2``) -> the ``vgg_style``
  discriminator: ``num_feat`` from conv0_0, the input side from linear1's inputs
  (``8 num_feat (side / 32)^2``), ``linear1``'s inputs reordered from PyTorch's NCHW flatten to
  Keras' NHWC flatten; BN running statistics become the moving statistics
  (``num_batches_tracked`` carries nothing). BasicSR's 256-pixel variant (``conv5_*``) has no
  counterpart and is refused, naming ``conv5_0.weight``.

Both frameworks' networks see images in [0, 1]; the project's take [0, 255] and scale inside,
so the imported generator computes ``255 * f(x / 255)``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from eusr_perceptual.importers.weights import (
    WeightsImportError, as_is, assign_weights, torch_conv, torch_linear, vector_permuted)
from eusr_perceptual.models.gan_discriminators import build_vgg_style_discriminator
from eusr_perceptual.models.rrdbnet import RRDBNet
from eusr_perceptual.models.srresnet import MSRResNet

__all__ = ["ARCHES", "NAMINGS", "TorchImport", "detect_network", "import_state_dict", "select_state_dict"]

ARCHES = ("rrdbnet", "msrresnet", "vgg_style")
NAMINGS = ("basicsr", "esrgan", "esrgan_legacy", "mmsr")
#: Wrapper entries of a BasicSR file, in order of preference.
WRAPPERS = ("params_ema", "params")
BARE = "bare"


@dataclass(frozen=True)
class TorchImport:
    """An imported network and what it was: ``arch``, key ``naming``, the ``key`` it came from."""

    model: object
    arch: str
    naming: str
    key: str


def select_state_dict(loaded: Mapping, key: str | None, source: str) -> tuple[dict, str]:
    """The state dict inside a file and the entry it came from (:data:`WRAPPERS` preferred).

    Raises:
        WeightsImportError: ``key`` is not in the file, or several entries and none preferred.
    """
    entries = {name: value for name, value in loaded.items() if isinstance(value, dict)}
    if not entries:
        if key not in (None, BARE):
            raise WeightsImportError(f"{source}: --key {key}: the file is a bare state dict (no entries to choose from)")
        return dict(loaded), BARE
    if len(entries) != len(loaded):
        stray = next(name for name in loaded if name not in entries)
        raise WeightsImportError(f"{source}: key {stray!r} is a tensor beside the wrapped state dicts {sorted(entries)}")
    if key is not None:
        if key not in entries:
            raise WeightsImportError(f"{source}: --key {key}: the file holds {', '.join(sorted(entries))}")
        return entries[key], key
    chosen = next((name for name in WRAPPERS if name in entries), None)
    if chosen is None and len(entries) == 1:
        chosen = next(iter(entries))
    if chosen is None:
        raise WeightsImportError(f"{source}: the file holds {', '.join(sorted(entries))}: choose one with --key")
    return entries[chosen], chosen


def _strip_module_prefix(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name[len("module."):] if name.startswith("module.") else name: value for name, value in state.items()}


def detect_network(state: Mapping[str, np.ndarray]) -> tuple[str, str] | None:
    """``(arch, naming)`` the keys of a state dict belong to, or None."""
    def has(pattern: str) -> bool:
        return any(re.match(pattern, name) for name in state)

    if has(r"model\.1\.sub\.\d+\.RDB1\."):
        return "rrdbnet", "esrgan_legacy"
    if has(r"RRDB_trunk\.\d+\.RDB1\."):
        return "rrdbnet", "esrgan"
    if has(r"body\.\d+\.rdb1\."):
        return "rrdbnet", "basicsr"
    if has(r"recon_trunk\.\d+\.conv1\."):
        return "msrresnet", "mmsr"
    if has(r"body\.\d+\.conv1\.") and has(r"upconv1\."):
        return "msrresnet", "basicsr"
    if "conv0_0.weight" in state and "linear1.weight" in state:
        return "vgg_style", "basicsr"
    return None


_RENAMES = {
    ("rrdbnet", "esrgan"): ((r"^RRDB_trunk\.(\d+)\.RDB(\d)\.", r"body.\1.rdb\2."), (r"^trunk_conv\.", "conv_body."),
                            (r"^upconv(\d)\.", r"conv_up\1."), (r"^HRconv\.", "conv_hr.")),
    ("msrresnet", "mmsr"): ((r"^recon_trunk\.", "body."), (r"^HRconv\.", "conv_hr.")),
}


def _esrgan_legacy_names(names: list[str]) -> dict[str, str]:
    """Original ESRGAN name -> BasicSR name (module docstring); unknown names map to themselves."""
    convs = sorted({int(m.group(1)) for name in names if (m := re.fullmatch(r"model\.(\d+)\.(?:weight|bias)", name))} - {0})
    tail = {**{index: f"conv_up{i + 1}" for i, index in enumerate(convs[:-2])}}
    if len(convs) >= 2:
        tail.update({convs[-2]: "conv_hr", convs[-1]: "conv_last"})
    tail[0] = "conv_first"
    trunk_end = {int(m.group(1)) for name in names if (m := re.fullmatch(r"model\.1\.sub\.(\d+)\.(?:weight|bias)", name))}
    renamed = {}
    for name in names:
        if m := re.fullmatch(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)", name):
            renamed[name] = f"body.{m.group(1)}.rdb{m.group(2)}.conv{m.group(3)}.{m.group(4)}"
        elif (m := re.fullmatch(r"model\.1\.sub\.(\d+)\.(weight|bias)", name)) and len(trunk_end) == 1:
            renamed[name] = f"conv_body.{m.group(2)}"
        elif (m := re.fullmatch(r"model\.(\d+)\.(weight|bias)", name)) and int(m.group(1)) in tail:
            renamed[name] = f"{tail[int(m.group(1))]}.{m.group(2)}"
        else:
            renamed[name] = name
    return renamed


def _to_basicsr_names(names: list[str], arch: str, naming: str) -> dict[str, str]:
    """File name -> BasicSR name for every key (names no rule covers stay as they are)."""
    if naming == "esrgan_legacy":
        return _esrgan_legacy_names(names)
    rules = _RENAMES.get((arch, naming), ())
    renamed = {}
    for name in names:
        new = name
        for pattern, replacement in rules:
            new = re.sub(pattern, replacement, new)
        renamed[name] = new
    return renamed


def _conv(plan: dict, name: str, layer, permutation: np.ndarray | None = None) -> None:
    plan[f"{name}.weight"] = torch_conv(layer.kernel, permutation)
    if layer.bias is not None:
        plan[f"{name}.bias"] = as_is(layer.bias) if permutation is None else vector_permuted(layer.bias, permutation)


def _shape(state: Mapping, name: str, source: str) -> tuple[int, ...]:
    if name not in state:
        raise WeightsImportError(f"{source}: missing key {name!r}")
    return tuple(np.shape(state[name]))


def _block_count(state: Mapping, prefix: str) -> int:
    indices = {int(m.group(1)) for name in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", name))}
    return max(indices) + 1 if indices else 0


def _checked_scale(found: int | None, scale: int | None, source: str, why: str) -> int:
    if found is None:
        if scale is None:
            raise WeightsImportError(f"{source}: {why}; pass --scale")
        return scale
    if scale is not None and scale != found:
        raise WeightsImportError(f"{source}: the file holds a x{found} network, not x{scale}")
    return found


def _rrdbnet(state: Mapping, scale: int | None, source: str):
    num_feat, in_channels = _shape(state, "conv_first.weight", source)[:2]
    if in_channels != 3:
        raise WeightsImportError(
            f"{source}: key 'conv_first.weight' takes {in_channels} input channels: BasicSR's pixel-unshuffle "
            "x2/x1 RRDBNet, which the project's RRDBNet (3 input channels) does not have")
    ups = sum(1 for name in state if re.fullmatch(r"conv_up\d+\.weight", name))
    if ups not in (1, 2):
        raise WeightsImportError(f"{source}: {ups} upsampling convs (conv_up<i>): the project's RRDBNet has x2, x3 and x4")
    found = 4 if ups == 2 else None
    scale = _checked_scale(found, scale, source, "one upsampling conv: x2 (nearest x2) or x3 (nearest x3)")
    num_grow = _shape(state, "body.0.rdb1.conv1.weight", source)[0]
    model = RRDBNet(scale=scale, num_feat=num_feat, num_block=_block_count(state, "body."), num_grow=num_grow)
    model.build()
    plan = {}
    _conv(plan, "conv_first", model.conv_first)
    for n, block in enumerate(model.blocks):
        for k, dense in enumerate(block.dense_blocks):
            for j, layer in enumerate(dense.convs):
                _conv(plan, f"body.{n}.rdb{k + 1}.conv{j + 1}", layer)
    _conv(plan, "conv_body", model.conv_body)
    for i, layer in enumerate(model.upconvs):
        _conv(plan, f"conv_up{i + 1}", layer)
    _conv(plan, "conv_hr", model.conv_hr)
    _conv(plan, "conv_last", model.conv_last)
    return model, plan


def pixel_shuffle_permutation(channels: int, factor: int) -> np.ndarray:
    """Index of the PyTorch sub-pixel conv output channel behind each depth_to_space channel."""
    k = np.arange(channels * factor * factor)
    return (k % channels) * factor * factor + k // channels


def _msrresnet(state: Mapping, scale: int | None, source: str):
    num_feat = _shape(state, "conv_first.weight", source)[0]
    ratio = _shape(state, "upconv1.weight", source)[0] / num_feat
    found = 4 if "upconv2.weight" in state else {4: 2, 9: 3}.get(ratio)
    if found is None:
        raise WeightsImportError(f"{source}: key 'upconv1.weight' has {ratio:g} x num_feat outputs: not an x2, x3 or x4 MSRResNet")
    scale = _checked_scale(found, scale, source, "")
    model = MSRResNet(scale=scale, num_feat=num_feat, num_block=_block_count(state, "body."), bilinear_base=True)
    model.build()
    plan = {}
    _conv(plan, "conv_first", model.conv_first)
    for n, block in enumerate(model.blocks):
        _conv(plan, f"body.{n}.conv1", block.conv_a)
        _conv(plan, f"body.{n}.conv2", block.conv_b)
    for i, (layer, factor) in enumerate(zip(model.upconvs, model.factors)):
        _conv(plan, f"upconv{i + 1}", layer, pixel_shuffle_permutation(num_feat, factor))
    _conv(plan, "conv_hr", model.conv_hr)
    _conv(plan, "conv_last", model.conv_last)
    return model, plan


def _vgg_style(state: Mapping, scale: int | None, source: str):
    if scale is not None:
        raise WeightsImportError(f"{source}: a discriminator has no scale (--scale {scale})")
    num_feat = _shape(state, "conv0_0.weight", source)[0]
    dense_units, flat = _shape(state, "linear1.weight", source)
    side = math.isqrt(flat // (8 * num_feat)) if flat % (8 * num_feat) == 0 else 0
    if side < 1 or side * side * 8 * num_feat != flat:
        raise WeightsImportError(f"{source}: key 'linear1.weight' takes {flat} inputs, not 8 x {num_feat} x side^2")
    model = build_vgg_style_discriminator(input_size=32 * side, base_channels=num_feat, dense_units=dense_units)
    plan = {}
    for i in range(10):
        name = f"conv{i // 2}_{i % 2}"
        _conv(plan, name, model.get_layer(name))
        if i:
            bn = model.get_layer(f"bn{i // 2}_{i % 2}")
            for suffix, variable in (("weight", bn.gamma), ("bias", bn.beta), ("running_mean", bn.moving_mean),
                                     ("running_var", bn.moving_variance)):
                plan[f"bn{i // 2}_{i % 2}.{suffix}"] = as_is(variable)
    channels = 8 * num_feat
    q = np.arange(flat)  # Keras flattens (h, w, c), PyTorch (c, h, w)
    nchw = (q % channels) * side * side + q // channels
    fc, logit = model.get_layer("fc"), model.get_layer("logit")
    plan.update({"linear1.weight": torch_linear(fc.kernel, nchw), "linear1.bias": as_is(fc.bias),
                 "linear2.weight": torch_linear(logit.kernel), "linear2.bias": as_is(logit.bias)})
    return model, plan


_BUILDERS = {"rrdbnet": _rrdbnet, "msrresnet": _msrresnet, "vgg_style": _vgg_style}


def import_state_dict(loaded: Mapping, source: str, arch: str | None = None, scale: int | None = None,
                      key: str | None = None) -> TorchImport:
    """The project's network holding the weights of a state dict read from ``source``.

    Args:
        loaded: what :func:`~eusr_perceptual.importers.torch_files.read_torch_state_dict` read.
        source: the file's name, for messages.
        arch: the architecture the file must hold (default: what its keys say).
        scale: the scale, needed only where the file cannot tell.
        key: the wrapper entry to take (default: ``params_ema``, else ``params``).

    Raises:
        WeightsImportError: the file is not one of the supported networks, a key is unknown or
            missing, or a shape does not fit.
    """
    state, chosen = select_state_dict(loaded, key, source)
    state = _strip_module_prefix(state)
    found = detect_network(state)
    if found is None:
        first = ", ".join(list(state)[:3])
        raise WeightsImportError(f"{source}: keys ({first}, ...) are none of {', '.join(ARCHES)} in BasicSR or ESRGAN naming")
    if arch is not None and arch != found[0]:
        raise WeightsImportError(f"{source}: the file holds a {found[0]} ({found[1]} naming), not a {arch}")
    found_arch, naming = found
    renamed = _to_basicsr_names(list(state), found_arch, naming)
    canonical = {renamed[name]: value for name, value in state.items()}
    label = source if naming == "basicsr" else f"{source} ({naming} naming, keys shown in BasicSR naming)"
    model, plan = _BUILDERS[found_arch](canonical, scale, label)
    assign_weights(plan, canonical, label, ignored=[name for name in canonical if name.endswith(".num_batches_tracked")])
    return TorchImport(model, found_arch, naming, chosen)
