"""The 4PP-EUSR demo chain on the embedded photographs: pre-train a small EUSR, train both
NIMA predictors on demo score trees, fine-tune (``eusr-finetune-4pp --demo``)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from eusr_perceptual.configs.gan import GANConfig
from eusr_perceptual.configs.presets import FOURPP_DEMO
from eusr_perceptual.configs.pretrain import PRETRAIN_PRESETS
from eusr_perceptual.pipelines import gan_run  # gan_run.run_gan at call time: tests replace it
from eusr_perceptual.pipelines.pretrain_run import run_pretraining
from eusr_perceptual.pipelines.score_trees import make_demo_score_trees
from nima.config import PRESETS as NIMA_PRESETS
from nima.datasets import load_dataset
from nima.recalibration import recalibrate_batch_norm
from nima.train import train_nima

log = logging.getLogger(__name__)

#: The demo's pre-training: the "demo" preset of eusr-pretrain, shortened to fit the time budget.
DEMO_PRETRAIN_STEPS, DEMO_PRETRAIN_CHECKPOINT = 1500, 500
DEMO_NIMA_CROP = 64


def train_demo_predictors(run_dir: Path, seed: int = 0) -> dict[str, str]:
    """Both NIMA predictors (MobileNetV2 from scratch, a few epochs) on the demo trees,
    BatchNorm-recalibrated; returns ``{"aesthetic": path, "subjective": path}``."""
    trees = make_demo_score_trees(run_dir / "score_data", seed)
    exported = {}
    for role, dataset in (("aesthetic", "ava"), ("subjective", "tid2013")):
        config = NIMA_PRESETS[dataset].replace(
            weights="none", crop_size=DEMO_NIMA_CROP, phase1_epochs=1, phase2_epochs=3, phase1_batch_size=32,
            phase2_batch_size=32, phase2_learning_rate=1e-3, validation_size=48, validation_references=3, seed=seed,
        )
        data = load_dataset(config, trees[dataset])
        result = train_nima(config, data, run_dir / f"nima_{dataset}", tensorboard=False, verbose=2)
        log.info("%s predictor: validation %s", dataset, result.metrics.as_dict())
        exported[role] = str(recalibrate_batch_norm(result.exported.keras_file, data.train.paths, DEMO_NIMA_CROP, seed))
    return exported


def run_fourpp_demo(run_dir: Path, changes: dict | None = None, export_dir: Path | None = None,
                    eval_data: str | None = "skimage") -> GANConfig:
    """Pre-training, both predictors and the fine-tuning, chained; returns the fine-tuning config."""
    started = time.time()
    print(f"[1/3] pre-training a small EUSR ({DEMO_PRETRAIN_STEPS} steps)", flush=True)
    pretrain = PRETRAIN_PRESETS["demo"].replace(steps=DEMO_PRETRAIN_STEPS, checkpoint_every=DEMO_PRETRAIN_CHECKPOINT)
    run_pretraining(pretrain, run_dir / "pretrain", eval_data=None, verbose=2)
    print(f"[2/3] training the aesthetic and subjective predictors ({time.time() - started:.0f} s so far)", flush=True)
    predictors = train_demo_predictors(run_dir)
    print(f"[3/3] 4PP-EUSR fine-tuning ({time.time() - started:.0f} s so far)", flush=True)
    config = FOURPP_DEMO.replace(init_from=str(run_dir / "pretrain" / "generator.keras"), **predictors,
                                 **(changes or {}))
    gan_run.run_gan(config, run_dir / "finetune", export_dir=export_dir or run_dir / "saved_models", export_name="4pp_eusr",
            eval_data=eval_data, verbose=2)
    print(f"demo finished in {time.time() - started:.0f} s; everything is in {run_dir}")
    return config
