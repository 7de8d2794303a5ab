"""Two-phase training of a NIMA score predictor (4PP-EUSR section 4.2).

"We first train the new last fully-connected layer for five epochs with a batch size of 128
and a learning rate of 1e-3, while freezing all other layers. Then, all the layers are
fine-tuned for five epochs with a batch size of 32 and a learning rate of 1e-5" (AVA; 100 +
100 epochs for TID2013), with Adam (0.9, 0.999, 1e-7) and the squared EMD loss (eq. 1).

Each phase is a :func:`~eusr_perceptual.training.runs.fit_run` run in its own folder
(``run_dir/phase1``, ``run_dir/phase2``: checkpoints, ``log.csv``, TensorBoard, config).
Phase 2 starts from phase 1's final weights; with ``resume=True`` a finished phase 1 is
restored from its last checkpoint and not trained again. Afterwards the predictor is
evaluated on the whole validation set (centre crops), the metrics are written to
``run_dir/metrics.json`` and the predictor is exported to ``run_dir/export``.

Freezing: phase 1 sets the MobileNetV2 ``trainable=False``, which also runs its
BatchNormalization layers in inference mode; in phase 2 every layer trains, BatchNormalization
included (batch statistics, moving averages updated), as in Keras's own fine-tuning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from eusr_perceptual.training.runs import RunOptions, fit_run
from eusr_perceptual.files import write_json_atomically
from eusr_perceptual.training.strategy import worker_write_dir
from nima.config import NimaConfig, Phase
from nima.datasets.common import ScoreDataset
from nima.evaluation import ScoreMetrics, evaluate_predictor
from nima.export import ExportedPredictor, export_predictor
from nima.losses import LOSS_FUNCTIONS, training_metrics
from nima.model import HEAD, backbone_of, build_nima, count_parameters, dtype_policy
from nima.preprocessing import (
    ImageDecoder,
    readable_only,
    training_dataset,
    unknown_length_is_fine,
    validation_dataset,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhaseSummary:
    name: str
    trainable_parameters: int
    frozen_parameters: int
    total_steps: int
    history: dict


@dataclass(frozen=True)
class TrainingResult:
    model: keras.Model
    metrics: ScoreMetrics
    phases: tuple[PhaseSummary, ...]
    exported: ExportedPredictor
    skipped: int


def build_models(config: NimaConfig, strategy: tf.distribute.Strategy | None = None) -> tuple[keras.Model, keras.Model]:
    """The NIMA model (dict output) and the model ``fit`` trains: the same layers with the
    distribution as the only output, because the loss and metrics look at it alone.

    Both are created under ``strategy`` and the ``mixed_float16`` policy if
    ``config.mixed_precision``, else ``float32`` (the global policy is restored afterwards;
    the layers keep theirs).
    """
    strategy = strategy or tf.distribute.get_strategy()
    with dtype_policy("mixed_float16" if config.mixed_precision else "float32"), strategy.scope():
        size = config.crop_size
        model = build_nima(config.weights_argument, (size, size, 3), config.dropout, seed=config.seed)
        trainer = keras.Model(model.input, model.output[HEAD], name=f"{model.name}_trainer")
    return model, trainer


def prepare_phase(model: keras.Model, trainer: keras.Model, config: NimaConfig, phase: Phase) -> tuple[int, int]:
    """Freezes (phase 1) or unfreezes (phase 2) the MobileNetV2 and compiles ``trainer`` with a
    new Adam for ``phase``. Returns the (trainable, frozen) parameter counts."""
    backbone_of(model).trainable = phase.trains_base
    with trainer.distribute_strategy.scope():
        trainer.compile(
            optimizer=keras.optimizers.Adam(
                phase.learning_rate, beta_1=config.adam_beta_1, beta_2=config.adam_beta_2, epsilon=config.adam_epsilon
            ),
            loss=LOSS_FUNCTIONS[config.loss],
            metrics=training_metrics(),
            jit_compile=config.jit_compile,
            run_eagerly=config.run_eagerly,
        )
    return count_parameters(trainer.trainable_weights), count_parameters(trainer.non_trainable_weights)


def validation_batch_size(batch_size: int, validation_images: int, replicas: int) -> int:
    """The phase's batch size, made smaller for a validation set smaller than one batch so
    that its first batch still splits evenly over the replicas (Keras's ``evaluate`` builds
    the model from the mean of the first batch's per-replica parts and fails when they differ
    in size; later, partial batches are fine)."""
    if validation_images >= batch_size:
        return batch_size
    return max(replicas, validation_images // replicas * replicas)


def train_nima(
    config: NimaConfig,
    data: ScoreDataset,
    run_dir: str | Path,
    *,
    resume: bool = False,
    strategy: tf.distribute.Strategy | None = None,
    tensorboard: bool = True,
    verbose: int | str = "auto",
) -> TrainingResult:
    """Trains both phases, evaluates on the validation set and exports the predictor.

    Batch sizes are global (over all replicas of ``strategy``) and must be multiples of the
    number of replicas.
    """
    run_dir = Path(run_dir)
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    for phase in config.phases():
        if phase.batch_size % replicas:
            raise ValueError(f"the {phase.name} batch size {phase.batch_size} must be a multiple of the {replicas} replicas")
    model, trainer = build_models(config, strategy)
    decoder = ImageDecoder(data.report)
    validation = readable_only(data.validation, decoder)
    summaries = []
    for phase in config.phases():
        trainable, frozen = prepare_phase(model, trainer, config, phase)
        total_steps, checkpoint_every = phase.steps(len(data.train))
        log.info(
            "%s: %d steps of batch %d at lr %g, %s trainable and %s frozen parameters",
            phase.name, total_steps, phase.batch_size, phase.learning_rate, f"{trainable:,}", f"{frozen:,}",
        )

        def make_dataset(start_step: int, phase: Phase = phase) -> tf.data.Dataset:
            return training_dataset(
                data.train,
                crop_size=config.crop_size,
                batch_size=phase.batch_size,
                seed=config.seed + phase.index,
                decoder=decoder,
                start_step=start_step,
            )

        with unknown_length_is_fine():
            history = fit_run(
                trainer,
                make_dataset,
                RunOptions(run_dir / phase.name, total_steps, checkpoint_every, resume=resume, tensorboard=tensorboard),
                config=config,
                validation_data=validation_dataset(
                    validation,
                    crop_size=config.crop_size,
                    batch_size=validation_batch_size(phase.batch_size, len(validation), replicas),
                    decoder=decoder,
                ),
                verbose=verbose,
            )
        summaries.append(PhaseSummary(phase.name, trainable, frozen, total_steps, history.history))

    metrics = evaluate_predictor(
        trainer, validation, crop_size=config.crop_size, batch_size=config.phases()[-1].batch_size, decoder=decoder
    )
    write_dir = worker_write_dir(run_dir, strategy)  # run_dir on the chief; elsewhere a temporary folder
    exported = export_predictor(model, write_dir / "export", f"nima_{config.dataset}")
    write_json_atomically(
        write_dir / "metrics.json",
        {
            "validation": metrics.as_dict(),
            "phases": [
                {"name": s.name, "steps": s.total_steps, "trainable": s.trainable_parameters, "frozen": s.frozen_parameters}
                for s in summaries
            ],
            "skipped_files": data.report.count,
            "export": {"keras": str(exported.keras_file), "saved_model": str(exported.saved_model)},
        },
    )
    return TrainingResult(model, metrics, tuple(summaries), exported, data.report.count)
