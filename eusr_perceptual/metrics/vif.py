"""Pixel-domain visual information fidelity, VIFp (Sheikh and Bovik 2006), as AFM's Tables I/IV.

Sheikh's ``vifvec``'s pixel-domain version (``vifp_mscale.m``; ``sewar.full_ref.vifp``, which
the AFM evaluation code calls): at 4 scales, Gaussian windows of N = 2^(4 - scale + 1) + 1
pixels (17, 9, 5, 3) with standard deviation N/5; from scale 2 on, both images are filtered
with that scale's window ('valid') and subsampled by 2. At each scale, with local means,
variances and covariance of reference x and distorted y over the window (sigma_x^2 and
sigma_y^2 clipped at 0), the gain ``g = sigma_xy / sigma_x^2`` and the distortion noise
variance ``sigma_v^2 = sigma_y^2 - g sigma_xy`` (with the reference code's guards: g = 0 where
sigma_x^2 or sigma_y^2 < 1e-10, negative gains set to 0 with sigma_v^2 = sigma_y^2, sigma_v^2
floored at 1e-10), and the visual noise variance sigma_n^2 = 2:

    VIFp = sum log10(1 + g^2 sigma_x^2 / (sigma_v^2 + sigma_n^2)) / sum log10(1 + sigma_x^2 / sigma_n^2)

summed over every position of every scale. 1 for identical images, lower for distortions,
above 1 for contrast enhancement.

Images are prepared as :func:`~eusr_perceptual.metrics.fidelity.psnr` does (the AFM code's
convention): the distorted image rounded to uint8, MATLAB's Y on [16, 235] (the code's
``rgb2ycbcr`` Y x 255), ``border`` pixels cropped (the scale, 4, in the AFM code). Colour
images with ``y_channel=False`` give the mean over channels, as ``sewar``.
"""

from __future__ import annotations

import numpy as np

from eusr_perceptual.metrics.fidelity import _filter_valid, _prepare, gaussian_window

SCALES = 4
SIGMA_NSQ = 2.0
_EPS = 1e-10
#: Smallest side (after cropping) that leaves at least one position at the 4th scale.
MIN_SIZE = 41


def _information(reference: np.ndarray, distorted: np.ndarray, sigma_nsq: float) -> tuple[float, float]:
    """(numerator, denominator) of VIFp for one ``HxW`` float64 channel."""
    numerator = denominator = 0.0
    for scale in range(1, SCALES + 1):
        size = 2 ** (SCALES - scale + 1) + 1
        window = gaussian_window(size, size / 5.0)
        if scale > 1:
            reference = _filter_valid(reference, window)[::2, ::2]
            distorted = _filter_valid(distorted, window)[::2, ::2]
        mu_x, mu_y = _filter_valid(reference, window), _filter_valid(distorted, window)
        sigma_x = np.maximum(_filter_valid(reference * reference, window) - mu_x * mu_x, 0.0)
        sigma_y = np.maximum(_filter_valid(distorted * distorted, window) - mu_y * mu_y, 0.0)
        sigma_xy = _filter_valid(reference * distorted, window) - mu_x * mu_y

        gain = sigma_xy / (sigma_x + _EPS)
        noise = sigma_y - gain * sigma_xy
        flat_reference, flat_distorted = sigma_x < _EPS, sigma_y < _EPS
        gain[flat_reference] = 0.0
        noise[flat_reference] = sigma_y[flat_reference]
        sigma_x[flat_reference] = 0.0
        gain[flat_distorted] = 0.0
        noise[flat_distorted] = 0.0
        negative = gain < 0
        noise[negative] = sigma_y[negative]
        gain[negative] = 0.0
        noise = np.maximum(noise, _EPS)

        numerator += float(np.sum(np.log10(1.0 + gain * gain * sigma_x / (noise + sigma_nsq))))
        denominator += float(np.sum(np.log10(1.0 + sigma_x / sigma_nsq)))
    return numerator, denominator


def vifp(
    reference: np.ndarray,
    distorted: np.ndarray,
    border: int = 4,
    y_channel: bool = True,
    quantize: bool = True,
    sigma_nsq: float = SIGMA_NSQ,
) -> float:
    """VIFp of ``distorted`` (e.g. an SR image) against ``reference`` (its ground truth).

    Args:
        reference: ground truth, ``HxW`` or ``HxWxC`` in [0, 255].
        distorted: the image judged, same shape. Note the order: reference first (as
            ``sewar.full_ref.vifp(GT, P)``), unlike ``psnr(sr, hr)``; VIF is not symmetric.
        border: pixels cropped on each side.
        y_channel: evaluate the Y of RGB images (grayscale images are used as they are).
        quantize: round ``distorted`` to uint8 first, as saved SR images are.
        sigma_nsq: visual noise variance (2, the reference code's).

    Returns:
        VIFp; 1.0 for identical images (up to the 1e-10 guards).
    """
    distorted, reference = _prepare(distorted, reference, border, y_channel, quantize, min_size=MIN_SIZE)
    ratios = []
    for x, y in zip(np.moveaxis(reference, -1, 0), np.moveaxis(distorted, -1, 0)):
        numerator, denominator = _information(x, y, sigma_nsq)
        ratios.append(numerator / denominator)
    return float(np.mean(ratios))
