#!/usr/bin/env python
"""x4 inference speed of every generator at paper size on each Keras backend (issue 23).

    python benchmarks/backends.py                      # every installed backend, 128 and 512 px LR, 3 precisions
    python benchmarks/backends.py --reduced            # a CPU: 16 and 32 px LR, EUSR x4 only, 3 timed calls (< 5 min, 3 backends)
    python benchmarks/backends.py --backends jax torch --json out.json --markdown out.md

Needs keras, numpy, ``eusr_perceptual.models`` and one backend; TensorFlow is imported only
by the ``tensorflow`` backend itself (each run reports whether it was imported), so this runs
on a GPU machine that has JAX or PyTorch with CUDA and no TensorFlow. Each backend runs in its
own process (``KERAS_BACKEND`` is fixed when Keras is imported), all rows of a backend in one.

Rows: each generator at paper size (:mod:`eusr_perceptual.models.registry` defaults) with
random weights, on each x4 route: EUSR's x4 path, ``x2x2`` (the x2 path twice) and ``x8down``
(the x8 path, then every second pixel: the authors' code's halving; the MATLAB halving is
TensorFlow's), and the x4 SRResNet, MSRResNet, RRDBNet and AFM generator; for a random
``[batch, size, size, 3]`` LR input in [0, 255] under each dtype policy (float32,
mixed_float16, mixed_bfloat16). Timed: ``model.predict_on_batch``, i.e. what Keras does by
default on the backend (JAX: one XLA program; PyTorch: eager, no_grad; TensorFlow: a
tf.function, XLA on a GPU), numpy in and out. "first call" is the first call of a new input
size (trace and compilation included); images/s is ``batch`` / the median of ``--repeats``
later calls. ``OMP_WAIT_POLICY`` is ``PASSIVE`` unless set: PyTorch's OpenMP threads otherwise
spin at every barrier, which on a shared CPU made a 64-channel 3x3 convolution on a 64 x 64
image 14x slower (71 ms instead of 5, 2 threads, load average 8). A row that fails (out of memory, an op without a kernel for the dtype on the
device) is reported with its one-line error and the run goes on.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

BACKENDS = ("jax", "torch", "tensorflow")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
#: (generator type, route) for every x4 output.
ROUTES = (("eusr", "x4"), ("eusr", "x2x2"), ("eusr", "x8down"), ("srresnet", "x4"), ("msrresnet", "x4"),
          ("rrdbnet", "x4"), ("afm_srresnet", "x4"))
PAPER_SIZES, REDUCED_SIZES = (128, 512), (16, 32)
COLUMNS = ("backend", "network", "route", "precision", "lr_size", "images_per_s", "steady_s", "first_call_s")


# -- the worker: one backend, every row (run with KERAS_BACKEND set) ---------------------------


def _device(backend: str) -> str:
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return f"{device.platform}: {device.device_kind}"
    if backend == "torch":
        import torch

        return f"cuda: {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "cpu"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"gpu: {gpus[0].name}" if gpus else "cpu"


def _route_model(generator, route: str):
    """A Keras model running ``route`` of ``generator`` (``predict_on_batch`` has no ``scale``)."""
    import keras

    class Route(keras.Model):
        def __init__(self):
            super().__init__(name=f"{generator.name}_{route}")
            self.generator = generator  # tracked: its weights are the model's state

        @property
        def input_dtype(self):  # as the generators: [0, 255] inputs stay float32 under mixed precision
            return "float32"

        def call(self, images):
            if route == "x2x2":
                return self.generator(self.generator(images, scale=2), scale=2)
            if route == "x8down":
                return self.generator(images, scale=8)[:, ::2, ::2, :]
            return self.generator(images, scale=4)

    return Route()


def _measure(model, images, repeats: int) -> dict:
    started = time.perf_counter()
    model.predict_on_batch(images)
    first = time.perf_counter() - started
    steady = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.predict_on_batch(images)
        steady.append(time.perf_counter() - started)
    median = statistics.median(steady)
    return {"images_per_s": len(images) / median, "steady_s": median, "first_call_s": first}


def _worker(args) -> None:
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # a retrace per new input size is the point
    import keras
    import numpy as np

    from eusr_perceptual.models.registry import build_network

    backend = keras.backend.backend()
    print(json.dumps({"backend": backend, "device": _device(backend), "keras": keras.__version__}), flush=True)
    rng = np.random.default_rng(0)
    for precision in args.precisions:
        keras.config.set_dtype_policy(precision)
        try:
            for network in dict.fromkeys(name for name, _ in ROUTES if name in args.networks):
                generator = build_network({"type": network}, "generator", scale=4)
                generator.build()
                for route in (r for name, r in ROUTES if name == network and (name != "eusr" or r in args.eusr_routes)):
                    model = _route_model(generator, route)
                    for size in args.sizes:
                        row = {"backend": backend, "network": network, "route": route, "precision": precision,
                               "lr_size": size}
                        images = rng.uniform(0.0, 255.0, (args.batch, size, size, 3)).astype("float32")
                        try:
                            row.update(_measure(model, images, args.repeats))
                        except Exception as error:  # one row's failure (memory, a kernel) is reported, not fatal
                            row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
                        print(json.dumps(row), flush=True)
                del generator
        finally:
            keras.config.set_dtype_policy("float32")
    print(json.dumps({"backend": backend, "tensorflow_imported": "tensorflow" in sys.modules}), flush=True)


# -- the driver: one worker process per backend -------------------------------------------------


def _format(row: dict) -> str:
    if "error" in row:
        return (f"| {row['backend']} | {row['network']} | {row['route']} | {row['precision']} | {row['lr_size']} | "
                f"error: {row['error']} | | |")
    return (f"| {row['backend']} | {row['network']} | {row['route']} | {row['precision']} | {row['lr_size']} | "
            f"{row['images_per_s']:.3g} | {row['steady_s']:.3g} | {row['first_call_s']:.3g} |")


def _run_backend(backend: str, args, worker_argv: list[str]) -> tuple[dict, list[dict], float]:
    env = {"TF_CPP_MIN_LOG_LEVEL": "3", "OMP_WAIT_POLICY": "PASSIVE", **os.environ, "KERAS_BACKEND": backend}
    started, cpu_started = time.perf_counter(), _children_cpu_seconds()
    process = subprocess.Popen([sys.executable, __file__, "--worker", *worker_argv], env=env, stdout=subprocess.PIPE,
                               text=True)
    header, rows = {}, []
    for line in process.stdout:
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if "network" in record:
            rows.append(record)
            print(_format(record), flush=True)
        else:
            header.update(record)
            if "device" in record:
                print(f"<!-- {backend}: {record['device']}, Keras {record['keras']} -->", flush=True)
    process.wait()
    header["cpu_seconds"] = _children_cpu_seconds() - cpu_started
    if process.returncode:
        header["exit_status"] = process.returncode
    return header, rows, time.perf_counter() - started


def _children_cpu_seconds() -> float:
    """User + system CPU seconds of the finished worker processes (what a busy shared CPU does
    not inflate, unlike wall time)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=BACKENDS,
                        help="backends to run (those not installed are skipped); default: all")
    parser.add_argument("--sizes", nargs="+", type=int, help=f"LR sides (default {PAPER_SIZES}; --reduced {REDUCED_SIZES})")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=PRECISIONS)
    parser.add_argument("--networks", nargs="+", default=sorted({name for name, _ in ROUTES}))
    parser.add_argument("--eusr-routes", nargs="+", default=("x4", "x2x2", "x8down"), choices=("x4", "x2x2", "x8down"))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, help="timed calls after the first (default 5; --reduced 3)")
    parser.add_argument("--reduced", action="store_true",
                        help="a CPU run: LR sides 16 and 32, three timed calls, EUSR's x4 route only")
    parser.add_argument("--json", type=Path, help="write every row and each backend's device here")
    parser.add_argument("--markdown", type=Path, help="write the table here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sizes = args.sizes or (REDUCED_SIZES if args.reduced else PAPER_SIZES)
    args.repeats = args.repeats or (3 if args.reduced else 5)
    if args.reduced and args.eusr_routes == parser.get_default("eusr_routes"):
        args.eusr_routes = ("x4",)
    if args.worker:
        _worker(args)
        return 0
    worker_argv = ["--sizes", *map(str, args.sizes), "--precisions", *args.precisions, "--networks", *args.networks,
                   "--eusr-routes", *args.eusr_routes, "--batch", str(args.batch), "--repeats", str(args.repeats)]
    table = ["| backend | generator | route | precision | LR side | images/s | steady call s | first call s |",
             "|---|---|---|---|---|---|---|---|"]
    print("\n".join(table), flush=True)
    report = {"load_average_start": os.getloadavg(), "backends": {}, "rows": []}
    for backend in args.backends:
        if importlib.util.find_spec(backend) is None:
            print(f"<!-- {backend}: not installed, skipped -->", flush=True)
            continue
        header, rows, seconds = _run_backend(backend, args, worker_argv)
        report["backends"][backend] = {**header, "seconds": seconds}
        report["rows"] += rows
        table += [_format(row) for row in rows]
        imported = header.get("tensorflow_imported")
        print(f"<!-- {backend}: {seconds:.0f} s ({header['cpu_seconds']:.0f} CPU s), TensorFlow imported: {imported}"
              f"{', exit status ' + str(header['exit_status']) if 'exit_status' in header else ''} -->", flush=True)
    report["load_average_end"] = os.getloadavg()
    print(f"<!-- load average {report['load_average_start'][0]:.2f} at the start, "
          f"{report['load_average_end'][0]:.2f} at the end -->")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    if args.markdown:
        args.markdown.write_text("\n".join(table) + "\n")
    return 0 if all("exit_status" not in b for b in report["backends"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
