"""Tests for the MATLAB-compatible bicubic imresize (NumPy and TensorFlow)."""
import numpy as np
import pytest
import tensorflow as tf
from skimage.transform import resize as sk_resize

from eusr_perceptual.resize import (
    cubic,
    imresize,
    imresize_tf,
    resize_matrix,
    resize_weights,
    round_to_uint8_tf,
    to_uint8_matlab,
)


def _keys_cubic(d: float) -> float:
    """Keys' a = -0.5 kernel written out by hand for the expected values."""
    d = abs(d)
    if d <= 1:
        return 1.5 * d**3 - 2.5 * d**2 + 1
    if d <= 2:
        return -0.5 * d**3 + 2.5 * d**2 - 4 * d + 2
    return 0.0


def _random_image(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, size=shape)


def test_cubic_kernel_values():
    d = np.array([0.0, 0.25, 0.75, 1.0, 1.25, 1.75, 2.0, 2.5])
    np.testing.assert_array_equal(cubic(d), [_keys_cubic(v) for v in d])
    np.testing.assert_array_equal(cubic(-d), cubic(d))


# ---------------------------------------------------------------- 1-D weights


def test_weights_x2_downscale_match_hand_computation():
    # Output pixel 1 (1-based) maps to u = 1/0.5 + 0.5 * (1 - 2) = 1.5; the 8 non-zero
    # taps are input pixels -2..5, at distances +-0.25, +-0.75, +-1.25, +-1.75 from u.
    # Antialiasing widens the kernel: h(d) = 0.5 * k(0.5 * d). The raw kernel values
    # k(0.125 .. 0.875) are what some references quote ([-0.0234375, -0.0703125,
    # 0.2265625, 0.8671875, ...] are k at distances 1.75/1.25/0.75/0.25 in *output*
    # units); MATLAB's normalised weights are those values halved.
    distances = [3.5, 2.5, 1.5, 0.5, -0.5, -1.5, -2.5, -3.5]
    raw = np.array([0.5 * _keys_cubic(0.5 * d) for d in distances])
    expected = raw / raw.sum()
    np.testing.assert_array_equal(
        expected,
        [-0.01171875, -0.03515625, 0.11328125, 0.43359375,
         0.43359375, 0.11328125, -0.03515625, -0.01171875],
    )
    indices, weights = resize_weights(8, 4, 0.5)
    assert weights.shape == (4, 8)
    np.testing.assert_allclose(weights, np.tile(expected, (4, 1)), rtol=0, atol=1e-15)
    # 1-based taps -2, -1, 0 mirror to 3, 2, 1 (MATLAB's symmetric padding).
    np.testing.assert_array_equal(indices[0], [2, 1, 0, 0, 1, 2, 3, 4])
    np.testing.assert_array_equal(indices[1], [0, 0, 1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(indices[3], [3, 4, 5, 6, 7, 7, 6, 5])  # u = 7.5


def test_weights_x2_upscale_match_hand_computation():
    # Output pixel 1 maps to u = 0.5 + 0.5 * (1 - 0.5) = 0.75; taps at input pixels
    # -1, 0, 1, 2 (distances 1.75, 0.75, -0.25, -1.25).
    expected_first = [_keys_cubic(d) for d in (1.75, 0.75, -0.25, -1.25)]
    np.testing.assert_array_equal(expected_first, [-0.0234375, 0.2265625, 0.8671875, -0.0703125])
    indices, weights = resize_weights(4, 8, 2.0)
    assert weights.shape == (8, 4)
    np.testing.assert_array_equal(weights[0], expected_first)
    np.testing.assert_array_equal(weights[1], expected_first[::-1])
    np.testing.assert_array_equal(indices[0], [1, 0, 0, 1])  # 1-based -1, 0 -> 2, 1
    np.testing.assert_array_equal(indices[1], [0, 0, 1, 2])
    np.testing.assert_array_equal(indices[-1], [2, 3, 3, 2])


def test_resize_matrix_is_the_dense_form_of_the_weights():
    for in_length, scale in [(9, 1 / 3), (17, 0.3), (5, 2.0), (7, 2.5)]:
        out_length = int(np.ceil(in_length * scale))
        matrix = resize_matrix(in_length, out_length, scale)
        assert matrix.shape == (out_length, in_length)
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-12)
        indices, weights = resize_weights(in_length, out_length, scale)
        signal = _random_image(in_length)
        expected = (weights * signal[indices]).sum(axis=1)
        np.testing.assert_allclose(matrix @ signal, expected, atol=1e-9)


# ----------------------------------------------------------------- imresize


@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
def test_constant_image_is_preserved(dtype):
    image = np.full((24, 17, 3), 137, dtype=dtype)
    scales = [2, 3, 4, 8, 1 / 2, 1 / 3, 1 / 4, 1 / 8, 0.3, 1.7]
    requests = [{"scale": s} for s in scales] + [{"output_shape": (5, 41)}]
    for request in requests:
        out = imresize(image, **request)
        assert out.dtype == dtype
        if dtype == np.uint8:
            np.testing.assert_array_equal(out, 137)
        else:  # weights sum to 1 up to float rounding
            np.testing.assert_allclose(out, 137.0, rtol=0, atol=1e-10)


def test_output_shapes():
    image = np.zeros((101, 77), dtype=np.uint8)
    assert imresize(image, 0.25).shape == (26, 20)
    assert imresize(image, 1 / 3).shape == (34, 26)
    assert imresize(image, output_shape=(50, 40)).shape == (50, 40)
    assert imresize(image[..., None], output_shape=(7, 200)).shape == (7, 200, 1)


def test_explicit_output_shape_equals_scale_when_consistent():
    image = _random_image((40, 24, 3))
    np.testing.assert_array_equal(imresize(image, 0.25), imresize(image, output_shape=(10, 6)))


def test_float_output_is_not_rounded_or_clipped():
    image = np.zeros((8, 8))
    image[3:5, 3:5] = 255.0
    out = imresize(image, 2)
    assert out.dtype == np.float64
    assert out.min() < 0 and out.max() > 255  # cubic overshoot kept
    assert np.any(out != np.round(out))


def test_uint8_output_rounds_half_away_from_zero():
    # 1x2 -> 1x4 upscale of [a, b] = [0, 32] (H is an identity pass). By hand, with
    # taps mirrored at both edges:
    #   out1 = 1.09375 a - 0.09375 b = -3      out2 = 0.796875 a + 0.203125 b = 6.5
    #   out3 = 0.203125 a + 0.796875 b = 25.5  out4 = -0.09375 a + 1.09375 b = 35
    image = np.array([[0, 32]], dtype=np.uint8)
    exact = imresize(image.astype(float), output_shape=(1, 4))
    np.testing.assert_array_equal(exact, [[-3, 6.5, 25.5, 35]])
    # MATLAB: clip -3 to 0, round the ties 6.5 and 25.5 away from zero (banker's gives 6).
    np.testing.assert_array_equal(imresize(image, output_shape=(1, 4)), [[0, 7, 26, 35]])


def test_to_uint8_matlab():
    np.testing.assert_array_equal(
        to_uint8_matlab(np.array([0.5, 1.5, 2.5, 2.4999, 254.5, 255.5, -3.0, np.nan])),
        [1, 2, 3, 2, 255, 255, 0, 0],
    )
    # floor(x + 0.5) would round these up through float error:
    assert to_uint8_matlab(0.49999999999999994) == 0
    assert to_uint8_matlab(np.float32(0.49999997)) == 0


def test_uint8_matches_float_path_within_rounding():
    image = _random_image((33, 21, 3)).astype(np.uint8)
    out = imresize(image, 0.25).astype(np.float64)
    exact = imresize(image.astype(np.float64), 0.25)
    # Each pass rounds by at most 0.5; the first error goes through the second pass,
    # whose weights sum to 1 but include negative lobes (sum |w| < 1.2).
    assert np.max(np.abs(out - np.clip(exact, 0, 255))) <= 0.5 * 1.2 + 0.5


def test_mirror_boundary_on_ramp():
    ramp = np.tile(np.arange(16, dtype=np.float64) * 10, (4, 1))  # varies along W
    out = imresize(ramp, 0.5)
    assert out.shape == (2, 8)
    assert np.all(np.diff(out[0]) > 0)
    # First output column: taps on 1-based pixels -2..5 mirror to 3,2,1,1,2,3,4,5,
    # i.e. ramp values 20,10,0,0,10,20,30,40 (0-based 2,1,0,0,1,2,3,4).
    taps = np.array([20, 10, 0, 0, 10, 20, 30, 40], dtype=np.float64)
    distances = (3.5, 2.5, 1.5, 0.5, -0.5, -1.5, -2.5, -3.5)
    weights = np.array([0.5 * _keys_cubic(0.5 * d) for d in distances])
    np.testing.assert_allclose(out[:, 0], np.dot(weights, taps), atol=1e-12)
    # Last column mirrors the other edge symmetrically.
    np.testing.assert_allclose(out[:, -1], 150 - np.dot(weights, taps), atol=1e-12)


def test_dimension_order_smallest_scale_first():
    # Upscale H x2, downscale W x0.5: MATLAB resizes W first. With uint8 the
    # intermediate rounding makes the order observable.
    image = (_random_image((12, 16), seed=3)).astype(np.uint8)
    out = imresize(image, output_shape=(24, 8))
    w_pass = to_uint8_matlab(image @ resize_matrix(16, 8, 0.5).T)
    w_first = to_uint8_matlab(resize_matrix(12, 24, 2.0) @ w_pass)
    np.testing.assert_array_equal(out, w_first)


def test_bad_arguments():
    image = np.zeros((8, 8))
    with pytest.raises(ValueError, match="exactly one"):
        imresize(image)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(image, 0.5, output_shape=(4, 4))
    with pytest.raises(ValueError, match=">= 1"):
        imresize(image, output_shape=(0, 4))
    with pytest.raises(ValueError, match="positive"):
        imresize(image, -2)
    with pytest.raises(ValueError, match="HxW"):
        imresize(np.zeros((2, 8, 8, 3)), 0.5)
    with pytest.raises(TypeError):
        imresize(np.zeros((8, 8), dtype=bool), 0.5)
    with pytest.raises(ValueError):
        imresize_tf(tf.zeros((8, 8)), 0.5)


def test_loosely_close_to_skimage_x4_downscale():
    # skimage uses a Gaussian anti-aliasing pre-filter plus a cubic *spline*, not
    # MATLAB's widened Keys kernel, so the two only agree roughly on smooth content
    # (here: mean |difference| 1.5 grey levels, max 4.2; without anti_aliasing skimage
    # is closer inside, 0.18 max, but aliases).
    y, x = np.mgrid[0:64, 0:64]
    image = 127.5 + 100 * np.sin(x / 7.0) * np.cos(y / 9.0)
    ours = imresize(image, 0.25)
    theirs = sk_resize(image, (16, 16), order=3, anti_aliasing=True, preserve_range=True)
    assert ours.shape == theirs.shape
    assert np.mean(np.abs(ours - theirs)) < 2.5
    assert np.max(np.abs(ours - theirs)) < 8.0


# ---------------------------------------------------------------- TensorFlow


def test_tf_matches_numpy_rank3_and_rank4():
    images = _random_image((2, 27, 19, 3))
    for scale, output_shape in [(0.25, None), (1 / 3, None), (2, None), (None, (13, 30))]:
        expected = np.stack([imresize(im, scale, output_shape) for im in images])
        batched = imresize_tf(tf.constant(images, tf.float32), scale, output_shape)
        single = imresize_tf(tf.constant(images[1], tf.float32), scale, output_shape)
        assert batched.dtype == tf.float32 and batched.shape == expected.shape
        np.testing.assert_allclose(batched.numpy(), expected, atol=1e-3)
        np.testing.assert_allclose(single.numpy(), expected[1], atol=1e-3)


def test_tf_dynamic_shapes_in_tf_data_map():
    images = [_random_image((27, 19, 3), 1), _random_image((16, 33, 3), 2)]
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(images), output_signature=tf.TensorSpec((None, None, 3), tf.float32)
    )
    for kwargs in ({"scale": 0.5}, {"output_shape": (10, 12)}):
        mapped = dataset.map(lambda im, kw=kwargs: imresize_tf(im, **kw))
        assert mapped.element_spec.shape.rank == 3
        for got, image in zip(mapped, images):
            np.testing.assert_allclose(got.numpy(), imresize(image, **kwargs), atol=1e-3)


