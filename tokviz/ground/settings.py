"""Project settings: the `[tool.tokviz.<section>]` table of the nearest pyproject.toml.

A CI job keeps its golden tolerances beside its other tools' settings, so `tokviz check`, `tokviz
diff` and the pytest plugin read them from the project (a command-line option still wins).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tokviz.ground.errors import UsageError


def project_settings(section: str, start: Path | None = None) -> tuple[dict[str, Any], Path | None]:
    """The table `[tool.tokviz.<section>]` of the nearest pyproject.toml at or above `start` (the
    current folder), and that file; ({}, None) when there is none."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        path = folder / "pyproject.toml"
        if path.is_file():
            return _read(path, section), path
    return {}, None


def _read(path: Path, section: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise UsageError(f"cannot read {path}: {err}") from None
    table = data.get("tool", {}).get("tokviz", {}).get(section, {})
    if not isinstance(table, dict):
        raise UsageError(f"{path}: [tool.tokviz.{section}] must be a table")
    return table
