#!/usr/bin/env python
"""On-demand check: scripts/upscale.py on a 2000x2000 input runs in bounded memory.

    python benchmarks/upscale_large.py                    # demo-size EUSR, 500 and 2000 px
    python benchmarks/upscale_large.py --config paper --sizes 2000
    python benchmarks/upscale_large.py --model runs/pretrain_demo --sizes 2000 --json out.json

Each size runs scripts/upscale.py in its own process (x4, tiled) and reports that process's
peak resident memory (``wait4`` rusage). Tiling keeps the model's share of memory that of
one tile, so the peak grows with the image only by the uint8 output (and the decoded
input and PNG encoding): compare the peaks of two sizes with the output sizes.
Without --model, an EUSR with random weights of the chosen --config is used (the speed and
memory of inference do not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONFIGS = {"tiny": {"channels": 8, "shared_blocks": 1}, "demo": {"channels": 32, "shared_blocks": 4},
           "paper": {"channels": 64, "shared_blocks": 32}}


def make_input(size: int, path: Path) -> Path:
    """A size x size photograph-like image (the astronaut, mirrored-tiled)."""
    import numpy as np
    import skimage.data
    from PIL import Image

    tile = skimage.data.astronaut()
    tile = np.concatenate([tile, tile[:, ::-1]], axis=1)
    tile = np.concatenate([tile, tile[::-1]], axis=0)
    reps = -(-size // tile.shape[0])
    Image.fromarray(np.tile(tile, (reps, reps, 1))[:size, :size]).save(path)
    return path


def random_model(config: str, path: Path) -> Path:
    from eusr_perceptual.models.eusr import EUSR, EUSRConfig

    model = EUSR(EUSRConfig(scales=(4,), **CONFIGS[config]))
    model.build()
    model.save(path)
    return path


def run_once(model: Path, image: Path, out: Path, tile: int, overlap: int) -> dict:
    """Runs scripts/upscale.py; returns its wall time and peak RSS."""
    command = [sys.executable, str(REPO / "scripts" / "upscale.py"), str(model), str(image), "--out", str(out),
               "--tile", str(tile), "--overlap", str(overlap)]
    started = time.time()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"upscale.py failed with status {process.returncode}")
    return {"seconds": round(time.time() - started, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a trained generator (default: random weights of --config)")
    parser.add_argument("--config", choices=sorted(CONFIGS), default="demo")
    parser.add_argument("--sizes", default="500,2000", help="comma-separated input sizes (square)")
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        model = Path(args.model) if args.model else random_model(args.config, work / "model.keras")
        for size in (int(s) for s in args.sizes.split(",")):
            image = make_input(size, work / f"input_{size}.png")
            measured = run_once(model, image, work / "out", args.tile, args.overlap)
            output_mib = round((4 * size) ** 2 * 3 / 2**20, 1)
            results.append({"size": size, "output": f"{4 * size}x{4 * size}", "output_uint8_mib": output_mib, **measured})
            print(f"{size}x{size} -> {4 * size}x{4 * size}: peak RSS {measured['peak_rss_mib']} MiB "
                  f"(uint8 output {output_mib} MiB), {measured['seconds']} s", flush=True)
    summary = {"model": args.model or f"random EUSR ({args.config})", "tile": args.tile, "overlap": args.overlap, "runs": results}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
