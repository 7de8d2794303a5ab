"""The table every training run ends with, made by the same code as ``eusr-evaluate``
(:mod:`eusr_perceptual.evaluation`): MATLAB-bicubic LR of held-out images, every method rounded to
uint8, PSNR/SSIM/NIQE on Y with a 4-px border (LPIPS when weights are given), one section per scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from eusr_perceptual.evaluation.benchmarks import discover_benchmark
from eusr_perceptual.evaluation.runner import Method, evaluate_dataset, summarize
from eusr_perceptual.evaluation.tables import format_table
from eusr_perceptual.metrics.lpips import LPIPSUnavailable, load_lpips
from eusr_perceptual.resize import DEFAULT_RESIZE_CONVENTION

@dataclass
class Sections:
    """The text tables of every section and their summary rows by section name (for plots)."""

    text: str
    summaries: dict


#: Labels of 4PP-EUSR's three x4 routes (Table 3).
ROUTES = {"x4": "x4", "x2x2": "x2-x2", "x8down": "x8-down"}


def scale_sections(eval_data: str, sections: Sequence[tuple[int, Sequence[Method]]], run_dir: Path,
                   caption: str, lpips_weights: Path | None = None,
                   lr_convention: str = DEFAULT_RESIZE_CONVENTION) -> Sections:
    """Scores each ``(scale, methods)`` section on ``eval_data`` and writes ``evaluation.md``."""
    try:
        lpips, lpips_reason = load_lpips(lpips_weights), None
    except LPIPSUnavailable as error:
        lpips, lpips_reason = None, str(error).split(":")[0]
    texts, markdown, summaries = [], [], {}
    for scale, methods in sections:
        benchmark = discover_benchmark(eval_data, scale)
        result = evaluate_dataset(benchmark, methods, lpips=lpips, progress=False, lr_convention=lr_convention)
        rows = summarize(result)
        summaries[f"{benchmark.name} x{scale}"] = rows
        title = f"{caption}: {result.title}"
        texts.append(format_table(title, rows, lpips_reason, result.skips.count))
        markdown.append(format_table(title, rows, lpips_reason, result.skips.count, markdown=True))
    (Path(run_dir) / "evaluation.md").write_text("\n".join(markdown))
    return Sections("\n".join(texts), summaries)


def final_table(config, generator, eval_data: str, run_dir: Path, baseline=None) -> str:
    """Bicubic and the trained generator on the trained path; for 4PP-EUSR's multi-pass runs,
    Table 3: the three x4 routes of the pretrained ``baseline`` and of the fine-tuned model."""
    scale = config.scale
    methods = [Method("bicubic", f"x{scale}")]
    if config.producer == "multipass":
        for label, model in (("EUSR", baseline), ("4PP-EUSR", generator)):
            if model is not None:
                methods += [Method(f"{label} {name}", route, model) for route, name in ROUTES.items()]
        caption = "routes of the pretrained and the fine-tuned model"
    else:
        methods.append(Method("trained", f"x{scale}", generator))
        caption = "the trained generator against bicubic"
    return scale_sections(eval_data, [(scale, methods)], run_dir, caption, lr_convention=config.lr_convention).text
