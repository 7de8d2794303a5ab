"""Encoded images in and PNG bytes out, as graph ops a SavedModel can hold.

The encoded-image signatures of the exports take a batch ``[B]`` of ``tf.string`` (PNG, JPEG,
BMP, GIF — the first frame —, and WebP, which ``tf.io.decode_image`` also reads) named
``images_bytes``: TF Serving's REST API turns ``{"b64": "..."}`` JSON values into such bytes,
and writes a string output back as ``{"b64": "..."}`` only when the output's name ends in
``_bytes`` (hence ``upscaled_bytes``). Images of one batch may differ in size and format:
each is decoded, processed and encoded on its own (``tf.map_fn``).

Colour handling follows the project's Python image reader and upscaler
(:func:`eusr_perceptual.data.images.read_image`, :func:`eusr_perceptual.inference.upscale_decoded`):

* pixel values on the 8-bit [0, 255] scale: 16-bit PNGs are scaled by their bit depth,
  ``floor(v * 255 / 65535 + 0.5)``; 8-bit data is kept as it is;
* grayscale (and gray + alpha) becomes 3 equal channels for the model; the upscaled image of a
  grayscale file is gray again (the MATLAB-rounded mean of the 3 output channels), written
  as a gray PNG;
* an alpha channel (gray + alpha, RGBA) is kept apart from the (straight) colour: upscaling runs
  the model on the colour and MATLAB bicubic on the alpha (uint8 passes, as the reader's
  ``imresize`` of a uint8 alpha) and writes it back; scoring composites the colour on black
  (``floor(c * a / 255 + 0.5)``, as :meth:`eusr_perceptual.data.images.DecodedImage.composited`).

Unlike the Python reader, the graph does not apply a JPEG's EXIF orientation (TensorFlow's
decoders ignore it): clients send upright pixels. A 16-bit RGB PNG is scaled by bit depth here,
while PIL (hence the Python reader) keeps the high byte of each value (at most 1 apart).

A payload that does not start with the signature bytes of a supported format fails with an
``InvalidArgument`` error naming its batch index (``images_bytes[i]``), and so does an image
whose header says more pixels than the signature's :class:`~eusr_perceptual.serving.limits.PixelLimit`
(checked before decoding) and an animated WebP; a truncated or corrupt file of a supported
format fails with the decoder's ``InvalidArgument`` error.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import tensorflow as tf

from eusr_perceptual.resize import round_to_uint8_tf
from eusr_perceptual.serving.graph_resize import upscale_matlab_graph
from eusr_perceptual.serving.header import JPEG, PNG, image_size, is_animated_webp, is_gif, is_known_format, starts_with
from eusr_perceptual.serving.limits import PixelLimit

__all__ = [
    "IMAGES_BYTES",
    "UPSCALED_BYTES",
    "Decoded",
    "composite_on_black",
    "decode",
    "encoded_images_spec",
    "map_decoded",
    "upscale_encoded",
]

#: Input name of the encoded-image signatures (the ``_bytes`` suffix is TF Serving's b64 cue).
IMAGES_BYTES = "images_bytes"
#: Output name of the PNG bytes of the upscaling signatures.
UPSCALED_BYTES = "upscaled_bytes"


def encoded_images_spec() -> tf.TensorSpec:
    """The input of an encoded-image signature: ``images_bytes``, ``[batch]`` of ``tf.string``."""
    return tf.TensorSpec([None], tf.string, name=IMAGES_BYTES)


def _check_encoded(contents: tf.Tensor, index: tf.Tensor) -> tf.Operation:
    """Asserts that ``contents`` starts like a PNG, JPEG, GIF, BMP or WebP file and is not an
    animated WebP (:func:`~eusr_perceptual.serving.header.is_animated_webp`)."""
    known = is_known_format(contents)
    message = tf.strings.format(
        IMAGES_BYTES + "[{}] is not an encoded image ({} bytes; expected the bytes of a PNG, JPEG, BMP "
        'or GIF file; over REST send {"b64": "<base64 of the file>"})',
        [index, tf.strings.length(contents)],
    )
    animated = tf.strings.format(IMAGES_BYTES + "[{}] is an animated WebP; send its first frame as a PNG", [index])
    still = tf.logical_not(is_animated_webp(contents))
    return tf.group(tf.debugging.Assert(known, [message]), tf.debugging.Assert(still, [animated]))


def _check_size(contents: tf.Tensor, index: tf.Tensor, limit: PixelLimit) -> tf.Operation:
    """Asserts, reading only the header, that the encoded image ``contents`` is within ``limit``."""
    height, width = tf.unstack(image_size(contents))
    pixels = tf.minimum(height, 2**31) * tf.minimum(width, 2**31)  # no int64 overflow
    message = tf.strings.format(
        IMAGES_BYTES + "[{}] is {}x{} pixels, over the " + f"{limit.max_pixels:,}-pixel limit of {limit.signature} "
        f"({limit.basis}): {limit.advice} (docs/serving.md)",
        [index, width, height],
    )
    length = tf.strings.length(contents)
    gif_message = tf.strings.format(
        IMAGES_BYTES + "[{}] is a GIF of {} bytes, over the " + f"{limit.max_gif_bytes:,}-byte limit of {limit.signature} "
        "(its frames could decode to more than the request budget): send a PNG",
        [index, length],
    )
    small_gif = tf.logical_not(is_gif(contents)) | (tf.cast(length, tf.int64) <= limit.max_gif_bytes)
    return tf.group(tf.debugging.Assert(pixels <= limit.max_pixels, [message]), tf.debugging.Assert(small_gif, [gif_message]))


class Decoded(NamedTuple):
    """One decoded image: float32 integer values in [0, 255] and what kind of file it was."""

    color: tf.Tensor  # [H, W, 3]
    alpha: tf.Tensor  # [H, W, 1], 255 where the file has no alpha
    has_alpha: tf.Tensor  # boolean scalar
    grayscale: tf.Tensor  # boolean scalar: the file stores one colour channel


def decode(contents: tf.Tensor) -> Decoded:
    """One encoded image (a ``tf.string`` scalar) -> :class:`Decoded`."""

    def png():  # 8-bit PNGs come out times 257, exactly
        pixels = tf.cast(tf.io.decode_png(contents, dtype=tf.uint16), tf.float32)
        return tf.floor(pixels / 257.0 + 0.5)

    def jpeg():  # the accurate IDCT, as PIL (TensorFlow's default is the fast, coarser one)
        return tf.cast(tf.io.decode_jpeg(contents, dct_method="INTEGER_ACCURATE"), tf.float32)

    def other():
        return tf.cast(tf.io.decode_image(contents, dtype=tf.uint8, expand_animations=False), tf.float32)

    pixels = tf.case(
        [(starts_with(contents, 0, PNG), png), (starts_with(contents, 0, JPEG), jpeg)], default=other, exclusive=True
    )
    channels = tf.shape(pixels)[-1]
    has_alpha = tf.logical_or(tf.equal(channels, 2), tf.equal(channels, 4))
    grayscale = tf.less_equal(channels, 2)
    color = tf.cond(grayscale, lambda: tf.tile(pixels[..., :1], [1, 1, 3]), lambda: pixels[..., :3])
    alpha = tf.cond(has_alpha, lambda: pixels[..., -1:], lambda: tf.fill(tf.shape(pixels[..., :1]), 255.0))
    color.set_shape([None, None, 3])
    alpha.set_shape([None, None, 1])
    return Decoded(color, alpha, has_alpha, grayscale)


def composite_on_black(image: Decoded) -> tf.Tensor:
    """``floor(c * a / 255 + 0.5)`` float32 ``[H, W, 3]`` (opaque images are unchanged)."""
    return tf.floor(image.color * image.alpha / 255.0 + 0.5)


def map_decoded(encoded: tf.Tensor, fn: Callable[[Decoded], object], fn_output_signature, limit: PixelLimit) -> object:
    """Applies ``fn`` to every image of a ``[B]`` string batch, decoded after checking its
    format and, from its header, its size against ``limit``, one image after the other;
    stacks the results like ``tf.map_fn``."""

    def one(item):
        index, contents = item
        with tf.control_dependencies([_check_encoded(contents, index)]):
            checked = _check_size(contents, index, limit)
        with tf.control_dependencies([checked]):
            contents = tf.identity(contents)
        return fn(decode(contents))

    encoded = tf.convert_to_tensor(encoded, tf.string)
    # One image at a time: memory stays that of one image (the tiled signatures' bound).
    items = (tf.range(tf.shape(encoded)[0]), encoded)
    return tf.map_fn(one, items, fn_output_signature=fn_output_signature, parallel_iterations=1)


def upscale_encoded(encoded: tf.Tensor, upscale: Callable[[tf.Tensor], tf.Tensor], factor: int, limit: PixelLimit) -> tf.Tensor:
    """PNG bytes ``[B]`` of encoded images ``[B]`` upscaled by ``factor``: RGB, gray, RGBA or
    gray + alpha as the input file.

    Args:
        encoded: ``[B]`` ``tf.string`` of encoded images (any mix of formats and sizes).
        upscale: float32 ``[1, H, W, 3]`` in [0, 255] -> uint8 ``[1, factor H, factor W, 3]``.
        factor: the upscaling factor of ``upscale`` (the alpha channel's bicubic factor).
        limit: the largest image decoded (:mod:`eusr_perceptual.serving.limits`).
    """

    def one(image: Decoded) -> tf.Tensor:
        upscaled = upscale(image.color[None])[0]

        def gray():
            return round_to_uint8_tf(tf.reduce_mean(tf.cast(upscaled, tf.float32), axis=-1, keepdims=True))

        def with_alpha(pixels):
            return tf.concat([pixels, upscale_matlab_graph(image.alpha[None], factor, uint8=True)[0]], axis=-1)

        pixels = tf.cond(image.grayscale, gray, lambda: upscaled)
        return tf.io.encode_png(tf.cond(image.has_alpha, lambda: with_alpha(pixels), lambda: pixels))

    return map_decoded(encoded, one, tf.TensorSpec([], tf.string), limit)
