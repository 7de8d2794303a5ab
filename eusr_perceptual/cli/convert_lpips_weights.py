"""Converts the published LPIPS weights (PyTorch) into the .npz the evaluation loads.

    python scripts/convert_lpips_weights.py --net alex \\
        --lpips alex.pth --backbone alexnet-owt-7be5be79.pth --out weights/lpips_alex.npz
    python scripts/evaluate.py ... --lpips-weights weights/lpips_alex.npz

--lpips: LPIPS v0.1 linear layers, ``lpips/weights/v0.1/<net>.pth`` of
github.com/richzhang/PerceptualSimilarity (also inside the ``lpips`` wheel:
``pip download --no-deps lpips==0.1.4`` and unzip it). --backbone: torchvision's ImageNet
weights, ``alexnet-owt-7be5be79.pth`` or ``vgg16-397923af.pth`` (download.pytorch.org/models/,
or ``~/.cache/torch/hub/checkpoints`` after any torchvision use). PyTorch is not needed: the
files are read directly (both torch's zip format and its legacy format), through a restricted
unpickler: a file that references anything but tensors is refused, nothing in it runs.
"""

from __future__ import annotations

import logging

import argparse
import sys
from pathlib import Path

from eusr_perceptual.errors import UsageError
from eusr_perceptual.cli.command import command
from eusr_perceptual.importers.lpips import convert_lpips_weights, save_lpips_weights
from eusr_perceptual.importers.torch_files import read_torch_state_dict
from eusr_perceptual.metrics.lpips import LPIPSUnavailable, load_lpips


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--net", choices=("alex", "vgg"), default="alex", help="LPIPS backbone (default alex)")
    parser.add_argument("--lpips", type=Path, required=True, help="LPIPS linear-layer weights (.pth)")
    parser.add_argument("--backbone", type=Path, required=True, help="torchvision backbone weights (.pth)")
    parser.add_argument("--out", type=Path, required=True, help="the .npz to write")
    return parser.parse_args(argv)


@command(logging.WARNING)
def main(argv=None) -> int:
    args = parse_args(argv)
    arrays = convert_lpips_weights(read_torch_state_dict(args.lpips), read_torch_state_dict(args.backbone), args.net)
    path = save_lpips_weights(arrays, args.out)
    try:
        load_lpips(path)  # the file must load before we call it done
    except LPIPSUnavailable as error:
        raise UsageError(str(error)) from error
    print(f"LPIPS-{args.net} weights written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
