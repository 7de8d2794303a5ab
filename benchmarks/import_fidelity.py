#!/usr/bin/env python
"""On-demand check that released-size files convert and match their sources (issue 22).

    python tests/fixtures/make_import_fixtures.py --full-size --out /tmp/full       # needs PyTorch
    python tests/fixtures/make_eusr_graph_fixture.py --paper-size --out /tmp/full
    python benchmarks/import_fidelity.py /tmp/full

The fixture scripts write networks of the released sizes (RRDBNet 64 / 23 / 32 in BasicSR,
ESRGAN-repository and original ESRGAN namings, zip and legacy serialization; MSRResNet 64 / 16
x4 and x3; the VGG-style discriminator on 128 x 128; a 4PP-EUSR graph of the paper's size,
64 channels and 32 shared blocks, frozen the way the authors' code freezes it) with random
weights and record their sources' outputs. This converts each file the way ``eusr-import-weights``
does and prints, per format and scale, the largest and the mean absolute difference on the
0..255 scale (the discriminator: of the logits), against the issue's bar of 0.05 / 0.005:
PyTorch outputs as ``255 * f(x / 255)``; for the graph, its single-pass x2 / x4 / x8 outputs
and ``sr_output`` for each ``sr_input_scale`` through the project's routes (x2x2, x4,
x8down with the ``subsample`` halving).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MAX_DIFF, MEAN_DIFF = 0.05, 0.005
GENERATORS = (("rrdbnet_basicsr.pth", "rrdbnet_params_ema", 4), ("rrdbnet_esrgan.pth", "rrdbnet_params_ema", 4),
              ("rrdbnet_esrgan_legacy.pth", "rrdbnet_params_ema", 4), ("msrresnet_basicsr_x4.pth", "msrresnet_x4", 4),
              ("msrresnet_basicsr_x3.pth", "msrresnet_x3", 3))


def difference(output, expected) -> tuple[float, float]:
    gap = np.abs(np.asarray(output, np.float64) - expected)
    return float(gap.max()), float(gap.mean())


def rows(folder: Path) -> list[tuple[str, str, float, float]]:
    """``(file [format], what, max, mean)`` for every fixture present in ``folder``."""
    from eusr_perceptual.importers import import_network
    from eusr_perceptual.models.multipass import halve

    found = []
    if (folder / "import_fixture_outputs.npz").is_file():
        outputs = np.load(folder / "import_fixture_outputs.npz")
        lr = outputs["lr"].astype(np.float32)
        for name, key, scale in GENERATORS:
            imported = import_network(folder / name)
            found.append((f"{name} [{imported.provenance['format']}]", f"x{scale}", *difference(imported.model(lr, scale=scale), outputs[key])))
        imported = import_network(folder / "vgg_style_basicsr.pth")
        logits = imported.model(outputs["hr"].astype(np.float32), training=False)
        found.append(("vgg_style_basicsr.pth [basicsr]", "logit", *difference(logits, outputs["vgg_style"])))
    for graph in sorted(folder.glob("*.pb")):
        outputs = np.load(folder / f"{graph.stem}_outputs.npz")
        model, lr = import_network(graph).model, outputs["lr"]
        for scale in model.scales:
            found.append((f"{graph.name} [tf1_frozen_graph]", f"x{scale} path", *difference(model(lr, scale=scale), outputs[f"x{scale}"])))
        routes = {2: ("x2x2", lambda: model(model(lr, scale=2), scale=2)), 4: ("x4", lambda: model(lr, scale=4)),
                  8: ("x8down subsample", lambda: halve(model(lr, scale=8), "subsample"))}
        for scale, (route, run) in routes.items():
            found.append((f"{graph.name} [tf1_frozen_graph]", f"sr_output, scale {scale} ({route})",
                          *difference(run(), outputs[f"sr_output_{scale}"])))
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="what the fixture scripts wrote with --full-size / --paper-size")
    args = parser.parse_args(argv)
    from eusr_perceptual.evaluation.tables import render_table

    found = rows(args.folder)
    body = [[source, what, f"{high:.2e}", f"{mean:.2e}", "yes" if high <= MAX_DIFF and mean <= MEAN_DIFF else "NO"]
            for source, what, high, mean in found]
    print(render_table(f"imported vs source, {args.folder}", ("file [format]", "output", "max |diff|", "mean |diff|",
                                                                 f"within {MAX_DIFF} / {MEAN_DIFF}"), body))
    return 0 if all(cells[-1] == "yes" for cells in body) else 1


if __name__ == "__main__":
    sys.exit(main())
