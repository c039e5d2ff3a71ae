"""The report, designs and neural pages in headless Chromium at 1400 and 420 px: no horizontal page
overflow, the verdict sentence above the first figure, every image loads, no external resource;
screenshots written to the output folder (``BAYESID_TEST_OUTPUT``, default a pytest temporary folder).

Needs Debian's ``chromium`` (``apt-get install -y chromium``); skipped with that message where absent.
The same content checks run without a browser in ``test_report.py`` (fast suite); here the report page
(both widths) and the overflow negative control are in the slice that ``make test`` runs, the designs
and neural pages in ``make test-all``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import _report_pages as rp

WIDTHS = (1400, 420)
MEASURE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var head = document.querySelector('.headline li, .headline .lead');
  var first = document.querySelector('img');
  var top = function (e) { return e.getBoundingClientRect().top + window.scrollY; };
  var r = {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
           images: imgs.length,
           broken: imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).length,
           headlineTop: head ? top(head) : -1, firstImageTop: first ? top(first) : 1e9,
           headlineText: head ? head.textContent : '',
           resources: performance.getEntriesByType('resource').map(function (e) { return e.name; })
             .filter(function (n) { return n.indexOf('data:') !== 0; })};
  if (window.parent !== window) { window.parent.postMessage(JSON.stringify(r), '*'); return; }
  var pre = document.createElement('pre');
  pre.id = 'bayesid-measure';
  pre.textContent = JSON.stringify(r);
  document.body.appendChild(pre);
});
</script>"""
# headless Chromium's window is at least 500 px wide: narrower viewports are an iframe of that width (its
# media queries and overflow are those of a phone screen), which reports its measurement by postMessage
FRAME = """<!DOCTYPE html><html><head><meta charset="utf-8"><style>body{{margin:0}}iframe{{border:0}}</style>
</head><body><iframe src="{src}" style="width:{w}px;height:{h}px"></iframe>
<script>window.addEventListener('message', function (e) {{
  var pre = document.createElement('pre'); pre.id = 'bayesid-measure'; pre.textContent = e.data;
  document.body.appendChild(pre); }});</script></body></html>"""
MIN_WINDOW = 500


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


pytestmark = pytest.mark.skipif(chromium() is None, reason=(
    "headless Chromium not found: install it with 'apt-get install -y chromium' (Debian) to run the browser "
    "checks; the same content checks run without a browser in tests/test_report.py"))


def _run(args, timeout=120):
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           "--disable-extensions", "--user-data-dir=" + os.environ.get("TMPDIR", "/tmp") + "/bayesid-chromium",
           *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def measure(page: Path, width: int, height: int = 900) -> dict:
    """Open a copy of ``page`` with a measuring script injected; return what it wrote into the DOM."""
    probe = page.with_name(page.stem + f".probe{width}.html")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    target, frame = probe, None
    if width < MIN_WINDOW:
        frame = page.with_name(page.stem + f".frame{width}.html")
        frame.write_text(FRAME.format(src=probe.name, w=width, h=height), encoding="utf-8")
        target = frame
    r = _run([f"--window-size={max(width, MIN_WINDOW)},{height}", "--virtual-time-budget=10000",
              "--allow-file-access-from-files", "--dump-dom", target.as_uri()])
    probe.unlink()
    if frame is not None:
        frame.unlink()
    m = re.search(r'<pre id="bayesid-measure">(.*?)</pre>', r.stdout, re.S)
    assert m, f"chromium wrote no measurement (rc {r.returncode}): {r.stderr[-500:]}"
    import html

    return json.loads(html.unescape(m.group(1)))


def screenshot(page: Path, out: Path, width: int, height: int = 1000) -> Path:
    target = page
    if width < MIN_WINDOW:
        target = page.with_name(page.stem + f".frame{width}.html")
        target.write_text(FRAME.format(src=page.name, w=width, h=height).replace(
            "<script>", "<script>//").replace("}});</script>", "</script>"), encoding="utf-8")
    r = _run([f"--window-size={max(width, MIN_WINDOW)},{height}", f"--screenshot={out}",
              "--virtual-time-budget=10000", "--allow-file-access-from-files", target.as_uri()])
    assert out.exists() and out.stat().st_size > 0, r.stderr[-500:]
    return out


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = Path(os.environ.get("BAYESID_TEST_OUTPUT") or tmp_path_factory.mktemp("browser"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder, rp.pages(folder)


_CASES = [pytest.param(n, w, marks=[pytest.mark.slow, pytest.mark.slice] if n == "report" else [pytest.mark.slow])
          for n in ("report", "designs", "neural") for w in WIDTHS]


@pytest.mark.parametrize("name, width", _CASES)
def test_page_in_headless_chromium(written, name, width):
    folder, pages = written
    m = measure(pages[name], width)
    assert m["innerWidth"] <= width
    assert m["scrollWidth"] <= m["innerWidth"], f"{name} at {width}px overflows horizontally: {m}"
    assert m["images"] >= 1 and m["broken"] == 0, m
    assert 0 <= m["headlineTop"] < m["firstImageTop"], f"verdict sentence below the first figure: {m}"
    assert m["resources"] == [], f"external resources: {m['resources']}"
    shot = screenshot(pages[name], folder / f"{name}-{width}px.png", width)
    print(f"screenshot: {shot}")


@pytest.mark.slow
@pytest.mark.slice
def test_negative_control_overflow_is_detected(written, tmp_path):
    """A page with a 2000 px wide element does overflow at 420 px: the measurement can fail."""
    folder, pages = written
    bad = tmp_path / "bad.html"
    bad.write_text(pages["designs"].read_text(encoding="utf-8").replace(
        "<main>", '<main><div style="width:2000px;height:10px"></div>'), encoding="utf-8")
    m = measure(bad, 420)
    assert m["scrollWidth"] > m["innerWidth"]
