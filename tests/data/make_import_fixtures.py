#!/usr/bin/env python
"""Writes the PyTorch fixtures of tests/test_import_weights.py (needs PyTorch; the tests do not).

Tiny networks with the module attributes, and so the state-dict keys, of the releases the
importers read (``eusr_perceptual.importers.pytorch``), written by ``torch.save``, and their own
outputs on a fixed input:

* ``rrdbnet_basicsr.pth`` (zip): BasicSR ``RRDBNet`` keys, wrapped ``{"params": P,
  "params_ema": E}`` as BasicSR's model zoo does, P and E different weights;
* ``rrdbnet_esrgan_legacy.pth`` (torch's legacy serialization, as ``RRDB_ESRGAN_x4.pth``):
  E bare, in the original ESRGAN release's keys (``model.0``, ``model.1.sub.N.RDBK.convJ.0``,
  ``model.1.sub.<num_block>``, ``model.3/6/8/10``);
* ``rrdbnet_esrgan.pth`` (zip): E bare in the ESRGAN repository's ``RRDBNet_arch.py`` keys
  (``RRDB_trunk``, ``trunk_conv``, ``upconv1/2``, ``HRconv``);
* ``msrresnet_basicsr_x4.pth`` (zip, ``{"params": ...}``) and ``msrresnet_basicsr_x3.pth``
  (legacy, bare): BasicSR ``MSRResNet`` with its bilinear base;
* ``vgg_style_basicsr.pth`` (zip, ``{"params": ...}``): BasicSR ``VGGStyleDiscriminator`` on
  64 x 64 inputs (linear1 sees 2 x 2 positions, so its NCHW flatten order matters), random
  BN running statistics, evaluated in eval mode.

RRDBNet: num_feat 4, num_block 2, num_grow_ch 2, x4; MSRResNet: num_feat 4, num_block 2;
discriminator: num_feat 2, linear1 8 units. Weights are random (PyTorch's default init, the
dense blocks' convs as drawn, not scaled by 0.1, so that every block changes the output).
``import_fixture_outputs.npz`` holds the uint8 inputs and ``255 * f(x / 255)`` (generators,
float32 [0, 255]) or the logits (discriminator).

    python tests/data/make_import_fixtures.py    # rewrites the files in tests/data/
    python tests/data/make_import_fixtures.py --full-size --out /tmp/full
        # the released sizes (RRDBNet 64 / 23 / 32, MSRResNet 64 / 16, discriminator 64 on 128 x 128,
        # linear1 100 units), 16 x 16 LR input; for benchmarks/import_fidelity.py (not committed)
"""

from __future__ import annotations

import argparse
import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

HERE = Path(__file__).resolve().parent
SEED = 22


def lrelu(x, slope=0.2):
    return F.leaky_relu(x, slope)


class DenseBlock(nn.Module):
    """ESRGAN's five-conv dense block with residual scaling 0.2."""

    def __init__(self, feat, grow):
        super().__init__()
        for i in range(5):
            setattr(self, f"conv{i + 1}", nn.Conv2d(feat + i * grow, grow if i < 4 else feat, 3, 1, 1))

    def forward(self, x):
        features = [x]
        for i in range(4):
            features.append(lrelu(getattr(self, f"conv{i + 1}")(torch.cat(features, 1))))
        return x + 0.2 * self.conv5(torch.cat(features, 1))


class RRDB(nn.Module):
    def __init__(self, feat, grow):
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = (DenseBlock(feat, grow) for _ in range(3))

    def forward(self, x):
        return x + 0.2 * self.rdb3(self.rdb2(self.rdb1(x)))


class RRDBNet(nn.Module):
    """x4 RRDBNet with BasicSR's attribute names."""

    def __init__(self, feat=4, blocks=2, grow=2):
        super().__init__()
        self.conv_first = nn.Conv2d(3, feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(feat, grow) for _ in range(blocks)))
        self.conv_body, self.conv_up1, self.conv_up2, self.conv_hr = (nn.Conv2d(feat, feat, 3, 1, 1) for _ in range(4))
        self.conv_last = nn.Conv2d(feat, 3, 3, 1, 1)

    def forward(self, x):
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for conv in (self.conv_up1, self.conv_up2):
            feat = lrelu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(lrelu(self.conv_hr(feat)))


class ResidualBlockNoBN(nn.Module):
    def __init__(self, feat):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(feat, feat, 3, 1, 1), nn.Conv2d(feat, feat, 3, 1, 1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x)))


class MSRResNet(nn.Module):
    """BasicSR's MSRResNet layout: sub-pixel upsampling, LeakyReLU 0.1, bilinear base added."""

    def __init__(self, feat=4, blocks=2, scale=4):
        super().__init__()
        self.scale = scale
        self.conv_first = nn.Conv2d(3, feat, 3, 1, 1)
        self.body = nn.Sequential(*(ResidualBlockNoBN(feat) for _ in range(blocks)))
        steps = (2, 2) if scale == 4 else (scale,)
        for i, step in enumerate(steps):
            setattr(self, f"upconv{i + 1}", nn.Conv2d(feat, feat * step * step, 3, 1, 1))
        self.steps = steps
        self.conv_hr, self.conv_last = nn.Conv2d(feat, feat, 3, 1, 1), nn.Conv2d(feat, 3, 3, 1, 1)

    def forward(self, x):
        out = self.body(lrelu(self.conv_first(x), 0.1))
        for i, step in enumerate(self.steps):
            out = lrelu(F.pixel_shuffle(getattr(self, f"upconv{i + 1}")(out), step), 0.1)
        out = self.conv_last(lrelu(self.conv_hr(out), 0.1))
        return out + F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)


