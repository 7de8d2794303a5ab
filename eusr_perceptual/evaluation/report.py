"""One self-contained HTML page of an evaluation: ``report.html``.

What ``scripts/evaluate.py --report`` writes beside its tables: the metric table of every
dataset (as :func:`eusr_perceptual.evaluation.tables.format_table`, with its notes), the
perception-distortion plot (:func:`eusr_perceptual.evaluation.plots.plot_perception_distortion`),
and per kept image a before/after comparison: two images chosen among bicubic, every model and
HR, one over the other, and a slider that moves the boundary. Below the whole image, the same
comparison zoomed (nearest neighbour) on the most textured square
(:func:`eusr_perceptual.evaluation.plots.most_textured_box`); both views follow the one
slider, and a click on the whole image moves the zoomed square (outlined in red) there.

Images are embedded as PNG data URIs and the script is inline, so the file opens offline
and can be mailed as it is; its size is about the PNG size of every kept image times the
number of methods plus one (HR).
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from PIL import Image

from eusr_perceptual.evaluation.plots import most_textured_box
from eusr_perceptual.evaluation.runner import SummaryRow
from eusr_perceptual.evaluation.tables import COLUMNS, _cells, table_notes
from eusr_perceptual.resize import imresize

__all__ = ["ReportSection", "ZOOM_PIXELS", "png_data_uri", "write_report"]

#: Side of the zoomed view on the page, in CSS pixels.
ZOOM_PIXELS = 360
#: Label of the MATLAB-bicubic baseline (added from the LR image when no method has it).
BICUBIC = "bicubic"


@dataclass(frozen=True)
class ReportSection:
    """One dataset of the report.

    Attributes:
        dataset: the dataset's name.
        title: the table title (e.g. ``DatasetResult.title``).
        rows: the summary rows (:func:`eusr_perceptual.evaluation.runner.summarize`).
        lpips_reason: why LPIPS is n/a, or None.
        skipped: images skipped in the dataset.
        images: image name -> ``{"LR": ..., "HR": ..., method label: SR image, ...}``, uint8
            (``DatasetResult.kept``).
    """

    dataset: str
    title: str
    rows: Sequence[SummaryRow]
    lpips_reason: str | None = None
    skipped: int = 0
    images: Mapping[str, Mapping[str, np.ndarray]] = ()


def png_data_uri(image: np.ndarray | bytes) -> str:
    """``data:image/png;base64,...`` of a uint8 image (or of PNG file bytes)."""
    if isinstance(image, np.ndarray):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        image = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(image).decode("ascii")


def _table(section: ReportSection) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(row, section.lpips_reason)) + "</tr>"
        for row in section.rows
    )
    notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in table_notes(section.rows, section.lpips_reason, section.skipped))
    return f"<h2>{html.escape(section.title)}</h2><table><tr>{head}</tr>{body}</table>{notes}"


def _comparison(dataset: str, name: str, images: Mapping[str, np.ndarray]) -> str:
    """The slider comparison of one image: the choices (bicubic, models, HR) and the views."""
    hr = images["HR"]
    choices = {label: image for label, image in images.items() if label not in ("LR", "HR")}
    if BICUBIC not in choices and "LR" in images:
        choices = {BICUBIC: imresize(images["LR"], output_shape=hr.shape[:2]), **choices}
    choices["HR"] = hr
    labels = list(choices)
    top, left, size = most_textured_box(hr, max(16, min(hr.shape[:2]) // 4))
    library = "".join(
        f"<img class='source' data-label='{html.escape(label)}' alt='{html.escape(label)}' src='{png_data_uri(image)}'>"
        for label, image in choices.items()
    )

    def select(side: str, chosen: str) -> str:
        options = "".join(f"<option{' selected' if label == chosen else ''}>{html.escape(label)}</option>" for label in labels)
        return f"<label>{side} <select class='{side}'>{options}</select></label>"

    box = json.dumps({"top": top, "left": left, "size": size, "width": hr.shape[1], "height": hr.shape[0]})
    views = "".join(
        f"<div class='view {kind}'><img class='under' alt=''><img class='over' alt=''><div class='divider'></div></div>"
        for kind in ("whole", "zoom")
    )
    return (
        f"<section class='comparison' data-box='{box}'><h3>{html.escape(dataset)} / {html.escape(name)} "
        f"<small>{hr.shape[1]}x{hr.shape[0]}</small></h3><div class='library'>{library}</div>"
        f"<div class='controls'>{select('left', labels[0])}{select('right', labels[-2] if len(labels) > 2 else labels[-1])}"
        f"<input class='slider' type='range' min='0' max='100' step='0.5' value='50'></div>{views}</section>"
    )


_STYLE = f"""
body {{ font-family: sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin: 8px 0; }}
th, td {{ border: 1px solid #bbb; padding: 3px 8px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
.note {{ font-size: 12px; color: #555; margin: 2px 0; }}
.plot {{ max-width: 100%; }}
.library {{ display: none; }}
.controls {{ display: flex; gap: 16px; align-items: center; margin: 6px 0; }}
.slider {{ width: 320px; }}
.view {{ position: relative; overflow: hidden; display: inline-block; vertical-align: top; margin: 0 12px 12px 0; }}
.view img {{ position: absolute; left: 0; top: 0; transform-origin: 0 0; image-rendering: pixelated; }}
.view.whole {{ cursor: crosshair; }}
.view.zoom {{ width: {ZOOM_PIXELS}px; height: {ZOOM_PIXELS}px; outline: 1px solid #999; }}
.divider {{ position: absolute; top: 0; bottom: 0; width: 2px; background: #ff0; pointer-events: none; }}
.marker {{ position: absolute; border: 2px solid red; pointer-events: none; box-sizing: border-box; }}
"""

# Each comparison: the right image under, the left image over it clipped at the slider.
_SCRIPT = f"""
const ZOOM = {ZOOM_PIXELS};
function setUp(section) {{
  const box = JSON.parse(section.dataset.box);
  const sources = {{}};
  section.querySelectorAll('img.source').forEach(img => sources[img.dataset.label] = img.src);
  const whole = section.querySelector('.view.whole'), zoom = section.querySelector('.view.zoom');
  const slider = section.querySelector('.slider');
  const left = section.querySelector('select.left'), right = section.querySelector('select.right');
  const shown = Math.min(640 / box.width, 4);  // scale of the whole view: 640 px wide, small images 4x at most
  whole.style.width = (box.width * shown) + 'px';
  whole.style.height = (box.height * shown) + 'px';
  const marker = document.createElement('div');
  marker.className = 'marker';
  whole.appendChild(marker);
  function place() {{
    const scale = ZOOM / box.size;
    whole.querySelectorAll('img').forEach(img => {{ img.style.width = (box.width * shown) + 'px'; }});
    zoom.querySelectorAll('img').forEach(img => {{
      img.style.width = (box.width * scale) + 'px';
      img.style.transform = 'translate(' + (-box.left * scale) + 'px,' + (-box.top * scale) + 'px)';
    }});
    marker.style.left = (box.left * shown) + 'px';
    marker.style.top = (box.top * shown) + 'px';
    marker.style.width = marker.style.height = (box.size * shown) + 'px';
  }}
  function choose() {{
    section.querySelectorAll('img.under').forEach(img => img.src = sources[right.value]);
    section.querySelectorAll('img.over').forEach(img => img.src = sources[left.value]);
  }}
  // The boundary is at the slider's percentage of the whole image, and of the zoomed square.
  function slide() {{
    const percent = Number(slider.value), scale = ZOOM / box.size;
    whole.querySelector('img.over').style.clipPath = 'inset(0 ' + (100 - percent) + '% 0 0)';
    const cut = (box.left + box.size * percent / 100) * scale;  // in the zoomed image's own pixels
    zoom.querySelector('img.over').style.clipPath = 'inset(0 ' + (box.width * scale - cut) + 'px 0 0)';
    section.querySelectorAll('.divider').forEach(line => line.style.left = percent + '%');
  }}
  whole.addEventListener('click', event => {{
    const rect = whole.getBoundingClientRect();
    const x = (event.clientX - rect.left) / shown, y = (event.clientY - rect.top) / shown;
    box.left = Math.round(Math.min(Math.max(x - box.size / 2, 0), box.width - box.size));
    box.top = Math.round(Math.min(Math.max(y - box.size / 2, 0), box.height - box.size));
    place(); slide();
  }});
  slider.addEventListener('input', slide);
  left.addEventListener('change', choose);
  right.addEventListener('change', choose);
  choose(); place(); slide();
}}
document.querySelectorAll('section.comparison').forEach(setUp);
"""


def write_report(
    path: str | Path,
    sections: Sequence[ReportSection],
    plot: str | Path | None = None,
    title: str = "Super-resolution evaluation",
) -> Path:
    """Writes the self-contained report; returns its path.

    Args:
        path: the HTML file to write.
        sections: one per dataset, in page order.
        plot: a PNG (the perception-distortion plot) to embed, or None.
        title: the page title.
    """
    parts = [f"<h1>{html.escape(title)}</h1>"]
    parts += [_table(section) for section in sections]
    if plot is not None:
        parts.append(f"<h2>Perception-distortion</h2><img class='plot' alt='perception-distortion plot' "
                     f"src='{png_data_uri(Path(plot).read_bytes())}'>")
    comparisons = [_comparison(section.dataset, name, images) for section in sections for name, images in section.images.items()]
    if comparisons:
        parts.append("<h2>Comparisons</h2><p class='note'>Choose the left and right images; drag the slider to move "
                     "the boundary; click the whole image to move the zoomed square (red).</p>")
        parts += comparisons
    page = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(parts)}<script>{_SCRIPT}</script></body></html>"
    )
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path
