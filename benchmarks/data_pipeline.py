#!/usr/bin/env python
"""On-demand benchmark of the training input (issue 12): in-memory sampler vs prepared store.

    python benchmarks/data_pipeline.py                          # 800 synthetic 2040x1356 images
    python benchmarks/data_pipeline.py --images 24 --before-images 8 --steps 10   # a quick look
    python benchmarks/data_pipeline.py --formats-only           # TFRecord vs memory-mapped .npy

1. Writes a synthetic DIV2K-sized training set (``--images`` PNGs, 2040x1356, a random
   gradient plus uniform noise) and prepares a store of it (HR + LR x2/x4/x8): preparation
   time, store size.
2. Random patch access from the store's format, memory-mapped ``.npy``, against TFRecord (raw
   pixels, and PNG-encoded as TFDS stores them), for the choice of format.
3. Each of "before" (``--data <folder>``: decode everything, make the LR in memory) and
   "after" (``--data store:<path>``) runs in a fresh process, twice:
   * pipeline: batches/s of ``sampler.dataset()`` at EUSR's paper setting (16 x 48x48 LR,
     x2/x4/x8 drawn uniformly) and ESRGAN's (16 x 32x32 LR, 128x128 HR, x4), and the CPU cores
     it keeps busy (process CPU time / wall time);
   * train: ``--steps`` steps of a small EUSR (16 channels, 2 shared blocks: the model is not
     the point) through :func:`~eusr_perceptual.training.runs.fit_run` at the paper's batch
     settings: start-up (data ready, first step done) and peak RSS (``VmHWM``, which counts
     the store's pages mapped at the time as well).
   "before" loads ``--before-images`` of the images (RAM and CPU time); its start-up and RSS
   are extrapolated linearly to ``--images`` (both are linear in the image count), and say so.
   The store is read once before measuring (page cache warm, as on a machine whose RAM holds
   it after the first pass); ``--cold`` measures whatever the page cache holds.

The bar (issue 12): 10x the steps/s a GPU trains at: 200 batches/s for EUSR, 100 for ESRGAN.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout, whatever copy is pip-installed

SETTINGS = {"eusr": {"scales": (2, 4, 8), "patch_size": 48}, "esrgan": {"scales": (4,), "patch_size": 32}}
BAR = {"eusr": 200, "esrgan": 100}
BATCH = 16
HEIGHT, WIDTH = 1356, 2040


def synthetic_image(index: int) -> np.ndarray:
    """A random-direction gradient plus uniform noise (+-24), 2040x1356 RGB uint8."""
    rng = np.random.default_rng(index)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    direction = rng.uniform(-1, 1, (2, 3)).astype(np.float32)
    gradient = 128 + 100 * (y[..., None] * direction[0] / HEIGHT + x[..., None] * direction[1] / WIDTH)
    noise = rng.integers(-24, 25, (HEIGHT, WIDTH, 3), dtype=np.int16)
    return np.clip(gradient + noise, 0, 255).astype(np.uint8)


def _write_png(args) -> None:
    from PIL import Image

    index, folder = args
    path = Path(folder) / f"{index + 1:04d}.png"
    if not path.is_file():
        temporary = path.with_suffix(".tmp.png")
        Image.fromarray(synthetic_image(index)).save(temporary, compress_level=1)
        os.replace(temporary, path)


def read_once(store: Path) -> float:
    """Reads every shard once (into the page cache); returns the seconds it took."""
    started = time.perf_counter()
    for shard in sorted((store / "shards").glob("*.npy")):
        with open(shard, "rb") as stream:
            while stream.read(1 << 24):
                pass
    return time.perf_counter() - started


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def memory_status() -> dict:
    """Peak and current resident memory of this process (MiB), from /proc/self/status."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmHWM", "VmRSS", "RssAnon", "RssFile") if key in fields}


# ------------------------------------------------------------------------ measured in a fresh process


def cached_gib(store: Path) -> float | None:
    """GiB of the store's shards in the page cache now (util-linux ``fincore``), or None."""
    shards = sorted(str(path) for path in (store / "shards").glob("*.npy"))
    try:
        listing = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", *shards],
                                 capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return sum(int(line) for line in listing.split()) / 2**30


def phase_pipeline(data: str, batches: int) -> dict:
    from eusr_perceptual.data.samplers import make_sampler

    results = {"store_cached_gib": cached_gib(Path(data[len("store:"):])) if data.startswith("store:") else None}
    for name, setting in SETTINGS.items():
        started = time.perf_counter()
        sampler = make_sampler(data, setting["scales"], setting["patch_size"], BATCH, seed=0)
        ready = time.perf_counter() - started
        iterator = iter(sampler.dataset(0))
        for _ in range(20):  # warm up: tf.data's autotuning, page cache
            next(iterator)
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(batches):
            next(iterator)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        results[name] = {"batches_per_s": batches / wall, "cores": cpu / wall, "sampler_ready_s": ready}
    return {**results, "memory_mib": memory_status()}


