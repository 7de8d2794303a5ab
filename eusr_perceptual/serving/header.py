"""The format and the pixel size of an encoded image, read from its first bytes as graph ops.

The encoded-image signatures check an image's size before decoding it (a 16 KB PNG of zeros
says 4000x4000 in its header and decodes to 48 MB, and the model's activations grow with the
pixels): :func:`image_size` reads the width and height that the decoder allocates for,
without decoding, for every format the signatures accept:

* PNG: the ``IHDR`` chunk, which must come first: big-endian 32-bit width and height at
  bytes 16 and 20;
* JPEG: the frame header (``SOFn`` marker), through ``tf.image.extract_jpeg_shape``, which
  reads the markers with libjpeg and decodes no pixel;
* GIF: the logical screen descriptor, little-endian 16-bit width and height at bytes 6 and 8
  (TensorFlow's decoder returns the first frame at the screen's size);
* BMP: the DIB header, little-endian 32-bit width and height at bytes 18 and 22 (a negative
  height is a top-down image of that many rows);
* WebP: ``VP8X``'s canvas (24-bit width - 1 and height - 1 at bytes 24 and 27), or the
  bitstream's frame: ``VP8L`` packs 14-bit width - 1 and height - 1 into the 32 bits at
  byte 21, ``VP8 `` (lossy) has 14-bit width and height at bytes 26 and 28 (what libwebp's
  ``WebPGetFeatures`` returns, and TensorFlow allocates).

:func:`is_animated_webp` finds the ``VP8X`` animation flag: TensorFlow 2.21's WebP decoder
copies the 4-channel frames of an animation without alpha into a 3-channel buffer (a heap
overrun and garbled pixels), so the signatures refuse them.

Bytes past the end of a payload read as zero: a truncated header gives a size of 0 (or a
partial one), which passes the size check and fails in the decoder with its own error.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["GIF", "JPEG", "PNG", "image_size", "is_animated_webp", "is_gif", "is_known_format", "starts_with"]

PNG = b"\x89PNG\r\n\x1a\n"
JPEG = b"\xff\xd8\xff"
GIF = (b"GIF87a", b"GIF89a")
_BMP = b"BM"
#: ``(offset, signature bytes)`` of every format accepted (``RIFF????WEBP`` is two checks).
_MAGIC = ((0, PNG), (0, JPEG), (0, GIF[0]), (0, GIF[1]), (0, _BMP))
_WEBP = ((0, b"RIFF"), (8, b"WEBP"))
#: The WebP chunk that says the size (at byte 12) and where in the file each keeps it.
_WEBP_EXTENDED, _WEBP_LOSSLESS, _WEBP_LOSSY = b"VP8X", b"VP8L", b"VP8 "


def starts_with(contents: tf.Tensor, offset: int, magic: bytes) -> tf.Tensor:
    """Whether ``contents[offset:]`` starts with ``magic`` (False for shorter payloads)."""
    return tf.equal(_substr(contents, offset, len(magic)), magic)


def _substr(contents: tf.Tensor, offset: int, length: int) -> tf.Tensor:
    """``length`` bytes at ``offset``, zeros past the end (only the header is copied)."""
    head = tf.strings.substr(contents, 0, offset + length)  # as many bytes as there are
    return tf.strings.substr(tf.strings.join([head, b"\0" * (offset + length)]), offset, length)


def is_known_format(contents: tf.Tensor) -> tf.Tensor:
    """Whether ``contents`` starts like a PNG, JPEG, GIF, BMP or WebP file."""
    return tf.reduce_any([starts_with(contents, offset, magic) for offset, magic in _MAGIC]) | _is_webp(contents)


def _is_webp(contents: tf.Tensor) -> tf.Tensor:
    return tf.reduce_all([starts_with(contents, offset, magic) for offset, magic in _WEBP])


def is_gif(contents: tf.Tensor) -> tf.Tensor:
    return starts_with(contents, 0, GIF[0]) | starts_with(contents, 0, GIF[1])


def is_animated_webp(contents: tf.Tensor) -> tf.Tensor:
    """Whether ``contents`` is a WebP with ``VP8X``'s animation flag (bit 1 of byte 20)."""
    return _is_webp(contents) & starts_with(contents, 12, _WEBP_EXTENDED) & tf.equal(_unsigned(contents, 20, 1) // 2 % 2, 1)


def _unsigned(contents: tf.Tensor, offset: int, length: int, big_endian: bool = False) -> tf.Tensor:
    """The unsigned integer of ``length`` bytes at ``offset`` (int64; 0 past the end)."""
    values = tf.cast(tf.io.decode_raw(_substr(contents, offset, length), tf.uint8), tf.int64)
    weights = [256**i for i in range(length)]
    return tf.reduce_sum(values * tf.constant(weights[::-1] if big_endian else weights, tf.int64))


def _signed32(contents: tf.Tensor, offset: int) -> tf.Tensor:
    value = _unsigned(contents, offset, 4)
    return tf.where(value >= 2**31, value - 2**32, value)


def _webp_size(contents: tf.Tensor) -> tf.Tensor:
    def extended():
        return tf.stack([_unsigned(contents, 27, 3) + 1, _unsigned(contents, 24, 3) + 1])

    def lossless():
        bits = _unsigned(contents, 21, 4)
        return tf.stack([bits // 2**14 % 2**14 + 1, bits % 2**14 + 1])

    def lossy():
        return tf.stack([_unsigned(contents, 28, 2) % 2**14, _unsigned(contents, 26, 2) % 2**14])

    return tf.case(
        [(starts_with(contents, 12, _WEBP_EXTENDED), extended), (starts_with(contents, 12, _WEBP_LOSSLESS), lossless),
         (starts_with(contents, 12, _WEBP_LOSSY), lossy)],
        default=lambda: tf.zeros([2], tf.int64), exclusive=True,
    )


def image_size(contents: tf.Tensor) -> tf.Tensor:
    """int64 ``[height, width]`` of an encoded image (a ``tf.string`` scalar) from its header;
    ``[0, 0]`` for a payload of no accepted format."""

    def png():
        return tf.stack([_unsigned(contents, 20, 4, big_endian=True), _unsigned(contents, 16, 4, big_endian=True)])

    def jpeg():  # only run on a JPEG: the op fails on other payloads
        return tf.cast(tf.image.extract_jpeg_shape(contents)[:2], tf.int64)

    def gif():
        return tf.stack([_unsigned(contents, 8, 2), _unsigned(contents, 6, 2)])

    def bmp():
        return tf.stack([tf.abs(_signed32(contents, 22)), _signed32(contents, 18)])

    return tf.case(
        [(starts_with(contents, 0, PNG), png), (starts_with(contents, 0, JPEG), jpeg), (is_gif(contents), gif),
         (starts_with(contents, 0, _BMP), bmp), (_is_webp(contents), lambda: _webp_size(contents))],
        default=lambda: tf.zeros([2], tf.int64), exclusive=True,
    )
