"""Tests for MATLAB-convention PSNR / SSIM (NumPy and TensorFlow)."""
import math

import numpy as np
import pytest
import tensorflow as tf
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from eusr_perceptual.metrics.fidelity import (
    gaussian_window,
    psnr,
    psnr_tf,
    rgb_to_y,
    rgb_to_y_tf,
    ssim,
    ssim_tf,
)
from eusr_perceptual.resize import to_uint8_matlab


def _pair(shape=(40, 36, 3), noise=10.0, seed=0):
    """A uint8 HR image and a noisy float SR version of it."""
    rng = np.random.default_rng(seed)
    hr = rng.integers(0, 256, shape).astype(np.uint8)
    sr = np.clip(hr + rng.normal(0, noise, shape), -5, 260)  # float, out of range too
    return sr, hr


def _skimage_ssim(a, b, **kwargs):
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255,
        **kwargs,
    )


def test_known_y_values():
    colours = np.array(
        [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]], np.uint8
    )
    expected = [16 + 65.481, 16 + 128.553, 16 + 24.966, 235.0, 16.0]
    np.testing.assert_allclose(rgb_to_y(colours), expected, rtol=0, atol=1e-12)
    assert rgb_to_y(colours).dtype == np.float64
    np.testing.assert_allclose(rgb_to_y_tf(tf.constant(colours)).numpy(), expected, atol=1e-4)
    with pytest.raises(ValueError, match="RGB"):
        rgb_to_y(np.zeros((4, 4, 4)))


def test_gaussian_window_is_fspecial():
    window = gaussian_window()
    assert window.shape == (11,) and math.isclose(window.sum(), 1.0)
    x = np.arange(-5, 6)
    full = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * 1.5**2))
    np.testing.assert_allclose(np.outer(window, window), full / full.sum(), atol=1e-15)


def test_psnr_matches_skimage_on_cropped_y():
    sr, hr = _pair()
    sr_y = rgb_to_y(to_uint8_matlab(sr))[4:-4, 4:-4]
    hr_y = rgb_to_y(hr)[4:-4, 4:-4]
    expected = peak_signal_noise_ratio(hr_y, sr_y, data_range=255)
    assert abs(psnr(sr, hr) - expected) < 1e-6
    # All channels, other border, no quantization.
    expected_rgb = peak_signal_noise_ratio(
        hr[2:-2, 2:-2].astype(float), sr[2:-2, 2:-2], data_range=255
    )
    got_rgb = psnr(sr, hr, border=2, y_channel=False, quantize=False)
    assert abs(got_rgb - expected_rgb) < 1e-6


def test_ssim_matches_skimage_on_cropped_y():
    # skimage filters the whole image (reflect padding) and then drops (11 - 1) // 2 = 5
    # pixels per side of the SSIM map; its Gaussian has radius int(3.5 * 1.5 + 0.5) = 5.
    # That leaves exactly MATLAB's 'valid' map, so the two agree to float rounding.
    sr, hr = _pair()
    sr_y = rgb_to_y(to_uint8_matlab(sr))[4:-4, 4:-4]
    hr_y = rgb_to_y(hr)[4:-4, 4:-4]
    assert abs(ssim(sr, hr) - _skimage_ssim(hr_y, sr_y)) < 1e-10
    quantized = to_uint8_matlab(sr)[3:-3, 3:-3].astype(float)
    expected_rgb = _skimage_ssim(hr[3:-3, 3:-3].astype(float), quantized, channel_axis=-1)
    assert abs(ssim(sr, hr, border=3, y_channel=False) - expected_rgb) < 1e-10


def test_grayscale_inputs():
    sr, hr = _pair(shape=(30, 30))
    cropped_sr = to_uint8_matlab(sr)[4:-4, 4:-4]
    expected = peak_signal_noise_ratio(hr[4:-4, 4:-4], cropped_sr, data_range=255)
    assert abs(psnr(sr, hr) - expected) < 1e-6
    assert ssim(sr[..., None], hr[..., None]) == pytest.approx(ssim(sr, hr), abs=1e-12)