def phase_train(data: str, steps: int, run_dir: str) -> dict:
    import keras

    from eusr_perceptual.data.samplers import make_sampler
    from eusr_perceptual.models.eusr import EUSR, EUSRConfig
    from eusr_perceptual.training.pretrain import MultiScalePretrainer
    from eusr_perceptual.training.runs import RunOptions, fit_run

    class FirstStep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.seconds = getattr(self, "seconds", None) or time.perf_counter() - started

    started = time.perf_counter()
    sampler = make_sampler(data, SETTINGS["eusr"]["scales"], SETTINGS["eusr"]["patch_size"], BATCH, seed=0)
    ready = time.perf_counter() - started
    after_data = memory_status()
    trainer = MultiScalePretrainer(EUSR(EUSRConfig(channels=16, shared_blocks=2)), sampler.scale_for_step)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-4))
    first = FirstStep()
    fit_run(trainer, sampler.dataset, RunOptions(run_dir, steps, steps, tensorboard=False), callbacks=[first], verbose=0)
    return {"images": len(sampler.images), "data_ready_s": ready, "first_step_s": first.seconds,
            "steps_s": time.perf_counter() - started - first.seconds, "memory_after_data_mib": after_data,
            "memory_mib": memory_status()}


def run_phase(*arguments: str) -> dict:
    """Runs this script's ``--phase`` in a fresh Python process and returns its JSON."""
    command = [sys.executable, __file__, *arguments]
    process = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{process.stderr[-3000:]}")
    return json.loads(process.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------ format comparison


def compare_formats(store: Path, folder: Path, work: Path, images: int = 8, patches: int = 200) -> dict:
    """ms per random x8 patch (48x48 LR, 384x384 HR), page cache warm, for three layouts."""
    import tensorflow as tf
    from PIL import Image

    from eusr_perceptual.data.store import open_store

    paths = sorted(folder.glob("*.png"))[:images]
    images = len(paths)
    raw_file, png_file = work / "raw.tfrecord", work / "png.tfrecord"
    offsets = {raw_file: [], png_file: []}
    for file, encode in ((raw_file, lambda p: np.asarray(Image.open(p)).tobytes()), (png_file, lambda p: p.read_bytes())):
        with tf.io.TFRecordWriter(str(file)) as writer:
            position = 0
            for path in paths:
                example = tf.train.Example(features=tf.train.Features(feature={
                    "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encode(path)]))}))
                record = example.SerializeToString()
                writer.write(record)
                offsets[file].append((position, len(record)))
                position += len(record) + 16  # length (8) + its CRC (4) + data + data CRC (4)

    def read_record(file, index):
        position, length = offsets[file][index]
        with open(file, "rb") as stream:
            stream.seek(position + 12)
            return tf.train.Example.FromString(stream.read(length)).features.feature["image"].bytes_list.value[0]

    store_images = open_store(store, check_sources=False).training_images((8,))[:images]
    rng = np.random.default_rng(0)
    draws = [(rng.integers(images), rng.integers(HEIGHT // 8 - 48), rng.integers(WIDTH // 8 - 48)) for _ in range(patches)]

    def hr_patch(image, y, x):
        return np.array(image[y * 8:y * 8 + 384, x * 8:x * 8 + 384], np.float32)

    readers = {
        "npy_memmap": lambda i, y, x: (np.array(store_images[i].lr[8][y:y + 48, x:x + 48]), hr_patch(store_images[i].hr, y, x)),
        "tfrecord_raw": lambda i, y, x: hr_patch(np.frombuffer(read_record(raw_file, i), np.uint8).reshape(HEIGHT, WIDTH, 3), y, x),
        "tfrecord_png": lambda i, y, x: hr_patch(np.asarray(Image.open(io.BytesIO(read_record(png_file, i)))), y, x),
    }
    results = {}
    for name, read in readers.items():
        count = patches if name != "tfrecord_png" else patches // 10
        for draw in draws[:5]:
            read(*draw)  # warm the page cache
        started = time.perf_counter()
        for draw in draws[:count]:
            read(*draw)
        results[name] = 1000 * (time.perf_counter() - started) / count
    raw_file.unlink()
    png_file.unlink()
    return {"ms_per_x8_patch": results}


# ------------------------------------------------------------------------ orchestration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=800, help="synthetic 2040x1356 training images")
    parser.add_argument("--before-images", type=int, default=100, help="images the in-memory run loads (extrapolated)")
    parser.add_argument("--steps", type=int, default=100, help="training steps per run")
    parser.add_argument("--batches", type=int, default=400, help="timed batches per pipeline measurement")
    parser.add_argument("--work", type=Path, default=Path("/tmp/eusr_data_pipeline"), help="scratch folder (kept)")
    parser.add_argument("--workers", type=int, help="preparation processes (default: all CPUs)")
    parser.add_argument("--formats-only", action="store_true", help="only the format comparison (needs a store in --work)")
    parser.add_argument("--cold", action="store_true",
                        help="do not read the store once before measuring (its pages then come from disk if evicted)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--phase", choices=("pipeline", "train"), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        measured = phase_pipeline(args.data, args.batches) if args.phase == "pipeline" else \
            phase_train(args.data, args.steps, args.run_dir)
        print(json.dumps(measured), flush=True)
        # Leave without destructors: a tf.data iterator freed while its prefetch thread waits
        # for the GIL inside numpy_function can block interpreter exit.
        os._exit(0)

    from eusr_perceptual.data.store import StoreSettings
    from eusr_perceptual.data.store_prepare import prepare_store

    folder, store = args.work / "images", args.work / "store"
    if args.formats_only:
        print(json.dumps(compare_formats(store, folder, args.work), indent=1))
        return
    folder.mkdir(parents=True, exist_ok=True)
    results = {"cpus": len(os.sched_getaffinity(0)), "load_average_at_start": os.getloadavg(), "images": args.images,
               "steps": args.steps}
    started = time.perf_counter()
    with ProcessPoolExecutor(results["cpus"]) as pool:
        list(pool.map(_write_png, [(i, str(folder)) for i in range(args.images)], chunksize=4))
    results["generate_s"] = time.perf_counter() - started
    results["source_gib"] = folder_size(folder) / 2**30

    manifest = prepare_store(store, StoreSettings((str(folder),), (2, 4, 8)), workers=args.workers)
    results["prepare_s"] = manifest["seconds"]  # of the (last) preparation session: a rerun reuses the store
    results["store_gib"] = folder_size(store) / 2**30
    assert len(manifest["images"]) == args.images

    subset = args.work / "before_images"
    shutil.rmtree(subset, ignore_errors=True)
    subset.mkdir()
    for path in sorted(folder.glob("*.png"))[:args.before_images]:
        os.link(path, subset / path.name)
    for name, data in (("before", str(subset)), ("after", f"store:{store}")):
        if name == "after":
            if not args.cold:
                results["warm_cache_s"] = read_once(store)
            results["formats"] = compare_formats(store, folder, args.work)
        run_dir = args.work / f"run_{name}"
        shutil.rmtree(run_dir, ignore_errors=True)
        results[name] = {"pipeline": run_phase("--phase", "pipeline", "--data", data, "--batches", str(args.batches)),
                         "train": run_phase("--phase", "train", "--data", data, "--steps", str(args.steps),
                                            "--run-dir", str(run_dir))}
    results["load_average_at_end"] = os.getloadavg()
    report(results, args.before_images)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


def report(results: dict, before_images: int) -> None:
    n, factor = results["images"], results["images"] / before_images
    before, after = results["before"], results["after"]
    per_image_mib = (before["train"]["memory_after_data_mib"]["VmRSS"] - after["train"]["memory_after_data_mib"]["VmRSS"]) / before_images
    print(f"\n{n} synthetic 2040x1356 images on {results['cpus']} CPUs (load average {results['load_average_at_start'][0]:.1f} "
          f"at start, {results['load_average_at_end'][0]:.1f} at end)")
    print(f"generated in {results['generate_s']:.0f} s ({results['source_gib']:.2f} GiB of PNG); store prepared in "
          f"{results['prepare_s']:.0f} s, {results['store_gib']:.2f} GiB on disk")
    if "warm_cache_s" in results:
        print(f"store read once into the page cache before measuring ({results['warm_cache_s']:.0f} s); --cold skips that")
    print("random x8 patch (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in results["formats"]["ms_per_x8_patch"].items()))
    print("\n| | before (in memory) | after (store) |\n|---|---|---|")
    data = before["train"]["data_ready_s"]
    for label, key in (("data ready (s)", "data_ready_s"), ("first step done (s)", "first_step_s")):
        b = before["train"][key]
        print(f"| {label} | {b:.1f} for {before_images} images; ~{b + data * (factor - 1):.0f} for {n} (data part "
              f"linear) | {after['train'][key]:.1f} |")
    b_peak, a_peak = before["train"]["memory_mib"]["VmHWM"], after["train"]["memory_mib"]["VmHWM"]
    print(f"| peak RSS, {after['train']['images']} vs {before['train']['images']} images, "
          f"{results.get('steps', '')} steps (MiB) | {b_peak:.0f} for {before_images} images; "
          f"~{b_peak + per_image_mib * (n - before_images):.0f} for {n} | {a_peak:.0f} |")
    print(f"| steps time (s) | {before['train']['steps_s']:.1f} | {after['train']['steps_s']:.1f} |")
    for name in SETTINGS:
        b, a = before["pipeline"][name], after["pipeline"][name]
        print(f"| {name} pipeline batches/s (cores) | {b['batches_per_s']:.0f} ({b['cores']:.2f}) | "
              f"{a['batches_per_s']:.0f} ({a['cores']:.2f}); bar {BAR[name]} |")
    if after["pipeline"]["store_cached_gib"] is not None:
        print(f"(store in the page cache when the pipeline was measured: {after['pipeline']['store_cached_gib']:.2f} "
              f"of {results['store_gib']:.2f} GiB)")


if __name__ == "__main__":
    main()
