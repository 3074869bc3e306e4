"""Batch runs: many prompts, each written to its own files, resumable, never losing a result.

Guarantees, in the order a script relies on them:
- Every output is written atomically, and a prompt's run JSON is written last, so a prompt whose
  JSON exists is complete. Re-running skips complete prompts (and renders only the formats that
  are missing from a saved run), so an interrupted batch resumes where it stopped.
- One prompt's failure is recorded in the index with its error line and does not stop the others.
- The index (JSON and Markdown) is rewritten atomically after every prompt, in input order and with
  no timings, so an interrupted-and-resumed batch ends with the same index as an uninterrupted one.
- API prompts run concurrently (bounded); local-model prompts run one at a time on one loaded
  model, since a second copy would only compete for the same cores.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import queue
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tokviz import pipeline
from tokviz.batch import state as batchstate
from tokviz.batch.state import State
from tokviz.ground.errors import TokvizError, UsageError
from tokviz.ground.files import OutputError, write_atomic, write_atomic_chunks
from tokviz.providers import registry
from tokviz.providers.base import MultiSequence, Provider, Request
from tokviz.providers.registry import default_model
from tokviz.run import Params, Run
from tokviz.run.generation import Generation
from tokviz.views import export

INDEX_SCHEMA = "tokviz.batch-index"
_PARAM_KEYS = ("top_k", "max_tokens", "temperature", "top_p", "seed", "mode")


@dataclass(frozen=True)
class Job:
    number: int  # 1-based position in the input
    name: str  # file stem in the output folder
    request: Request
    id: str | None = None
    provider: str | None = None  # the provider that serves it (None when the job cannot run)
    problem: str | None = None  # a line that cannot run (bad parameters): recorded as failed


@dataclass
class Outcome:
    job: Job
    status: str  # "ok" | "failed"
    run: Run | None = None
    error: str | None = None
    fresh: bool = False  # generated in this invocation (not resumed from disk)


def _slug(text: str, limit: int = 40) -> str:
    """A readable file-name stem in any script (Korean prompts stay Korean): letters and digits of
    every alphabet, normalised (NFC) so one text has one name, everything else a hyphen."""
    import unicodedata

    s = re.sub(r"[\W_]+", "-", unicodedata.normalize("NFC", text)).strip("-").lower()
    return s[:limit].strip("-") or "prompt"


RESERVED = frozenset({"index"})  # the batch's own files (index.json, index.md): a job never takes their names


def _safe_id(value: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", value).strip(".-")[:80] or "id"
    return f"{s}-job" if s.lower() in RESERVED else s


def job_name(request: Request, id_: str | None) -> str:
    """A stable file stem: the id if given, else a slug of the prompt and a short hash of all that
    makes the answer (so editing one line renames only that line's files)."""
    if id_:
        return _safe_id(id_)
    key = json.dumps({"model": request.model, "prompt": request.prompt, "system": request.system,
                      "params": request.params.to_dict()}, sort_keys=True, ensure_ascii=False)
    return f"{_slug(request.prompt)}-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:8]}"


def iter_jobs(lines: Iterable[str], *, source: str, defaults: Generation,
              environ: Mapping[str, str] | None = None, jsonl: bool | None = None) -> Iterator[Job]:
    """Jobs from a prompts file, read as a stream: one prompt per line (blank lines and #comments
    skipped), or JSON Lines with "prompt" and optional "id", "model", "system", "provider" and
    parameters (flat or under "params"). A line that is not valid JSON is a usage error naming
    it; bad parameter values make that job fail without stopping the others. Duplicates (the
    same prompt with the same settings) are not dropped here: the batch's state does that."""
    first = True
    for number, line in enumerate(lines, start=1):
        if first and line.startswith("\ufeff"):
            line = line[1:]  # a byte-order mark (Windows editors) is not part of the first prompt
        stripped = line.strip()
        if not stripped:
            continue
        if jsonl is None:
            jsonl = source.endswith(".jsonl") or stripped.startswith("{")
        if not jsonl and stripped.startswith("#"):
            continue
        first = False
        yield _job(stripped, number, source=source, defaults=defaults, environ=environ, jsonl=jsonl)


def _job(stripped: str, number: int, *, source: str, defaults: Generation, environ: Mapping[str, str] | None,
         jsonl: bool) -> Job:
    if not jsonl:
        prompt, gen, id_, problem = stripped, defaults, None, None
    else:
        prompt, gen, id_, problem = _jsonl_job(stripped, number, source, defaults)
    try:
        if problem:
            raise UsageError(problem)
        planned = pipeline.plan(gen, prompt, environ=environ)
        request, provider = planned.request, planned.provider
    except TokvizError as err:
        request = Request(prompt=prompt, model=gen.model or default_model(environ), system=gen.system)
        provider, problem = None, err.line()
    return Job(number=number, name=job_name(request, id_), request=request, id=id_, provider=provider, problem=problem)


def parse_jobs(text: str, *, source: str, defaults: Generation,
               environ: Mapping[str, str] | None = None) -> list[Job]:
    """Every job of a small prompts text, duplicates dropped, numbered 1… (for notebooks and tests;
    `tokviz batch` streams with `iter_jobs`)."""
    jobs: list[Job] = []
    seen: dict[str, int] = {}
    for job in iter_jobs(text.splitlines(), source=source, defaults=defaults, environ=environ):
        if job.name in seen:
            if job.id:
                raise UsageError(f"{source} line {job.number}: id {job.id!r} is also used on line {seen[job.name]}")
            continue
        seen[job.name] = job.number
        jobs.append(replace(job, number=len(jobs) + 1))
    if not jobs:
        raise UsageError(f"{source} holds no prompts")
    return jobs


def check_lines(lines: Iterable[str], *, source: str) -> int:
    """The number of prompt lines, after checking every JSON line parses and no id repeats — before
    the first request, so that a malformed file starts nothing. Holds only the ids seen."""
    count = 0
    jsonl: bool | None = None
    ids: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        stripped = line.lstrip("\ufeff").strip() if number == 1 else line.strip()
        if not stripped:
            continue
        if jsonl is None:
            jsonl = source.endswith(".jsonl") or stripped.startswith("{")
        if not jsonl:
            if not stripped.startswith("#"):
                count += 1
            continue
        obj = _json_line(stripped, number, source)
        if obj.get("id") is not None:
            key = _safe_id(str(obj["id"]))
            if key in ids:
                raise UsageError(f"{source} line {number}: id {obj['id']!r} is also used on line {ids[key]}")
            ids[key] = number
        count += 1
    if not count:
        raise UsageError(f"{source} holds no prompts")
    return count


def _json_line(line: str, number: int, source: str) -> dict[str, Any]:
    """One JSON Lines job as an object with a "prompt" string, or a usage error naming the line."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        raise UsageError(f"{source} line {number} is not valid JSON ({err.msg})") from None
    except RecursionError:
        raise UsageError(f"{source} line {number} is nested too deeply") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str):
        raise UsageError(f"{source} line {number} has no \"prompt\" string")
    return obj


def _jsonl_job(line: str, number: int, source: str, defaults: Generation) -> tuple[str, Generation, str | None, str | None]:
    obj = _json_line(line, number, source)
    id_ = None if obj.get("id") is None else str(obj["id"])
    nested = obj.get("params", {})
    if not isinstance(nested, dict):
        return obj["prompt"], defaults, id_, f"\"params\" must be an object, not {type(nested).__name__}"
    given = {**nested, **{k: obj[k] for k in _PARAM_KEYS if k in obj}}
    base = Params(top_k=defaults.top_k, max_tokens=defaults.max_tokens, temperature=defaults.temperature,
                  top_p=defaults.top_p, seed=defaults.seed,
                  mode="chat" if (defaults.chat or defaults.system) else "raw" if defaults.raw else "default")
    try:
        params = Params.from_dict({**base.to_dict(), **given})
    except (TypeError, ValueError, KeyError, OverflowError) as err:
        return obj["prompt"], defaults, id_, f"bad parameters: {err}"
    for key in ("model", "system", "provider"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            return obj["prompt"], defaults, id_, f"\"{key}\" must be a string"
    if params.mode not in ("chat", "raw", "default"):
        return obj["prompt"], defaults, id_, f"bad parameters: mode must be 'chat' or 'raw', not {params.mode!r}"
    system = obj.get("system", defaults.system)
    chat = params.mode == "chat" or bool(obj.get("system") and "mode" not in given)
    gen = replace(defaults, model=obj.get("model") or defaults.model, system=system,
                  provider=obj.get("provider", defaults.provider), top_k=params.top_k, max_tokens=params.max_tokens,
                  temperature=params.temperature, top_p=params.top_p, seed=params.seed,
                  chat=chat, raw=params.mode == "raw" and not chat)
    return obj["prompt"], gen, id_, None


SHARD_AFTER = 2000  # past this many jobs, outputs go into 256 subfolders (file systems slow down on huge folders)
IN_FLIGHT_PER_WORKER = 2  # jobs queued per worker: enough to keep them busy, never the whole input
ADMIT_CHUNK = 256  # input lines read, checked against the state and recorded at once


def _chunks(stream: Iterator[Job], size: int) -> Iterator[list[Job]]:
    chunk: list[Job] = []
    for job in stream:
        chunk.append(job)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass
class Tally:
    """What a batch did, as counts: outcomes are never kept (a 100,000-prompt batch would hold them all)."""

    total: int = 0
    ok: int = 0
    failed: int = 0
    fresh: int = 0
    first_failure: Outcome | None = None

    def add(self, outcome: Outcome) -> None:
        if outcome.status == "ok":
            self.ok += 1
            self.fresh += outcome.fresh
        else:
            self.failed += 1
            if self.first_failure is None or outcome.job.number < self.first_failure.job.number:
                self.first_failure = outcome


@dataclass
class Batch:
    """One batch invocation: where outputs go, in which formats, with which providers.

    The state is a SQLite table in the folder (`tokviz.batch.state`); jobs stream from the input
    through a bounded queue, so memory stays flat however long the input is.
    """

    out_dir: Path
    formats: list[str]
    options: export.RenderOptions = field(default_factory=export.RenderOptions)
    concurrency: int = 4
    parallel: int = 1  # local jobs decoded together per llama.cpp batch (--parallel N)
    force: bool = False
    record: Path | None = None
    replay: Path | None = None
    progress: Callable[[str], None] = lambda _: None
    expected: int = 0  # prompt lines in the input (from `check_lines`): decides sharding on a first run
    _providers: dict[str, Provider] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    stopped_by: BaseException | None = None  # the KeyboardInterrupt (or Terminated) that stopped the run
    disk_full: str | None = None  # the write failure that stopped the run, if the disk filled up
    state: State | None = None
    sharded: bool = False
    legacy: bool = False
    # Where runs come from instead of providers: an imported results file (`batch --import`).
    source: Callable[[Job], Run] | None = None

    def open(self) -> State:
        if self.state is None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            try:
                self.state = State(self.out_dir)
            except sqlite3.Error as err:
                raise OutputError(f"cannot keep the batch's state in {self.out_dir / batchstate.FILE}: {err}") from None
            decided = self.state.meta("sharded")
            # a folder a tokviz without the state wrote: its runs are found by their files
            self.legacy = decided is None and any(p.name != "index.json" for p in self.out_dir.glob("*.json"))
            if decided is None:
                decided = "1" if self.expected > SHARD_AFTER else "0"
                self.state.set_meta("sharded", decided)
            self.sharded = decided == "1"
        return self.state

    def relative(self, name: str, fmt: str) -> str:
        """A job's file, relative to the folder: `name.fmt`, or `ab/name.fmt` in a sharded batch."""
        file = f"{name}.{fmt}"
        return f"{hashlib.sha1(name.encode('utf-8')).hexdigest()[:2]}/{file}" if self.sharded else file

    def path(self, job: Job, fmt: str) -> Path:
        return self.out_dir / self.relative(job.name, fmt)

    def files(self, name: str, formats: list[str] | None = None) -> dict[str, str]:
        return {fmt: self.relative(name, fmt) for fmt in ["json", *[f for f in (formats or self.formats) if f != "json"]]}

    def provider_for(self, name: str) -> Provider:
        with self._lock:  # one provider (one model, one HTTP client) per name for the whole batch
            if name not in self._providers:
                self._providers[name] = registry.open_provider(name, progress=self.progress, record=self.record,
                                                               replay=self.replay)
            return self._providers[name]

    def resume(self, job: Job) -> Run | None:
        """The saved run of a job completed earlier, with any missing formats rendered from it."""
        saved = self.path(job, "json")
        if self.force or not saved.is_file():
            return None
        try:
            run = Run.from_json(saved.read_text(encoding="utf-8"), source=str(saved))
        except (TokvizError, OSError, UnicodeDecodeError):
            return None  # unreadable: run it again
        for fmt in self.formats:
            if fmt != "json" and not self.path(job, fmt).is_file():
                write_atomic(self.path(job, fmt), export.render(run, fmt, self.options))
        return run

    def fetch(self, job: Job, name: str, on_disk: bool = True) -> Outcome:
        """Get a job's run from its provider, or from disk when `on_disk` says it may have been
        completed without being recorded. A fresh run is not yet written: `store` does that (on
        the writer thread)."""
        return _guarded(job, lambda: self._fetch(job, name, on_disk))

    def _fetch(self, job: Job, name: str, on_disk: bool) -> Outcome:
        previous = self.resume(job) if on_disk else None
        if previous is not None:
            return Outcome(job, "ok", previous)
        if self.source is not None:
            return Outcome(job, "ok", self.source(job), fresh=True)
        return Outcome(job, "ok", self.provider_for(name).predict(job.request), fresh=True)

    def stream_local(self, feed: queue.Queue[tuple[Job, bool] | None], deliver: Callable[[Outcome], None],
                     release: Callable[[], None], stop: threading.Event) -> None:
        """Decode the local jobs put in `feed` continuously (`--parallel`): up to `parallel` at once,
        a finished job's place taken by the next one as soon as it ends, each delivered (to be
        written and recorded) on its own. Jobs found complete on disk are taken from there. `None`
        in the feed ends it; on stop, what was started is abandoned (it stays pending) and the
        slot of every job not delivered is released. One stream per run of jobs for one model."""
        source = _LocalFeed(feed, stop, release, deliver, self.resume)
        while (head := source.next_head()) is not None:
            group = _ModelStream(source, head)
            try:
                provider = self.provider_for(head[0].provider or "")
                registry.require(provider, MultiSequence, "decode jobs together").stream(
                    group.take, self.parallel, group.on_run, stop.is_set)
            except TokvizError as err:
                for job in list(group.taken.values()):
                    group.on_run(job.name, err)
            except Exception as err:  # one bug must not stop the batch; it is recorded for the jobs it hit
                for job in list(group.taken.values()):
                    deliver(Outcome(job, "failed", error=f"internal error: {type(err).__name__}: {err}"))
                group.taken.clear()
            for _ in group.taken:  # abandoned when the batch stopped: pending, their slots freed
                release()
        source.drain()

    def store(self, outcome: Outcome) -> Outcome:
        """Write a fresh run's files: each format atomically, the run JSON last (it marks completion)."""
        run = outcome.run
        if not outcome.fresh or run is None:
            return outcome
        if self.disk_full:  # after a full disk, answers still arriving are not written half
            return Outcome(outcome.job, "failed", error=self.disk_full, fresh=True)

        def write() -> Outcome:
            if self.sharded:
                self.path(outcome.job, "json").parent.mkdir(exist_ok=True)
            for fmt in self.formats:
                if fmt != "json":
                    write_atomic(self.path(outcome.job, fmt), export.render(run, fmt, self.options))
            write_atomic(self.path(outcome.job, "json"), run.to_json().encode("utf-8"))
            return outcome

        result = _guarded(outcome.job, write)
        if result.status == "failed":
            result.fresh = True
        return result

    def _record(self, outcome: Outcome) -> None:
        state = self.open()
        run = outcome.run
        if outcome.status == "ok" and run is not None:
            state.finish(outcome.job.name, "ok", provider=run.provider, text=run.text, tokens=len(run.steps),
                         formats=["json", *[f for f in self.formats if f != "json"]])
        elif outcome.error is not None and not (outcome.fresh and self.disk_full):
            state.finish(outcome.job.name, "failed", error=outcome.error)

    def run(self, jobs: Iterable[Job], on_done: Callable[[Outcome], None], stop: threading.Event) -> tuple[Tally, bool]:
        """Run every job of the stream; `on_done` is called (from worker threads) after each one.
        Returns the counts and whether Ctrl-C stopped the batch. On Ctrl-C, or when `stop` is set,
        running jobs finish and are written, queued ones stay pending (a resume runs them)."""
        state = self.open()
        tally = Tally()
        tally_lock = threading.Lock()
        api = ThreadPoolExecutor(max_workers=max(1, self.concurrency), thread_name_prefix="tokviz-api")
        serial = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokviz-local")
        # Network workers only fetch; one writer thread renders, writes and records, so a worker
        # sends its next request as soon as an answer is in.
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokviz-writer")
        capacity = max(1, self.concurrency, self.parallel) * IN_FLIGHT_PER_WORKER + 2
        slots = threading.BoundedSemaphore(capacity)

        def drain() -> None:
            """Wait until every job in flight is written. Polled, not joined: a Ctrl-C that lands in
            Thread.join can leave CPython believing a running worker has ended (the model would then
            be freed under it at exit)."""
            taken = 0
            while taken < capacity:
                taken += slots.acquire(timeout=0.2)
            for _ in range(taken):
                slots.release()
        interrupted = False
        stream = iter(jobs)

        def count(outcome: Outcome) -> None:
            with tally_lock:
                tally.add(outcome)
            on_done(outcome)

        def finish(outcome: Outcome) -> None:
            try:
                outcome = self.store(outcome)
                if outcome.status == "failed" and outcome.fresh and outcome.error and "disk is full" in outcome.error:
                    # Nothing more can be kept: stop asking (queued prompts stay pending), and leave the
                    # answer that could not be written as not done, so the index matches the disk.
                    stop.set()
                    self.disk_full = outcome.error
                    return
                try:
                    self._record(outcome)
                except sqlite3.Error as err:
                    self.disk_full = self.disk_full or f"cannot record the batch's state: {err}"
                    stop.set()
                count(outcome)
            finally:
                slots.release()

        def task(job: Job, name: str, on_disk: bool) -> None:
            if stop.is_set():  # queued when the batch stopped: stays pending
                slots.release()
                return
            writer.submit(finish, self.fetch(job, name, on_disk))  # never cancelled: a finished run is kept

        feed: queue.Queue[tuple[Job, bool] | None] = queue.Queue()  # local jobs decoded together (--parallel)
        streaming = False

        last = 0  # the highest number given to a job: a chunk is numbered whole, before it is run

        def admit(chunk: list[Job]) -> list[tuple[int, batchstate.Row | None] | None]:
            nonlocal last
            admitted = state.admit([(j.name, j.number, j.id, j.request.prompt, j.request.model, j.problem)
                                    for j in chunk], last + 1)
            last = max([last, *(got[0] for got in admitted if got is not None)])
            tally.total = last
            return admitted

        try:
            for chunk in _chunks(stream, ADMIT_CHUNK):
                for job, got in zip(chunk, admit(chunk)):
                    if got is None:
                        if job.id:
                            raise UsageError(f"id {job.id!r} is used twice")  # check_lines refuses these first
                        continue  # the same prompt with the same settings: one job, one set of files
                    n, before = got
                    job = replace(job, number=n)
                    if job.problem:
                        count(Outcome(job, "failed", error=job.problem))
                        continue
                    if (not self.force and before is not None and before.status == "ok"
                            and set(self.formats) <= set((before.formats or "").split(","))):
                        count(Outcome(job, "ok"))  # the state says it is complete: nothing is read or run
                        continue
                    if stop.is_set():
                        break
                    if not self._take(slots, stop):
                        break
                    concurrent = self.source is not None or registry.spec(job.provider or "").concurrent
                    # A job that ran before (or a folder from before the state existed) may be on disk.
                    on_disk = before is not None or self.legacy
                    if self.parallel > 1 and not concurrent and registry.can(self.provider_for(job.provider or ""), MultiSequence):
                        if not streaming:
                            streaming = True
                            serial.submit(self.stream_local, feed, lambda o: writer.submit(finish, o), slots.release, stop)
                        feed.put((job, on_disk))
                        continue
                    (api if concurrent else serial).submit(task, job, job.provider or "", on_disk)
                if stop.is_set():
                    break
            feed.put(None)
            drain()  # the whole input is queued: let it finish
        except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (errors.Terminated)
            interrupted = True
            self.stopped_by = err
        finally:
            stop.set()  # queued jobs return at once (their slots freed); running ones finish and are written
            feed.put(None)  # the local decoder abandons what it started: pending, slots freed
            if not streaming:
                while not feed.empty():
                    if feed.get_nowait() is not None:
                        slots.release()
            try:
                drain()
            except KeyboardInterrupt as err:  # (a second Ctrl-C ends the process in cli._signals)
                interrupted = True
                self.stopped_by = self.stopped_by or err
            for pool in (api, serial, writer):
                pool.shutdown(wait=False)
            with contextlib.suppress(KeyboardInterrupt):
                for chunk in _chunks(stream, ADMIT_CHUNK):  # the rest of the input, read (not run): the index lists every prompt
                    admit(chunk)
            self.finish_index()
        return tally, interrupted

    @staticmethod
    def _take(slots: threading.BoundedSemaphore, stop: threading.Event) -> bool:
        """A slot for one more job in flight, or False (holding none) once the batch is stopping."""
        while not stop.is_set():
            if slots.acquire(timeout=0.2):
                if stop.is_set():
                    slots.release()
                    return False
                return True
        return False

    def finish_index(self) -> None:
        """Write index.json and index.md from the state, in input order, then close the state.
        Results never depend on it: each prompt's own files and the state are what a resume trusts."""
        state = self.open()
        try:
            state.commit()
            counts = state.counts()
            head = {"schema": INDEX_SCHEMA, "schema_version": 1, "formats": self.formats, "summary": counts}
            opening = json.dumps(head, ensure_ascii=False, indent=2)[:-2] + ',\n  "items": ['

            def items_json() -> Iterator[bytes]:
                yield opening.encode("utf-8")
                for n, row in enumerate(state.rows()):
                    item = json.dumps(self._entry(row), ensure_ascii=False)
                    yield (("\n    " if n == 0 else ",\n    ") + item).encode("utf-8")
                yield b"\n  ]\n}\n"

            write_atomic_chunks(self.out_dir / "index.json", items_json())
            write_atomic_chunks(self.out_dir / "index.md", markdown_index((self._entry(r) for r in state.rows()), counts))
        except TokvizError as err:
            self.disk_full = self.disk_full or err.line()
        finally:
            state.close()
            self.state = None

    def _entry(self, row: batchstate.Row) -> dict[str, Any]:
        entry: dict[str, Any] = {"n": row.n, "id": row.id, "name": row.name, "prompt": row.prompt,
                                 "model": row.model, "status": row.status}
        if row.status == "ok":
            entry.update(provider=row.provider, text=row.text, tokens=row.tokens,
                         files=self.files(row.name, [f for f in self.formats if f in (row.formats or "").split(",")]))
        if row.error and row.status != "ok":
            entry["error"] = row.error
        return entry


@dataclass
class _LocalFeed:
    """The queue of local jobs (`Batch.stream_local`), cut into streams of one model each: a
    stream takes jobs until one for another model comes, which is carried to the next stream."""

    feed: queue.Queue[tuple[Job, bool] | None]
    stop: threading.Event
    release: Callable[[], None]
    deliver: Callable[[Outcome], None]
    resume: Callable[[Job], Run | None]
    carry: tuple[Job, bool] | None = None
    ended: bool = False  # the feed said there are no more

    def next_head(self) -> tuple[Job, bool] | None:
        """The first job of the next stream, or None when there are no more."""
        head, self.carry = self.carry, None
        if head is None and not self.ended:
            head = self.feed.get()
        if head is None:
            self.ended = True
        return head

    def drain(self) -> None:
        """Free the slots of what is left when the batch stopped (a carried job, queued ones)."""
        if self.carry is not None:
            self.carry = None
            self.release()
        while True:
            try:
                item = self.feed.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                self.release()


class _ModelStream:
    """One model's run of jobs, as `LocalProvider.stream` takes them (`take`) and hands them back
    (`on_run`); `taken` holds those started and not yet delivered."""

    def __init__(self, source: _LocalFeed, head: tuple[Job, bool]) -> None:
        self.source = source
        self.model = (head[0].provider, head[0].request.model)
        self.first: tuple[Job, bool] | None = head
        self.taken: dict[str, Job] = {}

    def take(self, wait: bool) -> tuple[str, Request] | None:
        src = self.source
        while True:
            if self.first is not None:
                item, self.first = self.first, None
            elif src.ended or src.carry is not None:
                return None
            else:
                try:
                    item = src.feed.get(block=wait)
                except queue.Empty:
                    return None
            if item is None:
                src.ended = True
                return None
            job, on_disk = item
            if src.stop.is_set():
                src.release()
                continue
            if (job.provider, job.request.model) != self.model:
                src.carry = item  # another model: the next stream's first job
                return None
            if on_disk:
                found = _guarded(job, lambda job=job: Outcome(job, "ok", src.resume(job)))  # type: ignore[misc]
                if found.status == "ok" and found.run is not None:
                    src.deliver(found)
                    continue
            self.taken[job.name] = job
            return job.name, job.request

    def on_run(self, name: str, result: Run | TokvizError) -> None:
        job = self.taken.pop(name)
        self.source.deliver(Outcome(job, "ok", result, fresh=True) if isinstance(result, Run)
                            else Outcome(job, "failed", error=result.line()))


def _guarded(job: Job, step: Callable[[], Outcome]) -> Outcome:
    """Run one step of a job; any failure becomes that job's recorded error, never the batch's."""
    try:
        return step()
    except TokvizError as err:
        return Outcome(job, "failed", error=err.line())
    except Exception as err:  # one prompt's bug must not stop the others; it is recorded
        return Outcome(job, "failed", error=f"internal error: {type(err).__name__}: {err}")


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell (no markup, no line breaks, no pipes)."""
    text = " ".join(text.split())
    return re.sub(r"([\\`*_{}\[\]<>()#+!|])", r"\\\1", text)


def markdown_index(items: Iterable[dict[str, Any]], counts: dict[str, int]) -> Iterator[bytes]:
    """index.md, piece by piece: the table, then a section per graph (the items are read twice)."""
    head = ["# tokviz batch", "", f"{counts['ok']} of {counts['total']} prompts done.", "",
            "| # | prompt | model | output | files |", "|---|---|---|---|---|"]
    yield ("\n".join(head) + "\n").encode("utf-8")
    graphs = []
    for i in items:
        if i["status"] == "ok":
            files = " ".join(f"[{fmt}]({name})" for fmt, name in i["files"].items())
            out = _md(i["text"])
            if "svg" in i["files"] and counts["total"] <= SHARD_AFTER:
                graphs.append((i["n"], _md(i["prompt"]), i["files"]["svg"]))
        else:
            files = ""
            out = "**" + i["status"] + "**" + (": " + _md(i["error"]) if i.get("error") else "")
        yield f"| {i['n']} | {_md(i['prompt'])} | {_md(i['model'])} | {out} | {files} |\n".encode()
    for n, prompt, svg in graphs:  # pictures inline only for batches a person reads page by page
        yield f"\n## {n}. {prompt}\n\n![graph of prompt {n}]({svg})\n".encode()