def test_identical_images():
    _, hr = _pair()
    assert psnr(hr, hr) == math.inf
    assert ssim(hr, hr) == pytest.approx(1.0, abs=1e-12)
    batch = tf.constant(np.stack([hr, hr]), tf.float32)
    assert np.all(np.isinf(psnr_tf(batch, batch).numpy()))
    np.testing.assert_allclose(ssim_tf(batch, batch).numpy(), 1.0, atol=1e-5)


def test_quantize_rounds_sr_half_away_from_zero():
    hr = np.full((12, 12), 100, np.uint8)
    sr = np.full((12, 12), 100.5)
    assert psnr(sr, hr, border=0, quantize=False) == pytest.approx(10 * math.log10(255**2 / 0.25))
    assert psnr(sr, hr, border=0) == pytest.approx(10 * math.log10(255**2 / 1.0))  # 100.5 -> 101


def test_border_cropping_excludes_border_pixels():
    _, hr = _pair()
    sr = hr.copy()
    sr[:4] = 255 - sr[:4]
    sr[:, -4:] = 0
    assert psnr(sr, hr, border=4) == math.inf
    assert math.isfinite(psnr(sr, hr, border=0))
    assert ssim(sr, hr, border=4) == pytest.approx(1.0, abs=1e-12)
    assert ssim(sr, hr, border=0) < 0.99
    batch = tf.constant(np.stack([sr]), tf.float32), tf.constant(np.stack([hr]), tf.float32)
    assert np.isinf(psnr_tf(*batch, border=4).numpy()[0])
    assert np.isfinite(psnr_tf(*batch, border=0).numpy()[0])


def test_numpy_and_tf_agree_per_image():
    pairs = [_pair(seed=s, noise=n) for s, n in [(1, 3.0), (2, 12.0), (3, 30.0)]]
    sr = tf.constant(np.stack([p[0] for p in pairs]), tf.float32)
    hr = tf.constant(np.stack([p[1] for p in pairs]), tf.float32)
    for kwargs in ({}, {"border": 2, "y_channel": False}):
        psnrs, ssims = psnr_tf(sr, hr, **kwargs), ssim_tf(sr, hr, **kwargs)
        assert psnrs.dtype == tf.float32 and psnrs.shape == (3,) and ssims.shape == (3,)
        # float32 Y / moments on [0, 255] data: agreement to ~1e-4.
        expected_psnr = [psnr(s, h, **kwargs) for s, h in pairs]
        expected_ssim = [ssim(s, h, **kwargs) for s, h in pairs]
        np.testing.assert_allclose(psnrs.numpy(), expected_psnr, atol=1e-3)
        np.testing.assert_allclose(ssims.numpy(), expected_ssim, atol=1e-3)
    single = psnr_tf(sr[0], hr[0])
    assert single.shape == () and abs(single.numpy() - psnr(*pairs[0])) < 1e-3


def test_tf_metrics_in_tf_function_with_unknown_sizes():
    sr, hr = _pair()
    spec = tf.TensorSpec((None, None, None, 3), tf.float32)
    compute = tf.function(
        lambda a, b: (psnr_tf(a, b), ssim_tf(a, b)), input_signature=[spec, spec]
    )
    psnrs, ssims = compute(tf.constant(sr[None], tf.float32), tf.constant(hr[None], tf.float32))
    assert abs(psnrs.numpy()[0] - psnr(sr, hr)) < 1e-3
    assert abs(ssims.numpy()[0] - ssim(sr, hr)) < 1e-3


def test_invalid_inputs():
    sr, hr = _pair(shape=(20, 20, 3))
    with pytest.raises(ValueError, match="Shape mismatch"):
        psnr(sr[:10], hr)
    with pytest.raises(ValueError, match="too small"):
        psnr(sr, hr, border=10)
    with pytest.raises(ValueError, match="too small"):
        ssim(sr, hr, border=5)  # 20 - 10 = 10 < 11-pixel window
    with pytest.raises(ValueError, match="non-negative"):
        psnr(sr, hr, border=-1)
    with pytest.raises(ValueError, match="Shape mismatch"):
        psnr_tf(tf.zeros((1, 20, 20, 3)), tf.zeros((1, 20, 21, 3)))
    with pytest.raises(ValueError, match="too small"):
        ssim_tf(tf.zeros((1, 20, 20, 3)), tf.zeros((1, 20, 20, 3)), border=5)
