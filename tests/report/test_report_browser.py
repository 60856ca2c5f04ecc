"""The report in a real headless browser (Debian's chromium): it loads, shows its figures, no broken image.

A copy of the page gets a small script that, once the page has loaded, writes each
``<img>``'s ``complete`` flag and ``naturalWidth`` into the DOM as JSON; chromium's
``--dump-dom`` then prints the DOM and the test parses it. A broken image (bad data
URI, missing file) has ``naturalWidth == 0``. A screenshot checks that something is
painted at all.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from whaleflow.report import build_report

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)

PROBE = """<script>
window.addEventListener('load', function () {
  var out = Array.prototype.map.call(document.images, function (im) {
    return {alt: im.alt, complete: im.complete, w: im.naturalWidth, h: im.naturalHeight};
  });
  var pre = document.createElement('pre');
  pre.id = 'img-probe';
  pre.textContent = JSON.stringify({title: document.title, sections: document.querySelectorAll('section').length,
                                    images: out});
  document.body.appendChild(pre);
});
</script>"""


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_report_opens_in_headless_chromium(fake_run, tmp_path):
    index = build_report(fake_run)
    html = index.read_text(encoding="utf-8")
    n_img = html.count("<img ")
    probe = index.with_name("probe.html")  # beside index.html, so relative sources resolve alike
    probe.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")

    res = _chromium(["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], tmp_path / "profile1")
    assert res.returncode == 0, res.stderr[-2000:]
    m = re.search(r'<pre id="img-probe">(.*?)</pre>', res.stdout, re.S)
    assert m, "the page did not finish loading (no probe output in the DOM)"
    found = json.loads(m.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
                       .replace("&amp;", "&"))
    assert found["title"] == "whaleflow run report"
    assert found["sections"] == 8  # models, ensemble, gallery sizes, how sure, curves, failures, data, run
    images = found["images"]
    assert len(images) == n_img
    broken = [im for im in images if not im["complete"] or im["w"] == 0]
    assert not broken, f"broken images: {broken[:5]}"
    alts = {im["alt"] for im in images}
    for alt in ("MAP@5 per model", "blend weights", "threshold curve", "position of the truth",
                "training curves of metric_r50", "data split"):
        assert alt in alts, alt

    shot = tmp_path / "shot.png"
    res = _chromium(["--hide-scrollbars", "--window-size=1280,2000", f"--screenshot={shot}", index.as_uri()],
                    tmp_path / "profile2")
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    with Image.open(shot) as im:
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.shape[:2] == (2000, 1280)
    assert len(np.unique(pixels.reshape(-1, 3)[::97], axis=0)) > 50  # a painted page, not a blank one
    probe.unlink()
