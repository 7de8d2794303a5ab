"""The HTML evaluation report: self-contained, rendered by headless Chromium, slider working."""

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from eusr_perceptual.evaluation.plots import most_textured_box
from eusr_perceptual.evaluation.report import ReportSection, ZOOM_PIXELS, png_data_uri, write_report
from eusr_perceptual.evaluation.runner import SummaryRow
from eusr_perceptual.resize import imresize

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs the Debian package chromium (apt-get install -y chromium) at /usr/bin/chromium"
)

# Appended to a copy of the report: after loading, records what a person would see, moves the
# slider, changes the left image, and writes the observations into the DOM for --dump-dom.
SELF_TEST = """
<script>
window.addEventListener('load', () => {
  const section = document.querySelector('section.comparison');
  const over = section.querySelector('.view.whole img.over');
  const zoomOver = section.querySelector('.view.zoom img.over');
  const slider = section.querySelector('.slider');
  const state = {
    images: Array.from(document.images).map(img => ({alt: img.alt, width: img.naturalWidth, complete: img.complete})),
    before: over.style.clipPath,
    zoomBefore: zoomOver.style.clipPath,
    leftBefore: over.src === section.querySelector("img.source[data-label='bicubic']").src,
  };
  slider.value = 20;
  slider.dispatchEvent(new Event('input'));
  state.after = over.style.clipPath;
  state.zoomAfter = zoomOver.style.clipPath;
  state.divider = section.querySelector('.view.zoom .divider').style.left;
  const left = section.querySelector('select.left');
  left.value = 'HR';
  left.dispatchEvent(new Event('change'));
  state.leftAfter = over.src === section.querySelector("img.source[data-label='HR']").src;
  state.zoomTransform = zoomOver.style.transform;
  const pre = document.createElement('pre');
  pre.id = 'selftest';
  pre.textContent = JSON.stringify(state);
  document.body.appendChild(pre);
});
</script>
"""


