"""Tiled upscaling inside a TensorFlow graph, for serving large images in bounded memory.

The same convention as :func:`eusr_perceptual.inference.upscale_image`, whose tile loop runs
in Python: LR cores of ``tile`` pixels partition the image; each core is extended by
``overlap`` pixels of context on every side (clamped at the border), the extended tile is
upscaled, and only the upscaled core is kept, without blending. :func:`tile_spans` is
:func:`eusr_perceptual.inference.tile_boxes` on a tensor length, and :func:`upscale_tiled`
loops over the tiles with ``tf.while_loop``, so a SavedModel signature can hold it.

Memory is one tile's forward pass plus the uint8 output: the kept cores of a row of tiles
are concatenated into a strip, the strips into the image (uint8 when ``upscale`` returns
uint8). Where ``overlap`` covers the model's receptive field the result equals the
whole-image result up to float rounding (see :mod:`eusr_perceptual.inference`).
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

__all__ = ["tile_spans", "upscale_tiled"]


def tile_spans(length: tf.Tensor, tile: int, overlap: int) -> tf.Tensor:
    """``[n, 4]`` int32 rows ``(start, stop, core_start, core_stop)`` covering ``[0, length)``.

    Row ``i``: the LR span fed to the model (clamped to the image) and the core it
    contributes; cores of ``tile`` pixels (the last may be shorter) partition ``[0, length)``.
    """
    if tile < 1 or overlap < 0:
        raise ValueError(f"tile must be >= 1 and overlap >= 0, got tile={tile}, overlap={overlap}")
    length = tf.cast(length, tf.int32)
    core_start = tf.range(0, length, tile)
    core_stop = tf.minimum(core_start + tile, length)
    return tf.stack(
        [tf.maximum(core_start - overlap, 0), tf.minimum(core_stop + overlap, length), core_start, core_stop], axis=1
    )


def upscale_tiled(
    upscale: Callable[[tf.Tensor], tf.Tensor],
    images: tf.Tensor,
    factor: int,
    tile: int,
    overlap: int,
    dtype: tf.DType = tf.uint8,
) -> tf.Tensor:
    """Runs ``upscale`` on overlapping tiles of ``[B, H, W, C]`` images and stitches the cores.

    Args:
        upscale: ``[B, h, w, C]`` -> ``[B, factor h, factor w, C']`` of ``dtype``.
        images: the LR batch (dynamic height and width).
        factor: the upscaling factor of ``upscale``.
        tile: LR core size of a tile.
        overlap: LR context pixels added on each side of a tile.
        dtype: the output dtype of ``upscale`` (uint8 keeps the stitched output small).
    """
    shape = tf.shape(images)
    rows, columns = tile_spans(shape[1], tile, overlap), tile_spans(shape[2], tile, overlap)

    def upscaled_core(row: tf.Tensor, column: tf.Tensor) -> tf.Tensor:
        y0, y1, core_y0, core_y1 = tf.unstack(row)
        x0, x1, core_x0, core_x1 = tf.unstack(column)
        upscaled = upscale(images[:, y0:y1, x0:x1])
        top, left = (core_y0 - y0) * factor, (core_x0 - x0) * factor
        return upscaled[:, top : top + (core_y1 - core_y0) * factor, left : left + (core_x1 - core_x0) * factor]

    def concat_along(axis_first: list[int], count: tf.Tensor, piece: Callable[[tf.Tensor], tf.Tensor]):
        """Concatenates ``piece(i)`` for ``i < count`` along the axis that ``axis_first`` moves
        to the front (a TensorArray concatenates along axis 0); returns it in that layout."""

        def body(i, pieces):
            return i + 1, pieces.write(i, tf.transpose(piece(i), axis_first))

        empty = tf.TensorArray(dtype, size=count, infer_shape=False)
        # One tile at a time: parallel iterations would hold several forward passes at once.
        _, pieces = tf.while_loop(lambda i, _: i < count, body, [tf.constant(0), empty], parallel_iterations=1)
        return pieces.concat()

    def strip(i: tf.Tensor) -> tf.Tensor:  # one row of tiles, [B, core height, W, C']
        width_first = concat_along([2, 0, 1, 3], tf.shape(columns)[0], lambda j: upscaled_core(rows[i], columns[j]))
        return tf.transpose(width_first, [1, 2, 0, 3])

    height_first = concat_along([1, 0, 2, 3], tf.shape(rows)[0], strip)
    return tf.transpose(height_first, [1, 0, 2, 3])

