#!/usr/bin/env python
"""On-demand check: peak memory of serving a large PNG through an exported SavedModel.

    python benchmarks/serving_memory.py                      # tiny EUSR, both x4 signatures, zero PNGs of 2000 and 4000 px
    python benchmarks/serving_memory.py --sizes limit --config paper   # the largest square each signature accepts
    python benchmarks/serving_memory.py --signatures upscale_x4_png_tiled --sizes 500,2000 --photo
    python benchmarks/serving_memory.py --model runs/pretrain_demo --request-memory-mib 4096 --json out.json

An EUSR with random weights (``--config tiny``: 8 channels, 1 shared block, the default;
``paper``: 64 channels, 32 blocks; the memory of inference does not depend on the weights) or
--model is exported with :func:`eusr_perceptual.serving.savedmodel.export_savedmodel` under the request
budget of --request-memory-mib / --max-pixels. Each (signature, size) then runs in its own
process that imports neither Keras nor this project: it loads the SavedModel with
``tf.saved_model.load``, sends one PNG of size x size (zeros, as the issue's 4 KB / 16 KB
requests, or with --photo the astronaut, mirrored and tiled) and reports its peak resident
memory (``ru_maxrss``) after loading and after the request, and whether the signature refused
the image (its limit, from the header, before decoding). ``limit`` as a size is the largest
square the signature accepts. The tiled signature keeps the model's share to one tile; what
grows with the image is the decoded input, the uint8 output (46 MiB per 1000x1000 LR pixels
at x4), its stitching copies and the PNG encoding.
"""

from __future__ import annotations

import argparse
import json
import math
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
try:
    png = signature(images_bytes=tf.constant([payload]))["upscaled_bytes"][0].numpy()
    width, height = struct.unpack(">II", png[16:24])  # the PNG header's IHDR chunk
    answer = {"output": f"{width}x{height}", "png_mib": len(png) / 2**20}
except tf.errors.InvalidArgumentError as error:
    refusal = next(line for line in error.message.splitlines() if "assertion failed: [" in line)
    answer = {"refused": refusal.split("assertion failed: [", 1)[1].removesuffix("]")}
seconds = time.time() - started
peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"loaded_rss_mib": loaded_rss / 1024, "peak_rss_mib": peak_rss / 1024, "seconds": seconds, **answer}))
"""


def zero_png(size: int, path: Path) -> Path:
    """A size x size RGB PNG of zeros (4 KB at 2000 px, 16 KB at 4000 px)."""
    from PIL import Image

    Image.new("RGB", (size, size)).save(path, optimize=True)
    return path


def serve_once(saved_model: Path, signature: str, image: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", SERVE, str(saved_model), signature, str(image)],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if result.returncode:
        raise RuntimeError(f"serving failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    from upscale_large import CONFIGS, make_input, random_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a trained generator with an x4 path (default: a random EUSR of --config)")
    parser.add_argument("--config", choices=sorted(CONFIGS), default="tiny", help="the random EUSR (default tiny)")
    parser.add_argument("--sizes", default="2000,4000", help="comma-separated LR input sizes (square), or 'limit'")
    parser.add_argument("--signatures", default="upscale_x4_png,upscale_x4_png_tiled", help="signatures to call")
    parser.add_argument("--photo", action="store_true", help="send the astronaut instead of zeros")
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--request-memory-mib", type=int, default=2048, help="the export's request budget (default 2048)")
    parser.add_argument("--max-pixels", type=int, help="the export's explicit pixel limit")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    from eusr_perceptual.serving.savedmodel import export_savedmodel
    from eusr_perceptual.loading import load_generator
    from eusr_perceptual.serving.limits import RequestBudget, read_limits

    results = []
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        model = load_generator(args.model or random_model(args.config, work / "random.keras"))
        budget = RequestBudget(request_memory_mib=args.request_memory_mib, max_pixels=args.max_pixels)
        saved_model = export_savedmodel(model, work, "bench", tile=args.tile, overlap=args.overlap, warmup=False, budget=budget)
        limits = read_limits(saved_model)
        for signature in args.signatures.split(","):
            for text in args.sizes.split(","):
                size = math.isqrt(limits[signature].max_pixels) if text == "limit" else int(text)
                image = (make_input if args.photo else zero_png)(size, work / f"input_{size}.png")
                started = time.time()
                measured = {key: round(value, 1) if isinstance(value, float) else value
                            for key, value in serve_once(saved_model, signature, image).items()}
                results.append({"signature": signature, "size": size, "limit_pixels": limits[signature].max_pixels,
                                "input_png_kib": round(image.stat().st_size / 2**10, 1),
                                "wall_seconds": round(time.time() - started, 1), **measured})
                answer = f"refused: {measured['refused']}" if "refused" in measured else f"-> {measured['output']}"
                print(f"{signature} {size}x{size} {answer}: peak RSS {measured['peak_rss_mib']} MiB "
                      f"(after loading {measured['loaded_rss_mib']} MiB), {measured['seconds']} s", flush=True)
    summary = {"model": args.model or f"random EUSR {CONFIGS[args.config]}", "tile": args.tile, "overlap": args.overlap,
               "request_memory_mib": args.request_memory_mib, "max_pixels": args.max_pixels, "runs": results}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
