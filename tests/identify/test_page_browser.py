"""The review page in a real headless browser (Debian's chromium): photos load, clicks record
decisions, export writes the CSV that enroll reads.

A copy of ``matches.html`` gets a script that, after load, clicks like a person would
(accept the first candidate of the first photo, name the second a new individual, skip the
third), presses "Export decisions" and writes the exported CSV and every image's
``naturalWidth`` into the DOM; ``--dump-dom`` prints it.
"""
from __future__ import annotations

import html
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from whaleflow.identify import enroll, identify

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)

CLICKS = """<script>
window.addEventListener('load', function () {
  var rows = document.querySelectorAll('.qrow');
  rows[0].querySelector('button[data-act=accept]').click();
  rows[1].querySelector('input.newname').value = 'zz_page_new';
  rows[1].querySelector('button[data-act=new]').click();
  rows[2].querySelector('button[data-act=skip]').click();
  document.getElementById('export').click();
  var pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify({
    csv: document.getElementById('decisions-csv').value,
    order: Array.prototype.map.call(rows, function (r) { return r.dataset.image; }),
    accepted: rows[0].querySelector('button[data-act=accept]').dataset.id,
    status: Array.prototype.map.call(rows, function (r) { return r.querySelector('.status').textContent; }),
    count: document.getElementById('count').textContent,
    images: Array.prototype.map.call(document.images, function (im) { return im.naturalWidth; })});
  document.body.appendChild(pre);
});
</script>"""


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_review_page_records_clicks_and_exports_what_enroll_reads(run_copy, tmp_path):
    run, data = run_copy
    photos = sorted((data / "test").glob("*.jpg"))[:4]
    m = identify(run, photos, out=tmp_path / "matches.csv", boxes=data / "boxes.csv", device="cpu")
    page = m.page.read_text(encoding="utf-8")
    assert page.count('class="qrow"') == 4 and "<script>" in page and "http" not in page.split("<script>")[1]
    probe = m.page.with_name("probe.html")
    probe.write_text(page.replace("</body>", CLICKS + "</body>"), encoding="utf-8")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'prof'}",
           "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', res.stdout, re.S)
    assert found, "the page's script did not run"
    got = json.loads(html.unescape(found.group(1)))
    assert all(w > 0 for w in got["images"]) and len(got["images"]) >= 4 * 2
    # least certain first: by the calibrated probability that the top candidate is right
    certainty = m.frame.set_index("image").loc[got["order"], "p_correct"].tolist()
    assert certainty == sorted(certainty), "least certain first"
    assert got["count"] == "3"
    assert got["status"][:3] == [f"accepted {got['accepted']}", "new individual zz_page_new", "skipped"]
    decisions = pd.read_csv(io.StringIO(got["csv"]), dtype=str, keep_default_na=False)
    assert list(decisions.columns) == ["image", "path", "decision", "id"]
    assert list(decisions["decision"]) == ["accept", "new", "skip"]
    assert list(decisions["image"]) == got["order"][:3]
    assert decisions["id"].tolist()[:2] == [got["accepted"], "zz_page_new"]
    csv_path = tmp_path / "decisions.csv"
    csv_path.write_text(got["csv"])
    result = enroll(run, csv_path, boxes=data / "boxes.csv", device="cpu")
    assert len(result.added) == 2 and result.new_ids == ["zz_page_new"] and result.undecided == 1
