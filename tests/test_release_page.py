"""The release page (reports/index.html) of a real small release with its real validation
results and analysis reports, rendered in headless Chromium: it draws something, and makes
no network request (Chromium's own network log says so; a control page proves the log
would show one)."""
from __future__ import annotations

import csv
import html
import http.server
import json
import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from cnn_filter_db.analysis.pipeline import analyze
from cnn_filter_db.release import build_release
from cnn_filter_db.release_page import NULL, render, write_page
from cnn_filter_db.validate import validate_release

PARAMS = {"redistributable_licenses": ["MIT", "Apache-2.0", "AGPL-3.0"], "hub_repo_id": "test-org/cnn-filter-db"}


@pytest.fixture(scope="module")
def built(small_release, tmp_path_factory, root):
    """The small release, finished, validated and analysed; its reports folder."""
    base = tmp_path_factory.mktemp("page")
    rel = base / "dist" / "cnn-filter-db"
    shutil.copytree(small_release, rel)
    reports = base / "reports"
    analyze(rel, reports, {"bootstrap": 20, "model_plots": False, "groupings": ["task", "trained"]})
    build_release(rel, "0.1.0", PARAMS, root=root)
    validate_release(rel, reports / "validation", root=root, data_docs=False)
    # the null-reference columns the analysis may add: shown whatever columns exist, nulls as such
    drift = reports / "drift" / "task.csv"
    rows = list(csv.reader(drift.open()))
    rows[0].append("d_null")
    for i, row in enumerate(rows[1:]):
        row.append("" if i % 2 else "0.0123")
    with drift.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    page = write_page(rel, reports, repo_id=PARAMS["hub_repo_id"])
    return rel, reports, page


def test_page_content(built):
    rel, reports, page = built
    text = page.read_text()
    models = pq.read_table(rel / "models").to_pylist()
    for r in models:  # each model with its licence
        row = re.search(rf"<tr><td>{re.escape(r['model_id'])}</td>.*?</tr>", text).group(0)
        assert f"<td>{r['license']}</td>" in row
    total = sum(r["n_filters"] for r in models)
    assert f"<b>{total:,}</b>filters" in text
    v = json.loads((reports / "validation" / "metrics.json").read_text())
    assert f"{v['evaluated_expectations']} expectations evaluated" in text and "passed" in text
    pngs = sorted((reports / "plots").glob("*.png"))
    assert pngs and text.count('src="data:image/png;base64,') == len(pngs)
    # every drift table with every column, nulls visible
    for f in (reports / "drift").glob("*.csv"):
        header = next(csv.reader(f.open()))
        assert f"<h3>{f.stem}</h3>" in text
        assert all(f"<th>{h}</th>" in text for h in header)
    assert "<th>d_null</th>" in text and f'<td class="null">{NULL}</td>' in text
    assert 'load_dataset("test-org/cnn-filter-db", "models", revision="v0.1.0")' in html.unescape(text)
    assert "dvc get" in text
    # self-contained: no script, no stylesheet link, nothing fetched from anywhere
    assert "<script" not in text and "<link" not in text
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", text)
    assert "default-src 'none'" in text


def test_card_links_the_page(built):
    rel, _, _ = built
    assert "reports/index.html" in (rel / "README.md").read_text()


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:  # .ci/run installs it; skipped only where it cannot be installed
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def _render(html: Path, out: Path) -> tuple[Path, list[str]]:
    """Screenshot of ``html`` and the URLs the page itself requested, from Chromium's network
    log: requests made for a document carry its initiator; the browser's own background
    requests (clock, accounts) carry "not an origin" and are not the page's doing."""
    shot, netlog = out / "shot.png", out / "netlog.json"
    proc = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--disable-background-networking", "--disable-component-update", "--no-first-run",
                           "--disable-sync", "--disable-default-apps", f"--user-data-dir={out / 'profile'}",
                           f"--log-net-log={netlog}", "--net-log-capture-mode=Everything",
                           "--window-size=1200,2400", "--virtual-time-budget=5000",
                           f"--screenshot={shot}", html.as_uri()],
                          capture_output=True, text=True, timeout=180)
    assert shot.exists(), proc.stderr[-3000:]
    text = netlog.read_text().rstrip()
    log = json.loads(text if text.endswith("}") else text.rstrip(",") + "]}")  # a log cut at exit
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    starts = [e.get("params", {}) for e in log.get("events", []) if e["type"] == start]
    urls = sorted({p["url"] for p in starts if "url" in p and p.get("initiator") != "not an origin"})
    return shot, urls


def test_page_renders_in_chromium_without_network(built, tmp_path):
    from PIL import Image

    _, _, page = built
    # control: a page that fetches an image from a local server shows the request in the log
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        control = tmp_path / "control.html"
        url = f"http://127.0.0.1:{server.server_address[1]}/pixel.png"
        control.write_text(f'<html><body><h1>control</h1><img src="{url}"></body></html>')
        (tmp_path / "c").mkdir()
        _, control_urls = _render(control, tmp_path / "c")
        assert url in control_urls and hits == ["/pixel.png"]

        (tmp_path / "p").mkdir()
        shot, urls = _render(page, tmp_path / "p")
    finally:
        server.shutdown()
    assert [u for u in urls if not u.startswith("file:")] == [], urls
    img = np.asarray(Image.open(shot).convert("RGB")).astype(float)
    assert img.shape[0] >= 2000 and img.shape[1] >= 1100
    # not blank: many colours, and ink on a good part of the page
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 200
    assert (img.mean(axis=2) < 200).mean() > 0.02
    shutil.copy(shot, Path(page).with_name("index-screenshot.png"))  # for a person to look at


def test_render_names_missing_parts(tmp_path, built):
    rel, _, _ = built
    text = render(rel, tmp_path / "no-reports")
    assert "No validation results" in text and "No plots yet" in text and "No drift tables yet" in text
