"""PSNR and SSIM as super-resolution papers report them (MATLAB conventions).

4PP-EUSR (Choi et al., 2018), section 5: "All quality metrics are calculated on
the Y channel of the YCbCr channels converted from the RGB channels with
cropping 4 pixels of each border." The conventions reproduced here are those of
the MATLAB evaluation scripts of the field:

* SR outputs are saved as ``uint8`` before evaluation, so float SR images are
  first rounded like MATLAB's ``uint8()`` (``quantize=True``).
* Luma is MATLAB ``rgb2ycbcr``'s Y of the ``im2double`` image, scaled back to
  ``[0, 255]`` and not rounded: ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255``.
* ``border`` pixels are cropped on each side (4 in 4PP-EUSR; often the scale).
* SSIM is Wang et al.'s ``ssim_index.m``: 11x11 Gaussian window (sigma 1.5,
  normalised), ``K1 = 0.01``, ``K2 = 0.03``, ``L = 255``, ``'valid'`` filtering,
  mean of the SSIM map (no downsampling, unlike the later ``ssim.m``); for
  colour images without ``y_channel``, the mean over channels.

NumPy functions (:func:`psnr`, :func:`ssim`) work in float64 and return Python
floats; the TensorFlow ones (:func:`psnr_tf`, :func:`ssim_tf`) work in float32
on batches and return one value per image, for Keras validation metrics. Both
share the luma, cropping, window and SSIM-map code below.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from numpy.lib.stride_tricks import sliding_window_view

from eusr_perceptual.resize import round_to_uint8_tf, to_uint8_matlab

Array = np.ndarray | tf.Tensor  # helpers below use only operators shared by both

__all__ = [
    "gaussian_window",
    "psnr",
    "psnr_tf",
    "rgb_to_y",
    "rgb_to_y_tf",
    "ssim",
    "ssim_tf",
]

SSIM_WINDOW_SIZE = 11
SSIM_SIGMA = 1.5
_SSIM_L = 255.0
_SSIM_C1 = (0.01 * _SSIM_L) ** 2
_SSIM_C2 = (0.03 * _SSIM_L) ** 2


def _luma(red: Array, green: Array, blue: Array) -> Array:
    """MATLAB ``rgb2ycbcr`` Y on ``[0, 255]`` values (NumPy arrays or tensors)."""
    return 16.0 + (65.481 * red + 128.553 * green + 24.966 * blue) / 255.0


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """Y (luma, 16-235) of an RGB image in ``[0, 255]``, float64, shape ``[...]``.

    MATLAB ``255 * rgb2ycbcr(im2double(image))(:, :, 1)``, without rounding.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.shape[-1:] != (3,):
        raise ValueError(f"Expected RGB images [..., 3], got shape {image.shape}.")
    return _luma(image[..., 0], image[..., 1], image[..., 2])


def rgb_to_y_tf(images: tf.Tensor) -> tf.Tensor:
    """TensorFlow :func:`rgb_to_y`: float32 ``[..., 3]`` -> float32 ``[...]``."""
    images = tf.cast(images, tf.float32)
    if images.shape[-1] != 3:
        raise ValueError(f"Expected RGB images [..., 3], got shape {images.shape}.")
    return _luma(images[..., 0], images[..., 1], images[..., 2])


