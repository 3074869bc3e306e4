"""A batch's state on disk: one SQLite row per job (`batch.sqlite` in the output folder).

Why SQLite (the standard library's): a batch of 100,000 prompts must neither hold its jobs in
memory nor rewrite a 6 MB index twice a second. Each finished job updates its own row; the index
files are written from the table at the end and on interrupt; `tokviz batch status DIR` reads it
while a batch runs (WAL lets a reader in beside the writer); a resume asks it what is done
instead of reading every run back from the folder.

Rows are keyed by the job's stable name. Each invocation stamps the rows it reads from the input
with its own number (`seen`), so the index lists exactly this input, in its order.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokviz.ground.errors import TokvizError, redact, secrets

FILE = "batch.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    name TEXT PRIMARY KEY,
    n INTEGER NOT NULL,          -- position in the current input (1-based, prompt lines only)
    line INTEGER NOT NULL,       -- line number in the input file
    seen INTEGER NOT NULL,       -- the invocation that last read it from the input
    id TEXT, prompt TEXT NOT NULL, model TEXT NOT NULL,
    status TEXT NOT NULL,        -- pending | ok | failed
    provider TEXT, text TEXT, tokens INTEGER, error TEXT,
    formats TEXT                 -- the formats written for an ok job, comma-separated
);
CREATE INDEX IF NOT EXISTS jobs_by_n ON jobs (seen, n);
"""


@dataclass(frozen=True)
class Row:
    name: str
    n: int
    line: int
    id: str | None
    prompt: str
    model: str
    status: str
    provider: str | None
    text: str | None
    tokens: int | None
    error: str | None
    formats: str | None
    summary: str | None = None  # JSON: a weighed job's winner and its share (the index shows them)


class State:
    """The table, behind one lock (workers, the writer thread and the main thread share it)."""

    COMMIT_EVERY_S = 0.5

    def __init__(self, folder: Path) -> None:
        self.path = folder / FILE
        self._lock_fd = _hold(folder)
        try:
            self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error:
            self._release()
            raise
        self.lock = threading.Lock()
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        if "summary" not in {row[1] for row in self.db.execute("PRAGMA table_info(jobs)")}:
            self.db.execute("ALTER TABLE jobs ADD COLUMN summary TEXT")  # a state written before weighed jobs
        self.db.execute("BEGIN")
        self._committed = time.monotonic()
        self._pending: list[tuple[object, ...]] = []
        self.invocation = int(self.meta("invocations") or 0) + 1
        self.set_meta("invocations", str(self.invocation))

    # --- meta ---
    def meta(self, key: str) -> str | None:
        with self.lock:
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.lock:
            self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                            (key, value))

    # --- jobs ---
    def admit(self, entries: list[tuple[str, int, str | None, str, str, str | None]], next_n: int) -> list[tuple[int, Row | None] | None]:
        """Record that this invocation's input holds these jobs (name, line, id, prompt, model,
        problem), numbering them from `next_n`. For each: None if it is a duplicate of a job
        already read (same name), else (its number, its row from an earlier invocation or None).
        A job not done before becomes pending (or failed, with its line's problem).

        One query and one write per chunk of the input: every call into SQLite gives up the GIL,
        and with sixteen workers busy, getting it back costs more than the query."""
        names = list(dict.fromkeys(e[0] for e in entries))
        with self.lock:
            self._flush()
            found: dict[str, Row] = {}
            for i in range(0, len(names), 500):
                part = names[i : i + 500]
                marks = ",".join("?" * len(part))
                for row in self.db.execute(f"SELECT {_COLUMNS}, seen FROM jobs WHERE name IN ({marks})", part):
                    found[row[0]] = Row(*row[:-1])
                    if row[-1] == self.invocation:
                        found[row[0]] = _SEEN  # type: ignore[assignment]
            out: list[tuple[int, Row | None] | None] = []
            inserts, updates = [], []
            n = next_n
            keys = secrets()  # once per chunk: a key in a prompt line is never stored
            for name, line, id_, prompt, model, problem in entries:
                if keys:
                    prompt = redact(prompt, shapes=False)
                    id_ = None if id_ is None else redact(id_, shapes=False)
                before = found.get(name)
                if before is _SEEN:
                    out.append(None)
                    continue
                status = "failed" if problem else ("ok" if before is not None and before.status == "ok" else "pending")
                if before is None:
                    inserts.append((name, n, line, self.invocation, id_, prompt, model, status, problem))
                else:
                    updates.append((n, line, self.invocation, id_, prompt, model, status, status, problem, name))
                found[name] = _SEEN  # type: ignore[assignment]
                out.append((n, before))
                n += 1
            if inserts:
                self.db.executemany("INSERT INTO jobs (name, n, line, seen, id, prompt, model, status, error) "
                                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", inserts)
            if updates:
                self.db.executemany("UPDATE jobs SET n = ?, line = ?, seen = ?, id = ?, prompt = ?, model = ?, status = ?, "
                                    "error = CASE WHEN ? = 'ok' THEN NULL ELSE ? END WHERE name = ?", updates)
            self._maybe_commit()
            return out

    def finish(self, name: str, status: str, *, provider: str | None = None, text: str | None = None,
               tokens: int | None = None, error: str | None = None, formats: list[str] | None = None,
               summary: dict[str, Any] | None = None) -> None:
        """Record a finished job; written with the next few dozen (a job whose files are on disk
        but whose row was lost to a crash is found again by its run JSON on resume)."""
        import json

        shown = None if summary is None else json.dumps(summary, ensure_ascii=False, sort_keys=True)
        with self.lock:
            self._pending.append((status, provider, text, tokens, error, ",".join(formats) if formats else None, shown,
                                  name))
            if len(self._pending) >= 64:
                self._flush()
            self._maybe_commit()

    def _flush(self) -> None:
        if self._pending:
            self.db.executemany("UPDATE jobs SET status = ?, provider = ?, text = ?, tokens = ?, error = ?, formats = ?, "
                                "summary = ? WHERE name = ?", self._pending)
            self._pending.clear()

    def rows(self, *, invocation: int | None = None, batch: int = 500) -> Iterator[Row]:
        """This invocation's jobs in input order, a few hundred at a time (never all in memory)."""
        seen = self.invocation if invocation is None else invocation
        last = 0
        while True:
            with self.lock:
                self._flush()
                chunk = self.db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE seen = ? AND n > ? ORDER BY n LIMIT ?",
                                        (seen, last, batch)).fetchall()
            if not chunk:
                return
            for row in chunk:
                yield Row(*row)
            last = chunk[-1][1]

    def counts(self, *, invocation: int | None = None) -> dict[str, int]:
        seen = self.invocation if invocation is None else invocation
        with self.lock:
            self._flush()
            return _counts(self.db, seen)

    def _maybe_commit(self) -> None:
        if time.monotonic() - self._committed >= self.COMMIT_EVERY_S:
            self._commit()

    def _commit(self) -> None:
        self._flush()
        self.db.execute("COMMIT")
        self.db.execute("BEGIN")
        self._committed = time.monotonic()

    def commit(self) -> None:
        with self.lock:
            self._commit()

    def close(self) -> None:
        """Commit and close, and let another batch have the folder. A checkpoint that fails (a
        full disk) leaves the write-ahead log beside the table, which SQLite reads next time: the
        state is committed either way, so it is not an error."""
        import contextlib

        try:
            with self.lock:
                self._flush()
                if self.db.in_transaction:
                    self.db.execute("COMMIT")
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self.db.close()
        finally:
            self._release()

    def _release(self) -> None:
        import os

        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None


