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
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from tokviz.batch import index
from tokviz.batch import state as batchstate
from tokviz.batch.flight import Flight
from tokviz.batch.jobs import Job, Outcome, Tally, chunks, guarded
from tokviz.batch.state import State
from tokviz.ground.errors import TokvizError, UsageError
from tokviz.ground.files import OutputError, write_atomic
from tokviz.providers import registry
from tokviz.providers.base import Provider
from tokviz.run import Run, RunSet, load_record
from tokviz.views import export

ADMIT_CHUNK = 256  # input lines read, checked against the state and recorded at once


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
    _numbered: int = 0  # the highest number given to a job: a chunk is numbered whole, before it is run

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
                decided = "1" if self.expected > index.SHARD_AFTER else "0"
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

    def resume(self, job: Job) -> Run | RunSet | None:
        """The saved record of a job completed earlier, with any missing formats rendered from it."""
        saved = self.path(job, "json")
        if self.force or not saved.is_file():
            return None
        try:
            record = load_record(saved.read_text(encoding="utf-8"), source=str(saved))
        except (TokvizError, OSError, UnicodeDecodeError):
            return None  # unreadable: run it again
        if not answers(record, job):
            return None  # a job named by its id whose line changed since: asked again, never the old answer
        for fmt in self.formats_of(record):
            if fmt != "json" and not self.path(job, fmt).is_file():
                write_atomic(self.path(job, fmt), export.render(record, fmt, self.options))
        return record

    def formats_of(self, record: Run | RunSet) -> list[str]:
        """The batch's formats a record can be drawn in (weighed answers have no token graph: no .dot)."""
        from tokviz.views import formats

        return [f for f in self.formats if record.kind.value in formats.BY_NAME[f].kinds]

    def fetch(self, job: Job, name: str, on_disk: bool = True) -> Outcome:
        """Get a job's run from its provider, or from disk when `on_disk` says it may have been
        completed without being recorded. A fresh run is not yet written: `store` does that (on
        the writer thread)."""
        return guarded(job, lambda: self._fetch(job, name, on_disk))

    def _fetch(self, job: Job, name: str, on_disk: bool) -> Outcome:
        previous = self.resume(job) if on_disk else None
        if previous is not None:
            return Outcome(job, "ok", previous)
        if job.choices:
            if self.source is not None:
                raise UsageError("answers to weigh (\"choices\") are asked of a model, not read from imported results")
            from tokviz.pipeline.choices import weigh_on

            return Outcome(job, "ok", weigh_on(self.provider_for(name), job.request, registry.spec(name),
                                               list(job.choices)), fresh=True)
        if self.source is not None:
            return Outcome(job, "ok", self.source(job), fresh=True)
        run = self.provider_for(name).predict(job.request)
        if job.request.params.json_schema is not None:  # an answer held to a schema: checked against it
            from tokviz.pipeline.structured import validated

            run = validated(run)
        return Outcome(job, "ok", run, fresh=True)

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
            for fmt in self.formats_of(run):
                if fmt != "json":
                    write_atomic(self.path(outcome.job, fmt), export.render(run, fmt, self.options))
            write_atomic(self.path(outcome.job, "json"), run.to_json().encode("utf-8"))
            return outcome

        result = guarded(outcome.job, write)
        if result.status == "failed":
            result.fresh = True
        return result

    def keep(self, outcome: Outcome) -> None:
        """Record an outcome in the state (a write that failed on a full disk stays pending)."""
        state = self.open()
        run = outcome.run
        if outcome.status == "ok" and isinstance(run, RunSet):  # weighed answers: the winner is its answer
            from tokviz.measures.choices import verdict

            v = verdict(run)
            won = None if v.acc is None else v.choices[v.acc]
            summary = {"winner": None if won is None else won.choice,
                       "share": None if v.shares is None or v.acc is None else round(v.shares[v.acc], 6),
                       "exact": v.exact, "choices": [w.choice for w in v.choices]}
            state.finish(outcome.job.name, "ok", provider=run.runs[0].provider, text="" if won is None else won.choice,
                         tokens=sum(len(r.steps) for r in run.runs), summary=summary,
                         formats=["json", *[f for f in self.formats_of(run) if f != "json"]])
        elif outcome.status == "ok" and run is not None:
            state.finish(outcome.job.name, "ok", provider=run.provider, text=run.text, tokens=len(run.steps),
                         formats=["json", *[f for f in self.formats if f != "json"]])
        elif outcome.error is not None and not (outcome.fresh and self.disk_full):
            state.finish(outcome.job.name, "failed", error=outcome.error)

    def run(self, jobs: Iterable[Job], on_done: Callable[[Outcome], None], stop: threading.Event) -> tuple[Tally, bool]:
        """Run every job of the stream; `on_done` is called (from worker threads) after each one.
        Returns the counts and whether Ctrl-C stopped the batch. On Ctrl-C, or when `stop` is set,
        running jobs finish and are written, queued ones stay pending (a resume runs them)."""
        state = self.open()
        flight = Flight(self, on_done, stop)
        self._numbered = 0
        stream = iter(jobs)
        interrupted = False
        try:
            for chunk in chunks(stream, ADMIT_CHUNK):
                for job, got in zip(chunk, self._admit(state, chunk, flight.tally)):
                    if not self._dispatch(job, got, flight):
                        break
                if stop.is_set():
                    break
            flight.end_input()
        except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (errors.Terminated)
            interrupted = True
            self.stopped_by = err
        finally:
            second = flight.land()
            if second is not None:
                interrupted = True
                self.stopped_by = self.stopped_by or second
            with contextlib.suppress(KeyboardInterrupt):
                for chunk in chunks(stream, ADMIT_CHUNK):  # the rest of the input, read (not run): the index lists every prompt
                    self._admit(state, chunk, flight.tally)
            self.finish_index()
        return flight.tally, interrupted

    def _admit(self, state: State, chunk: list[Job], tally: Tally) -> list[tuple[int, batchstate.Row | None] | None]:
        """Record a chunk of the input in the state, numbered after the part already numbered."""
        try:
            admitted = state.admit([(j.name, j.number, j.id, j.request.prompt, j.request.model, j.problem)
                                    for j in chunk], self._numbered + 1)
        except sqlite3.Error as err:  # a full disk, or a prompt too long for SQLite to hold
            raise OutputError(f"cannot record the batch's state in {self.out_dir}: {err}",
                              hint="free some space and run the same command again to resume") from None
        self._numbered = max([self._numbered, *(got[0] for got in admitted if got is not None)])
        tally.total = self._numbered
        return admitted

    def _dispatch(self, job: Job, got: tuple[int, batchstate.Row | None] | None, flight: Flight) -> bool:
        """Count, skip or launch one admitted job; False once the batch is stopping."""
        if got is None:
            if job.id:
                raise UsageError(f"id {job.id!r} is used twice")  # check_lines refuses these first
            return True  # the same prompt with the same settings: one job, one set of files
        n, before = got
        job = replace(job, number=n)
        if job.problem:
            flight.count(Outcome(job, "failed", error=job.problem))
            return True
        changed = before is not None and _line_changed(before, job)
        if (not self.force and before is not None and before.status == "ok" and not changed
                and set(self.formats) <= set((before.formats or "").split(","))):
            flight.count(Outcome(job, "ok"))  # the state says it is complete: nothing is read or run
            return True
        if flight.stop.is_set() or not flight.take_slot():
            return False
        # A job that ran before (or a folder from before the state existed) may be on disk.
        flight.launch(job, on_disk=(before is not None or self.legacy) and not changed)
        return True

    def finish_index(self) -> None:
        """Write index.json and index.md from the state, in input order, then close the state.
        Results never depend on it: each prompt's own files and the state are what a resume trusts."""
        state = self.open()
        try:
            index.write(state, self.out_dir, self.formats, self.files)
        except TokvizError as err:
            self.disk_full = self.disk_full or err.line()
        except sqlite3.Error as err:  # the state's own disk is full: said in one line, never an internal error
            self.disk_full = self.disk_full or f"cannot record the batch's state: {err}"
        finally:
            try:
                state.close()
            except sqlite3.Error as err:
                self.disk_full = self.disk_full or f"cannot record the batch's state: {err}"
            self.state = None


