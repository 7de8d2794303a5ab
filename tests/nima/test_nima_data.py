"""NIMA data (4PP-EUSR sections 3.4, 4.2): AVA and TID2013 in their release formats, the
Gaussian score distributions, and the crop/flip/pad input pipeline.

The tree builders here are also used by ``test_nima_train.py``.
"""

import io
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from eusr_perceptual.data.images import SkipReport
from nima.config import AVA_PAPER, TID2013_PAPER
from nima.datasets import LAYOUTS, DatasetLayoutError, LabelFileError, load_dataset
from nima.datasets.ava import load_ava, read_ava_labels
from nima.datasets.tid2013 import gaussian_distribution, load_tid2013, read_tid2013_labels
from nima.preprocessing import ImageDecoder, centre_crop, pad_to_size, training_dataset, validation_dataset

# ---------------------------------------------------------------------------------------------
# Release-format trees with images made on the fly.


def _noise_image(height, width, seed, mode="RGB"):
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode)


def _image_bytes(image, fmt):
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


AVA_IDS = [953619 + 7 * i for i in range(14)]


def make_ava_tree(root: Path, size=(40, 48)) -> dict:
    """AVA.txt (14 good lines + 3 malformed) and images/<id>.jpg, with one missing, one
    truncated, one grayscale, one RGBA (PNG data named .jpg) and one smaller than 32 px."""
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for index, image_id in enumerate(AVA_IDS, start=1):
        votes = rng.integers(0, 30, 10)
        votes[index % 10] += 5
        lines.append(f"{index} {image_id} {' '.join(map(str, votes))} {index % 7} {index % 5} {1396}")
    lines.insert(3, "4 900001 1 2 3 4 5 6 7 8 9 31 0")                   # line 4: 13 fields
    lines.insert(7, "8 900002 1 2 x 4 5 6 7 8 9 10 0 0 1396")            # line 8: not an integer
    lines.insert(11, "12 900003 0 0 0 0 0 0 0 0 0 0 0 0 1396")           # line 12: no votes
    (root / "AVA.txt").write_text("\n".join(lines) + "\n")
    special = {"missing": AVA_IDS[1], "truncated": AVA_IDS[2], "gray": AVA_IDS[3], "rgba": AVA_IDS[4], "small": AVA_IDS[5]}
    for k, image_id in enumerate(AVA_IDS):
        path = root / "images" / f"{image_id}.jpg"
        if image_id == special["missing"]:
            continue
        if image_id == special["truncated"]:
            path.write_bytes(_image_bytes(_noise_image(*size, k), "JPEG")[:300])
        elif image_id == special["gray"]:
            _noise_image(*size, k, "L").save(path, "JPEG")
        elif image_id == special["rgba"]:
            path.write_bytes(_image_bytes(_noise_image(*size, k, "RGBA"), "PNG"))
        elif image_id == special["small"]:
            _noise_image(20, 27, k).save(path, "JPEG")
        else:
            _noise_image(*size, k).save(path, "JPEG", quality=90)
    return special


def tid_name(reference, distortion, level):
    return f"i{reference:02d}_{distortion:02d}_{level}.bmp"