def gaussian_window(size: int = SSIM_WINDOW_SIZE, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian; ``np.outer(g, g)`` is ``fspecial('gaussian', size, sigma)``."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    window = np.exp(-(x**2) / (2 * sigma**2))
    return window / window.sum()


def _crop(images: Array, border: int) -> Array:
    """Drop ``border`` pixels on each side of the two axes before the channel axis."""
    stop = -border if border else None
    return images[..., border:stop, border:stop, :]


def _ssim_map(mu1: Array, mu2: Array, mean11: Array, mean22: Array, mean12: Array) -> Array:
    """Wang et al.'s SSIM map from the windowed means of x, y, x^2, y^2 and xy."""
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq, sigma2_sq, sigma12 = mean11 - mu1_sq, mean22 - mu2_sq, mean12 - mu1_mu2
    return ((2 * mu1_mu2 + _SSIM_C1) * (2 * sigma12 + _SSIM_C2)) / (
        (mu1_sq + mu2_sq + _SSIM_C1) * (sigma1_sq + sigma2_sq + _SSIM_C2)
    )


def _check_border(height: int | None, width: int | None, border: int, min_size: int) -> None:
    """Raise if ``border`` is invalid or leaves less than ``min_size`` pixels."""
    if int(border) != border or border < 0:
        raise ValueError(f"border must be a non-negative integer, got {border!r}.")
    for length in (height, width):
        if length is not None and length - 2 * border < min_size:
            raise ValueError(
                f"Image of size {height}x{width} is too small: cropping {border} pixels per "
                f"border must leave at least {min_size} pixels per side."
            )


def _prepare(
    sr: np.ndarray, hr: np.ndarray, border: int, y_channel: bool, quantize: bool, min_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Quantize SR, take Y (for RGB) and crop; returns float64 ``HxWxC`` arrays."""
    sr, hr = np.asarray(sr), np.asarray(hr)
    if sr.shape != hr.shape:
        raise ValueError(f"Shape mismatch: sr {sr.shape} vs hr {hr.shape}.")
    if sr.ndim not in (2, 3):
        raise ValueError(f"Images must be HxW or HxWxC, got shape {sr.shape}.")
    _check_border(sr.shape[0], sr.shape[1], border, min_size)
    if quantize:
        sr = to_uint8_matlab(sr)
    sr, hr = (np.asarray(x, dtype=np.float64) for x in (sr, hr))
    if sr.ndim == 2:
        sr, hr = sr[..., None], hr[..., None]
    elif y_channel and sr.shape[-1] == 3:
        sr, hr = rgb_to_y(sr)[..., None], rgb_to_y(hr)[..., None]
    return _crop(sr, border), _crop(hr, border)


def psnr(
    sr: np.ndarray,
    hr: np.ndarray,
    border: int = 4,
    y_channel: bool = True,
    data_range: float = 255.0,
    quantize: bool = True,
) -> float:
    """PSNR in dB between an SR image and its ground truth, MATLAB-style.

    4PP-EUSR section 5: computed "on the Y channel of the YCbCr channels
    converted from the RGB channels with cropping 4 pixels of each border".

    Args:
        sr: Super-resolved image, ``HxW`` or ``HxWxC`` in ``[0, 255]``.
        hr: Ground truth of the same shape.
        border: Pixels cropped on each side before computing.
        y_channel: Evaluate on the Y of RGB (3-channel) images; grayscale images
            are used as they are.
        data_range: Peak value ``L`` in ``10 log10(L^2 / MSE)``.
        quantize: Round ``sr`` to ``uint8`` first (MATLAB half away from zero),
            as outputs saved to image files are.

    Returns:
        PSNR in dB; ``inf`` for identical (cropped) images.
    """
    sr, hr = _prepare(sr, hr, border, y_channel, quantize, min_size=1)
    mse = float(np.mean((sr - hr) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def _filter_valid(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """MATLAB ``filter2(outer(window, window), image, 'valid')`` on ``HxW``, separably."""
    rows = sliding_window_view(image, window.size, axis=0) @ window
    return sliding_window_view(rows, window.size, axis=1) @ window


def ssim(
    sr: np.ndarray,
    hr: np.ndarray,
    border: int = 4,
    y_channel: bool = True,
    quantize: bool = True,
) -> float:
    """SSIM of Wang et al.'s MATLAB ``ssim_index`` (mean of the 'valid' SSIM map).

    Evaluated as in 4PP-EUSR section 5 by default: Y channel, 4-pixel border
    cropped. Colour images with ``y_channel=False`` give the mean over channels.

    Args:
        sr: Super-resolved image, ``HxW`` or ``HxWxC`` in ``[0, 255]``.
        hr: Ground truth of the same shape.
        border: Pixels cropped on each side before computing.
        y_channel: Evaluate on the Y of RGB (3-channel) images.
        quantize: Round ``sr`` to ``uint8`` first, as in :func:`psnr`.

    Returns:
        Mean SSIM; 1.0 for identical images.
    """
    sr, hr = _prepare(sr, hr, border, y_channel, quantize, min_size=SSIM_WINDOW_SIZE)
    window = gaussian_window()
    per_channel = []
    for x, y in zip(np.moveaxis(sr, -1, 0), np.moveaxis(hr, -1, 0)):
        moments = (_filter_valid(m, window) for m in (x, y, x * x, y * y, x * y))
        per_channel.append(np.mean(_ssim_map(*moments)))
    return float(np.mean(per_channel))


def _prepare_tf(
    sr: tf.Tensor, hr: tf.Tensor, border: int, y_channel: bool, quantize: bool, min_size: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """TensorFlow :func:`_prepare` on ``[B, H, W, C]``: float32, Y, cropped."""
    sr, hr = tf.convert_to_tensor(sr), tf.convert_to_tensor(hr)
    if sr.shape.rank != 4:
        raise ValueError(f"Expected [B, H, W, C] tensors, got shape {sr.shape}.")
    if not sr.shape.is_compatible_with(hr.shape):
        raise ValueError(f"Shape mismatch: sr {sr.shape} vs hr {hr.shape}.")
    _check_border(sr.shape[1], sr.shape[2], border, min_size)
    sr = round_to_uint8_tf(sr) if quantize else sr
    sr, hr = tf.cast(sr, tf.float32), tf.cast(hr, tf.float32)
    if y_channel and sr.shape[-1] == 3:
        sr, hr = rgb_to_y_tf(sr)[..., tf.newaxis], rgb_to_y_tf(hr)[..., tf.newaxis]
    return _crop(sr, border), _crop(hr, border)


def _per_image(
    metric: Callable[[tf.Tensor, tf.Tensor], tf.Tensor], sr: tf.Tensor, hr: tf.Tensor
) -> tf.Tensor:
    """Apply a batched metric to ``[B, H, W, C]`` or a single ``[H, W, C]`` pair."""
    sr, hr = tf.convert_to_tensor(sr), tf.convert_to_tensor(hr)
    if sr.shape.rank == 3:
        return metric(sr[tf.newaxis], hr[tf.newaxis])[0]
    return metric(sr, hr)


def psnr_tf(
    sr: tf.Tensor,
    hr: tf.Tensor,
    border: int = 4,
    y_channel: bool = True,
    data_range: float = 255.0,
    quantize: bool = True,
) -> tf.Tensor:
    """Per-image :func:`psnr` for ``[B, H, W, C]`` tensors (float32 ``[B]``).

    A single ``[H, W, C]`` pair gives a scalar. Identical images give ``inf``.
    """

    def batched(sr: tf.Tensor, hr: tf.Tensor) -> tf.Tensor:
        sr, hr = _prepare_tf(sr, hr, border, y_channel, quantize, min_size=1)
        mse = tf.reduce_mean(tf.square(sr - hr), axis=[1, 2, 3])
        return 10.0 * tf.math.log(data_range**2 / mse) / math.log(10.0)

    return _per_image(batched, sr, hr)


def ssim_tf(
    sr: tf.Tensor,
    hr: tf.Tensor,
    border: int = 4,
    y_channel: bool = True,
    quantize: bool = True,
) -> tf.Tensor:
    """Per-image :func:`ssim` for ``[B, H, W, C]`` tensors (float32 ``[B]``).

    A single ``[H, W, C]`` pair gives a scalar.
    """

    def batched(sr: tf.Tensor, hr: tf.Tensor) -> tf.Tensor:
        sr, hr = _prepare_tf(sr, hr, border, y_channel, quantize, min_size=SSIM_WINDOW_SIZE)
        window = gaussian_window()
        channels = sr.shape[-1]
        kernel = tf.constant(np.outer(window, window)[:, :, None, None], tf.float32)
        kernel = tf.tile(kernel, [1, 1, channels, 1])

        def filter_valid(x: tf.Tensor) -> tf.Tensor:
            return tf.nn.depthwise_conv2d(x, kernel, strides=[1, 1, 1, 1], padding="VALID")

        moments = (filter_valid(m) for m in (sr, hr, sr * sr, hr * hr, sr * hr))
        return tf.reduce_mean(_ssim_map(*moments), axis=[1, 2, 3])

    return _per_image(batched, sr, hr)
