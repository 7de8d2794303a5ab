"""A loss study: several presets trained on identical data with identical seeds, then scored
together in one comparison table and one perception-distortion plot.

``run_study(presets)`` trains every preset (at the demo scale by default,
:func:`~eusr_perceptual.configs.demo.demo_version`), each in its own run folder with the same
data source, seed and step count; presets that share a PSNR stage start from one shared
PSNR-stage run. The generators are then scored with bicubic on the held-out images, one section
per scale, by the evaluation code of ``eusr-evaluate`` (PSNR/SSIM/NIQE, LPIPS when weights are
given, VIF when the evaluation offers it), and the PSNR-vs-NIQE plot is written beside.
Named studies (:data:`STUDIES`) reproduce the shape of a paper's table.

``resume=True`` continues a killed study in its folder: a finished run (its checkpoint at its
step count, its ``generator.keras`` written) is reused as it is, an unfinished one continues
from its checkpoint with its recorded settings (a run whose settings the study would change,
but for the steps and learning rates, is refused by name), a missing one starts.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from eusr_perceptual.configs.base import resumed_config
from eusr_perceptual.configs.demo import demo_version
from eusr_perceptual.configs.gan import GANConfig
from eusr_perceptual.configs.presets import PRESETS
from eusr_perceptual.errors import ValueUsageError
from eusr_perceptual.evaluation.plots import plot_perception_distortion
from eusr_perceptual.evaluation.runner import Method
from eusr_perceptual.pipelines import gan_run
from eusr_perceptual.pipelines.final_table import scale_sections
from eusr_perceptual.pipelines.gan_run import after_psnr_stage, load_trainable_generator, needs_psnr_stage
from eusr_perceptual.training.runs import latest_checkpoint_step

log = logging.getLogger(__name__)

#: Paper tables as lists of presets (rows), with the trend a faithful replication shows.
STUDIES: dict[str, tuple[tuple[str, ...], str]] = {
    "dp_table6": (("esrgan_dp_t6_vgg", "esrgan_dp_t6_vgg_resnet", "esrgan_dp_t6_dynamic"),
                  "DP Table 6: VGG only < VGG + ResNet < VGG + ResNet + dynamic weight, on PSNR, SSIM and LPIPS"),
    "dp_table1": (tuple(f"srgan_dp_mu{mu}" for mu in ("inf", "0.2", "0.5", "1", "5", "10", "20")),
                  "DP Table 1: mu = 0.2 collapses; mu = 1 best PSNR/SSIM, mu = 0.5 best LPIPS; large mu -> VGG only"),
    "dp_table2": (tuple(f"srgan_dp_beta{b}" for b in ("1_3", "2_4", "3_6", "4_3")),
                  "DP Table 2: the ResNet stage matters little (<= 0.32 dB, <= 0.005 LPIPS)"),
    "afm_table1": (("afm_p", "afm_pva", "afm_pca", "afm_pcsa", "afm_pcsva"),
                   "AFM Table I: M_p best PSNR/SSIM/VIF; M_pva's PSNR collapses; the D content loss recovers it"),
    "pan_table1": (("pan_wgan_x2", "pan_ragan_nolog_x2", "pan_wgan_x3", "pan_ragan_nolog_x3", "pan_wgan_x4",
                    "pan_ragan_nolog_x4"),
                   "Pan Table 1: RaGAN-without-log wins at x2 and collapses at x3/x4; WGAN degrades gracefully"),
    "ledig": (("srresnet_mse", "srgan_mse", "srgan_vgg22", "srgan_vgg54"),
              "4PP-EUSR Table 2: every GAN below every MSE model on PSNR, better on NIQE"),
}


@dataclass
class StudyResult:
    run_dir: Path
    table: str
    plot: Path | None


def resolve_study(names: Sequence[str]) -> tuple[list[str], str]:
    """Preset names from a study name or from preset names; the study's trend or ''."""
    if len(names) == 1 and names[0] in STUDIES:
        presets, trend = STUDIES[names[0]]
        return list(presets), trend
    unknown = [name for name in names if name not in PRESETS]
    if unknown:
        raise ValueUsageError(f"unknown preset(s) {unknown}; studies: {sorted(STUDIES)}")
    return list(names), ""