def make_tid_tree(root: Path, references=range(1, 26), distortions=range(1, 25), levels=range(1, 6), size=(8, 8)) -> int:
    """The TID2013 layout: label files for every (reference, distortion, level) and the images.

    Names alternate in case (i01_01_1.bmp / I01_01_2.BMP) to exercise case-insensitive lookup.
    Returns the number of label lines.
    """
    for folder in ("distorted_images", "reference_images"):
        (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(1)
    mos_lines, std_lines = [], []
    for reference in references:
        _noise_image(*size, reference).save(root / "reference_images" / f"I{reference:02d}.BMP")
        for distortion in distortions:
            for level in levels:
                name = tid_name(reference, distortion, level)
                mos_lines.append(f"{rng.uniform(0.5, 7.5):.5f} {name}")
                std_lines.append(f"{rng.uniform(0.3, 1.6):.5f}")
                on_disk = name.upper() if level % 2 == 0 else name
                _noise_image(*size, len(mos_lines)).save(root / "distorted_images" / on_disk, "BMP")
    (root / "mos_with_names.txt").write_text("\n".join(mos_lines) + "\n")
    (root / "mos_std.txt").write_text("\n".join(std_lines) + "\n")
    return len(mos_lines)


@pytest.fixture(scope="module")
def ava_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("ava")
    return root, make_ava_tree(root)


@pytest.fixture(scope="module")
def full_tid_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tid2013")
    return root, make_tid_tree(root)


# ---------------------------------------------------------------------------------------------
# AVA


def test_ava_labels_are_normalised_and_malformed_lines_reported_by_number(ava_tree, caplog):
    root, _ = ava_tree
    report = SkipReport()
    with caplog.at_level(logging.WARNING):
        ids, distributions = read_ava_labels(root / "AVA.txt", report)
    assert ids.tolist() == AVA_IDS
    np.testing.assert_allclose(distributions.sum(axis=1), 1.0, rtol=1e-6)
    first = (root / "AVA.txt").read_text().splitlines()[0].split()
    votes = np.array(first[2:12], dtype=float)
    np.testing.assert_allclose(distributions[0], votes / votes.sum(), rtol=1e-6)
    assert [name for name, _ in report.skipped] == ["AVA.txt:4", "AVA.txt:8", "AVA.txt:12"]
    assert "found 13" in report.skipped[0][1] and "non-integer" in report.skipped[1][1] and "no votes" in report.skipped[2][1]
    assert "AVA.txt:8" in caplog.text


def test_ava_vote_counts_overflowing_int64_are_counted_skips(tmp_path):
    good = "1 900010 1 2 3 4 5 6 7 8 9 10 0 0 1396"
    huge = f"2 900011 {2**63} 2 3 4 5 6 7 8 9 10 0 0 1396"                    # one count > int64
    total = f"3 900012 {' '.join([str(2**62)] * 10)} 0 0 1396"                 # each fits, the sum does not
    big_id = f"4 {2**70} 1 2 3 4 5 6 7 8 9 10 0 0 1396"
    (tmp_path / "AVA.txt").write_text("\n".join([good, huge, total, big_id]) + "\n")
    report = SkipReport()
    ids, distributions = read_ava_labels(tmp_path / "AVA.txt", report)
    assert ids.tolist() == [900010] and distributions.shape == (1, 10)
    assert [name for name, _ in report.skipped] == ["AVA.txt:2", "AVA.txt:3", "AVA.txt:4"]
    assert all("does not fit in int64" in reason for _, reason in report.skipped)


def test_missing_images_are_summarised_in_one_warning(tmp_path, caplog):
    make_ava_tree(tmp_path)
    for image_id in AVA_IDS[7:]:
        (tmp_path / "images" / f"{image_id}.jpg").unlink()  # 8 of the 14 labelled images are missing
    with caplog.at_level(logging.WARNING):
        data = load_ava(tmp_path, validation_size=2, seed=2)
    missing = [name for name, reason in data.report.skipped if reason == "missing"]
    assert len(missing) == 8 and len(data.train) + len(data.validation) == 6
    lines = [record.getMessage() for record in caplog.records if "missing" in record.getMessage()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"skipping 8 labelled image(s) missing from {tmp_path}: {', '.join(missing[:5])} and 3 more")


def test_ava_split_is_seeded_and_skips_missing_images(ava_tree):
    root, special = ava_tree
    data = load_ava(root, validation_size=4, seed=3)
    assert len(data.validation) + len(data.train) == len(AVA_IDS) - 1  # one image file is missing
    assert len(data.validation) in (3, 4)
    assert [name for name, reason in data.report.skipped if reason == "missing"] == [f"images/{special['missing']}.jpg"]
    assert data.report.count == 4  # 3 malformed lines + 1 missing file
    again = load_ava(root, validation_size=4, seed=3)
    assert again.validation.paths == data.validation.paths
    other = load_ava(root, validation_size=4, seed=4)
    assert other.validation.paths != data.validation.paths
    assert not set(data.validation.paths) & set(data.train.paths)


def test_ava_paper_split_size_and_bad_arguments(ava_tree, tmp_path):
    root, _ = ava_tree
    assert AVA_PAPER.validation_size == 5000
    with pytest.raises(ValueError, match="validation_size"):
        load_ava(root, validation_size=5000)
    (tmp_path / "AVA.txt").write_text("not an AVA file\n")
    (tmp_path / "images").mkdir()
    with pytest.raises(LabelFileError, match="no usable line"):
        load_ava(tmp_path, validation_size=1)


@pytest.mark.parametrize("dataset", ["ava", "tid2013"])
def test_wrong_data_dir_names_the_expected_files_and_source(dataset, tmp_path):
    with pytest.raises(DatasetLayoutError) as error:
        load_dataset(AVA_PAPER if dataset == "ava" else TID2013_PAPER, tmp_path)
    message = str(error.value)
    expected = {
        "ava": ["AVA.txt", "images/", "Murray", "ava_downloader"],
        "tid2013": ["mos_with_names.txt", "mos_std.txt", "distorted_images/", "reference_images/", "ponomarenko.info"],
    }[dataset]
    for text in expected:
        assert text in message
    assert LAYOUTS[dataset].describe() in message


# ---------------------------------------------------------------------------------------------
# TID2013


def test_gaussian_distributions_sum_to_one_and_keep_the_mean():
    means = np.array([1.24, 2.0, 4.3, 5.5, 7.9, 9.5, 4.3])
    stds = np.array([0.5, 0.9, 0.05, 1.0, 1.3, 0.8, 3.0])
    distributions = gaussian_distribution(means, stds)
    assert distributions.shape == (7, 10) and distributions.dtype == np.float32
    assert (distributions >= 0).all()
    np.testing.assert_allclose(distributions.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(distributions @ np.arange(1, 11), means, atol=1e-5)
    # Mean 5.5 is symmetric, so the location is 5.5 itself: bin i holds P(i - 1/2 < X < i + 1/2)
    # of N(5.5, 1), the end bins also the tails.
    phi = [0.5 * (1 + math.erf((edge - 5.5) / math.sqrt(2))) for edge in np.arange(1.5, 10)]
    expected = np.diff([0.0, *phi, 1.0])
    np.testing.assert_allclose(distributions[3], expected, atol=1e-6)
    assert np.argmax(distributions[2]) == 3  # mean 4.3, tiny std: mass on score 4 (and 5)
    with pytest.raises(ValueError):
        gaussian_distribution([0.5], [1.0])  # outside (1, 10): TID2013 MOS must be shifted first


def test_tid2013_split_is_360_validation_and_2640_training(full_tid_tree):
    root, lines = full_tid_tree
    assert lines == 3000
    data = load_tid2013(root, validation_references=TID2013_PAPER.validation_references)
    assert (len(data.validation), len(data.train)) == (360, 2640)
    assert data.report.count == 0
    assert all(Path(path).name.lower().startswith(("i01_", "i02_", "i03_")) for path in data.validation.paths)
    assert not any(Path(path).name.lower().startswith(("i01_", "i02_", "i03_")) for path in data.train.paths)
    labels = read_tid2013_labels(root, SkipReport())
    mos_by_name = dict(zip(labels.names, labels.mos))
    first = Path(data.validation.paths[0]).name.lower()
    np.testing.assert_allclose(data.validation.mean_scores[0], mos_by_name[first] + 1.0, atol=1e-4)  # [0, 9] -> [1, 10]


def test_tid2013_malformed_lines_and_missing_files(tmp_path):
    make_tid_tree(tmp_path, references=range(1, 6), distortions=range(1, 3), levels=range(1, 3))
    mos = (tmp_path / "mos_with_names.txt").read_text().splitlines()
    std = (tmp_path / "mos_std.txt").read_text().splitlines()
    mos[2] = "5.1"                              # line 3: no file name
    mos[5] = f"12.0 {mos[5].split()[1]}"        # line 6: MOS outside [0, 9]
    std[7] = "n/a"                              # line 8: std not a number
    (tmp_path / "mos_with_names.txt").write_text("\n".join(mos) + "\n")
    (tmp_path / "mos_std.txt").write_text("\n".join(std) + "\n")
    (tmp_path / "distorted_images" / tid_name(5, 2, 1)).unlink()
    data = load_tid2013(tmp_path, validation_references=3)
    names = [name for name, _ in data.report.skipped]
    assert names == [
        "mos_with_names.txt/mos_std.txt line 3",
        "mos_with_names.txt/mos_std.txt line 6",
        "mos_with_names.txt/mos_std.txt line 8",
        f"distorted_images/{tid_name(5, 2, 1)}",
    ]
    assert len(data.validation) + len(data.train) == 20 - 4
    (tmp_path / "mos_std.txt").write_text("\n".join(std[:-1]) + "\n")
    with pytest.raises(LabelFileError, match="20 lines but mos_std.txt has 19"):
        load_tid2013(tmp_path)


def test_tid2013_non_finite_values_and_duplicate_names_are_counted_skips(tmp_path):
    make_tid_tree(tmp_path, references=range(1, 6), distortions=range(1, 3), levels=range(1, 3))
    mos = (tmp_path / "mos_with_names.txt").read_text().splitlines()
    std = (tmp_path / "mos_std.txt").read_text().splitlines()
    std[1] = "inf"                                   # line 2: passed "std > 0" before, NaN loss later
    mos[3] = f"nan {mos[3].split()[1]}"              # line 4
    std[4] = "-inf"                                  # line 5
    mos[9] = f"4.0 {mos[2].split()[1].upper()}"      # line 10: the name of line 3 again (other case)
    (tmp_path / "mos_with_names.txt").write_text("\n".join(mos) + "\n")
    (tmp_path / "mos_std.txt").write_text("\n".join(std) + "\n")
    report = SkipReport()
    labels = read_tid2013_labels(tmp_path, report)
    assert [name for name, _ in report.skipped] == [f"mos_with_names.txt/mos_std.txt line {n}" for n in (2, 4, 5, 10)]
    reasons = [reason for _, reason in report.skipped]
    assert "inf is not a finite number" in reasons[0] and "MOS nan" in reasons[1] and "-inf" in reasons[2]
    assert "labelled twice: lines 3 and 10" in reasons[3]
    assert len(labels.names) == 16 and np.isfinite(labels.std).all() and np.isfinite(labels.mos).all()
    data = load_tid2013(tmp_path, validation_references=3)
    assert len(data.train) + len(data.validation) == 16
    assert np.isfinite(data.train.distributions).all() and np.isfinite(data.validation.distributions).all()


# ---------------------------------------------------------------------------------------------
# Input pipeline


def test_small_images_are_mirror_padded_not_rescaled():
    image = np.arange(6).reshape(2, 3, 1)
    padded = pad_to_size(tf.constant(image), 6).numpy()
    # Centred, then reflected symmetrically (edge pixel repeated), as often as needed.
    np.testing.assert_array_equal(padded, image[[1, 0, 0, 1, 1, 0]][:, [0, 0, 1, 2, 2, 1]])
    large = tf.zeros((50, 60, 3), tf.uint8)
    assert pad_to_size(large, 32).shape == (50, 60, 3)
    crop = centre_crop(tf.reshape(tf.range(64 * 64), (64, 64, 1)), 32).numpy()
    assert crop[0, 0, 0] == 16 * 64 + 16 and crop.shape == (32, 32, 1)


def test_pipeline_decodes_odd_files_and_skips_corrupt_ones_once(ava_tree):
    root, special = ava_tree
    data = load_ava(root, validation_size=4, seed=3)
    images = data.train
    decoder = ImageDecoder(data.report)
    for kind in ("gray", "rgba", "small"):  # converted (or later padded), not skipped
        image = decoder(str(root / "images" / f"{special[kind]}.jpg").encode())
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    before = data.report.count
    stream = training_dataset(images, crop_size=32, batch_size=4, seed=1, decoder=decoder)
    batches = list(stream.take(6))
    for batch_images, distributions in batches:
        assert batch_images.shape == (4, 32, 32, 3) and batch_images.dtype == tf.float32
        assert 0 <= float(tf.reduce_min(batch_images)) and float(tf.reduce_max(batch_images)) <= 255
        np.testing.assert_allclose(tf.reduce_sum(distributions, axis=1), 1.0, rtol=1e-5)
    truncated = f"{special['truncated']}.jpg"
    corrupt_reports = [name for name, _ in data.report.skipped[before:]]
    assert corrupt_reports.count(truncated) == (1 if any(p.endswith(truncated) for p in images.paths) else 0)
    validation = list(validation_dataset(data.validation, crop_size=32, batch_size=8, decoder=decoder))
    readable = len(data.validation) - (1 if any(p.endswith(truncated) for p in data.validation.paths) else 0)
    assert sum(int(b[0].shape[0]) for b in validation) == readable


def test_training_stream_resumes_exactly_and_flips(full_tid_tree):
    root, _ = full_tid_tree
    images = load_tid2013(root).validation.subset(range(6))
    decoder = ImageDecoder(SkipReport())

    def stream(subset, start_step, batch_size=2):
        return training_dataset(subset, crop_size=32, batch_size=batch_size, seed=5, decoder=decoder, start_step=start_step)

    uninterrupted = [b[0].numpy() for b in stream(images, 0).take(5)]
    resumed = [b[0].numpy() for b in stream(images, 3).take(2)]
    np.testing.assert_array_equal(resumed[0], uninterrupted[3])
    np.testing.assert_array_equal(resumed[1], uninterrupted[4])
    # One 8x8 image padded to exactly 32x32: every crop is the whole image, flipped or not.
    one = images.subset([0])
    padded = validation_dataset(one, crop_size=32, batch_size=1, decoder=decoder).get_single_element()[0][0].numpy()
    samples = next(iter(stream(one, 0, batch_size=16)))[0].numpy()
    flipped = [bool(np.array_equal(sample, padded[:, ::-1])) for sample in samples]
    assert all(f or np.array_equal(sample, padded) for f, sample in zip(flipped, samples))
    assert 0 < sum(flipped) < 16
