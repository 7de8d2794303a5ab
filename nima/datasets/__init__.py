"""The two score datasets of 4PP-EUSR section 3.4: AVA (aesthetic) and TID2013 (subjective)."""

from __future__ import annotations

from pathlib import Path

from eusr_perceptual.data.images import SkipReport
from nima.config import NimaConfig
from nima.datasets import ava, tid2013
from nima.datasets.common import DatasetLayoutError, LabelFileError, ScoreDataset, ScoredImages

LAYOUTS = {"ava": ava.LAYOUT, "tid2013": tid2013.LAYOUT}


def load_dataset(config: NimaConfig, data_dir: str | Path, report: SkipReport | None = None) -> ScoreDataset:
    """The training/validation split of ``config.dataset`` in ``data_dir`` (section 4.2)."""
    if config.dataset == "ava":
        return ava.load_ava(data_dir, validation_size=config.validation_size, seed=config.seed, report=report)
    return tid2013.load_tid2013(data_dir, validation_references=config.validation_references, report=report)


__all__ = ["LAYOUTS", "DatasetLayoutError", "LabelFileError", "ScoreDataset", "ScoredImages", "load_dataset"]
