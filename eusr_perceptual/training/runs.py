"""Long training runs that survive being killed: checkpoints, exact resume, logs, NaN guard.

Every trainer of the project (EUSR pretraining, NIMA, 4PP-EUSR fine-tuning) trains through
:func:`fit_run`, which wraps ``keras.Model.fit`` so that callbacks, the progress bar and
``tf.distribute`` work unchanged, and adds what a run of days needs:

* one Keras "epoch" is ``checkpoint_every`` steps; a checkpoint (model with its RNG state,
  optimizers, step) is written at the end of each such epoch and at the end of the run;
* checkpoints are written by ``tf.train.CheckpointManager``, which writes the new files first
  and then replaces the ``checkpoint`` index file atomically: a run killed mid-write resumes
  from the previous checkpoint;
* ``resume=True`` restores the newest checkpoint and continues at its step, and because the
  datasets are built by ``make_dataset(start_step)`` deterministically per step, a resumed run
  sees exactly the batches the uninterrupted run would have seen;
* a NaN or Inf in any logged loss stops the run before anything is saved, so the last good
  checkpoint stays the newest, and raises :class:`NonFiniteLossError`;
* ``config.json`` (the run's dataclass) is written once; a resume appends an entry to its
  ``resumes`` list and never rewrites the original record; ``log.csv`` and TensorBoard
  scalars sit beside the checkpoints.
* the global batch of each step is split across the replicas, and under
  ``MultiWorkerMirroredStrategy`` only the chief writes into the run folder (the other workers
  write into temporary folders, and restore from the chief's checkpoints):
  :mod:`eusr_perceptual.training.strategy`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import keras
import tensorflow as tf

from eusr_perceptual.training.strategy import keras_fit_context, per_replica_batches, worker_write_dir

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or Inf; the run stopped and kept its last good checkpoint."""


@dataclass
class RunOptions:
    """Where a run lives and how often it checkpoints."""

    run_dir: str | Path
    total_steps: int
    checkpoint_every: int
    resume: bool = False
    tensorboard: bool = True
    keep_checkpoints: int = 3

    def __post_init__(self):
        if self.total_steps < 1 or self.checkpoint_every < 1:
            raise ValueError("total_steps and checkpoint_every must be positive")
        self.checkpoint_every = min(self.checkpoint_every, self.total_steps)
        if self.total_steps % self.checkpoint_every:
            raise ValueError(
                f"total_steps ({self.total_steps}) must be a multiple of checkpoint_every "
                f"({self.checkpoint_every}): one Keras epoch is one checkpoint interval"
            )

    @property
    def epochs(self) -> int:
        return self.total_steps // self.checkpoint_every


