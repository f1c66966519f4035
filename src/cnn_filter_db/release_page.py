"""``reports/index.html``: the release page a person reads, offline.

One self-contained HTML file: styles inline, plots embedded as ``data:`` URIs, and a
Content-Security-Policy that forbids the page any network request (so a link added later
cannot make it fetch anything). It shows the counts, the models with their licences, the
validation summary, the plots, the drift tables (every column the analysis wrote, nulls
shown as such) and how to load and pin the release. Third-party reports (Great
Expectations Data Docs, DVC's Vega plots) load scripts from a CDN; this page does not.
"""
from __future__ import annotations

import base64
import csv
import html
import json
from pathlib import Path
from typing import Iterable

from . import config
from .atomic import atomic_write_text
from .card import DEFAULT_REPO_ID, LICENCES_ANCHOR, PRETTY_NAME
from .dataset import reader
from .dataset.manifest import Manifest, read_manifest

PAGE = config.REPORTS_DIR / "index.html"
#: No request of any kind: only inline styles and data: images.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
#: Plots embedded (relative to the reports folder): the analysis plots (a dependency of the
#: DVC stage); per-model plots are left out (many, large).
PLOT_GLOBS = ("plots/*.png",)
NULL = "—"  # how an empty cell of a CSV (a null) is shown

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1.5em;
       color: #1b1f24; background: #ffffff; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #d0d7de; padding-bottom: 0.2em; margin-top: 1.8em; }
