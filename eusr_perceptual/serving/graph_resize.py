"""MATLAB bicubic ``imresize`` by exact factors, in graph ops that work on dynamic sizes.

:func:`eusr_perceptual.resize.imresize_tf` builds its resize matrices from the image size, with
a ``numpy_function`` when the size is unknown, which a SavedModel cannot hold. For the exact
factors serving needs the taps do not depend on the size away from the borders, so they are
fixed convolution kernels:

* :func:`halve_matlab_graph` (``imresize(x, 0.5)``, antialiased): 8 taps, stride 2, 3 pixels
  of symmetric padding (the 4PP-EUSR ``x8down`` route, Table 3);
* :func:`upscale_matlab_graph` (``imresize(x, s)`` for an integer ``s``): per output phase
  ``p`` of ``s``, 4 taps of the Keys cubic (``a = -0.5``) within 2 pixels of the input pixel
  (used for the alpha channel of RGBA images, which the model does not see).

MATLAB's out-of-range taps are mirrored (the edge pixel repeated); a gather of mirrored indices
does that for any image size, also where the padding is wider than the image.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from eusr_perceptual.resize import resize_weights, round_to_uint8_tf

__all__ = ["halve_matlab_graph", "upscale_matlab_graph"]

#: Input pixels a bicubic upscaling tap reaches on either side of its centre pixel.
_UPSCALE_REACH = 2


def _halving_taps() -> np.ndarray:
    """The 8 taps of MATLAB ``imresize(x, 0.5)`` (bicubic, antialiased) away from borders."""
    _, weights = resize_weights(32, 16, 0.5)
    return weights[8]


def halve_matlab_graph(images: tf.Tensor) -> tf.Tensor:
    """MATLAB bicubic halving of even-sized float ``[B, H, W, C]`` images, in graph ops only.

    Equal to :func:`eusr_perceptual.resize.imresize_tf` with ``scale=0.5`` for even sizes:
    an exact halving has 8 fixed taps centred between pixels ``2i`` and ``2i + 1``, and
    MATLAB's mirrored indices at the borders are 3 pixels of symmetric padding.
    """
    taps = _halving_taps()
    channels = images.shape[-1]
    kernel = tf.constant(np.outer(taps, taps)[:, :, None, None], tf.float32)
    padded = tf.pad(tf.cast(images, tf.float32), [[0, 0], [3, 3], [3, 3], [0, 0]], mode="SYMMETRIC")
    return tf.nn.depthwise_conv2d(padded, tf.tile(kernel, [1, 1, channels, 1]), [1, 2, 2, 1], "VALID")


def _upscaling_kernel(factor: int) -> np.ndarray:
    """``[2 * reach + 1, factor]`` float32: column ``p`` holds the taps of output phase ``p``
    (output pixel ``factor * i + p``) at input offsets ``-reach .. reach`` from pixel ``i``."""
    indices, weights = resize_weights(16, 16 * factor, factor)
    kernel = np.zeros((2 * _UPSCALE_REACH + 1, factor))
    for phase in range(factor):
        row = 8 * factor + phase  # an output pixel of input pixel 8, far from the borders
        kernel[indices[row] - 8 + _UPSCALE_REACH, phase] = weights[row]
    return kernel.astype(np.float32)


def _mirror_pad_rows(images: tf.Tensor, pad: int) -> tf.Tensor:
    """``pad`` rows of MATLAB's symmetric padding on both sides of axis 1 (any height)."""
    height = tf.shape(images)[1]
    wanted = tf.range(-pad, height + pad)
    period = tf.math.floormod(wanted, 2 * height)
    return tf.gather(images, tf.where(period < height, period, 2 * height - 1 - period), axis=1)


def _upscale_rows(images: tf.Tensor, factor: int) -> tf.Tensor:
    """Bicubic upscaling of axis 1 of float32 ``[B, H, W, C]`` by ``factor``."""
    channels = images.shape[-1]
    kernel = tf.constant(_upscaling_kernel(factor)[:, None, None, :])  # [taps, 1, 1, factor]
    padded = _mirror_pad_rows(images, _UPSCALE_REACH)
    phases = tf.nn.depthwise_conv2d(padded, tf.tile(kernel, [1, 1, channels, 1]), [1, 1, 1, 1], "VALID")
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    phases = tf.reshape(phases, [batch, height, width, channels, factor])  # channel c, phase p at c * factor + p
    interleaved = tf.transpose(phases, [0, 1, 4, 2, 3])
    return tf.reshape(interleaved, [batch, height * factor, width, channels])


def upscale_matlab_graph(images: tf.Tensor, factor: int, uint8: bool = False) -> tf.Tensor:
    """MATLAB ``imresize(images, factor, 'bicubic')`` of ``[B, H, W, C]``, graph ops only.

    Rows first, then columns, as MATLAB orders equal scales. By default float32, neither
    rounded nor clipped (MATLAB on a ``double`` image); with ``uint8=True`` each pass is
    rounded and clipped as MATLAB does for a ``uint8`` image (:func:`eusr_perceptual.resize.imresize`
    on uint8 input), and the result is uint8. ``C`` must be static.
    """

    def after_pass(x: tf.Tensor) -> tf.Tensor:
        return tf.cast(round_to_uint8_tf(x), tf.float32) if uint8 else x

    rows = after_pass(_upscale_rows(tf.cast(images, tf.float32), factor))
    columns = after_pass(_upscale_rows(tf.transpose(rows, [0, 2, 1, 3]), factor))
    upscaled = tf.transpose(columns, [0, 2, 1, 3])
    return tf.cast(upscaled, tf.uint8) if uint8 else upscaled
