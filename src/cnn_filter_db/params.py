"""Stage parameters: ``params.yaml`` grouped by stage (DVC reads the same file)."""
from __future__ import annotations

from pathlib import Path

import yaml

PARAMS_FILE = Path("params.yaml")


def load_params(group: str | None = None, root: Path = Path(".")) -> dict:
    """The whole params file, or one stage's group of it ({} when absent)."""
    path = Path(root) / PARAMS_FILE
    data = yaml.safe_load(path.read_text()) if path.exists() else {}
    data = data or {}
    return data if group is None else dict(data.get(group) or {})