def _line_changed(before: batchstate.Row, job: Job) -> bool:
    """A job named by its id whose prompt, model or answers to weigh are not those its state row
    recorded: the line changed since, so its old answer is not this job's (names without an id hash
    the request)."""
    if job.id is None:
        return False
    import json

    weighed = json.loads(before.summary).get("choices") if before.summary else None
    if before.status == "ok" and (weighed or []) != list(job.choices):
        return True
    if before.prompt == job.request.prompt and before.model == job.request.model:
        return False
    from tokviz.ground.errors import redact

    return before.prompt != redact(job.request.prompt, shapes=False) or before.model != job.request.model


def answers(record: Run | RunSet, job: Job) -> bool:
    """Whether a saved record answered this job's request: a job named by its id keeps its name when
    its line changes (another prompt, model, setting or answers to weigh), and an answer is reused
    only for the same request. The seed is compared only where the line fixed one (an unseeded run
    records the seed it drew); a server's model is compared only where the line named one."""
    from tokviz.ground.errors import redact
    from tokviz.providers.base import SERVER_MODEL
    from tokviz.providers.embedded import EMBEDDED_NAMES

    if isinstance(record, RunSet):
        if not job.choices or [r.source.get("choice") for r in record.runs] != list(job.choices):
            return False
        run = record.runs[0]
    elif job.choices:
        return False
    else:
        run = record
    r = job.request
    if job.id is None:
        return True  # a name without an id is a hash of the whole request already (`jobs.job_name`)
    if run.prompt != r.prompt and run.prompt != redact(r.prompt, shapes=False):
        return False
    if r.model != SERVER_MODEL and run.model != r.model and not {run.model, r.model} <= EMBEDDED_NAMES:
        return False  # another model (the embedded one's aliases are one model)
    a, b = run.params, r.params
    keys = (("top_k", "mode") if job.choices else ("top_k", "max_tokens", "temperature", "top_p", "mode")
            + (("seed",) if b.seed is not None else ()))
    return all(getattr(a, k) == getattr(b, k) for k in keys)
