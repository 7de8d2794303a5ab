"""A run checkpoint that holds the whole model: every variable, trainable or not, by its path.

TensorFlow's object-based checkpoint finds variables by walking TF-tracked attributes. Keras 3
tracks layers kept in Python lists (``self.blocks = [...]``) for its own purposes
(``model.weights``, ``.keras`` files) but not as TF checkpoint dependencies, so a plain
``tf.train.Checkpoint(model=model)`` silently leaves out every variable reached only through
such a list: SRResNet's block BatchNorm moving statistics, the RRDB blocks and upsampling convs
of a generator EMA copy, EUSR's residual modules. The optimizer's slot list kept the trainable
ones, which is why resumed runs trained on exactly while their exported generators did not
(issue 19, item 1).

:func:`model_state` therefore names every variable of ``model.variables`` explicitly, by its
Keras path (``sr_res_net/block_0/bn_a/moving_mean``), and :func:`check_complete` refuses a
checkpoint that lacks any of them, before anything is restored, instead of restoring half.
Two variables with one path (a generator and its EMA copy share layer names) are told apart by
their order in ``model.variables``: ``path``, ``path#2``, ...
"""

from __future__ import annotations

import re
from typing import Any

import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

from eusr_perceptual.errors import UsageError

#: The attribute of the run checkpoint under which :func:`model_state` is stored.
STATE_KEY = "model_state"


class IncompleteCheckpointError(UsageError):
    """A checkpoint lacks variables of the model it is restored into (written by older code)."""


def state_keys(variables: list[Any]) -> list[str]:
    """One checkpoint name per variable: its path without the number Keras appends to a
    network's automatic name (``eusr_3`` when a process builds several), ``/`` as ``:``, other
    characters that a checkpoint key would escape as ``_``, and ``#k`` appended to the k-th
    repeat of a path."""
    seen: dict[str, int] = {}
    keys = []
    for variable in variables:
        network, _, rest = variable.path.partition("/")
        path = f"{re.sub(r'_[0-9]+$', '', network)}/{rest}"  # eusr_3/first_conv/kernel -> eusr/...
        key = re.sub(r"[^A-Za-z0-9_:-]", "_", path.replace("/", ":"))
        seen[key] = seen.get(key, 0) + 1
        keys.append(key if seen[key] == 1 else f"{key}#{seen[key]}")
    return keys


def model_state(model: Any) -> tf.Module:
    """A trackable whose children are all of ``model.variables``, named by :func:`state_keys`."""
    state = tf.Module(name=STATE_KEY)
    variables = list(model.variables)
    for key, variable in zip(state_keys(variables), variables):
        setattr(state, key, variable)  # tracked as a checkpoint dependency named ``key``
    return state


def run_checkpoint(model: Any, step: tf.Variable, **objects: Any) -> tf.train.Checkpoint:
    """The checkpoint of a training run: the model (with its RNG state), its optimizer, the step,
    every variable of the model by path (:func:`model_state`) and further ``objects``."""
    return tf.train.Checkpoint(model=model, optimizer=model.optimizer, step=step,
                               **{STATE_KEY: model_state(model)}, **objects)


def restore_run_checkpoint(checkpoint: tf.train.Checkpoint, path: str, model: Any) -> None:
    """Restores ``path`` into ``checkpoint`` after :func:`check_complete` has accepted it."""
    check_complete(path, model)
    checkpoint.restore(path).assert_existing_objects_matched()


def check_complete(path: str, model: Any) -> None:
    """Raises :class:`IncompleteCheckpointError` unless checkpoint ``path`` holds every variable
    of ``model`` under :data:`STATE_KEY`, each with the variable's shape.

    The check reads the checkpoint's object graph: a variable reachable along several paths is
    stored once, under its shortest path, so the ``model_state`` entries are looked up as graph
    nodes, not as tensor names.
    """
    reader = tf.train.load_checkpoint(path)
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    shapes = reader.get_variable_to_shape_map()
    state = [c.node_id for c in graph.nodes[0].children if c.local_name == STATE_KEY]
    saved = {c.local_name: graph.nodes[c.node_id] for c in graph.nodes[state[0]].children} if state else {}
    variables = list(model.variables)
    missing = []
    for key, variable in zip(state_keys(variables), variables):
        node = saved.get(key)
        stored = [shapes.get(attribute.checkpoint_key) for attribute in node.attributes] if node is not None else []
        if len(stored) != 1 or tuple(stored[0] or ()) != tuple(variable.shape):
            missing.append(variable.path)
    if missing:
        raise IncompleteCheckpointError(
            f"checkpoint {path} lacks {len(missing)} of the model's {len(variables)} variables "
            f"(e.g. {', '.join(missing[:3])}); it was written by an older version of eusr-perceptual "
            "that did not save layers kept in lists, and restoring it would give a model that differs "
            "from the trained one. Start a new run (another --run-dir), or use the old version to finish it"
        )
