"""File output: atomic for regular files, direct for special ones, and early checks of output paths.

Every regular file tokviz writes goes to a temporary file in the same folder and is renamed into
place, so a crash, a full disk or Ctrl-C never leaves half a graph where a script or a golden-file
check expects a whole one. A rename replaces whatever has the name, though, so it is used only
over regular files (or nothing): a device (`/dev/stdout`, `/dev/null`), a FIFO or a socket is
written directly, never replaced, and a symbolic link is followed to the file it names. Paths are
checked before any model runs, so a typo costs nothing.

There is deliberately no fsync: the guarantee is against the process failing, which the rename
alone gives. fsync guards against the machine losing power, and cost 15-35 ms per file when a
batch's sixteen workers wrote at once (measured) - a third of a 100-prompt batch's wall time.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokviz.ground.errors import TokvizError, UsageError, redact


class OutputError(TokvizError):
    """An output could not be written (full disk, no permission, a read-only file system)."""


def _read_umask() -> int:
    # os.umask can only be read by setting it; done once, at import, before any thread exists
    # (done per write, two threads could interleave and leave the process with umask 0).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _special(path: Path) -> bool:
    """An existing file that is not a regular file (after following links): written in place."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def check_writable(path: Path) -> None:
    """Fail early, with the fix, if `path` could not be written: before any model runs or request
    is sent, so a typo costs nothing."""
    text = str(path)
    if text.endswith(("/", os.sep)):
        raise UsageError(f"output {text} ends with a slash: give a file name, not a folder")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as err:  # ELOOP: a symbolic link that points at itself, never replaced by a file
        raise UsageError(f"output {path} cannot be used: {err.strerror}") from None
    if mode is not None and stat.S_ISSOCK(mode):
        raise UsageError(f"output {path} is a socket, not a file")
    real = os.path.realpath(path)
    if real.startswith(("/proc/", "/sys/")) and (mode is None or stat.S_ISREG(mode)):
        raise UsageError(f"output {path} is inside {real.split('/')[1]}, which holds no files tokviz can write")
    if _special(path):
        if not os.access(path, os.W_OK):
            raise UsageError(f"output {path} cannot be written")
        return
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(f"output {path} is a folder, not a file")
    if not folder.is_dir():
        raise UsageError(f"output folder {folder} does not exist", hint=f"create it with: mkdir -p {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"output folder {folder} is not writable")


def _describe(err: OSError, path: Path) -> OutputError:
    reason = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
              errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
              errno.EPERM: "permission denied"}.get(err.errno or 0, err.strerror or type(err).__name__)
    return OutputError(f"cannot write {path}: {reason}")


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` all at once: readers see the old file or the new one, never a part.

    The bytes pass through the same redaction as every error line: a server that echoed an API
    key into its answer cannot get it stored in any file tokviz writes.
    """
    write_atomic_chunks(path, (data,))


def write_atomic_chunks(path: Path, chunks: Iterable[bytes]) -> None:
    """`write_atomic` for a file written piece by piece (a 100,000-item index is never whole in
    memory), redacted line by line: a secret split across two pieces is still found."""
    check_writable(path)
    if _special(path):
        try:
            with open(path, "wb") as fh:
                for data in _by_lines(chunks):
                    fh.write(_redacted(data))
        except OSError as err:
            raise _describe(err, path) from None
        return
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as err:
        raise _describe(err, path) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            for data in _by_lines(chunks):
                fh.write(_redacted(data))
        # mkstemp makes 0600: a file replaced keeps its own permissions (a private 0600 file stays
        # private), a new one gets the usual ones
        try:
            keep = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:
            keep = 0o666 & ~_UMASK
        os.chmod(tmp, keep)
        os.replace(tmp, target)
    except OSError as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise _describe(err, path) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _by_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The same bytes, cut only after a newline (which no UTF-8 character contains), so that
    redaction sees every line whole however the writer cut its pieces."""
    carry = b""
    for data in chunks:
        data = carry + data if carry else data
        cut = data.rfind(b"\n") + 1
        if cut:
            yield data[:cut]
        carry = data[cut:]
    if carry:
        yield carry


def _redacted(data: bytes) -> bytes:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data  # images: their text came from a DOT source that was redacted before drawing
    clean = redact(text, shapes=False)
    return data if clean == text else clean.encode("utf-8")


# The largest record tokviz reads: a 100,000-token scored text with 20 alternatives is ~150 MB.
MAX_READ = 1 << 30


def read_regular(path: Path, what: str = "file", limit: int = MAX_READ) -> bytes:
    """The bytes of a regular file, refused in one line otherwise: a FIFO would block forever and
    a link to /dev/zero would fill memory, so the file is opened without blocking, checked with
    fstat, and read up to `limit` bytes."""
    shown = str(path).encode("utf-8", "backslashreplace").decode("utf-8")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise UsageError(f"{what} {shown} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"{what} {shown} is a folder") from None
    except OSError as err:
        if err.errno == errno.ENXIO:  # a FIFO with no writer
            raise UsageError(f"{what} {shown} is not a regular file") from None
        raise UsageError(f"cannot read {what} {shown}: {err.strerror}") from None
    info = os.fstat(fd)
    problem = ("is a folder" if stat.S_ISDIR(info.st_mode) else
               "is not a regular file (a device, FIFO or socket)" if not stat.S_ISREG(info.st_mode) else
               f"is {info.st_size:,} bytes, more than tokviz reads ({limit:,})" if info.st_size > limit else None)
    if problem:
        os.close(fd)
        raise UsageError(f"{what} {shown} {problem}")
    with os.fdopen(fd, "rb") as fh:
        try:
            data = fh.read(limit + 1)
        except OSError as err:
            raise UsageError(f"cannot read {what} {shown}: {err.strerror}") from None
    if len(data) > limit:
        raise UsageError(f"{what} {shown} is more than tokviz reads ({limit:,} bytes)")
    return data
