#!/usr/bin/env python
"""On-demand check: peak memory of serving a large PNG through an exported SavedModel.

    python benchmarks/serving_memory.py                      # tiny EUSR, tiled x4 at 500 and 2000 px
    python benchmarks/serving_memory.py --sizes 500 --signature upscale_x4_png   # untiled, for comparison
    python benchmarks/serving_memory.py --model runs/pretrain_demo --json out.json

A tiny EUSR with random weights (8 channels, 1 shared block; the memory of inference does not
depend on the weights) or --model is exported with :func:`eusr_perceptual.export.export_savedmodel`.
Each size then runs in its own process that imports neither Keras nor this project: it loads
the SavedModel with ``tf.saved_model.load``, sends one encoded PNG (the astronaut, mirrored and
tiled to size x size) to the signature, and reports its peak resident memory
(``ru_maxrss``) after loading and after the request. The tiled signature keeps the model's
share to one tile; what grows with the image is the decoded input, the uint8 output (46 MiB
per 1000x1000 LR pixels at x4), its stitching copies and the PNG encoding.
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
sys.path.insert(0, str(REPO / "benchmarks"))

# The serving process: TensorFlow only.
SERVE = """
import json, resource, struct, sys, time
sys.modules["keras"] = None
sys.modules["eusr_perceptual"] = None
import tensorflow as tf

saved_model, signature_name, image_file = sys.argv[1:4]
loaded = tf.saved_model.load(saved_model)
signature = loaded.signatures[signature_name]
payload = open(image_file, "rb").read()
loaded_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.time()
png = signature(images_bytes=tf.constant([payload]))["upscaled_bytes"][0].numpy()
seconds = time.time() - started
peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
width, height = struct.unpack(">II", png[16:24])  # the PNG header's IHDR chunk
print(json.dumps({"loaded_rss_mib": loaded_rss / 1024, "peak_rss_mib": peak_rss / 1024, "seconds": seconds,
                  "output": f"{width}x{height}", "png_mib": len(png) / 2**20}))
"""


def tiny_model():
    from eusr_perceptual.models.eusr import EUSR, EUSRConfig

    model = EUSR(EUSRConfig(channels=8, shared_blocks=1, scales=(4,)))
    model.build()
    return model


def serve_once(saved_model: Path, signature: str, image: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", SERVE, str(saved_model), signature, str(image)],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if result.returncode:
        raise RuntimeError(f"serving failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a trained generator with an x4 path (default: a tiny random EUSR)")
    parser.add_argument("--sizes", default="500,2000", help="comma-separated LR input sizes (square)")
    parser.add_argument("--signature", default="upscale_x4_png_tiled", help="signature to call (default the tiled x4)")
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    from eusr_perceptual.export import export_savedmodel
    from eusr_perceptual.models.loading import load_generator
    from upscale_large import make_input

    results = []
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        model = load_generator(args.model) if args.model else tiny_model()
        saved_model = export_savedmodel(model, work, "bench", tile=args.tile, overlap=args.overlap, warmup=False)
        for size in (int(s) for s in args.sizes.split(",")):
            image = make_input(size, work / f"input_{size}.png")
            started = time.time()
            measured = {key: round(value, 1) if isinstance(value, float) else value
                        for key, value in serve_once(saved_model, args.signature, image).items()}
            results.append({"size": size, "input_png_mib": round(image.stat().st_size / 2**20, 1),
                            "wall_seconds": round(time.time() - started, 1), **measured})
            print(f"{args.signature} {size}x{size} -> {measured['output']}: peak RSS {measured['peak_rss_mib']} MiB "
                  f"(after loading {measured['loaded_rss_mib']} MiB), {measured['seconds']} s", flush=True)
    summary = {"model": args.model or "tiny random EUSR (8 channels, 1 shared block)", "signature": args.signature,
               "tile": args.tile, "overlap": args.overlap, "runs": results}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
