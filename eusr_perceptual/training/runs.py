"""Long training runs that survive being killed: checkpoints, exact resume, logs, NaN guard.

Every trainer of the project (EUSR pretraining, NIMA, 4PP-EUSR fine-tuning) trains through
:func:`fit_run`, which wraps ``keras.Model.fit`` so that callbacks, the progress bar and
``tf.distribute`` work unchanged, and adds what a run of days needs:

* one Keras "epoch" is ``checkpoint_every`` steps; a checkpoint (every variable of the model by
  path, :mod:`~eusr_perceptual.training.checkpoints`; its RNG state, optimizers, step) is written
  at the end of each such epoch and at the end of the run;
* checkpoints are written by ``tf.train.CheckpointManager``, which writes the new files first
  and then replaces the ``checkpoint`` index file atomically: a run killed mid-write resumes
  from the previous checkpoint;
* ``resume=True`` restores the newest checkpoint and continues at its step, and because the
  datasets are built by ``make_dataset(start_step)`` deterministically per step, a resumed run
  sees exactly the batches the uninterrupted run would have seen;
* a NaN or Inf in any logged loss stops the run before anything is saved, so the last good
  checkpoint stays the newest, and raises :class:`NonFiniteLossError`;
* ``config.json`` (the run's dataclass and a digest of its training data) is written once; a
  resume appends an entry to its ``resumes`` list (with the settings it changed: the steps, the
  learning rates) and never rewrites the original record; a resume on changed data is refused;
  ``log.csv`` and TensorBoard scalars sit beside the checkpoints.
* a resumed run trains at the learning rates it was compiled with, not the checkpoint's, so
  that lowering them after a NaN stop takes effect.
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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import keras
import tensorflow as tf

from eusr_perceptual.data.identity import check_same_data
from eusr_perceptual.errors import UsageError
from eusr_perceptual.files import write_json_atomically
from eusr_perceptual.training.checkpoints import restore_run_checkpoint, run_checkpoint
from eusr_perceptual.training.strategy import keras_fit_context, per_replica_batches, worker_write_dir

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or Inf; the run stopped and kept its last good checkpoint."""


class RunExistsError(UsageError, FileExistsError):
    """The run folder holds checkpoints and ``--resume`` was not given."""


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


def config_to_dict(config: Any) -> Any:
    """A dataclass (possibly nested) as plain JSON-able data."""
    if hasattr(config, "to_dict"):
        return config.to_dict()
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    return config


def record_config(path: Path, config: Any, options: RunOptions, start_step: int,
                  data: dict[str, str] | None = None) -> None:
    """Writes ``config.json`` when a run starts, with ``data``
    (:func:`~eusr_perceptual.data.identity.data_identity` of its training source) when given.

    A resumed run keeps the original record and appends ``{"at_step", "time", "total_steps",
    "config", "changed"}`` to its ``resumes`` list, ``changed`` naming each setting that differs
    from the settings it continued (``{"g_learning_rate": {"from": 1e-4, "to": 1e-5}}``). Before
    that, a resume whose ``data`` differs from the recorded one is refused
    (:class:`~eusr_perceptual.data.identity.DataChangedError`, naming the data).
    """
    entry = {"config": config_to_dict(config), "run": config_to_dict(options), **({"data": data} if data else {})}
    if not path.is_file():
        write_json_atomically(path, entry)
        return
    record = json.loads(path.read_text())
    if start_step == 0 and not record.get("resumes"):
        write_json_atomically(path, entry)  # restarted before its first checkpoint: a new start
        return
    if data:
        check_same_data(record.get("data"), data)
    previous, current = (record.get("resumes") or [record])[-1].get("config"), entry["config"]
    changed = ({name: {"from": previous.get(name), "to": value} for name, value in current.items()
                if previous.get(name) != value} if isinstance(previous, dict) and isinstance(current, dict) else {})
    record.setdefault("resumes", []).append({"at_step": start_step, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                             "total_steps": options.total_steps, "config": entry["config"],
                                             "changed": changed})
    write_json_atomically(path, record)