def _trained(config, run_dir: Path, resume: bool, verbose: int | str):
    """The float32 generator of ``config`` trained in ``run_dir``: with ``resume``, a finished
    run's ``generator.keras`` as it is, or the run continued with its recorded settings."""
    if resume and (run_dir / "config.json").is_file():
        config = resumed_config(run_dir, GANConfig, {f.name: getattr(config, f.name) for f in dataclasses.fields(config)})
        if (run_dir / "generator.keras").is_file() and (latest_checkpoint_step(run_dir) or 0) >= config.steps:
            log.info("reusing the finished run %s", run_dir)
            return load_trainable_generator(str(run_dir / "generator.keras"))
    return gan_run.run_gan(config, run_dir, resume=resume, export_dir=None, eval_data=None, verbose=verbose).generator


def study_config(name: str, *, demo: bool, steps: int | None = None, seed: int = 0,
                 bit_exact: bool | None = None) -> GANConfig:
    """Preset ``name`` as a study trains it: with the study's seed, at the demo scale (``demo``)
    or its own with ``steps``; ``bit_exact`` (:mod:`~eusr_perceptual.training.determinism`)
    defaults to on at the demo scale, where comparing seeded runs is the study's point."""
    config = PRESETS[name].replace(seed=seed)
    if demo:
        config = demo_version(config, steps)
    elif steps:
        config = config.replace(steps=steps, checkpoint_every=steps)
    return config.replace(bit_exact=demo if bit_exact is None else bit_exact)


def run_study(names: Sequence[str], run_dir: Path, *, steps: int | None = None, demo: bool = True,
              eval_data: str = "skimage", seed: int = 0, lpips_weights: Path | None = None,
              resume: bool = False, bit_exact: bool | None = None, verbose: int | str = 2) -> StudyResult:
    """Trains ``names`` (see the module docstring) and writes ``study.md`` and the plot."""
    presets, trend = resolve_study(names)
    run_dir = Path(run_dir)

    def prepared(name):
        return study_config(name, demo=demo, steps=steps, seed=seed, bit_exact=bit_exact)

    psnr_runs: dict[str, Path] = {}
    generators = {}
    for index, name in enumerate(presets, start=1):
        config = prepared(name)
        if needs_psnr_stage(config):
            if config.psnr_stage not in psnr_runs:
                stage = prepared(config.psnr_stage)
                print(f"[{name}] shared PSNR stage {config.psnr_stage} ({stage.steps} steps)", flush=True)
                _trained(stage, run_dir / config.psnr_stage, resume, verbose)
                psnr_runs[config.psnr_stage] = run_dir / config.psnr_stage
            config = after_psnr_stage(config, psnr_runs[config.psnr_stage])
        print(f"[{index}/{len(presets)}] {name}: {config.formula()} ({config.steps} steps)", flush=True)
        generators[name] = (config.scale, _trained(config, run_dir / name, resume, verbose))
    sections = []
    for scale in sorted({scale for scale, _ in generators.values()}):
        methods = [Method("bicubic", f"x{scale}")]
        methods += [Method(name, f"x{scale}", model) for name, (s, model) in generators.items() if s == scale]
        sections.append((scale, methods))
    caption = f"study of {len(presets)} presets, identical data and seed {seed}" + (" (demo scale)" if demo else "")
    scored = scale_sections(eval_data, sections, run_dir, caption, lpips_weights=lpips_weights)
    table = scored.text
    if trend:
        table += f"\nPaper trend to compare with: {trend}\n"
    (run_dir / "study.md").write_text((run_dir / "evaluation.md").read_text() + (f"\n{trend}\n" if trend else ""))
    plot = plot_perception_distortion(scored.summaries, run_dir / "perception_distortion.png")
    return StudyResult(run_dir, table, plot)
