"""Golden-file checks: does a rendering equal the file on disk, and if not, how does it differ?"""

from __future__ import annotations

import difflib

MAX_DIFF_LINES = 60


def diff(name: str, expected: bytes | None, actual: bytes) -> str | None:
    """None when `actual` equals `expected`; otherwise a short unified diff (or a note for binary
    files, or a missing one) to show the reader what changed."""
    if expected == actual:
        return None
    if expected is None:
        return f"{name}: missing (run with --update to write it)\n"
    try:
        old = expected.decode("utf-8").splitlines(keepends=True)
        new = actual.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return f"{name}: binary files differ ({len(expected)} bytes on disk, {len(actual)} rendered)\n"
    lines = list(difflib.unified_diff(old, new, fromfile=f"{name} (on disk)", tofile=f"{name} (rendered)", n=2))
    lines = [line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines]
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"… {len(lines) - MAX_DIFF_LINES} more diff lines\n"]
    return "".join(lines)