class Busy(TokvizError):
    """Another batch holds the folder: two batches on one folder would ask for the same prompts twice
    and write one index over the other."""


def _hold(folder: Path) -> int | None:
    """Take the folder's lock, or raise `Busy`. The lock is an flock on batch.sqlite itself (on
    Linux independent of the POSIX locks SQLite takes inside it): no extra file in the user's
    folder, and the system releases it when its holder ends, however it ends."""
    import os

    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock on this system: one batch at a time is up to the user
        return None
    fd = os.open(folder / FILE, os.O_RDWR | os.O_CREAT, 0o644)  # an empty file is an empty database to SQLite
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Busy(f"another tokviz batch is running in {folder}: one folder, one batch",
                   hint="wait for it to finish, or stop it; running the same command afterwards resumes") from None
    return fd


_COLUMNS = "name, n, line, id, prompt, model, status, provider, text, tokens, error, formats, summary"
_SEEN = object()  # a name this invocation has already read


def _counts(db: sqlite3.Connection, invocation: int) -> dict[str, int]:
    found = dict(db.execute("SELECT status, COUNT(*) FROM jobs WHERE seen = ? GROUP BY status", (invocation,)).fetchall())
    out = {s: int(found.get(s, 0)) for s in ("ok", "failed", "pending")}
    return {"total": sum(out.values()), **out}


def read_status(folder: Path) -> dict[str, Any]:
    """What `tokviz batch status DIR` prints: the latest invocation's counts, read-only (a running
    batch keeps writing beside it)."""
    db = sqlite3.connect(f"file:{folder / FILE}?mode=ro", uri=True, timeout=5.0)
    try:
        invocation = int(db.execute("SELECT value FROM meta WHERE key = 'invocations'").fetchone()[0])
        counts = _counts(db, invocation)
        first = db.execute("SELECT n, error FROM jobs WHERE seen = ? AND status = 'failed' ORDER BY n LIMIT 1",
                           (invocation,)).fetchone()
    finally:
        db.close()
    return {**counts, "first_failure": None if first is None else {"n": first[0], "error": first[1]}}