class VGGStyleDiscriminator(nn.Module):
    """BasicSR's VGG-style discriminator layout (five stride-2 stages, linear1, linear2)."""

    def __init__(self, feat=2, side=2, units=8):
        super().__init__()
        channels = [feat, feat, 2 * feat, 2 * feat, 4 * feat, 4 * feat, 8 * feat, 8 * feat, 8 * feat, 8 * feat]
        previous = 3
        for i, c in enumerate(channels):
            name = f"{i // 2}_{i % 2}"
            kernel, stride = (3, 1) if i % 2 == 0 else (4, 2)
            setattr(self, f"conv{name}", nn.Conv2d(previous, c, kernel, stride, 1, bias=i == 0))
            if i:
                setattr(self, f"bn{name}", nn.BatchNorm2d(c))
            previous = c
        self.linear1, self.linear2 = nn.Linear(8 * feat * side * side, units), nn.Linear(units, 1)

    def forward(self, x):
        for i in range(10):
            name = f"{i // 2}_{i % 2}"
            x = getattr(self, f"conv{name}")(x)
            x = lrelu(getattr(self, f"bn{name}")(x) if i else x)
        return self.linear2(lrelu(self.linear1(x.flatten(1))))


def randomize_bn(net: nn.Module, generator: torch.Generator) -> None:
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.5)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(module.num_features, generator=generator) * 0.1)


def esrgan_repo_names(state: dict) -> OrderedDict:
    rules = ((r"^body\.(\d+)\.rdb(\d)\.", r"RRDB_trunk.\1.RDB\2."), (r"^conv_body\.", "trunk_conv."),
             (r"^conv_up(\d)\.", r"upconv\1."), (r"^conv_hr\.", "HRconv."))
    renamed = OrderedDict()
    for name, value in state.items():
        for pattern, replacement in rules:
            name = re.sub(pattern, replacement, name)
        renamed[name] = value
    return renamed


def esrgan_legacy_names(state: dict, blocks: int) -> OrderedDict:
    """The original ESRGAN release's sequential keys (x4: upconvs at 3 and 6, HR at 8, last at 10)."""
    fixed = {"conv_first": "model.0", "conv_body": f"model.1.sub.{blocks}", "conv_up1": "model.3",
             "conv_up2": "model.6", "conv_hr": "model.8", "conv_last": "model.10"}
    renamed = OrderedDict()
    for name, value in state.items():
        module, _, kind = name.rpartition(".")
        if match := re.fullmatch(r"body\.(\d+)\.rdb(\d)\.conv(\d)", module):
            renamed[f"model.1.sub.{match.group(1)}.RDB{match.group(2)}.conv{match.group(3)}.0.{kind}"] = value
        else:
            renamed[f"{fixed[module]}.{kind}"] = value
    return renamed


def outputs(net: nn.Module, images: np.ndarray, generator_output: bool = True) -> np.ndarray:
    net.eval()
    with torch.no_grad():
        x = torch.from_numpy(images.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
        y = net(x)
    return (255.0 * y.permute(0, 2, 3, 1)).numpy() if generator_output else y.numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full-size", action="store_true", help="the released networks' sizes")
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: tests/data)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    full = args.full_size
    sizes = {"rrdbnet": (64, 23, 32) if full else (4, 2, 2), "msrresnet": (64, 16) if full else (4, 2),
             "vgg_style": (64, 4, 100) if full else (2, 2, 8)}

    def save(state, name: str, legacy: bool = False) -> None:
        torch.save(state, args.out / name, _use_new_zipfile_serialization=not legacy)

    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    lr = rng.integers(0, 256, (1, 16, 16, 3) if full else (1, 7, 9, 3), dtype=np.uint8)
    hr = rng.integers(0, 256, (1, 128, 128, 3) if full else (1, 64, 64, 3), dtype=np.uint8)
    arrays = {"lr": lr, "hr": hr}

    ema, params = RRDBNet(*sizes["rrdbnet"]), RRDBNet(*sizes["rrdbnet"])
    arrays["rrdbnet_params_ema"], arrays["rrdbnet_params"] = outputs(ema, lr), outputs(params, lr)
    save({"params": params.state_dict(), "params_ema": ema.state_dict()}, "rrdbnet_basicsr.pth")
    save(esrgan_legacy_names(ema.state_dict(), blocks=sizes["rrdbnet"][1]), "rrdbnet_esrgan_legacy.pth", legacy=True)
    save(esrgan_repo_names(ema.state_dict()), "rrdbnet_esrgan.pth")

    for scale, legacy in ((4, False), (3, True)):
        net = MSRResNet(*sizes["msrresnet"], scale=scale)
        arrays[f"msrresnet_x{scale}"] = outputs(net, lr)
        save(net.state_dict() if legacy else {"params": net.state_dict()}, f"msrresnet_basicsr_x{scale}.pth", legacy)

    discriminator = VGGStyleDiscriminator(*sizes["vgg_style"])
    randomize_bn(discriminator, generator)
    arrays["vgg_style"] = outputs(discriminator, hr, generator_output=False)
    save({"params": discriminator.state_dict()}, "vgg_style_basicsr.pth")

    np.savez_compressed(args.out / "import_fixture_outputs.npz", **arrays)
    print({name: value.shape for name, value in arrays.items()})


if __name__ == "__main__":
    main()
