#!/usr/bin/env python
"""Writes ``tiny_4pp_eusr.pb.gz`` and ``tiny_4pp_eusr_outputs.npz``: a small frozen 4PP-EUSR
graph built the way the authors' code builds it (gzipped: the graph's 3,500 nodes, mostly
``tf.case`` plumbing, take 870 KB as a plain ``.pb``; the tests unzip it), and what
TensorFlow's graph executor makes of it.

The graph follows ``train/models/4pp_eusr.py`` and ``train/freeze.py`` of
github.com/idearibosome/tf-perceptual-eusr (read, not copied): placeholders ``sr_input``
(float32 ``[None, None, None, 3]``) and ``sr_input_scale`` (float32 scalar); a generator in the
variable scope ``generator`` called four times with shared weights (x2, then x2 again on the
float output, x4, x8), each call mean-shifting its input, running ``first_conv``, the
scale-specific ``initial_blocks/x<s>`` (two local residual blocks of 5x5 convs) chosen by
``tf.case``, the ``shared`` residual module, and the ``upscaling/x<s>`` enhanced upscaling
modules ``m<i>/px<j>`` plus the output conv, chosen by ``tf.case``; the x8 result resized to
4H x 4W by TF1's legacy bicubic ``resize_images(..., align_corners=False)``; ``sr_output`` the
``tf.case`` over ``sr_input_scale`` 2 / 4 / 8. Convolutions are named as ``tf.layers.conv2d``
names them (``conv2d``, ``conv2d_1``, ... per variable scope; Keras 3 removed
``tf.compat.v1.layers``, so ``get_variable`` in a ``default_name="conv2d"`` scope stands in).
Variables are frozen by ``convert_variables_to_constants``; TF1 graph behaviour (reference
variables, ``Switch``/``Merge`` control flow) is switched on, and ``AddV2`` ops are renamed
``Add`` as a graph frozen by TF 1.x has them.

Sizes are tiny (4 channels, 2 shared blocks, 1 block per upscaling module, the authors'
fixed 2 scale-specific 5x5 blocks) and the weights are random N(0, 0.1) (far larger than the
authors' residual initialisation, so that every branch changes the output). Recorded for an
LR input of 6 x 5: ``sr_output`` for ``sr_input_scale`` 2, 4, 8 and the single-pass outputs
x2, x4, x8 inside the graph (the first, third and fourth generator calls).

    python tests/data/make_eusr_graph_fixture.py    # rewrites both files in tests/data/
    python tests/data/make_eusr_graph_fixture.py --paper-size --out /tmp/full
        # the paper's size (64 channels, 32 shared blocks, 6.3M parameters; weights N(0, 0.25 / fan_in)
        # so that 32 blocks keep image-like values), as a plain 4pp_eusr_paper_size.pb, 12 x 10 input; for
        # benchmarks/import_fidelity.py (not committed)
"""

from __future__ import annotations

import argparse
import gzip
import math
from pathlib import Path

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1
HERE = Path(__file__).resolve().parent
CHANNELS, SHARED_BLOCKS, UPSCALE_BLOCKS, SCALES = 4, 2, 1, (2, 4, 8)
RGB_MEAN = (114.4, 111.5, 103.0)
SEED = 22


def conv2d(x, filters: int, kernel: int):
    """``tf.layers.conv2d(x, filters, kernel, padding='same')`` with its variable names."""
    with tf1.variable_scope(None, default_name="conv2d"):
        fan_in = kernel * kernel * int(x.shape[-1])
        init = tf1.random_normal_initializer(stddev=0.1 if CHANNELS == 4 else 0.5 * fan_in**-0.5, seed=None)
        weights = tf1.get_variable("kernel", [kernel, kernel, x.shape[-1], filters], initializer=init)
        bias = tf1.get_variable("bias", [filters], initializer=init)
        return tf.nn.bias_add(tf.nn.conv2d(x, weights, 1, "SAME"), bias)


def local_residual_block(x, kernel: int):
    return x + conv2d(tf.nn.relu(conv2d(x, CHANNELS, kernel)), CHANNELS, kernel)


def residual_module(x, blocks: int):
    res = x
    for _ in range(blocks):
        res = local_residual_block(res, 3)
    return x + conv2d(res, CHANNELS, 3)


def scale_specific_processing(x, scale: int):
    with tf1.variable_scope(f"x{scale}"):
        return local_residual_block(local_residual_block(x, 5), 5)


