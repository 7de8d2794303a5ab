"""MATLAB-compatible bicubic ``imresize`` for NumPy and TensorFlow.

The low-resolution images of the super-resolution benchmarks (DIV2K, Set5, Set14,
BSD100, Urban100) are made with MATLAB's ``imresize(img, scale, 'bicubic')``.
That function differs from ``tf.image.resize`` and from scikit-image in three
ways that change PSNR noticeably, so it is re-implemented here from MATLAB's
documented semantics:

* Keys cubic kernel with ``a = -0.5``; when downscaling (``scale < 1``) the
  kernel is widened by ``1 / scale`` (antialiasing): ``h(x) = scale * k(scale * x)``.
* Output pixel ``x`` (1-based) maps to input coordinate
  ``u = x / scale + 0.5 * (1 - 1 / scale)``; taps start at
  ``floor(u - width / 2)``, ``ceil(width) + 2`` of them, weights normalised to sum 1.
* Out-of-range taps are mirrored symmetrically (the edge pixel repeated), and
  the dimensions are resized one after the other, smallest scale first.

The NumPy path (:func:`imresize`) gathers taps per output pixel and accumulates
them in tap order, like MATLAB's ``imresizemex``; for ``uint8`` input every pass
is rounded back to ``uint8`` as MATLAB does (its intermediate array keeps the
input class). The TensorFlow path (:func:`imresize_tf`) applies the same weights
as two dense ``[out, in]`` matrices (:func:`resize_matrix`) with ``einsum``,
which is differentiable w.r.t. the images and works with dynamic shapes.
"""
from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

__all__ = [
    "DEFAULT_RESIZE_CONVENTION",
    "RESIZE_CONVENTIONS",
    "cubic",
    "imresize",
    "imresize_uint8",
    "imresize_tf",
    "resize_matrix",
    "resize_weights",
    "round_to_uint8_tf",
    "to_uint8_matlab",
]

