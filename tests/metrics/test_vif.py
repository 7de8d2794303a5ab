"""Pixel-domain VIF against ``sewar.full_ref.vifp`` (what the AFM evaluation code called) on
scikit-image photographs with several distortions."""

import numpy as np
import pytest
import skimage.data
from scipy import ndimage
from sewar.full_ref import vifp as sewar_vifp

from eusr_perceptual.metrics.fidelity import rgb_to_y
from eusr_perceptual.metrics.vif import MIN_SIZE, vifp


def photographs() -> dict[str, np.ndarray]:
    """128x128 RGB crops, float64 in [0, 255]."""
    crops = {"astronaut": skimage.data.astronaut()[40:168, 180:308], "coffee": skimage.data.coffee()[100:228, 200:328],
             "chelsea": skimage.data.chelsea()[60:188, 120:248], "rocket": skimage.data.rocket()[200:328, 250:378]}
    return {name: crop.astype(np.float64) for name, crop in crops.items()}


def distortions(image: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    small = image[::4, ::4]
    return {
        "blur": ndimage.gaussian_filter(image, sigma=(1.5, 1.5, 0)),
        "noise": np.clip(image + rng.normal(0, 12, image.shape), 0, 255),
        "blocky_x4": np.repeat(np.repeat(small, 4, axis=0), 4, axis=1),
        "contrast": np.clip(1.3 * (image - 128) + 128, 0, 255),
    }


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "rocket"])
def test_equals_sewar_on_the_y_channel(name):
    reference = photographs()[name]
    values = []
    for seed, (kind, distorted) in enumerate(distortions(reference, 1).items()):
        ours = vifp(rgb_to_y(reference), rgb_to_y(distorted), border=0, quantize=False)
        theirs = sewar_vifp(rgb_to_y(reference), rgb_to_y(distorted))
        assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12), kind
        values.append(ours)
    assert len(set(np.round(values, 3))) == len(values)  # the distortions give different values
    assert 0.0 < min(values) < 0.7


def test_evaluation_convention_is_quantized_y_with_a_border_crop():
    reference = photographs()["astronaut"]
    distorted = ndimage.gaussian_filter(reference, sigma=(1.0, 1.0, 0)) + 0.4  # not integer-valued
    expected = sewar_vifp(rgb_to_y(reference)[4:-4, 4:-4], rgb_to_y(np.round(distorted))[4:-4, 4:-4])
    assert vifp(reference, distorted) == pytest.approx(expected, rel=1e-9)
    per_channel = np.mean([sewar_vifp(reference[..., c], distorted[..., c]) for c in range(3)])
    assert vifp(reference, distorted, border=0, y_channel=False, quantize=False) == pytest.approx(per_channel, rel=1e-9)


def test_identity_order_and_size_limits():
    reference = photographs()["coffee"]
    assert vifp(reference, reference) == pytest.approx(1.0, abs=1e-6)
    blurred = ndimage.gaussian_filter(reference, sigma=(2.0, 2.0, 0))
    assert vifp(reference, blurred) != pytest.approx(vifp(blurred, reference), rel=1e-3)  # not symmetric
    smallest = reference[:MIN_SIZE, :MIN_SIZE]
    assert np.isfinite(vifp(smallest, ndimage.gaussian_filter(smallest, 1.0), border=0))
    with pytest.raises(ValueError, match="too small"):
        vifp(smallest, smallest, border=1)
