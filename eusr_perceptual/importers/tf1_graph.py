"""Frozen TensorFlow 1 graphs of the 4PP-EUSR authors (and of their EUSR) as the project's EUSR.

The released ``4pp_eusr_pirm.pb`` / ``4pp_eusr_paper_v2.pb`` are ``GraphDef`` protos written by
the authors' ``train/freeze.py`` (github.com/idearibosome/tf-perceptual-eusr): their EUSR
generator (``train/models/eusr.py``, ``4pp_eusr.py``) with every variable turned into a constant
node of the variable's name, inputs ``sr_input`` / ``sr_input_scale``, output ``sr_output``.
The weights are read from those constant nodes **by name** (never by op type: a graph frozen
by TF 1.x has ``Add`` where a newer TF writes ``AddV2``, which changes nothing here), and the
architecture from the names and shapes:

* ``generator/first_conv/conv2d/{kernel,bias}``: the first conv; its output channels are
  ``channels``;
* ``generator/initial_blocks/x<s>/conv2d[_<n>]``: the scale-specific local residual blocks (two
  convs each; their kernel size is ``scale_aware_kernel``, 5 in the authors' code);
* ``generator/shared/conv2d[_<n>]``: the shared module, 2 x ``shared_blocks`` + 1 convs;
* ``generator/upscaling/x<s>/m<i>/px<j>/conv2d[_<n>]``: residual module ``j`` of enhanced
  upscaling module ``i`` of the x``s`` path, 2 x ``upscale_blocks`` + 1 convs;
* ``generator/upscaling/x<s>/conv2d``: the x``s`` output conv; the scales are the ``s`` present;
* ``generator/sub/y``: the RGB mean subtracted at the input (``generator/add/y``, added back at
  the output, must agree).

``tf.layers.conv2d`` names the convs of a variable scope ``conv2d``, ``conv2d_1``, ... in the
order they are made (conv_a, conv_b of each block, then the module's closing conv), which is
the order the project's layers are matched in. Kernels are TensorFlow's ``[kh, kw, in, out]``
like Keras'; the authors' ``depth_to_space`` is the project's, so nothing is reordered.

``sr_output`` of a 4PP-EUSR graph is always 4H x 4W: ``sr_input_scale`` 4 is the x4 path, 2
the x2 path twice (the float output fed back: the project's ``x2x2`` route) and 8 the x8 path
halved by TF1's legacy bicubic ``resize_images(..., align_corners=False)``, which at an exact
halving takes every second pixel: the ``x8down`` route with ``downscale="subsample"``
(:mod:`eusr_perceptual.models.multipass`), not the paper's MATLAB halving (the route's default).
A frozen EUSR (not 4PP) graph's ``sr_output`` is the single path ``sr_input_scale`` names.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from eusr_perceptual.importers.weights import WeightsImportError, as_is, assign_weights
from eusr_perceptual.models.eusr import EUSR, EUSRConfig

__all__ = ["OUTPUT_NODE", "eusr_config_from_weights", "import_frozen_graph", "read_graph_weights"]

OUTPUT_NODE = "sr_output"
MEAN_NODE, MEAN_OUT_NODE = "generator/sub/y", "generator/add/y"
_WEIGHT = re.compile(r"generator/.+/(?:kernel|bias)")


def _read_graph_def(path: Path, source: str):
    import tensorflow as tf  # lazy: TensorFlow-free on other Keras backends until a .pb is read (issue 23)

    if path.name == "saved_model.pb":
        raise WeightsImportError(f"{source} is a SavedModel's graph: give its folder, not the .pb inside")
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except Exception as error:  # protobuf's DecodeError (protobuf comes with TensorFlow and is not declared)
        if type(error).__name__ != "DecodeError":
            raise
        raise WeightsImportError(f"{source} is not a TensorFlow GraphDef: {error}") from error
    return graph_def


def read_graph_weights(path: str | Path, source: str | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The ``generator/.../kernel|bias`` constants of a frozen graph by node name, and the RGB mean.

    Raises:
        WeightsImportError: not a GraphDef, no ``sr_output`` node, no RGB mean node.
    """
    import tensorflow as tf  # lazy: TensorFlow-free on other Keras backends until a .pb is read (issue 23)

    path = Path(path)
    source = source or path.name
    graph_def = _read_graph_def(path, source)
    values = {node.name: node.attr["value"].tensor for node in graph_def.node if "value" in node.attr}
    if not any(node.name == OUTPUT_NODE for node in graph_def.node):
        raise WeightsImportError(
            f"{source}: the graph has no node {OUTPUT_NODE!r} (not a graph frozen by the 4PP-EUSR authors' train/freeze.py)")
    if MEAN_NODE not in values:
        raise WeightsImportError(f"{source}: the graph has no node {MEAN_NODE!r} (the RGB mean the generator subtracts)")
    mean = tf.make_ndarray(values[MEAN_NODE]).astype(np.float32).reshape(-1)
    if MEAN_OUT_NODE in values and not np.array_equal(tf.make_ndarray(values[MEAN_OUT_NODE]).reshape(-1), mean):
        raise WeightsImportError(f"{source}: node {MEAN_OUT_NODE!r} (the mean added back) differs from {MEAN_NODE!r}")
    if mean.shape != (3,):
        raise WeightsImportError(f"{source}: node {MEAN_NODE!r} holds {mean.shape[0]} values, not an RGB mean")
    weights = {name: tf.make_ndarray(tensor) for name, tensor in values.items() if _WEIGHT.fullmatch(name)}
    return weights, mean