.wide { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 13px; }
th, td { border: 1px solid #d0d7de; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #eaeef2; } tr:nth-child(even) td { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } td.null { color: #8c959f; text-align: center; }
.counts { display: flex; gap: 1em; flex-wrap: wrap; }
.counts div { background: #0969da; color: #fff; padding: 0.7em 1.2em; border-radius: 6px; }
.counts b { display: block; font-size: 1.6em; }
.ok { color: #1a7f37; font-weight: bold; } .fail { color: #cf222e; font-weight: bold; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #d0d7de; }
figcaption { font-size: 13px; color: #57606a; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; border-radius: 6px; }
code { font-size: 13px; }
"""


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _cell(value) -> str:
    if value is None or value == "":
        return f'<td class="null">{NULL}</td>'
    if isinstance(value, (int, float)) or _is_number(value):
        text = str(value)
        if "." in text or "e" in text.lower():  # a float: four significant digits are plenty to read
            text = f"{float(value):.4g}"
        return f'<td class="num">{_e(text)}</td>'
    return f"<td>{_e(value)}</td>"


def _is_number(text) -> bool:
    try:
        float(text)
        return True
    except (TypeError, ValueError):
        return False


def table(header: list[str], rows: Iterable[Iterable]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def image(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _counts(manifest: Manifest, models: list[dict]) -> str:
    n_layers = sum(int(r["n_layers"]) for r in models)
    n_filters = sum(int(r["n_filters"]) for r in models)
    boxes = [("models", len(models)), ("3x3 conv layers", n_layers), ("filters", n_filters),
             ("shards", len(manifest.shards))]
    return '<div class="counts">' + "".join(f"<div><b>{n:,}</b>{_e(label)}</div>" for label, n in boxes) + "</div>"


def _models(models: list[dict]) -> str:
    cols = ["model_id", "name", "task", "family", "format", "license", "training_data_license", "n_layers",
            "n_filters"]
    rows = sorted(models, key=lambda r: r["model_id"])
    return table(["model", "name", "task", "family", "format", "weights licence", "training-data licence",
                  "layers", "filters"], ([r.get(c) for c in cols] for r in rows))


def _licences(models: list[dict]) -> str:
    by: dict[str, list[str]] = {}
    for r in models:
        by.setdefault(r["license"] or "unknown", []).append(r["model_id"])
    return table(["weights licence", "models", "model ids"],
                 ([lic, len(ids), ", ".join(sorted(ids))] for lic, ids in sorted(by.items())))


def _validation(reports_dir: Path) -> str:
    path = reports_dir / "validation" / "metrics.json"
    if not path.exists():
        return f"<p>No validation results ({_e(path.name)} missing): run <code>dvc repro validate</code>.</p>"
    v = json.loads(path.read_text())
    verdict = '<span class="ok">passed</span>' if v.get("success") else '<span class="fail">failed</span>'
    out = [f"<p>Great Expectations suites {verdict}: {v.get('evaluated_expectations', 0)} expectations evaluated, "
           f"{v.get('failed_expectations', 0)} failed, over {v.get('shards', 0)} shards and "
           f"{v.get('filters', 0):,} filters.</p>"]
    tables = v.get("tables", {})
    if tables:
        out.append(table(["table", "result", "rows or layers checked", "failed expectations"],
                         ([name, "passed" if t.get("success") else "FAILED", t.get("rows"), t.get("failed")]
                          for name, t in tables.items())))
    return "".join(out)


def _plots(reports_dir: Path) -> str:
    figures = [image(p, p.relative_to(reports_dir).as_posix())
               for glob in PLOT_GLOBS for p in sorted(reports_dir.glob(glob))]
    if not figures:
        return "<p>No plots yet: run <code>dvc repro analyze</code>.</p>"
    return "".join(figures)


def _drift(reports_dir: Path) -> str:
    files = sorted((reports_dir / "drift").glob("*.csv"))
    if not files:
        return "<p>No drift tables yet: run <code>dvc repro analyze</code>.</p>"
    out = ["<p>D between groups of filters (symmetric KL over the eigen-image coefficients, SPEC.md section 5), "
           "with every column the analysis wrote, null references included where present; "
           f"{NULL} marks a null; numbers to four significant digits (the CSV files have them all).</p>"]
    for f in files:
        with open(f, newline="") as fh:
            rows = list(csv.reader(fh))
        if not rows:
            continue
        out.append(f"<h3>{_e(f.stem)}</h3>" + table(rows[0], rows[1:]))
    return "".join(out)


def snippets(card_text: str, sections=("Load the dataset", "Pin a version")) -> str:
    """The code blocks of the card's sections on loading and pinning (the card's template is
    the one place they are written)."""
    out = []
    for part in card_text.split("\n## ")[1:]:
        title, _, body = part.partition("\n")
        if title.strip() in sections:
            blocks = body.split("```")[1::2]
            out += [b.partition("\n")[2].rstrip() for b in blocks]
    return "\n\n".join(out)


def render(release_dir: Path, reports_dir: Path, repo_id: str | None = None) -> str:
    """The page's HTML for the release in ``release_dir`` and the reports in ``reports_dir``."""
    release_dir, reports_dir = Path(release_dir), Path(reports_dir)
    manifest = read_manifest(release_dir)  # a malformed one: one ReleaseError naming file and field
    models = reader.read_table(release_dir, "models").to_pylist()
    repo_id = repo_id or DEFAULT_REPO_ID
    version = manifest.version
    sections = [
        ("Counts", _counts(manifest, models)),
        ("Models", _models(models)),
        ("Licences", "<p>No single licence covers the release: each model's filters keep the licence of its "
                     "weights.</p>" + _licences(models)),
        ("Validation", _validation(reports_dir)),
        ("Plots", _plots(reports_dir)),
        ("Drift", _drift(reports_dir)),
        ("Load and pin", "<pre><code>" + _e(snippets((release_dir / "README.md").read_text())) + "</code></pre>"
                         f"<p>Cite the version and the fingerprint <code>{_e(manifest.fingerprint)}</code>. "
                         f"The card (README.md of the release) has the full licence table, under "
                         f"<code>#{LICENCES_ANCHOR}</code>.</p>"),
    ]
    body = "".join(f'<section id="{_e(t.lower().replace(" ", "-"))}"><h2>{_e(t)}</h2>{c}</section>'
                   for t, c in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(PRETTY_NAME)} v{_e(version)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{_e(PRETTY_NAME)} v{_e(version)}</h1>"
            f"<p>Release page, readable offline. Fingerprint <code>{_e(manifest.fingerprint)}</code>; "
            f"Hub dataset <code>{_e(repo_id)}</code>, tag <code>v{_e(version)}</code>.</p>"
            f"{body}</body></html>\n")


def write_page(release_dir: Path, reports_dir: Path, out: Path | None = None, repo_id: str | None = None) -> Path:
    out = Path(out) if out is not None else Path(reports_dir) / "index.html"
    atomic_write_text(out, render(release_dir, reports_dir, repo_id))
    return out