def test_tf_function_with_unknown_shape_and_gradients():
    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
    def downscale_loss(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            small = imresize_tf(images, 0.5)
            loss = tf.reduce_mean(tf.square(small - 100.0))
        return small, tape.gradient(loss, images)

    images = tf.constant(_random_image((2, 12, 10, 3)), tf.float32)
    small, grad = downscale_loss(images)
    assert small.shape == (2, 6, 5, 3)
    grad = grad.numpy()
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)


def test_tf_eager_gradients_and_float16():
    images = tf.Variable(_random_image((1, 8, 8, 3)), dtype=tf.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(imresize_tf(images, 0.5))
    grad = tape.gradient(loss, images).numpy()
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)
    half = imresize_tf(tf.constant(_random_image((8, 8, 3)), tf.float16), 0.5)
    assert half.dtype == tf.float16 and half.shape == (4, 4, 3)


def test_round_to_uint8_tf_matches_numpy():
    values = np.array([0.5, 1.5, 2.5, 2.4999, 254.5, 255.5, -3.0, 0.49999997, np.nan], np.float32)
    got = round_to_uint8_tf(tf.constant(values))
    assert got.dtype == tf.uint8
    np.testing.assert_array_equal(got.numpy(), to_uint8_matlab(values))
    assert tf.round(tf.constant(2.5)).numpy() == 2.0  # why tf.round is not used