def _conv_name(scope: str, index: int) -> str:
    """The variable scope ``tf.layers.conv2d`` gives the ``index``-th conv made in ``scope``."""
    return f"{scope}/conv2d" if index == 0 else f"{scope}/conv2d_{index}"


def _conv_count(weights, scope: str) -> int:
    pattern = re.compile(re.escape(scope) + r"/conv2d(?:_\d+)?/kernel")
    return sum(1 for name in weights if pattern.fullmatch(name))


def _node(weights, name: str, source: str) -> np.ndarray:
    if name not in weights:
        raise WeightsImportError(f"{source}: missing node {name!r}")
    return weights[name]


def eusr_config_from_weights(weights: dict[str, np.ndarray], mean: np.ndarray, source: str):
    """The :class:`~eusr_perceptual.models.eusr.EUSRConfig` the graph's names and shapes describe."""
    scales = sorted(int(m.group(1)) for name in weights if (m := re.fullmatch(r"generator/upscaling/x(\d+)/conv2d/kernel", name)))
    if not scales:
        raise WeightsImportError(f"{source}: no node generator/upscaling/x<s>/conv2d/kernel (no upscaling path)")
    channels = _node(weights, "generator/first_conv/conv2d/kernel", source).shape[-1]
    first = scales[0]
    scale_aware = _node(weights, f"generator/initial_blocks/x{first}/conv2d/kernel", source)
    try:
        return EUSRConfig(
            channels=int(channels),
            shared_blocks=(_conv_count(weights, "generator/shared") - 1) // 2,
            upscale_blocks=(_conv_count(weights, f"generator/upscaling/x{first}/m0/px0") - 1) // 2,
            scales=tuple(scales),
            scale_aware_blocks=_conv_count(weights, f"generator/initial_blocks/x{first}") // 2,
            scale_aware_kernel=int(scale_aware.shape[0]),
            rgb_mean=tuple(float(v) for v in mean),
        )
    except ValueError as error:
        raise WeightsImportError(f"{source}: {error}") from error


def import_frozen_graph(path: str | Path, source: str | None = None):
    """The project's EUSR holding a frozen graph's weights, every scale of the graph.

    Raises:
        WeightsImportError: the graph is not an EUSR/4PP-EUSR graph, a weight node is unknown or
            missing, or a shape does not fit (the message names the node).
    """
    source = source or Path(path).name
    weights, mean = read_graph_weights(path, source)
    model = EUSR(eusr_config_from_weights(weights, mean, source))
    model.build()
    plan = {}

    def conv(scope: str, index: int, layer) -> None:
        plan[f"{_conv_name(scope, index)}/kernel"] = as_is(layer.kernel)
        plan[f"{_conv_name(scope, index)}/bias"] = as_is(layer.bias)

    def residual_module(scope: str, module) -> None:
        for k, block in enumerate(module.lrbs):
            conv(scope, 2 * k, block.conv_a)
            conv(scope, 2 * k + 1, block.conv_b)
        conv(scope, 2 * len(module.lrbs), module.conv)

    conv("generator/first_conv", 0, model.first_conv)
    residual_module("generator/shared", model.shared_module)
    for scale in model.scales:
        for i, block in enumerate(model.scale_aware[f"x{scale}"]):
            conv(f"generator/initial_blocks/x{scale}", 2 * i, block.conv_a)
            conv(f"generator/initial_blocks/x{scale}", 2 * i + 1, block.conv_b)
        for i, upscaler in enumerate(model.upscalers[f"x{scale}"]):
            for j, module in enumerate(upscaler.modules_):
                residual_module(f"generator/upscaling/x{scale}/m{i}/px{j}", module)
        conv(f"generator/upscaling/x{scale}", 0, model.output_convs[f"x{scale}"])
    assign_weights(plan, weights, source, kind="node")
    return model
