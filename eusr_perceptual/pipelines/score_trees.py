"""AVA- and TID2013-format score trees made from the embedded photographs, so that the real
dataset loaders and the NIMA training run end to end offline (the 4PP-EUSR demo chain)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from eusr_perceptual.data.samplers import load_training_images
from eusr_perceptual.resize import imresize
from nima.datasets.tid2013 import gaussian_distribution

#: Side of the reference crops of the demo trees.
DEMO_CROP = 128


def distortions():
    """Distortion kinds of the demo score trees: (name, function(image uint8, level 1..4))."""
    def blur(image, level):
        return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(0.7 * level)))

    def noise(image, level):
        rng = np.random.default_rng(level)
        return np.clip(image + rng.normal(0, 7.0 * level, image.shape), 0, 255).astype(np.uint8)

    def jpeg(image, level):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=(50, 25, 12, 5)[level - 1])
        return np.asarray(Image.open(buffer).convert("RGB"))

    def down_up(image, level):
        return imresize(imresize(image, 1 / (1 + level)), output_shape=image.shape[:2])

    return (("blur", blur), ("noise", noise), ("jpeg", jpeg), ("bicubic", down_up))


def make_demo_score_trees(root: Path, seed: int = 0) -> dict[str, Path]:
    """AVA- and TID2013-format folders made from crops of the embedded training photographs.

    Each reference crop gets 4 distortions at 4 levels; the score falls with the level (the
    TID2013 tree: MOS on [0, 9] with std 0.7; the AVA tree: 100 votes around a mean that also
    favours sharpness over noise). Real-format trees, so the real loaders read them.
    """
    rng = np.random.default_rng(seed)
    references = []
    for image in load_training_images("skimage", scales=(), min_side=DEMO_CROP):
        for _ in range(2):
            y, x = (rng.integers(0, side - DEMO_CROP + 1) for side in image.hr.shape[:2])
            references.append(image.hr[y:y + DEMO_CROP, x:x + DEMO_CROP])
    tid, ava = root / "tid2013", root / "ava"
    for folder in (tid / "distorted_images", tid / "reference_images", ava / "images"):
        folder.mkdir(parents=True, exist_ok=True)
    mos_lines, std_lines, ava_lines = [], [], []
    for r, reference in enumerate(references, start=1):
        Image.fromarray(reference).save(tid / "reference_images" / f"I{r:02d}.BMP")
        for d, (kind, distort) in enumerate(distortions(), start=1):
            for level in range(1, 5):
                distorted = distort(reference, level)
                name = f"i{r:02d}_{d:02d}_{level}.bmp"
                Image.fromarray(distorted).save(tid / "distorted_images" / name)
                mos_lines.append(f"{np.clip(7.6 - 1.6 * level + rng.normal(0, 0.2), 0.3, 8.7):.5f} {name}")
                std_lines.append("0.70000")
                image_id = len(ava_lines) + 1
                Image.fromarray(distorted).save(ava / "images" / f"{image_id}.jpg", quality=95)
                penalty = (0.9 if kind in ("blur", "bicubic") else 0.6) * level
                votes = np.round(100 * gaussian_distribution([np.clip(7.5 - penalty, 1.5, 9.5)], [1.2])[0]).astype(int)
                ava_lines.append(" ".join(map(str, [image_id, image_id, *votes, 0, 0, 0])))
    (tid / "mos_with_names.txt").write_text("\n".join(mos_lines) + "\n")
    (tid / "mos_std.txt").write_text("\n".join(std_lines) + "\n")
    (ava / "AVA.txt").write_text("\n".join(ava_lines) + "\n")
    return {"ava": ava, "tid2013": tid}