def _chromium(*arguments: str, profile: Path) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--virtual-time-budget=10000"]
    return subprocess.run([str(CHROMIUM), *flags, *arguments], capture_output=True, text=True, timeout=90)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A report of one dataset with one image: bicubic (added from LR), a 'model', and HR."""
    folder = tmp_path_factory.mktemp("report")
    hr = skimage.data.astronaut()[96:192, 160:256]  # 96x96, the face and hair
    lr = imresize(hr, scale=0.25)
    model = np.clip(hr.astype(int) + 12, 0, 255).astype(np.uint8)  # stands for a model's output
    rows = [SummaryRow("bicubic", 1, 25.5, 0.75, 7.0, None, 1), SummaryRow("tiny <eusr>", 1, 26.25, 0.8, 6.5, None, 1)]
    plot = folder / "plot.png"
    Image.fromarray(np.full((40, 60, 3), 200, np.uint8)).save(plot)
    section = ReportSection("skimage", "skimage x4 (Y channel)", rows, "no LPIPS weights given", 0,
                            {"astronaut": {"LR": lr, "HR": hr, "tiny <eusr>": model}})
    path = write_report(folder / "report.html", [section], plot=plot)
    return path, hr, model, lr


def test_report_is_self_contained_with_tables_plot_and_every_choice(report):
    path, hr, model, lr = report
    page = path.read_text()
    assert "http://" not in page and "https://" not in page and "<link" not in page
    assert "<td>tiny &lt;eusr&gt;</td><td>1</td><td>26.2500</td><td>0.8000</td><td>6.5000</td><td>n/a</td>" in page
    assert "LPIPS n/a: no LPIPS weights given" in page
    sources = dict(re.findall(r"<img class='source' data-label='([^']+)' alt='[^']+' src='([^']+)'>", page))
    assert list(sources) == ["bicubic", "tiny &lt;eusr&gt;", "HR"]  # bicubic added from LR, HR last
    assert sources["HR"] == png_data_uri(hr) and sources["tiny &lt;eusr&gt;"] == png_data_uri(model)
    assert sources["bicubic"] == png_data_uri(imresize(lr, output_shape=(96, 96)))
    box = json.loads(re.search(r"data-box='([^']+)'", page).group(1))
    assert (box["top"], box["left"], box["size"]) == most_textured_box(hr, 24)
    assert page.count("data:image/png;base64,") == 4  # three choices and the plot


@needs_chromium
def test_report_renders_in_chromium_and_the_slider_moves(report, tmp_path):
    path, hr, _, _ = report
    checked = tmp_path / "checked.html"
    checked.write_text(path.read_text().replace("</body>", SELF_TEST + "</body>"))
    dom = _chromium("--dump-dom", checked.as_uri(), profile=tmp_path / "profile")
    assert dom.returncode == 0, dom.stderr[-2000:]
    state = json.loads(re.search(r'<pre id="selftest">(.*?)</pre>', dom.stdout, re.S).group(1).replace("&quot;", '"'))
    # 3 hidden sources, the plot, and under/over in the whole and the zoomed view
    assert len(state["images"]) == 8 and all(image["complete"] and image["width"] > 0 for image in state["images"])
    assert sorted({image["width"] for image in state["images"]}) == [60, 96]
    assert state["before"] == "inset(0px 50% 0px 0px)" and state["after"] == "inset(0px 80% 0px 0px)"
    top, left, size = most_textured_box(hr, 24)
    scale = ZOOM_PIXELS / size
    for key, percent in (("zoomBefore", 50), ("zoomAfter", 20)):
        cut = 96 * scale - (left + size * percent / 100) * scale
        assert state[key] == f"inset(0px {cut:g}px 0px 0px)"
    assert state["divider"] == "20%" and state["leftBefore"] and state["leftAfter"]
    assert state["zoomTransform"] == f"translate({-left * scale:g}px, {-top * scale:g}px)"

    screenshot = tmp_path / "report.png"
    shot = _chromium(f"--screenshot={screenshot}", "--window-size=1100,1400", path.as_uri(), profile=tmp_path / "profile")
    assert shot.returncode == 0 and screenshot.is_file(), shot.stderr[-2000:]
    pixels = np.asarray(Image.open(screenshot).convert("RGB")).astype(int)
    assert pixels.shape == (1400, 1100, 3)
    # the page is not blank: photograph colours appear, and the yellow divider is drawn
    assert pixels.std() > 20
    assert ((pixels[..., 0] > 230) & (pixels[..., 1] > 230) & (pixels[..., 2] < 30)).sum() > 50


def test_evaluate_report_flag_writes_the_page(tmp_path, capsys):
    """``eusr-evaluate --report``: bicubic and a tiny EUSR on a folder of two HR images."""
    import keras

    from eusr_perceptual.cli import evaluate
    from eusr_perceptual.models.eusr import EUSR, EUSRConfig

    data = tmp_path / "tiny_set"
    data.mkdir()
    photo = skimage.data.chelsea()
    Image.fromarray(photo[100:148, 150:198]).save(data / "cat.png")
    Image.fromarray(photo[200:240, 250:306]).save(data / "fur.png")
    keras.utils.set_random_seed(3)
    model = EUSR(EUSRConfig(channels=8, shared_blocks=1, scales=(4,)))
    model.build()
    model.save(tmp_path / "tiny.keras")
    out = tmp_path / "evaluation"
    argv = ["--model", "bicubic", "--model", f"tiny={tmp_path / 'tiny.keras'}", "--data", str(data), "--out", str(out), "--report", "--quiet"]
    assert evaluate.main(argv) == 0
    page = (out / "report.html").read_text()
    assert f"report: {out / 'report.html'}" in capsys.readouterr().out
    assert page.count("<section class='comparison'") == 2 and "tiny_set / cat" in page and "tiny_set / fur" in page
    labels = re.findall(r"<img class='source' data-label='([^']+)'", page)
    assert labels == ["bicubic", "tiny", "HR"] * 2
    assert page.count("<tr><td>") == 2 and "perception-distortion plot" in page
    assert not list(out.glob("crops_*.png"))  # crop figures only for --crops
