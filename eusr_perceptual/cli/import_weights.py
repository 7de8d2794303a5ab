"""Converts released weights into the project's networks as a .keras file.

    eusr-import-weights 4pp_eusr_paper_v2.pb --out models/4pp_eusr_paper.keras
    eusr-import-weights RRDB_ESRGAN_x4.pth --out models/esrgan.keras
    eusr-import-weights ESRGAN_SRx4_DF2KOST_official-ff704c30.pth --out models/esrgan_basicsr.keras --key params_ema
    eusr-import-weights ESRGAN_..._net_d.pth --out models/esrgan_d.keras        # a discriminator

Sources: the 4PP-EUSR authors' frozen TensorFlow 1 graphs (``.pb``: an EUSR with every scale
the graph holds), and PyTorch state dicts (``.pth`` / ``.pt``, zip or legacy serialization) of
RRDBNet (BasicSR, ESRGAN repository and original ESRGAN release key namings), BasicSR's
MSRResNet and its VGG-style discriminator. Architecture, sizes and scale come from the file;
--arch only checks them, --scale is needed only where the file cannot tell (an RRDBNet with
one upsampling conv: x2 or x3), --key picks the entry of a wrapped BasicSR file (default
params_ema, else params). PyTorch is not needed: the files are read through a restricted
unpickler (nothing in them runs). The .keras file records the source's name, sha256, key
format and entry; every command that takes a model also takes the released file directly.
An unknown or missing key (or graph node), or a shape that does not fit, is a one-line error
naming it, and nothing is written.
"""

from __future__ import annotations

import logging

import argparse
import json
import sys
from pathlib import Path

from eusr_perceptual.cli.command import command
from eusr_perceptual.importers import ARCHES, import_network, save_imported


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="released weights: a frozen .pb graph or a .pth/.pt state dict")
    parser.add_argument("--out", type=Path, required=True, help="the .keras file to write")
    parser.add_argument("--arch", choices=ARCHES, help="the architecture the file must hold (default: what it says)")
    parser.add_argument("--scale", type=int, help="the scale, only where the file cannot tell")
    parser.add_argument("--key", help="entry of a wrapped state dict: params_ema (default), params, or bare")
    return parser.parse_args(argv)


@command(logging.WARNING)
def main(argv=None) -> int:
    args = parse_args(argv)
    imported = import_network(args.source, arch=args.arch, scale=args.scale, key=args.key)
    out = save_imported(imported, args.out)
    print(f"{imported.provenance['arch']} written to {out}: {json.dumps(imported.provenance)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
