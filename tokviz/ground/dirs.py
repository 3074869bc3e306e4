"""tokviz's own cache folder: where the embedded model and the offline tokenizer files live."""

from __future__ import annotations

from pathlib import Path

from tokviz.ground.environment import current


def cache_dir() -> Path:
    """$TOKVIZ_CACHE_DIR, else the user cache folder of this OS (platformdirs: ~/.cache/tokviz on
    Linux, honouring $XDG_CACHE_HOME; ~/Library/Caches/tokviz on macOS)."""
    explicit = current().environ.get("TOKVIZ_CACHE_DIR")
    if explicit:
        return Path(explicit)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("tokviz", appauthor=False))


def state_dir() -> Path:
    """$TOKVIZ_STATE_DIR, else the user state folder of this OS (platformdirs: ~/.local/state/tokviz
    on Linux): where work the user did not name a file for is kept rather than lost."""
    explicit = current().environ.get("TOKVIZ_STATE_DIR")
    if explicit:
        return Path(explicit)
    from platformdirs import user_state_dir

    return Path(user_state_dir("tokviz", appauthor=False))
