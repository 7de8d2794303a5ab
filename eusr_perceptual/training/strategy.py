"""Training past one machine: ``tf.distribute`` strategies by name, the global batch split
per replica, and writes by the chief only.

* :func:`make_strategy` builds ``default | mirrored | multi-worker | tpu`` (``--strategy``);
  ``multi-worker`` is ``MultiWorkerMirroredStrategy`` configured by the ``TF_CONFIG``
  environment variable, checked first so that a missing or malformed one is a one-line error
  instead of a hang (docs/distributed.md shows a TF_CONFIG per node).
* :func:`per_replica_batches`: every worker builds the same global batch of step ``b`` (the
  samplers are pure functions of (seed, b)) and keeps its replicas' rows, replica ``r`` of
  ``R`` taking rows ``[r B / R, (r + 1) B / R)``. The union over workers is the single-process
  global batch, so with the per-replica mean loss divided by ``R`` and the gradients summed
  (:func:`~eusr_perceptual.training.gradients.minimize`) a step equals the single-process
  step up to float summation order. Each worker decodes the whole global batch: simple and
  exact, at ``R`` times the input work, which the store pipeline has to spare
  (``benchmarks/data_pipeline.py``).
* :func:`worker_write_dir`: the chief writes checkpoints, ``config.json``, logs and
  TensorBoard into the run folder; the other workers must still run the checkpoint saves
  (they take part in the collectives) and write into a temporary folder that is deleted at
  exit (the pattern of TensorFlow's multi-worker Keras tutorial). Every worker restores from
  the run folder, which must therefore be on storage all workers see; after a worker restart
  the whole job is started again with ``--resume`` and continues from the chief's newest
  checkpoint with the same batches.
* :func:`keras_fit_context`: what ``model.fit`` needs to run under ``MultiWorkerMirroredStrategy``
  with Keras 3 (up to 3.15 at least, keras-team/keras#20585).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import keras
import tensorflow as tf

from eusr_perceptual.errors import ValueUsageError
from eusr_perceptual.training import STRATEGIES
from eusr_perceptual.training.step_functions import wrapping_steps


TF_CONFIG_EXAMPLE = (
    'TF_CONFIG=\'{"cluster": {"worker": ["node0:12345", "node1:12345"]}, "task": {"type": "worker", "index": 0}}\' '
    "(the same cluster on every node, each node its own index; worker 0 is the chief)"
)


class StrategyError(ValueUsageError):
    """A strategy cannot be built as asked (unknown name, missing or malformed TF_CONFIG, no TPU)."""


def check_tf_config(text: str | None) -> dict:
    """Parses and checks ``TF_CONFIG`` for ``MultiWorkerMirroredStrategy``; returns it.

    Raises:
        StrategyError: missing, not JSON, or not a cluster of ``host:port`` lists with a task in it.
    """
    if not text:
        raise StrategyError(f"--strategy multi-worker needs the TF_CONFIG environment variable on every node, e.g. "
                            f"{TF_CONFIG_EXAMPLE}")
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        kind, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise StrategyError(f"TF_CONFIG is malformed ({type(error).__name__}: {error}); expected e.g. "
                            f"{TF_CONFIG_EXAMPLE}") from error
    if not isinstance(cluster, dict) or not all(
        isinstance(hosts, list) and hosts and all(isinstance(h, str) and ":" in h for h in hosts) for hosts in cluster.values()
    ):
        raise StrategyError(f"TF_CONFIG cluster must map task types to lists of 'host:port', got {cluster!r}")
    if kind not in cluster or not 0 <= index < len(cluster[kind]):
        raise StrategyError(f"TF_CONFIG task {kind}:{index} is not in its cluster {sorted(cluster)} "
                            f"({', '.join(f'{k}: {len(v)}' for k, v in cluster.items())} tasks)")
    return config


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy called ``name`` (one of :data:`STRATEGIES`).

    ``default``: one device. ``mirrored``: every local GPU (synchronous all-reduce).
    ``multi-worker``: ``MultiWorkerMirroredStrategy`` over the ``TF_CONFIG`` cluster (create it
    at the start of the program, before any other TensorFlow op). ``tpu``: ``TPUStrategy`` on
    the TPU named by ``TPU_NAME`` (default: the local TPU VM's); untested here (no TPU).

    Raises:
        StrategyError: unknown name, bad TF_CONFIG, or no TPU found.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        check_tf_config(os.environ.get("TF_CONFIG"))
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get("TPU_NAME", "local"))
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, tf.errors.OpError) as error:
            raise StrategyError(f"--strategy tpu: no TPU found ({error}); set TPU_NAME to the TPU's name or run on a "
                                "TPU VM") from error
        return tf.distribute.TPUStrategy(resolver)
    raise StrategyError(f"unknown strategy {name!r}; use one of {', '.join(STRATEGIES)}")


def in_multi_worker_mode(strategy: tf.distribute.Strategy) -> bool:
    """A ``MultiWorkerMirroredStrategy`` over more than one worker (Keras's own test)."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._in_multi_worker_mode()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this worker writes the run's files (True for every single-worker strategy)."""
    return bool(strategy.extended.should_checkpoint)


def worker_write_dir(run_dir: Path, strategy: tf.distribute.Strategy) -> Path:
    """``run_dir`` on the chief; elsewhere a temporary folder, deleted when the process exits."""
    if is_chief(strategy):
        return run_dir
    temporary = Path(tempfile.mkdtemp(prefix="eusr-worker-"))
    atexit.register(shutil.rmtree, temporary, ignore_errors=True)
    return temporary


def per_replica_batches(
    strategy: tf.distribute.Strategy, make_dataset: Callable[[int], tf.data.Dataset], start_step: int
) -> tf.data.Dataset | tf.distribute.DistributedDataset:
    """``make_dataset(start_step)`` (global batches, one per step) split across the replicas.

    With one replica this is the dataset itself. Otherwise each worker's input pipeline keeps
    its replicas' consecutive row blocks of every global batch, one element per local replica
    and step (``distribute_datasets_from_function`` hands a worker's elements to its local
    replicas in turn), so no automatic sharding or re-batching happens.

    Raises:
        ValueError: the global batch size is unknown or not divisible by the number of replicas.
    """
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return make_dataset(start_step)

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        dataset = make_dataset(start_step)
        batch = tf.nest.flatten(dataset.element_spec)[0].shape[0]
        if batch is None or batch % replicas:
            raise ValueError(f"the global batch size ({batch}) must be a known multiple of the {replicas} replicas")
        local = replicas // context.num_input_pipelines
        first = context.input_pipeline_id * local

        def split(tensor: tf.Tensor) -> tf.Tensor:
            rows = tf.reshape(tensor, tf.concat([[replicas, batch // replicas], tf.shape(tensor)[1:]], 0))
            mine = rows[first:first + local]
            mine.set_shape([local, batch // replicas, *tensor.shape[1:]])
            return mine

        # tf.data passes a tuple element as separate arguments, any other structure as one
        return dataset.map(lambda *parts: tf.nest.map_structure(split, parts if len(parts) > 1 else parts[0])).unbatch()

    return strategy.distribute_datasets_from_function(dataset_fn)


@contextlib.contextmanager
def keras_fit_context(model: keras.Model) -> Iterator[None]:
    """Runs the ``model.fit`` inside it under ``model.distribute_strategy``.

    For a multi-worker strategy this works around two defects of Keras 3's TensorFlow trainer
    (keras-team/keras#20585), through its private ``_distribute_strategy`` and step compiler
    (:mod:`~eusr_perceptual.training.step_functions`):

    * ``fit`` first "symbolically builds" the model from one batch reduced by
      ``strategy.reduce("MEAN", batch)``, which fails for a nested batch under this strategy.
      :func:`~eusr_perceptual.training.runs.fit_run` builds every model before ``fit``, so the
      model is left without a strategy of its own during ``fit`` (which skips that build) and
      ``fit`` runs in the strategy's scope (where the model finds it as the current strategy);
    * each step's logs are reduced by ``strategy.reduce("MEAN", value, axis=0)``, invalid for the
      scalars every ``train_step`` returns; the scalars are given a leading axis of 1, which makes
      that reduction the mean over all replicas of all workers, so every worker logs, and the
      NaN guard sees, the same global values.
    """
    strategy = model.distribute_strategy
    if not in_multi_worker_mode(strategy):
        yield
        return
    def with_rank_one_logs(step_function):
        def step(data):
            logs = step_function(data)
            return tf.nest.map_structure(lambda value: tf.reshape(value, [1]) if value.shape.rank == 0 else value, logs)

        return step

    model._distribute_strategy = None
    try:
        with wrapping_steps(model, with_rank_one_logs), strategy.scope():
            yield
    finally:
        model._distribute_strategy = strategy
