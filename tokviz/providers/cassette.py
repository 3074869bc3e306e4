"""Cassettes: files of runs keyed by the request that produced them (`--record`, `--replay`).

What is recorded is the run itself, not HTTP traffic: it is what every view is made from, it is
provider-neutral, and it holds no headers (so no key) by construction. `Recorder` wraps any
provider and saves each run it returns; the replay provider (`replay.py`) answers from a cassette.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from tokviz.ground.errors import RunFileError, UsageError
from tokviz.ground.files import write_atomic
from tokviz.providers.base import Live, Provider, Request, StepListener
from tokviz.run import Run, codec

SCHEMA = "tokviz.cassette"
SCHEMA_VERSION = 1


def request_key(request: Request) -> dict[str, Any]:
    """What identifies a request's answer: not the server, timeout or retries, which do not change it."""
    return {"model": request.model, "prompt": request.prompt, "system": request.system,
            "params": request.params.to_dict()}


def _key_text(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, ensure_ascii=False)


class Cassette:
    """A JSON file of (request key, run) entries; safe to share between batch threads."""

    def __init__(self, path: Path, entries: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> None:
        self.path = path
        self.entries = entries
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path, *, must_exist: bool) -> Cassette:
        p = Path(path)
        if not p.exists():
            if must_exist:
                raise UsageError(f"cassette {p} does not exist", hint="record one first with --record FILE")
            return cls(p, {})
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
            raise RunFileError(f"cassette {p} cannot be read ({type(err).__name__})") from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise RunFileError(f"{p} is not a tokviz cassette (no \"schema\": \"{SCHEMA}\" field)")
        version = data.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise RunFileError(f"cassette {p} has no valid schema_version")
        if version > SCHEMA_VERSION:
            raise RunFileError(f"cassette {p} was written by a newer tokviz", hint="upgrade tokviz")
        entries = {}
        listed = data.get("entries", [])
        if not isinstance(listed, list) or not all(
                isinstance(e, dict) and isinstance(e.get("request"), dict) and isinstance(e.get("run"), dict) for e in listed):
            raise RunFileError(f"cassette {p} is damaged (each entry needs a \"request\" and a \"run\" object)")
        for entry in listed:
            entries[_key_text(entry["request"])] = (entry["request"], entry["run"])
        return cls(p, entries)

    def get(self, request: Request) -> Run | None:
        found = self.entries.get(_key_text(request_key(request)))
        return None if found is None else Run.from_dict(found[1], source=str(self.path))

    def put(self, request: Request, run: Run) -> None:
        """Add or replace the entry and rewrite the file at once (atomically, sorted: diff-friendly)."""
        key = request_key(request)
        with self._lock:
            self.entries[_key_text(key)] = (key, run.to_dict())
            doc = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION,
                   "entries": [{"request": k, "run": r} for _, (k, r) in sorted(self.entries.items())]}
            write_atomic(self.path, (codec.dumps(doc, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))


class Recorder:
    """Wraps a provider and saves each run it returns into a cassette."""

    def __init__(self, inner: Provider, cassette: str | Path) -> None:
        self.inner = inner
        self.name = inner.name
        self.cassette = Cassette.load(cassette, must_exist=False)

    def predict(self, request: Request) -> Run:
        run = self.inner.predict(request)
        self.cassette.put(request, run)
        return run

    def predict_live(self, request: Request, on_step: StepListener) -> Run:
        """Live where the wrapped provider is (its steps shown as they come), recorded either way."""
        run = self.inner.predict_live(request, on_step) if isinstance(self.inner, Live) else self.inner.predict(request)
        self.cassette.put(request, run)
        return run

    def __getattr__(self, name: str) -> Any:
        """Everything but `predict` (trees, tokenizing) goes to the wrapped provider unrecorded."""
        return getattr(self.inner, name)