def test_make_lr_resizes_each_image_once_and_returns_read_only_arrays(monkeypatch):
    from eusr_perceptual import resize

    monkeypatch.setattr(resize, "_LR_MEMO", resize._LRMemo(limit=2 * 8 * 9 * 3))  # two 8x9 LR images
    calls = []
    real = resize.imresize_uint8
    monkeypatch.setattr(resize, "imresize_uint8", lambda *args: calls.append(args[1:]) or real(*args))
    rng = np.random.default_rng(5)
    first, second, third = (rng.integers(0, 256, (17, 18, 3), dtype=np.uint8) for _ in range(3))
    lr = resize.make_lr(first, 2)
    np.testing.assert_array_equal(lr, real(first[:16], 0.5))
    assert not lr.flags.writeable and first.flags.writeable
    assert resize.make_lr(first.copy(), 2) is lr and len(calls) == 1  # the same pixels: not resized again
    assert not np.array_equal(resize.make_lr(second, 2), lr) and len(calls) == 2
    assert resize.make_lr(first, 2) is lr and len(calls) == 2  # first is now the most recently used
    resize.make_lr(third, 2)  # over the limit: second, the least recently used, is dropped
    assert resize.make_lr(first, 2) is lr and len(calls) == 3
    resize.make_lr(second, 2)
    assert len(calls) == 4 and resize._LR_MEMO.size == 2 * 8 * 9 * 3
    native = resize.make_lr(first, 2, "uint8")  # another convention: another key
    assert calls[-1] == (0.5, "uint8") and native is not lr and len(calls) == 5
