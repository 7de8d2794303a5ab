#!/usr/bin/env python
"""Speed of every generator and trainer at paper size, float32 and mixed precision, XLA off/on.

    python benchmarks/speed.py --quick --json speed.json --markdown speed.md   # < 10 min, 2 cores
    python benchmarks/speed.py --json speed.json --markdown speed.md           # everything (hours on a CPU)
    python benchmarks/speed.py --only eusr --precision float32 --xla on

Measured, each in its own process (fresh dtype policy and compilation caches; peak RSS is
the process's own):

* **inference**: images/s of tiled x``s`` upscaling to a ``--output-size`` square image
  (default 512 x 512, i.e. a 128 x 128 LR image at x4) with ``--tile``/``--overlap`` LR
  tiles (default 64/16: four 80 x 80 tiles), through
  :func:`eusr_perceptual.inference.upscale_image`, both batched (the tiles of one size in one
  call, the default) and one tile per call (the path before batching); the first call's
  extra time is the trace and compilation. Every registered generator at x4, EUSR also on
  its x2 and x8 paths (full run).
* **pretrain**: steps/s of EUSR pre-training (4PP-EUSR section 4.1: 16 x 48 x 48 LR
  patches, L1, Adam; :class:`~eusr_perceptual.training.pretrain.MultiScalePretrainer`) on
  each path; x4 is the key figure.
* **gan**: steps/s of the GAN presets of :mod:`eusr_perceptual.configs.presets` built by
  ``build_gan_trainer`` (one preset per distinct set of networks, terms and patch size,
  or those named with ``--preset``); perceptual backbones and NIMA predictors have random
  weights (speed does not depend on them).

Training steps go through :func:`eusr_perceptual.training.xla.enable_xla`, so "XLA on"
rows record whether the step compiled with XLA or fell back, and why. Timings are wall
clock on random inputs after a warm-up call; the load average before each job is recorded
(the CPU may be shared). ``--quick``: one timed repetition; EUSR x4 inference in all four
precision/XLA combinations, the other generators' inference in float32 without XLA, EUSR x4
pre-training in float32 without and with XLA, and the 4pp_eusr preset in float32 with XLA.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from eusr_perceptual.cli import quiet

PRECISIONS = ("float32", "mixed_float16")
KINDS = ("inference", "pretrain", "gan")
#: EUSR pre-training at paper size (4PP-EUSR section 4.1).
PRETRAIN_BATCH, PRETRAIN_PATCH = 16, 48
QUICK_PRESETS = ("4pp_eusr",)


@dataclass(frozen=True)
class Job:
    kind: str  # "inference", "pretrain" or "gan"
    name: str  # generator type or preset name
    scale: int
    precision: str
    xla: bool


@dataclass
class Settings:
    output_size: int = 512
    tile: int = 64
    overlap: int = 16
    repeats: int = 3
    job_timeout: float = 3600.0


# -- measurements (run in the worker process) -------------------------------------------------


def _timed(call, cpu: list | None = None) -> float:
    """Wall seconds of ``call()``; appends its process CPU seconds (all threads) to ``cpu``,
    a measure of work that waiting for a busy shared CPU does not inflate."""
    started, cpu_started = time.perf_counter(), time.process_time()
    call()
    if cpu is not None:
        cpu.append(time.process_time() - cpu_started)
    return time.perf_counter() - started


def measure_inference(job: Job, settings: Settings) -> dict:
    import numpy as np

    from eusr_perceptual.inference import make_tile_function, upscale_image
    from eusr_perceptual.models.registry import build_network

    spec = {"type": job.name} if job.name == "eusr" else {"type": job.name, "scale": job.scale}
    model = build_network(spec, "generator")
    model.build()
    lr_size = settings.output_size // job.scale
    lr = np.random.default_rng(0).integers(0, 256, (lr_size, lr_size, 3), dtype=np.uint8)
    route = f"x{job.scale}"
    started = time.perf_counter()
    run = make_tile_function(model, route, jit_compile=job.xla)
    trace = time.perf_counter() - started
    modes = {"batched": None, "one_tile": 1}  # tiles per call: from the memory budget, or 1
    cpu = {mode: [] for mode in modes}

    def once(mode):
        return _timed(lambda: upscale_image(model, lr, route, settings.tile, settings.overlap, tile_function=run,
                                            max_tiles_per_call=modes[mode]), cpu[mode])

    # The trace counts towards the first call of the first mode; XLA compiles per tile shape.
    first = {mode: once(mode) for mode in modes}
    first["batched"] += trace
    # Alternating the modes exposes both to the same load of a shared CPU.
    times = {mode: [] for mode in modes}
    for _ in range(settings.repeats):
        for mode in modes:
            times[mode].append(once(mode))
    result = {"params": int(model.count_params()), "lr_size": lr_size, "tile": settings.tile,
              "overlap": settings.overlap}
    for mode in modes:
        seconds = min(times[mode])
        result[f"{mode}_images_per_s"] = 1.0 / seconds
        result[f"{mode}_first_call_s"] = first[mode]
        result[f"{mode}_compile_s"] = max(first[mode] - seconds, 0.0)
        result[f"{mode}_cpu_s_per_image"] = min(cpu[mode][1:])
    result["xla_used"] = run.jit_compile
    return result


def _time_steps(trainer, batch, job: Job, settings: Settings, step_function=None) -> dict:
    """enable_xla, then the first step (trace, compilation) and ``repeats`` timed steps."""
    import tensorflow as tf

    from eusr_perceptual.training.xla import enable_xla

    started = time.perf_counter()
    choice = enable_xla(trainer, batch, job.xla, step_function)
    check = time.perf_counter() - started
    trainer.make_train_function()  # Keras' own returns None; every version sets train_function
    train_function = trainer.train_function
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())

    def step():
        float(train_function(iterator)["loss"])

    first, cpu = _timed(step), []
    seconds = min(_timed(step, cpu) for _ in range(settings.repeats))
    return {"steps_per_s": 1.0 / seconds, "cpu_s_per_step": min(cpu), "first_call_s": first,
            "compile_s": max(first - seconds, 0.0),
            "xla_check_s": check, "xla_used": choice.enabled, "xla_reason": choice.reason}


def measure_pretrain(job: Job, settings: Settings) -> dict:
    import tensorflow as tf

    from eusr_perceptual.models.eusr import EUSR
    from eusr_perceptual.training.pretrain import PRETRAIN_PRESETS, MultiScalePretrainer, pretrain_optimizer

    config = PRETRAIN_PRESETS["paper"]
    trainer = MultiScalePretrainer(EUSR(config.model), lambda step: job.scale)
    trainer.compile(optimizer=pretrain_optimizer(config))
    trainer.build_for_training()
    lr = tf.random.uniform((PRETRAIN_BATCH, PRETRAIN_PATCH, PRETRAIN_PATCH, 3), 0, 255, seed=1)
    hr = tf.random.uniform((PRETRAIN_BATCH, PRETRAIN_PATCH * job.scale, PRETRAIN_PATCH * job.scale, 3), 0, 255, seed=2)
    result = _time_steps(trainer, (lr, hr), job, settings, lambda data: trainer.train_step_at_scale(job.scale, data))
    return {"params": trainer.generator.path_parameter_count(job.scale), "batch": PRETRAIN_BATCH,
            "lr_patch": PRETRAIN_PATCH, **result}


def measure_gan(job: Job, settings: Settings) -> dict:
    import tensorflow as tf

    from eusr_perceptual.configs.presets import PRESETS
    from eusr_perceptual.pipelines.gan_run import build_gan_trainer

    # Timed steps are training steps: no discriminator warm-up.
    config = PRESETS[job.name].replace(backbone_weights="none", init_from="", aesthetic="", subjective="", d_warmup=0)
    resources = {}
    if config.predictors:
        from nima.model import build_nima, inference_model

        for predictor in config.predictors:
            resources[predictor] = inference_model(
                build_nima(weights=None, input_shape=(config.hr_size,) * 2 + (3,), name=predictor))
    trainer = build_gan_trainer(config, resources=resources)
    lr = tf.random.uniform((config.batch_size, config.patch_size, config.patch_size, 3), 0, 255, seed=1)
    hr = tf.random.uniform((config.batch_size, config.hr_size, config.hr_size, 3), 0, 255, seed=2)
    params = trainer.generator.count_params() + (trainer.discriminator.count_params() if trainer.discriminator else 0)
    return {"params": int(params), "batch": config.batch_size, "lr_patch": config.patch_size,
            **_time_steps(trainer, (lr, hr), job, settings)}


def run_worker(job: Job, settings: Settings) -> dict:
    import resource

    import keras
    import tensorflow as tf

    keras.mixed_precision.set_dtype_policy(job.precision)
    measure = {"inference": measure_inference, "pretrain": measure_pretrain, "gan": measure_gan}[job.kind]
    result = measure(job, settings)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if tf.config.list_physical_devices("GPU"):  # device memory is not in the RSS
        result["peak_gpu_mib"] = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    return result


# -- the job list and the driver -------------------------------------------------------------


def gan_presets(names: list[str] | None, quick: bool) -> tuple[list[str], str | None]:
    """The GAN presets to time, and a skip message when the GAN trainer builder is absent."""
    try:
        from eusr_perceptual.configs.presets import PRESETS
        from eusr_perceptual.pipelines.gan_run import build_gan_trainer  # noqa: F401
    except ImportError as error:
        return [], f"GAN trainer presets skipped: no eusr_perceptual.pipelines.gan_run.build_gan_trainer ({error})"
    if names:
        return names, None
    if quick:
        return [name for name in QUICK_PRESETS if name in PRESETS], None
    chosen, seen = [], set()
    for name, config in PRESETS.items():
        shape = (json.dumps(config.generator, sort_keys=True), json.dumps(config.discriminator, sort_keys=True),
                 config.producer, config.scale, config.objective, tuple(sorted({t.kind for t in config.active_terms})),
                 config.batch_size, config.patch_size)
        if shape not in seen and not name.endswith("_demo"):
            seen.add(shape)
            chosen.append(name)
    return chosen, None


def make_jobs(args) -> tuple[list[Job], list[str]]:
    from eusr_perceptual.models.registry import registered_networks

    generators = [g for g in registered_networks("generator") if not args.only or g in args.only]
    all_combos = [(p, x) for p in args.precision for x in args.xla]
    quick_default = [(p, x) for p, x in all_combos if p == "float32" and not x] or all_combos[:1]
    jobs, notes = [], []
    for generator in generators if "inference" in args.kind else ():
        scales = (2, 4, 8) if generator == "eusr" and not args.quick else (4,)
        for scale in scales:
            key = generator == "eusr" and scale == 4
            for precision, xla in all_combos if key or not args.quick else quick_default:
                jobs.append(Job("inference", generator, scale, precision, xla))
    # Mixed precision without XLA trains about 3x slower than float32 on a CPU: full runs only.
    train_combos = [(p, x) for p, x in all_combos if p == "float32" or not args.quick] or all_combos
    if "eusr" in generators and "pretrain" in args.kind:
        for scale in (4,) if args.quick else (2, 4, 8):
            jobs += [Job("pretrain", "eusr", scale, p, x) for p, x in train_combos]
    presets, skip = gan_presets(args.preset, args.quick) if "gan" in args.kind else ([], None)
    if skip:
        notes.append(skip)
    gan_combos = all_combos
    if args.quick:
        gan_combos = [(p, x) for p, x in all_combos if p == "float32" and x] or all_combos[:1]
    jobs += [Job("gan", name, 4, p, x) for name in presets for p, x in gan_combos]
    return jobs, notes


def run_job(job: Job, settings: Settings) -> dict:
    """Runs ``job`` in a fresh Python process; returns its measurements or its error."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker",
               json.dumps({"job": asdict(job), "settings": asdict(settings)})]
    load = os.getloadavg()[0]
    started = time.time()
    try:
        process = subprocess.run(command, capture_output=True, text=True, timeout=settings.job_timeout,
                                 env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    except subprocess.TimeoutExpired:
        return {**asdict(job), "load_before": load, "error": f"timed out after {settings.job_timeout:.0f} s"}
    record = {**asdict(job), "load_before": load, "wall_s": time.time() - started}
    lines = process.stdout.strip().splitlines()
    if process.returncode or not lines:
        error = (process.stderr.strip().splitlines() or ["no output"])[-1]
        return {**record, "error": f"exit {process.returncode}: {error[:300]}"}
    return {**record, **json.loads(lines[-1])}


def environment(argv: list[str]) -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    import keras
    import tensorflow as tf

    return {"command": "python benchmarks/speed.py " + " ".join(argv), "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "cpu": cpu, "cores": os.cpu_count(), "gpus": len(tf.config.list_physical_devices("GPU")),
            "tensorflow": tf.__version__, "keras": keras.__version__, "load_average_start": os.getloadavg()}


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [f"Command: `{env['command']}`", "",
             f"{env['date']}; {env['cpu']}, {env['cores']} cores, {env['gpus']} GPUs; TensorFlow {env['tensorflow']}, "
             f"Keras {env['keras']}; load average at start {env['load_average_start'][0]:.2f}, "
             f"at end {report['load_average_end'][0]:.2f}; {report['total_s'] / 60:.1f} min.", ""]
    lines += [f"- {note}" for note in report["notes"]]
    rows = report["results"]
    inference = [r for r in rows if r["kind"] == "inference"]
    if inference:
        lines += ["", "| generator | path | precision | XLA | images/s batched | images/s one tile/call | batched gain "
                  "| CPU s/image batched, one tile | first call s (compile) | peak RSS MiB | load |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in inference:
            if "error" in r:
                lines.append(f"| {r['name']} | x{r['scale']} | {r['precision']} | {_xla(r)} | {r['error']} |||||||")
                continue
            gain = r["batched_images_per_s"] / r["one_tile_images_per_s"] - 1
            lines.append(f"| {r['name']} | x{r['scale']} | {r['precision']} | {_xla(r)} "
                         f"| {r['batched_images_per_s']:.3f} | {r['one_tile_images_per_s']:.3f} | {gain:+.0%} "
                         f"| {r['batched_cpu_s_per_image']:.1f}, {r['one_tile_cpu_s_per_image']:.1f} "
                         f"| {r['batched_first_call_s']:.1f} ({r['batched_compile_s']:.1f}) | {_memory(r)} "
                         f"| {r['load_before']:.1f} |")
    training = [r for r in rows if r["kind"] != "inference"]
    if training:
        lines += ["", "| trainer | path | precision | XLA | steps/s | s/step | CPU s/step | first step s (compile) "
                  "| XLA check s | peak RSS MiB | load |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in training:
            name = "EUSR pre-training" if r["kind"] == "pretrain" else r["name"]
            if "error" in r:
                lines.append(f"| {name} | x{r['scale']} | {r['precision']} | {_xla(r)} | {r['error']} ||||||")
                continue
            lines.append(f"| {name} | x{r['scale']} | {r['precision']} | {_xla(r)} | {r['steps_per_s']:.3f} "
                         f"| {1 / r['steps_per_s']:.2f} | {r['cpu_s_per_step']:.1f} "
                         f"| {r['first_call_s']:.1f} ({r['compile_s']:.1f}) | {r['xla_check_s']:.1f} | {_memory(r)} "
                         f"| {r['load_before']:.1f} |")
        reasons = {r["xla_reason"] for r in training if r["xla"] and "error" not in r and not r["xla_used"]}
        lines += [""] + [f"- XLA fell back: {reason}" for reason in sorted(reasons)]
    return "\n".join(lines).rstrip() + "\n"


def _memory(row: dict) -> str:
    gpu = f" (GPU {row['peak_gpu_mib']:.0f})" if "peak_gpu_mib" in row else ""
    return f"{row['peak_rss_mib']:.0f}{gpu}"


def _xla(row: dict) -> str:
    if not row["xla"]:
        return "off"
    return "on" if row.get("xla_used", True) else "on → off"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the reduced set, one timed repetition")
    parser.add_argument("--kind", nargs="+", choices=KINDS, default=list(KINDS), help="what to measure (default: all)")
    parser.add_argument("--only", nargs="+", help="generator types to include (default: every registered one)")
    parser.add_argument("--preset", action="append", help="GAN preset to time (repeatable; default: representatives)")
    parser.add_argument("--precision", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--xla", nargs="+", choices=("off", "on"), default=["off", "on"])
    parser.add_argument("--output-size", type=int, default=512, help="side of the upscaled image (default 512)")
    parser.add_argument("--tile", type=int, default=64, help="LR tile core size (default 64)")
    parser.add_argument("--overlap", type=int, default=16, help="LR context per tile side (default 16)")
    parser.add_argument("--repeats", type=int, help="timed repetitions after the warm-up (default 3, --quick 1)")
    parser.add_argument("--job-timeout", type=float, default=3600.0, help="seconds before a job is abandoned")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--markdown", type=Path, help="write the tables here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quiet.start_tensorflow()
    if args.worker:
        payload = json.loads(args.worker)
        print(json.dumps(run_worker(Job(**payload["job"]), Settings(**payload["settings"]))), flush=True)
        return 0
    args.xla = [x == "on" for x in args.xla]
    settings = Settings(args.output_size, args.tile, args.overlap, args.repeats or (1 if args.quick else 3),
                        args.job_timeout)
    jobs, notes = make_jobs(args)
    for note in notes:
        print(note, flush=True)
    report = {"environment": environment(argv), "settings": asdict(settings), "notes": notes, "results": []}
    started = time.time()
    for index, job in enumerate(jobs, 1):
        result = run_job(job, settings)
        report["results"].append(result)
        rate = result.get("batched_images_per_s") or result.get("steps_per_s")
        status = result.get("error") or f"{rate:.3f} {'images' if job.kind == 'inference' else 'steps'}/s"
        print(f"[{index}/{len(jobs)} {time.time() - started:.0f} s] {job.kind} {job.name} x{job.scale} "
              f"{job.precision} xla={'on' if job.xla else 'off'}: {status}", flush=True)
    report["load_average_end"] = os.getloadavg()
    report["total_s"] = time.time() - started
    table = markdown(report)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if args.markdown:
        args.markdown.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
