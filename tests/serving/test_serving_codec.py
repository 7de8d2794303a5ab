"""Graph-only serving pieces: MATLAB bicubic by exact factors, image decoding/encoding, tiling."""

import io
import struct
import zlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from eusr_perceptual.data.images import read_image
from eusr_perceptual.inference import tile_boxes, upscale_decoded
from eusr_perceptual.models.eusr import EUSR, EUSRConfig
from eusr_perceptual.resize import imresize, round_to_uint8_tf
from eusr_perceptual.serving.codec import decode, encoded_images_spec, upscale_encoded
from eusr_perceptual.serving.graph_resize import upscale_matlab_graph
from eusr_perceptual.serving.header import image_size
from eusr_perceptual.serving.limits import PixelLimit
from eusr_perceptual.serving.tiling import tile_spans, upscale_tiled

RNG = np.random.default_rng(0)
#: A limit no test image reaches.
LARGE = PixelLimit("upscale_x2_png", 10**6, 10**6, "test", "test")


def _encoded(array: np.ndarray, format: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=format, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def tiny():
    """EUSR with 8 channels; Glorot initialisation so that tiles far from the border matter."""
    keras.utils.set_random_seed(4)
    model = EUSR(EUSRConfig(channels=8, shared_blocks=1, scales=(2,), initializer="glorot_uniform"))
    model.build()
    uint8 = tf.function(lambda x: round_to_uint8_tf(model(x, scale=2)), input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    return model, uint8


@pytest.mark.parametrize("shape, factor", [((5, 7, 1), 2), ((6, 3, 2), 4), ((1, 1, 1), 8), ((2, 9, 3), 3)])
def test_graph_upscaling_is_matlab_imresize(shape, factor):
    image = RNG.integers(0, 256, shape).astype(np.uint8)
    float_result = upscale_matlab_graph(image[None].astype(np.float32), factor)[0].numpy()
    np.testing.assert_allclose(float_result, imresize(image.astype(np.float64), scale=factor), atol=1e-3)
    uint8_result = upscale_matlab_graph(image[None], factor, uint8=True)[0].numpy()
    np.testing.assert_array_equal(uint8_result, imresize(image, scale=factor))  # rounded after each pass


def test_decoding_matches_the_python_reader(tmp_path):
    """PNG (RGB, gray, gray + alpha, RGBA, palette, 16-bit gray), JPEG, BMP, GIF: same pixels
    and the same kind as :func:`read_image`."""
    rgb = RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    gray = RNG.integers(0, 256, (6, 5), dtype=np.uint8)
    alpha = RNG.integers(0, 256, (6, 5), dtype=np.uint8)
    files = {
        "rgb.png": _encoded(rgb),
        "gray.png": _encoded(gray),
        "gray_alpha.png": tf.io.encode_png(np.dstack([gray, alpha])).numpy(),
        "rgba.png": _encoded(np.dstack([rgb, alpha])),
        "gray16.png": tf.io.encode_png(RNG.integers(0, 65536, (6, 5, 1)).astype(np.uint16)).numpy(),
        "photo.jpg": _encoded(rgb, "JPEG", quality=90),
        "photo.bmp": _encoded(rgb, "BMP"),
        "photo.gif": _encoded(rgb, "GIF"),
    }
    for name, payload in files.items():
        (tmp_path / name).write_bytes(payload)
        expected = read_image(tmp_path / name)
        color, alpha_channel, has_alpha, grayscale = (t.numpy() for t in decode(tf.constant(payload)))
        np.testing.assert_array_equal(color, expected.rgb, err_msg=name)
        assert bool(has_alpha) == (expected.alpha is not None) and bool(grayscale) == expected.grayscale, name
        np.testing.assert_array_equal(alpha_channel[..., 0], 255 if expected.alpha is None else expected.alpha, err_msg=name)
    # A 16-bit RGB PNG is scaled by bit depth (PIL keeps the high byte: 65280 -> 255, here 254).
    rgb16 = np.array([[[65280, 383, 32896], [65535, 0, 385]]], np.uint16)
    color = decode(tf.io.encode_png(rgb16))[0].numpy()
    np.testing.assert_array_equal(color, [[[254, 1, 128], [255, 0, 1]]])


def test_encoded_upscaling_matches_the_python_upscaler(tiny, tmp_path):
    """Gray stays gray (L), alpha is re-attached after MATLAB bicubic (LA, RGBA), as
    :func:`upscale_decoded` writes; images of one batch may differ in size and format."""
    model, uint8 = tiny
    rgb = RNG.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    gray = RNG.integers(0, 256, (5, 6), dtype=np.uint8)
    alpha = RNG.integers(0, 256, (5, 6), dtype=np.uint8)
    payloads = [_encoded(rgb), _encoded(gray), tf.io.encode_png(np.dstack([gray, alpha])).numpy(),
                _encoded(np.dstack([rgb, RNG.integers(0, 256, (7, 9), dtype=np.uint8)])), _encoded(rgb, "BMP")]
    run = tf.function(lambda b: upscale_encoded(b, uint8, 2, LARGE), input_signature=[encoded_images_spec()])
    outputs = run(tf.constant(payloads)).numpy()
    for index, (payload, png) in enumerate(zip(payloads, outputs)):
        (tmp_path / f"{index}.png").write_bytes(payload)
        expected = upscale_decoded(model, read_image(tmp_path / f"{index}.png"), "x2", tile=None)
        result = np.asarray(Image.open(io.BytesIO(png)))
        assert result.shape == expected.shape, index
        assert np.abs(result.astype(int) - expected).max() <= 1, index
    assert [Image.open(io.BytesIO(png)).mode for png in outputs] == ["RGB", "L", "LA", "RGBA", "RGB"]


def test_a_corrupt_payload_is_an_invalid_argument_naming_it(tiny):
    _, uint8 = tiny
    run = tf.function(lambda b: upscale_encoded(b, uint8, 2, LARGE), input_signature=[encoded_images_spec()])
    good = _encoded(RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"images_bytes\[1\] is not an encoded image \(8 bytes"):
        run(tf.constant([good, b"aGVsbG8="]))  # base64 text sent without the {"b64": ...} wrapper
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"images_bytes\[0\] is not an encoded image \(0 bytes"):
        run(tf.constant([b""]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="PNG"):
        run(tf.constant([good[:40]]))  # a truncated PNG


@pytest.mark.parametrize("length, tile, overlap", [(1, 3, 1), (20, 8, 3), (17, 17, 0), (5, 2, 4), (16, 4, 0)])
def test_graph_tile_spans_are_the_inference_tiles(length, tile, overlap):
    assert tile_spans(tf.constant(length), tile, overlap).numpy().tolist() == [list(b) for b in tile_boxes(length, tile, overlap)]


def test_tiled_upscaling_is_seamless(tiny):
    model, uint8 = tiny
    images = RNG.uniform(0, 255, (2, 19, 26, 3)).astype(np.float32)
    whole = uint8(images).numpy().astype(int)

    def tiled(overlap):
        run = tf.function(lambda x: upscale_tiled(uint8, x, 2, 8, overlap), input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        return run(images).numpy().astype(int)

    # 3x4 tiles of 8 LR pixels; 16 pixels of context cover this model's receptive field
    assert np.abs(tiled(16) - whole).max() <= 1
    assert np.abs(tiled(0) - whole).max() > 10  # without context the tile borders show


def _png_header(width: int, height: int) -> bytes:
    """The signature and IHDR chunk of an 8-bit RGB PNG, without image data."""
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))


def _claiming(format: str, width: int, height: int) -> bytes:
    """A small file of ``format`` whose header says ``width`` x ``height`` (its data is for 8x8)."""
    if format == "PNG":
        return _png_header(width, height)
    pil_format, options = FORMATS[format]
    data = bytearray(_encoded(RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8), pil_format, **options))
    if format == "JPEG":
        frame = data.index(b"\xff\xc0")  # SOF0: length, precision, height, width
        data[frame + 5 : frame + 9] = struct.pack(">HH", height, width)
    elif format == "GIF":
        data[6:10] = struct.pack("<HH", width, height)
    elif format == "BMP":
        data[18:26] = struct.pack("<ii", width, -height)  # a top-down BMP
    else:  # lossless WebP: 14-bit width - 1 and height - 1, then alpha and version bits
        (bits,) = struct.unpack("<I", data[21:25])
        data[21:25] = struct.pack("<I", bits & ~(2**28 - 1) | (height - 1) << 14 | (width - 1))
    return bytes(data)


