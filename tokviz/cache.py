"""tokviz's own cache folder: where the embedded model and the offline tokenizer files live."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$TOKVIZ_CACHE_DIR, else $XDG_CACHE_HOME/tokviz, else ~/.cache/tokviz."""
    explicit = os.environ.get("TOKVIZ_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tokviz"
