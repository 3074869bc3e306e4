"""Atomic file output and early checks of output paths.

Every file tokviz writes goes to a temporary file in the same folder and is renamed into place,
so a crash, a full disk or Ctrl-C never leaves half a graph where a script or a golden-file check
expects a whole one. Paths are checked before any model runs, so a typo costs nothing.

There is deliberately no fsync: the guarantee is against the process failing, which the rename
alone gives. fsync guards against the machine losing power, and cost 15-35 ms per file when a
batch's sixteen workers wrote at once (measured) - a third of a 100-prompt batch's wall time.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from tokviz.errors import UsageError


def _read_umask() -> int:
    # os.umask can only be read by setting it; done once, at import, before any thread exists
    # (done per write, two threads could interleave and leave the process with umask 0).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def check_writable(path: Path) -> None:
    """Fail early, with the fix, if `path` could not be written."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(f"output {path} is a folder, not a file")
    if not folder.is_dir():
        raise UsageError(f"output folder {folder} does not exist", hint=f"create it with: mkdir -p {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"output folder {folder} is not writable")


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` all at once: readers see the old file or the new one, never a part."""
    check_writable(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