FORMATS = {"PNG": ("PNG", {}), "JPEG": ("JPEG", {}), "GIF": ("GIF", {}), "BMP": ("BMP", {}), "WebP": ("WEBP", {"lossless": True})}


@pytest.mark.parametrize("format, options, mode", [
    ("PNG", {}, "RGB"), ("PNG", {}, "RGBA"), ("PNG", {}, "L"), ("JPEG", {"quality": 90}, "RGB"), ("JPEG", {}, "L"),
    ("GIF", {}, "RGB"), ("BMP", {}, "RGB"), ("BMP", {}, "L"), ("WEBP", {"lossless": True}, "RGB"),
    ("WEBP", {"lossless": True}, "RGBA"), ("WEBP", {"quality": 80}, "RGB"), ("WEBP", {"quality": 80}, "RGBA"),
])
def test_the_header_gives_the_decoded_size(format, options, mode):
    """PNG IHDR, JPEG SOF, GIF screen, BMP DIB header, WebP VP8 / VP8L / VP8X (lossy with alpha)."""
    image = Image.fromarray(RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    payload = buffer.getvalue()
    decoded = tf.io.decode_image(payload, expand_animations=False).shape
    assert image_size(tf.constant(payload)).numpy().tolist() == [5, 7] == decoded[:2]


@pytest.mark.parametrize("format", list(FORMATS))
def test_an_image_over_the_limit_is_refused_from_its_header(tiny, format):
    """A small file that says 4000x3000 is refused, naming the limit, before it is decoded:
    the header-only PNG would fail in the decoder with "Invalid PNG data" otherwise."""
    _, uint8 = tiny
    payload = _claiming(format, 4000, 3000)
    assert image_size(tf.constant(payload)).numpy().tolist() == [3000, 4000]
    limit = PixelLimit("upscale_x2_png", 100, 10**6, "basis of the test", "send it to upscale_x2_png_tiled")
    run = tf.function(lambda b: upscale_encoded(b, uint8, 2, limit), input_signature=[encoded_images_spec()])
    good = _encoded(RNG.integers(0, 256, (9, 11, 3), dtype=np.uint8))  # 99 pixels: within the limit
    assert Image.open(io.BytesIO(run(tf.constant([good])).numpy()[0])).size == (22, 18)
    expected = (r"images_bytes\[1\] is 4000x3000 pixels, over the 100-pixel limit of upscale_x2_png \(basis of the test\): "
                r"send it to upscale_x2_png_tiled")
    with pytest.raises(tf.errors.InvalidArgumentError, match=expected):
        run(tf.constant([good, payload]))
    if format == "PNG":
        with pytest.raises(tf.errors.InvalidArgumentError, match="PNG") as error:
            decode(tf.constant(payload))
        assert "limit" not in str(error.value)


def test_a_gif_over_its_byte_limit_and_an_animated_webp_are_refused(tiny):
    _, uint8 = tiny
    frames = [Image.fromarray(RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8)) for _ in range(2)]
    gif, webp = io.BytesIO(), io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    frames[0].save(webp, format="WEBP", save_all=True, append_images=frames[1:], lossless=True)
    limit = PixelLimit("upscale_x2_png", 10**6, 100, "test", "test")
    run = tf.function(lambda b: upscale_encoded(b, uint8, 2, limit), input_signature=[encoded_images_spec()])
    assert len(gif.getvalue()) > 100
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"images_bytes\[0\] is a GIF of {len(gif.getvalue())} bytes, over the 100-byte limit"):
        run(tf.constant([gif.getvalue()]))
    # TensorFlow 2.21 copies the RGBA frames of an animation without alpha into an RGB buffer
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"images_bytes\[0\] is an animated WebP; send its first frame as a PNG"):
        run(tf.constant([webp.getvalue()]))