def scale_specific_upsampling(x, scale: int):
    with tf1.variable_scope(f"x{scale}"):
        for module in range(int(math.log2(scale))):
            with tf1.variable_scope(f"m{module}"):
                outputs = []
                for pixel in range(4):
                    with tf1.variable_scope(f"px{pixel}"):
                        x = residual_module(x, UPSCALE_BLOCKS)
                        outputs.append(x)
                x = tf.nn.depth_to_space(tf.concat(outputs, axis=3), 2)
        return conv2d(x, 3, 3)


def generator(images, scale: int, reuse: bool):
    with tf1.variable_scope("generator", reuse=reuse):
        x = tf.cast(images, tf.float32) - list(RGB_MEAN)
        with tf1.variable_scope("first_conv"):
            x = conv2d(x, CHANNELS, 3)
        with tf1.variable_scope("initial_blocks"):
            x = tf1.case([(tf.equal(scale, s), lambda s=s: scale_specific_processing(x, s)) for s in SCALES],
                         exclusive=True)
        with tf1.variable_scope("shared"):
            x = residual_module(x, SHARED_BLOCKS)
        with tf1.variable_scope("upscaling"):
            x = tf1.case([(tf.equal(scale, s), lambda s=s: scale_specific_upsampling(x, s)) for s in SCALES],
                         exclusive=True)
        return x + list(RGB_MEAN)


def build_and_freeze():
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(SEED)
        images = tf1.placeholder(tf.float32, [None, None, None, 3], name="sr_input")
        scale = tf1.placeholder(tf.float32, [], name="sr_input_scale")
        x2 = generator(images, 2, reuse=False)
        x2x2 = generator(x2, 2, reuse=True)
        x4 = generator(images, 4, reuse=True)
        x8 = generator(images, 8, reuse=True)
        size = [tf.shape(images)[1] * 4, tf.shape(images)[2] * 4]
        x8down = tf1.image.resize_images(x8, size=size, method=tf1.image.ResizeMethod.BICUBIC, align_corners=False)
        output = tf1.case([(tf.equal(scale, 2.0), lambda: tf.identity(x2x2)), (tf.equal(scale, 4.0), lambda: tf.identity(x4)),
                           (tf.equal(scale, 8.0), lambda: tf.identity(x8down))], exclusive=True)
        tf.identity(output, name="sr_output")
        single_pass = {2: x2.name, 4: x4.name, 8: x8.name}
        with tf1.Session(graph=graph) as session:
            session.run(tf1.global_variables_initializer())
            frozen = tf1.graph_util.convert_variables_to_constants(session, graph.as_graph_def(), ["sr_output"])
    for node in frozen.node:
        node.device = ""
        if node.op == "AddV2":
            node.op = "Add"
    return frozen, single_pass


def run_graph(graph_def, fetches: list[str], lr: np.ndarray, scale: float) -> list[np.ndarray]:
    with tf.Graph().as_default() as graph:
        tf1.import_graph_def(graph_def, name="")
        with tf1.Session(graph=graph) as session:
            return session.run(fetches, {"sr_input:0": lr, "sr_input_scale:0": scale})


def main() -> None:
    global CHANNELS, SHARED_BLOCKS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paper-size", action="store_true", help="64 channels, 32 shared blocks, plain .pb")
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: tests/data)")
    args = parser.parse_args()
    if args.paper_size:
        CHANNELS, SHARED_BLOCKS = 64, 32
    args.out.mkdir(parents=True, exist_ok=True)
    tf1.disable_v2_behavior()
    frozen, single_pass = build_and_freeze()
    if args.paper_size:
        (args.out / "4pp_eusr_paper_size.pb").write_bytes(frozen.SerializeToString())
    else:
        with gzip.GzipFile(args.out / "tiny_4pp_eusr.pb.gz", "wb", mtime=0) as stream:
            stream.write(frozen.SerializeToString())
    shape = (1, 12, 10, 3) if args.paper_size else (1, 6, 5, 3)
    lr = np.random.default_rng(SEED).uniform(0, 255, shape).astype(np.float32)
    arrays = {"lr": lr}
    for scale in SCALES:
        sr_output, path_output = run_graph(frozen, ["sr_output:0", single_pass[scale]], lr, float(scale))
        arrays[f"sr_output_{scale}"], arrays[f"x{scale}"] = sr_output, path_output
    np.savez_compressed(args.out / ("4pp_eusr_paper_size_outputs.npz" if args.paper_size else "tiny_4pp_eusr_outputs.npz"),
                        **arrays)
    print({name: value.shape for name, value in arrays.items()}, "single-pass tensors:", single_pass)


if __name__ == "__main__":
    main()