def compiled_learning_rates(optimizers: Iterable[Any]) -> list[tuple[Any, Any]]:
    """``(variable, value)`` of each constant learning rate of ``optimizers`` as compiled.

    A checkpoint holds an optimizer's learning-rate variable, so restoring it would bring back
    the rate the run started with; assigning these values after the restore makes a resumed
    run train at the rate its configuration now asks for (the NaN recovery: lower it, resume).
    A schedule (``PiecewiseConstantDecay``...) is no variable: it is rebuilt from the
    configuration and is not in the checkpoint.
    """
    rates = []
    for optimizer in optimizers:
        rate = optimizer.learning_rate if isinstance(optimizer, keras.optimizers.Optimizer) else None
        if isinstance(rate, keras.Variable):
            rates.append((rate, rate.numpy()))
    return rates


def _learning_rate_flags(config: Any) -> str:
    """``--g-learning-rate / --d-learning-rate``: the settings a resume may lower, for messages."""
    names = [field.name for field in dataclasses.fields(config) if field.metadata.get("resumable")
             and "learning_rate" in field.name] if dataclasses.is_dataclass(config) else []
    return " / ".join("--" + name.replace("_", "-") for name in names) or "the learning rate"


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
    data_identity: dict[str, str] | None = None,
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
        data_identity: what the training data holds
            (:func:`~eusr_perceptual.data.identity.data_identity`), recorded at the start; a
            resume on changed data is refused.

    A resumed run trains at the learning rates the model was compiled with, not the
    checkpoint's (:func:`compiled_learning_rates`).

    Raises:
        RunExistsError: the run folder has checkpoints but ``resume`` is False (a
            ``FileExistsError`` and a usage error).
        DataChangedError: ``resume`` on other data than the run started with.
        NonFiniteLossError: a loss became NaN or Inf (the last good checkpoint is kept).
    """
    run_dir = Path(options.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    strategy = model.distribute_strategy
    write_dir = worker_write_dir(run_dir, strategy)  # run_dir, except on multi-worker non-chiefs
    with strategy.scope():
        _build_for_training(model)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="run_step")
    rates = compiled_learning_rates([model.optimizer, *(checkpoint_objects or {}).values()])
    checkpoint = run_checkpoint(model, step, **(checkpoint_objects or {}))
    manager = tf.train.CheckpointManager(checkpoint, write_dir / "checkpoints", max_to_keep=options.keep_checkpoints)

    latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))  # every worker restores the chief's
    if latest:
        if not options.resume:
            raise RunExistsError(
                f"{run_dir} already holds checkpoints ({latest}); "
                "pass --resume to continue that run, or choose another --run-dir"
            )
        restore_run_checkpoint(checkpoint, latest, model)  # one without every variable is refused whole
        log.info("resumed %s at step %d", latest, int(step.numpy()))
    elif options.resume:
        log.warning("--resume given but %s has no checkpoint: starting from step 0", run_dir)

    start_step = int(step.numpy())
    for variable, value in rates:  # the configuration's learning rates, not the checkpoint's
        variable.assign(value)
    if start_step % options.checkpoint_every:
        raise ValueError(f"checkpoint step {start_step} is not a multiple of checkpoint_every={options.checkpoint_every}")
    record_config(write_dir / "config.json", config, options, start_step, data_identity)
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
            f"is {manager.latest_checkpoint or '(none yet)'}: run again with --resume and a lower "
            f"{_learning_rate_flags(config)} (a resume may change them), or check the data"
        )
    return history


def latest_checkpoint_step(run_dir: str | Path) -> int | None:
    """The step number of the newest checkpoint in ``run_dir``, or None."""
    latest = tf.train.latest_checkpoint(str(Path(run_dir) / "checkpoints"))
    return None if latest is None else int(latest.rsplit("-", 1)[-1])
