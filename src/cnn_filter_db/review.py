"""``cnn-filter-db catalog check``: the pull-request check of catalog entries, end to end.

For each changed entry: schema and vocabulary, fetch with its sha256 pin, extraction, and
the validation suites on a release built from that entry alone. Prints a Markdown report.
"""
from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import config
from .catalog import check_index, entry_files, list_entries, parse_entry
from .errors import CnnFilterDbError
from .sources.url import is_local


@dataclass
class Checked:
    model_id: str
    format: str = "?"
    n_layers: int | None = None
    n_filters: int | None = None
    problems: list[str] = field(default_factory=list)


def changed_entries(root: Path, since: str | None) -> list[Path]:
    """Entry files added or modified since git revision ``since`` (every entry if None)."""
    if since is None:
        return entry_files(root)
    if since.startswith("-"):
        raise CnnFilterDbError(f"--changed-since: {since!r} is not a git revision")
    proc = subprocess.run(["git", "diff", "--name-only", "-z", "--diff-filter=AMR", since, "--",
                           str(config.MODELS_DIR)], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CnnFilterDbError(f"git diff {since} failed: {proc.stderr.strip()}")
    return [Path(root) / name for name in proc.stdout.split("\0") if name]


def check_entry(path: Path, root: Path, cache_dir: Path | None, params: dict | None = None) -> Checked:
    from .extract import extract_model, gather

    result = Checked(Path(path).stem)
    try:
        entry = parse_entry(path, root)
    except CnnFilterDbError as exc:
        result.problems.extend(str(exc).splitlines())
        return result
    if is_local(getattr(entry.source, "url", "")):
        result.problems.append(f"{path}: source.url: a file:// URL names a file on one machine; "
                               "a pull request points at a public https:// URL")
        return result
    result.format = entry.format
    with tempfile.TemporaryDirectory(prefix="catalog-check-") as tmp:
        release, meta = Path(tmp) / "release", Path(tmp) / "meta"
        try:
            model = extract_model(entry, release, meta, root=root, cache_dir=cache_dir, progress=False)
        except CnnFilterDbError as exc:
            result.problems.append(str(exc))
            return result
        result.n_layers, result.n_filters = model["n_layers"], model["n_filters"]
        gather(meta, release, [entry.model_id])
        from .validate import validate_release

        report = validate_release(release, params=params, root=root)
        if not report.success:
            result.problems.extend(report.summary().splitlines())
    return result


def check_catalog(root: Path = Path("."), since: str | None = None, cache_dir: Path | None = None,
                  params: dict | None = None) -> tuple[list[Checked], list[str]]:
    """Check every changed entry; also the generated index. Returns (entries, global problems)."""
    glob_problems = [f"{f}: {fld}: {msg}" for f, fld, msg in list_entries(root)[1] + check_index(root)]
    checked = [check_entry(p, root, cache_dir, params) for p in changed_entries(root, since)]
    return checked, glob_problems


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: no line breaks, pipes or backticks of its own."""
    return "".join("?" if ord(ch) < 32 or ch == "\x7f" else ch for ch in str(text)).replace("|", "\\|").replace("`", "'")


def markdown_report(checked: list[Checked], glob_problems: list[str]) -> str:
    lines = ["## Catalog check", ""]
    if not checked:
        lines.append("No catalog entry changed.")
    else:
        lines += ["| model | format | 3x3 layers | filters | problems |", "|---|---|---:|---:|---|"]
        for c in checked:
            probs = "<br>".join(_cell(p) for p in c.problems) or "none"
            layers = "" if c.n_layers is None else f"{c.n_layers}"
            filters = "" if c.n_filters is None else f"{c.n_filters:,}"
            lines.append(f"| `{_cell(c.model_id)}` | {c.format} | {layers} | {filters} | {probs} |")
    for p in glob_problems:
        lines.append(f"\n- {_cell(p)}")
    ok = not glob_problems and all(not c.problems for c in checked)
    lines += ["", "Result: " + ("**pass**" if ok else "**fail**")]
    return "\n".join(lines) + "\n"