def write_json_atomically(path: Path, payload: Any) -> None:
    """Writes JSON to a temporary file in the same folder, then renames it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "w") as stream:
        json.dump(payload, stream, indent=2, default=str)
    os.replace(temporary, path)


def config_to_dict(config: Any) -> Any:
    """A dataclass (possibly nested) as plain JSON-able data."""
    if hasattr(config, "to_dict"):
        return config.to_dict()
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    return config


def record_config(path: Path, config: Any, options: RunOptions, start_step: int) -> None:
    """Writes ``config.json`` when a run starts; a resumed run keeps the original record and
    appends ``{"at_step", "time", "total_steps", "config"}`` to its ``resumes`` list."""
    entry = {"config": config_to_dict(config), "run": config_to_dict(options)}
    if not path.is_file():
        write_json_atomically(path, entry)
        return
    record = json.loads(path.read_text())
    if start_step == 0 and not record.get("resumes"):
        write_json_atomically(path, entry)  # restarted before its first checkpoint: a new start
        return
    record.setdefault("resumes", []).append({"at_step": start_step, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                             "total_steps": options.total_steps, "config": entry["config"]})
    write_json_atomically(path, record)


class RunCheckpoint(keras.callbacks.Callback):
    """Saves at each epoch end unless a non-finite loss was seen; stops on NaN/Inf."""

    def __init__(self, manager: tf.train.CheckpointManager, step: tf.Variable, steps_per_epoch: int):
        super().__init__()
        self.manager, self.step, self.steps_per_epoch = manager, step, steps_per_epoch
        self.bad_loss: tuple[int, str, float] | None = None

    def on_train_batch_end(self, batch, logs=None):
        for name, value in (logs or {}).items():
            if "loss" in name and not math.isfinite(float(value)):
                self.bad_loss = (int(self.step.numpy()) + batch + 1, name, float(value))
                self.model.stop_training = True
                return

    def on_epoch_end(self, epoch, logs=None):
        if self.bad_loss is not None:
            return
        self.step.assign((epoch + 1) * self.steps_per_epoch)
        path = self.manager.save(checkpoint_number=int(self.step.numpy()))
        log.info("checkpoint written: %s", path)


def _build_for_training(model: keras.Model) -> None:
    """Creates every variable a checkpoint holds, so that restoring is immediate and total."""
    builder = getattr(model, "build_for_training", None)
    if builder is not None:
        builder()
    elif model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def fit_run(
    model: keras.Model,
    make_dataset: Callable[[int], tf.data.Dataset],
    options: RunOptions,
    *,
    config: Any = None,
    validation_data: tf.data.Dataset | None = None,
    validation_steps: int | None = None,
    callbacks: Iterable[keras.callbacks.Callback] = (),
    checkpoint_objects: dict[str, Any] | None = None,
    verbose: int | str = "auto",
) -> keras.callbacks.History:
    """Trains a compiled ``model`` for ``options.total_steps`` steps with checkpoints and resume.

    Args:
        model: a compiled Keras model (its ``train_step`` may be custom). If it has a
            ``build_for_training()`` method, that is called to create its optimizer variables
            before a checkpoint is restored; otherwise ``model.optimizer`` is built on the
            model's trainable variables.
        make_dataset: ``make_dataset(start_step)`` returns an infinite dataset whose k-th
            element is the batch of step ``start_step + k``.
        options: run folder, length, checkpoint interval, resume.
        config: a dataclass (or JSON-able data) saved as ``config.json``.
        checkpoint_objects: further trackables to checkpoint (a second optimizer, ...).

    Raises:
        FileExistsError: the run folder has checkpoints but ``resume`` is False.
        NonFiniteLossError: a loss became NaN or Inf (the last good checkpoint is kept).
    """
    run_dir = Path(options.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    strategy = model.distribute_strategy
    write_dir = worker_write_dir(run_dir, strategy)  # run_dir, except on multi-worker non-chiefs
    with strategy.scope():
        _build_for_training(model)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="run_step")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, step=step, **(checkpoint_objects or {}))
    manager = tf.train.CheckpointManager(checkpoint, write_dir / "checkpoints", max_to_keep=options.keep_checkpoints)

    latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))  # every worker restores the chief's
    if latest:
        if not options.resume:
            raise FileExistsError(
                f"{run_dir} already holds checkpoints ({latest}); "
                "pass --resume to continue that run, or choose another --run-dir"
            )
        checkpoint.restore(latest).assert_existing_objects_matched()
        log.info("resumed %s at step %d", latest, int(step.numpy()))
    elif options.resume:
        log.warning("--resume given but %s has no checkpoint: starting from step 0", run_dir)

    start_step = int(step.numpy())
    if start_step % options.checkpoint_every:
        raise ValueError(f"checkpoint step {start_step} is not a multiple of checkpoint_every={options.checkpoint_every}")
    record_config(write_dir / "config.json", config, options, start_step)
    if start_step >= options.total_steps:
        log.info("run in %s already finished (%d steps)", run_dir, start_step)
        return keras.callbacks.History()

    guard = RunCheckpoint(manager, step, options.checkpoint_every)
    all_callbacks = [guard, keras.callbacks.CSVLogger(str(write_dir / "log.csv"), append=start_step > 0), *callbacks]
    if options.tensorboard:
        all_callbacks.append(keras.callbacks.TensorBoard(str(write_dir / "tensorboard"), update_freq="epoch"))

    with keras_fit_context(model):
        history = model.fit(
            per_replica_batches(strategy, make_dataset, start_step),
            epochs=options.epochs,
            initial_epoch=start_step // options.checkpoint_every,
            steps_per_epoch=options.checkpoint_every,
            validation_data=validation_data,
            validation_steps=validation_steps,
            callbacks=all_callbacks,
            shuffle=False,  # batches are made per step by make_dataset
            verbose=verbose,
        )
    if guard.bad_loss is not None:
        at_step, name, value = guard.bad_loss
        raise NonFiniteLossError(
            f"{name} became {value} at step {at_step}; training stopped. The last good checkpoint "
            f"is {manager.latest_checkpoint or '(none yet)'}: lower the learning rate or check the "
            "data, then run again with --resume"
        )
    return history


def latest_checkpoint_step(run_dir: str | Path) -> int | None:
    """The step number of the newest checkpoint in ``run_dir``, or None."""
    latest = tf.train.latest_checkpoint(str(Path(run_dir) / "checkpoints"))
    return None if latest is None else int(latest.rsplit("-", 1)[-1])
