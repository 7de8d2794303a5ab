"""NIQE: the official pristine model, MATLAB semantics, and agreement with a reference."""

from importlib import resources

import numpy as np
import pytest
import skimage.data

from eusr_perceptual.metrics import niqe as niqe_module
from eusr_perceptual.metrics.fidelity import rgb_to_y
from eusr_perceptual.metrics.niqe import mscn, niqe, niqe_features, pristine_model
from eusr_perceptual.resize import to_uint8_matlab

# Reference values: BasicSR 1.4.2's calculate_niqe(img_bgr, crop_border, input_order="HWC",
# convert_to="y") run unmodified on scikit-image 0.26's photographs, its torch imresize
# replaced by a line-by-line numpy port (float32 like the original), cv2/torch stubbed
# (unused on that path). BasicSR documents 5.7295763 on its baboon.png where MATLAB R2021a
# gives 5.72957338. (2026-11, for this test.)
BASICSR_REFERENCE = {
    ("chelsea", 0): 2.625523892907143,
    ("chelsea", 4): 2.6893136363944743,
    ("coffee", 0): 4.115239529669374,
    ("coffee", 4): 4.079405347039101,
}


@pytest.mark.parametrize("name,border", sorted(BASICSR_REFERENCE))
def test_niqe_agrees_with_basicsr_reference_within_1e3(name, border):
    image = getattr(skimage.data, name)()
    assert abs(niqe(image, border=border) - BASICSR_REFERENCE[(name, border)]) < 1e-3


def test_pristine_model_is_the_official_36_dimensional_mvg():
    mu, cov = pristine_model()
    assert mu.shape == (36,) and cov.shape == (36, 36)
    np.testing.assert_allclose(cov, cov.T)
    # First entries of the official modelparameters.mat (mu_prisparam).
    np.testing.assert_allclose(mu[:3], [2.60131368, 0.90570272, 0.81204778], atol=1e-7)
    with resources.files("eusr_perceptual").joinpath(niqe_module.PRISTINE_PARAMS_FILE).open("rb") as handle, np.load(handle) as archive:
        assert "basicsr-1.4.2" in str(archive["provenance"])


def test_window_is_matlab_fspecial_gaussian_7_7_over_6():
    g = niqe_module._gaussian_1d()
    x = np.arange(-3, 4)
    expected = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * (7 / 6) ** 2))
    np.testing.assert_allclose(np.outer(g, g), expected / expected.sum(), atol=1e-15)


def test_mscn_of_a_constant_image_is_zero_and_scale_free():
    assert np.allclose(mscn(np.full((20, 20), 77.0)), 0)
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (30, 30))
    # (I - mu) / (sigma + 1): doubling the contrast leaves it nearly unchanged for large sigma.
    assert np.corrcoef(mscn(image).ravel(), mscn(2 * image).ravel())[0, 1] > 0.999


def test_features_are_36_per_96x96_block_with_the_second_scale_from_halving():
    luma = rgb_to_y(skimage.data.coffee())[:200, :300]
    features = niqe_features(luma)
    assert features.shape == (2 * 3, 36)  # 200x300 -> 2x3 whole blocks
    assert np.all((features[:, 0] >= 0.2) & (features[:, 0] <= 10))  # GGD shape on the grid


def test_rgb_input_uses_the_rounded_matlab_luma():
    image = skimage.data.chelsea()
    luma = to_uint8_matlab(rgb_to_y(image)).astype(np.float64)
    assert niqe(image) == pytest.approx(niqe(luma), abs=1e-12)
    # A float SR output is rounded as a saved PNG would be.
    assert niqe(image.astype(np.float32) + 0.2) == pytest.approx(niqe(image), abs=1e-12)


def test_noise_scores_worse_than_the_photograph():
    image = skimage.data.chelsea()
    noisy = np.clip(image + np.random.default_rng(0).normal(0, 25, image.shape), 0, 255).astype(np.uint8)
    assert niqe(noisy) > niqe(image) + 1


def test_images_smaller_than_a_block_are_rejected():
    with pytest.raises(ValueError, match="96x96"):
        niqe(np.zeros((100, 100, 3), np.uint8), border=4)
    with pytest.raises(ValueError, match="HxWx3"):
        niqe(np.zeros((100, 100, 4), np.uint8))
