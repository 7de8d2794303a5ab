"""Request limits of the encoded-image signatures: the memory estimate and the budget arithmetic."""

import math
from pathlib import Path

import pytest

from eusr_perceptual.configs.base import ConfigError
from eusr_perceptual.serving.savedmodel import route_limits
from eusr_perceptual.inference import run_route, routes_of
from eusr_perceptual.models.eusr import EUSR, EUSRConfig
from eusr_perceptual.models.registry import registered_networks
from eusr_perceptual.serving.limits import DECODE_BYTES, STITCH_BYTES, RequestBudget, fitting_tile, tiled_limit, untiled_limit
from eusr_perceptual.serving.memory import RUNTIME_FACTOR, bytes_per_pixel, peak_activation_bytes
from helpers import tiny_eusr, tiny_network

MIB = 2**20
REPO = Path(__file__).resolve().parents[2]
DOCS = (REPO / "docs" / "serving.md").read_text()


def test_the_estimate_of_eusr_is_two_maps_of_its_widest_layer():
    """Module docstring of eusr_perceptual.serving.memory: 2 * 4 * channels * s^2 bytes per LR pixel
    replayed, times the runtime factor (tiny EUSR: 8 channels)."""
    model = tiny_eusr()
    for route, factor in (("x2", 2), ("x4", 4), ("x8", 8), ("x2x2", 4), ("x8down", 8)):
        assert bytes_per_pixel(lambda images, r=route: run_route(model, images, r)) == RUNTIME_FACTOR * 2 * 4 * 8 * factor**2, route
    # the replayed peak grows in proportion to the pixels, for any aspect ratio
    def peak(height, width):
        return peak_activation_bytes(lambda images: run_route(model, images, "x4"), height, width)

    assert peak(80, 60) - peak(40, 60) == 2 * 4 * 8 * 16 * 40 * 60


@pytest.mark.parametrize("family", registered_networks("generator"))
def test_every_generator_family_can_be_estimated(family):
    generator = tiny_network(family, "generator", scale=4)
    per_pixel = bytes_per_pixel(lambda images: run_route(generator, images, routes_of(generator)[0]))
    assert 100 < per_pixel < 10**5


def test_limits_follow_the_budget():
    budget = RequestBudget()
    assert budget.bytes == 2048 * MIB
    whole = untiled_limit(budget, 16384, "upscale_x4_png", "send it to upscale_x4_png_tiled")
    assert whole.max_pixels == 2048 * MIB // (16384 + DECODE_BYTES) == 130752  # the paper's EUSR at x4: 361x361
    assert "16,424 bytes per pixel in a request budget of 2048 MiB" in whole.basis
    tiled = tiled_limit(budget, 16384, 4, 128, 32, "upscale_x4_png_tiled", "send it in parts")
    tile_bytes = 16384 * (128 + 64) ** 2
    assert tiled.max_pixels == (2048 * MIB - tile_bytes) // (DECODE_BYTES + 16 * STITCH_BYTES)
    assert "576 MiB for a 128-pixel tile" in tiled.basis
    explicit = RequestBudget(max_pixels=1000)
    assert untiled_limit(explicit, 16384, "s", "a").max_pixels == tiled_limit(explicit, 16384, 4, 128, 32, "s", "a").max_pixels == 1000


def test_tiles_shrink_to_half_the_budget():
    budget = RequestBudget()
    assert fitting_tile(128, 32, 16384, budget) == 128  # the paper's EUSR at x4
    fitted = fitting_tile(128, 32, 65536, budget)  # at x8: a 128-pixel tile would take 2.25 GiB
    assert fitted == 64 and 65536 * (fitted + 64) ** 2 <= budget.bytes // 2 < 65536 * (fitted + 65) ** 2
    assert fitting_tile(8, 4, 65536, budget) == 8
    with pytest.raises(ValueError, match="lower --overlap or raise --request-memory-mib"):
        fitting_tile(128, 32, 65536, RequestBudget(request_memory_mib=100))
    assert math.isqrt(RequestBudget(request_memory_mib=100).bytes // 2 // 65536) < 1 + 64


def test_a_budget_must_be_positive():
    with pytest.raises(ConfigError, match="request_memory_mib must be at least 1, got 0"):
        RequestBudget(request_memory_mib=0)
    with pytest.raises(ConfigError, match="max_pixels must be at least 1, got -5"):
        RequestBudget(max_pixels=-5)


def test_the_docs_table_gives_the_limits_of_the_paper_eusr():
    model = EUSR(EUSRConfig())
    model.build()
    whole, tiled, tile = route_limits(model, "x4", 128, 32, RequestBudget())
    assert whole.max_pixels == 130752 and tile == 128
    square = math.isqrt
    row = (f"| | x4, `path_x2x2` | 16,424 | {whole.max_pixels:,} ({square(whole.max_pixels)}) | "
           f"{tiled.max_pixels:,} ({square(tiled.max_pixels)}) ({tile}) |")
    assert row in DOCS


def test_readme_and_docs_say_models_are_code_and_safe_mode_stays_on():
    readme = (REPO / "README.md").read_text()
    for text in (readme, DOCS):
        assert "SavedModels and `.keras` files are code" in text and "`safe_mode` on" in text
    sources = [path.read_text() for folder in ("eusr_perceptual", "nima") for path in (REPO / folder).rglob("*.py")]
    assert not [source for source in sources if "safe_mode=False" in source or "enable_unsafe_deserialization" in source]