_KERNEL_WIDTH = 4.0  # support of the cubic kernel, [-2, 2]


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with ``a = -0.5`` (MATLAB's ``cubic``).

    ``1.5|x|^3 - 2.5|x|^2 + 1`` for ``|x| <= 1``,
    ``-0.5|x|^3 + 2.5|x|^2 - 4|x| + 2`` for ``1 < |x| <= 2``, else 0.
    """
    absx = np.abs(np.asarray(x, dtype=np.float64))
    absx2 = absx**2
    absx3 = absx**3
    inner = 1.5 * absx3 - 2.5 * absx2 + 1
    outer = -0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2
    return np.where(absx <= 1, inner, np.where(absx <= 2, outer, 0.0))


def _mirror_indices(indices: np.ndarray, in_length: int) -> np.ndarray:
    """Map 1-based, possibly out-of-range indices into ``[1, in_length]``.

    MATLAB's symmetric padding: ``aux = [1:in, in:-1:1]; aux(mod(i - 1, 2 * in) + 1)``.
    """
    aux = np.concatenate([np.arange(1, in_length + 1), np.arange(in_length, 0, -1)])
    return aux[np.mod(indices - 1, aux.size)]


def _check_scale(scale: float) -> None:
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive finite number, got {scale!r}.")


def resize_weights(
    in_length: int, out_length: int, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-pixel taps of MATLAB's bicubic ``imresize`` along one dimension.

    This is MATLAB's ``contributions(in_length, out_length, scale, @cubic, 4, true)``.

    Args:
        in_length: Input length along the dimension.
        out_length: Output length along the dimension.
        scale: Scale factor along the dimension (``out_length / in_length`` when
            the caller gave an output size).

    Returns:
        ``(indices, weights)``, both of shape ``[out_length, taps]``: 0-based input
        indices (already mirrored into ``[0, in_length)``, so an index may repeat
        within a row) and the float64 weights, each row summing to 1. Tap columns
        whose weight is zero for every output pixel are removed, as in MATLAB.
    """
    if in_length < 1 or out_length < 1:
        raise ValueError(
            f"Lengths must be >= 1, got in_length={in_length}, out_length={out_length}."
        )
    _check_scale(scale)
    width = _KERNEL_WIDTH / scale if scale < 1 else _KERNEL_WIDTH
    kernel: Callable[[np.ndarray], np.ndarray] = (
        (lambda d: scale * cubic(scale * d)) if scale < 1 else cubic
    )
    x = np.arange(1, out_length + 1, dtype=np.float64)[:, None]
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = math.ceil(width) + 2
    indices = left + np.arange(taps)
    weights = kernel(u - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    keep = np.any(weights != 0, axis=0)
    indices = _mirror_indices(indices.astype(np.int64), in_length) - 1
    return indices[:, keep], weights[:, keep]


def resize_matrix(in_length: int, out_length: int, scale: float) -> np.ndarray:
    """Dense float64 ``[out_length, in_length]`` matrix of :func:`resize_weights`.

    Row ``i`` holds output pixel ``i``'s weights; taps mirrored onto the same
    input pixel are summed. ``matrix @ signal`` resizes a 1-D signal.
    """
    indices, weights = resize_weights(in_length, out_length, scale)
    matrix = np.zeros((out_length, in_length))
    rows = np.broadcast_to(np.arange(out_length)[:, None], indices.shape)
    np.add.at(matrix, (rows, indices), weights)
    return matrix


def _check_request(scale: float | None, output_shape: Sequence[int] | None) -> None:
    """Validate that exactly one of ``scale`` / ``output_shape`` is usable."""
    if (scale is None) == (output_shape is None):
        raise ValueError("Give exactly one of `scale` or `output_shape`.")
    if scale is not None:
        _check_scale(scale)
    if output_shape is not None:
        if len(output_shape) != 2:
            raise ValueError(f"output_shape must be (out_h, out_w), got {output_shape!r}.")
        if any(int(n) != n or n < 1 for n in output_shape):
            raise ValueError(f"output_shape must hold integers >= 1, got {output_shape!r}.")


def _dimension_spec(
    in_length: int, scale: float | None, out_length: int | None
) -> tuple[int, float]:
    """``(out_length, scale)`` for one dimension, as MATLAB derives them.

    With a scale, ``out_length = ceil(in_length * scale)``; with an output size,
    ``scale = out_length / in_length``.
    """
    if in_length < 1:
        raise ValueError(f"Cannot resize an empty dimension (length {in_length}).")
    if out_length is None:
        return math.ceil(in_length * scale), float(scale)
    return int(out_length), out_length / in_length


def _dimension_matrix(
    in_length: int, scale: float | None, out_length: int | None
) -> np.ndarray:
    """:func:`resize_matrix` for an input length and the caller's request."""
    out_length, scale = _dimension_spec(in_length, scale, out_length)
    return resize_matrix(in_length, out_length, scale)


def to_uint8_matlab(x: np.ndarray) -> np.ndarray:
    """Convert to ``uint8`` like MATLAB's ``uint8(x)``.

    Rounds half away from zero, saturates to ``[0, 255]`` and maps NaN to 0.
    The rounding is ``floor(x) + (x - floor(x) >= 0.5)``, which is exact, unlike
    ``floor(x + 0.5)`` (that rounds 0.49999999999999994 up).
    """
    x = np.clip(np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0), 0, 255)
    floor = np.floor(x)
    return (floor + (x - floor >= 0.5)).astype(np.uint8)


def _resize_along_axis(
    array: np.ndarray, axis: int, indices: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Weighted sum of gathered taps along ``axis``, accumulated in tap order."""
    moved = np.moveaxis(array, axis, 0)
    out = np.zeros((indices.shape[0],) + moved.shape[1:])
    expand = (slice(None),) + (None,) * (moved.ndim - 1)
    for tap in range(indices.shape[1]):
        out += weights[:, tap][expand] * moved[indices[:, tap]]
    return np.moveaxis(out, 0, axis)


def imresize(
    image: np.ndarray,
    scale: float | None = None,
    output_shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """MATLAB ``imresize(image, scale, 'bicubic')`` (antialiased) in NumPy.

    Args:
        image: ``HxW`` or ``HxWxC`` array of any integer or floating dtype.
        scale: Scale factor for both dimensions; output size is
            ``ceil(in * scale)``.
        output_shape: Explicit ``(out_h, out_w)``; each dimension then uses the
            scale ``out / in``.

    Returns:
        ``uint8`` for ``uint8`` input (each dimension pass rounded half away from
        zero and saturated, as MATLAB's intermediate array keeps the class),
        otherwise float64 without rounding or clipping.

    Raises:
        ValueError: If not exactly one of ``scale`` / ``output_shape`` is given,
            an output size is < 1, or ``image`` is empty or not 2-D / 3-D.
        TypeError: If ``image`` is not an integer or floating array.
    """
    _check_request(scale, output_shape)
    array = np.asarray(image)
    if array.ndim not in (2, 3):
        raise ValueError(f"image must be HxW or HxWxC, got shape {array.shape}.")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"image must have an integer or floating dtype, got {array.dtype}.")
    is_uint8 = array.dtype == np.uint8
    out_lengths = (None, None) if output_shape is None else tuple(output_shape)
    specs = [_dimension_spec(array.shape[d], scale, out_lengths[d]) for d in (0, 1)]
    # MATLAB: [~, order] = sort(scale) -- stable, smallest scale first.
    order = sorted((0, 1), key=lambda d: specs[d][1])
    out = array.astype(np.float64)
    for axis in order:
        out_length, axis_scale = specs[axis]
        indices, weights = resize_weights(array.shape[axis], out_length, axis_scale)
        out = _resize_along_axis(out, axis, indices, weights)
        if is_uint8:
            out = to_uint8_matlab(out)
    return out


#: How a uint8 image is bicubic-resized (see :func:`imresize_uint8`).
RESIZE_CONVENTIONS = ("double", "uint8")
#: The convention that reproduces 4PP-EUSR Table 2's bicubic rows.
DEFAULT_RESIZE_CONVENTION = "double"


def imresize_uint8(image: np.ndarray, scale: float, convention: str = DEFAULT_RESIZE_CONVENTION) -> np.ndarray:
    """MATLAB bicubic resize of a uint8 image to uint8, under one of two conventions.

    * ``"double"``: ``im2uint8(imresize(im2double(image), scale))``: resized in double and
      rounded once, as BasicSR's ``generate_bicubic_img.m`` makes LR and bicubic images. With
      LR and bicubic x4 both made so, Set5 gives 28.431 dB / 0.8113 / NIQE 8.511 and Set14
      26.092 / 0.7050 / 7.703, against 4PP-EUSR Table 2's 28.418 / 0.8098 / 8.540 and
      26.091 / 0.7050 / 7.764 (``benchmarks/table2_bicubic.py``); the default.
    * ``"uint8"``: MATLAB's native ``imresize`` of a uint8 array, which rounds after each of
      its two 1-D passes (:func:`imresize` on uint8): NIQE 8.448 / 7.605 on Set5 / Set14.

    Raises:
        ValueError: ``image`` is not uint8 or ``convention`` is unknown.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if convention == "uint8":
        return imresize(image, scale)
    if convention == "double":
        return to_uint8_matlab(imresize(image / 255.0, scale) * 255.0)
    raise ValueError(f"unknown resize convention {convention!r}; use one of {RESIZE_CONVENTIONS}")


def round_to_uint8_tf(x: tf.Tensor) -> tf.Tensor:
    """TensorFlow version of :func:`to_uint8_matlab` (returns a ``uint8`` tensor).

    ``tf.round`` rounds half to even, so MATLAB's half-away-from-zero rounding is
    done as ``floor(x) + (x - floor(x) >= 0.5)`` on the value clipped to
    ``[0, 255]`` (equal to ``floor(x + 0.5)`` for non-negative values, without
    the float error of the addition). NaN maps to 0 as in MATLAB.
    """
    x = tf.convert_to_tensor(x)
    compute_dtype = tf.float64 if x.dtype == tf.float64 else tf.float32
    x = tf.cast(x, compute_dtype)
    x = tf.clip_by_value(tf.where(tf.math.is_nan(x), tf.zeros_like(x), x), 0.0, 255.0)
    floor = tf.floor(x)
    return tf.cast(floor + tf.cast(x - floor >= 0.5, compute_dtype), tf.uint8)


def _matrix_tf(
    images: tf.Tensor, axis: int, scale: float | None, out_length: int | None, dtype: tf.DType
) -> tf.Tensor:
    """The resize matrix for one image axis, as a constant or a ``numpy_function``.

    A static length gives a graph constant; a dynamic one (``tf.data`` with
    unknown sizes) builds the same matrix at run time with ``tf.numpy_function``.
    """
    static_length = images.shape[axis]
    if static_length is not None:
        return tf.constant(_dimension_matrix(static_length, scale, out_length), dtype)
    matrix = tf.numpy_function(
        lambda n: _dimension_matrix(int(n), scale, out_length),
        [tf.shape(images)[axis]],
        tf.float64,
        stateful=False,
    )
    matrix.set_shape([out_length, None])
    return tf.cast(tf.stop_gradient(matrix), dtype)


def _h_first(
    images: tf.Tensor, output_shape: Sequence[int] | None
) -> bool | tf.Tensor:
    """Whether MATLAB resizes H before W: ``scale_h <= scale_w`` (stable sort).

    A Python bool when known at trace time, otherwise a boolean tensor.
    """
    if output_shape is None:
        return True
    in_h, in_w = images.shape[1], images.shape[2]
    if in_h is not None and in_w is not None:
        return output_shape[0] / in_h <= output_shape[1] / in_w
    in_hw = tf.cast(tf.shape(images)[1:3], tf.float64)
    return output_shape[0] / in_hw[0] <= output_shape[1] / in_hw[1]


def imresize_tf(
    images: tf.Tensor,
    scale: float | None = None,
    output_shape: tuple[int, int] | None = None,
) -> tf.Tensor:
    """MATLAB bicubic ``imresize`` for float tensors, differentiable.

    Works eagerly, in ``tf.function``, in ``tf.data`` maps with unknown ``H``/``W``
    and under ``tf.GradientTape``. No rounding or clipping is done (use
    :func:`round_to_uint8_tf` for MATLAB's ``uint8`` output). Because the two
    passes are linear, the result equals :func:`imresize` on float input up to
    float32 error.

    Args:
        images: ``[H, W, C]`` or ``[B, H, W, C]`` tensor, values typically in
            ``[0, 255]``.
        scale: Scale factor for both dimensions (output ``ceil(in * scale)``).
        output_shape: Explicit ``(out_h, out_w)``.

    Returns:
        The resized tensor, same rank. float16 / bfloat16 / float32 inputs are
        computed in float32 and returned in the input dtype, float64 stays
        float64; integer inputs are returned as float32.
    """
    _check_request(scale, output_shape)
    images = tf.convert_to_tensor(images)
    rank = images.shape.rank
    if rank not in (3, 4):
        raise ValueError(f"images must be rank 3 (HWC) or 4 (BHWC), got rank {rank}.")
    compute_dtype = tf.float64 if images.dtype == tf.float64 else tf.float32
    out_dtype = images.dtype if images.dtype.is_floating else tf.float32
    batch = tf.cast(images if rank == 4 else images[tf.newaxis], compute_dtype)
    out_h, out_w = (None, None) if output_shape is None else tuple(output_shape)
    matrix_h = _matrix_tf(batch, 1, scale, out_h, compute_dtype)
    matrix_w = _matrix_tf(batch, 2, scale, out_w, compute_dtype)

    def h_then_w() -> tf.Tensor:
        resized = tf.einsum("oh,bhwc->bowc", matrix_h, batch)
        return tf.einsum("ow,bhwc->bhoc", matrix_w, resized)

    def w_then_h() -> tf.Tensor:
        resized = tf.einsum("ow,bhwc->bhoc", matrix_w, batch)
        return tf.einsum("oh,bhwc->bowc", matrix_h, resized)

    h_first = _h_first(batch, output_shape)
    if isinstance(h_first, bool):
        resized = h_then_w() if h_first else w_then_h()
    else:
        resized = tf.cond(h_first, h_then_w, w_then_h)
    resized = tf.cast(resized, out_dtype)
    return resized if rank == 4 else resized[0]


class _LRMemo:
    """:func:`make_lr`'s recent results, keyed by the HR image's bytes (a BLAKE2b digest), shape,
    scale and convention, at most :attr:`limit` bytes of LR, the least recently used dropped
    first. A process that trains or evaluates several times on one set of images without
    shipped LR (a study's runs, a demo's two stages, each run's held-out evaluation) resizes each
    image once (the cost of both: docs/performance.md). Thread-safe (the samplers make LR images
    in a thread pool)."""

    def __init__(self, limit: int):
        self.limit, self.size = limit, 0
        self.entries: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple) -> np.ndarray | None:
        with self.lock:
            lr = self.entries.get(key)
            if lr is not None:
                self.entries.move_to_end(key)
            return lr

    def put(self, key: tuple, lr: np.ndarray) -> None:
        if lr.nbytes > self.limit:
            return
        with self.lock:
            if key in self.entries:
                return
            self.entries[key] = lr
            self.size += lr.nbytes
            while self.size > self.limit:
                self.size -= self.entries.popitem(last=False)[1].nbytes


_LR_MEMO = _LRMemo(limit=256 * 2**20)


def make_lr(hr: np.ndarray, scale: int, convention: str = DEFAULT_RESIZE_CONVENTION) -> np.ndarray:
    """The MATLAB-bicubic LR of uint8 ``hr`` after cropping it to a multiple of ``scale`` (uint8,
    read-only: the same array is returned for the same image again, see :class:`_LRMemo`).

    ``convention`` is one of :data:`~eusr_perceptual.resize.RESIZE_CONVENTIONS`: ``"double"``
    (resize in double, round once, as BasicSR's ``generate_bicubic_img.m``; reproduces
    4PP-EUSR Table 2) or ``"uint8"`` (MATLAB's native uint8 ``imresize``, rounding after each
    pass); see :func:`~eusr_perceptual.resize.imresize_uint8`.
    """
    hr = np.ascontiguousarray(hr)
    key = (hashlib.blake2b(hr.data, digest_size=16).digest(), hr.shape, str(hr.dtype), int(scale), convention)
    lr = _LR_MEMO.get(key)
    if lr is None:
        height, width = (hr.shape[0] // scale) * scale, (hr.shape[1] // scale) * scale
        lr = imresize_uint8(hr[:height, :width], 1.0 / scale, convention)
        lr.flags.writeable = False
        _LR_MEMO.put(key, lr)
    return lr
