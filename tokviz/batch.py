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

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tokviz import pipeline
from tokviz.errors import TokvizError, UsageError
from tokviz.files import write_atomic
from tokviz.generation import Generation
from tokviz.providers import registry
from tokviz.providers.registry import Provider, Request, default_model
from tokviz.run import Params, Run
from tokviz.views import export

INDEX_SCHEMA = "tokviz.batch-index"
INDEX_INTERVAL_S = 0.5
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


def parse_jobs(text: str, *, source: str, defaults: Generation,
               environ: Mapping[str, str] | None = None) -> list[Job]:
    """Jobs from a prompts file: one prompt per line (blank lines and #comments skipped), or JSON
    Lines with "prompt" and optional "id", "model", "system", "provider" and parameters (flat or
    under "params"). A line that is not valid JSON is a usage error naming it; bad parameter
    values make that job fail without stopping the others."""
    if text.startswith("\ufeff"):
        text = text[1:]  # a byte-order mark (Windows editors) is not part of the first prompt
    lines = text.splitlines()
    first = next((ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")), "")
    jsonl = source.endswith(".jsonl") or first.startswith("{")
    jobs: list[Job] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or (not jsonl and stripped.startswith("#")):
            continue
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
        name = job_name(request, id_)
        if name in seen:
            if id_:
                raise UsageError(f"{source} line {number}: id {id_!r} is also used on line {seen[name]}")
            continue  # the same prompt with the same settings: one job, one set of files
        seen[name] = number
        jobs.append(Job(number=len(jobs) + 1, name=name, request=request, id=id_, provider=provider, problem=problem))
    if not jobs:
        raise UsageError(f"{source} holds no prompts")
    return jobs


def _jsonl_job(line: str, number: int, source: str, defaults: Generation) -> tuple[str, Generation, str | None, str | None]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        raise UsageError(f"{source} line {number} is not valid JSON ({err.msg})") from None
    except RecursionError:
        raise UsageError(f"{source} line {number} is nested too deeply") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str):
        raise UsageError(f"{source} line {number} has no \"prompt\" string")
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


@dataclass
class Batch:
    """One batch invocation: where outputs go, in which formats, with which providers."""

    out_dir: Path
    formats: list[str]
    options: export.RenderOptions = field(default_factory=export.RenderOptions)
    concurrency: int = 4
    force: bool = False
    record: Path | None = None
    replay: Path | None = None
    progress: Callable[[str], None] = lambda _: None
    _providers: dict[str, Provider] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _index_written: float = 0.0
    stopped_by: BaseException | None = None  # the KeyboardInterrupt (or Terminated) that stopped the run
    disk_full: str | None = None  # the write failure that stopped the run, if the disk filled up

    def path(self, job: Job, fmt: str) -> Path:
        return self.out_dir / f"{job.name}.{fmt}"

    def files(self, job: Job) -> dict[str, str]:
        return {fmt: self.path(job, fmt).name for fmt in ["json", *[f for f in self.formats if f != "json"]]}

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

    def fetch(self, job: Job, name: str) -> Outcome:
        """Get a job's run: from disk when an earlier batch completed it, else from its provider.
        A fresh run is not yet written: `store` does that (on the writer thread)."""
        return _guarded(job, lambda: self._fetch(job, name))

    def _fetch(self, job: Job, name: str) -> Outcome:
        previous = self.resume(job)
        if previous is not None:
            return Outcome(job, "ok", previous)
        return Outcome(job, "ok", self.provider_for(name).predict(job.request), fresh=True)

    def store(self, outcome: Outcome) -> Outcome:
        """Write a fresh run's files: each format atomically, the run JSON last (it marks completion)."""
        run = outcome.run
        if not outcome.fresh or run is None:
            return outcome
        if self.disk_full:  # after a full disk, answers still arriving are not written half
            return Outcome(outcome.job, "failed", error=self.disk_full, fresh=True)

        def write() -> Outcome:
            for fmt in self.formats:
                if fmt != "json":
                    write_atomic(self.path(outcome.job, fmt), export.render(run, fmt, self.options))
            write_atomic(self.path(outcome.job, "json"), run.to_json().encode("utf-8"))
            return outcome

        result = _guarded(outcome.job, write)
        if result.status == "failed":
            result.fresh = True
        return result

    def run(self, jobs: list[Job], on_done: Callable[[Outcome], None],
            stop: threading.Event) -> tuple[list[Outcome | None], bool]:
        """Run every job; `on_done` is called (from worker threads) after each one. Returns the
        outcomes (None: not run) and whether Ctrl-C stopped the batch. On Ctrl-C, or when `stop`
        is set, running jobs finish and are written, queued ones are dropped."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        outcomes: list[Outcome | None] = [None] * len(jobs)
        names = [None if job.problem else job.provider for job in jobs]
        for job in jobs:
            if job.problem:
                outcomes[job.number - 1] = Outcome(job, "failed", error=job.problem)
                on_done(outcomes[job.number - 1])  # type: ignore[arg-type]
        # Network workers only fetch; one writer thread renders and writes, so a worker sends its
        # next request as soon as an answer is in (rendering would otherwise sit on that path).
        api = ThreadPoolExecutor(max_workers=max(1, self.concurrency), thread_name_prefix="tokviz-api")
        serial = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokviz-local")
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokviz-writer")
        futures: list[Future[None]] = []
        interrupted = False

        def finish(outcome: Outcome) -> None:
            outcome = self.store(outcome)
            if outcome.status == "failed" and outcome.fresh and outcome.error and "disk is full" in outcome.error:
                # Nothing more can be kept: stop asking (queued prompts stay pending), and record the
                # answer that could not be written as not done, so the index matches the disk.
                stop.set()
                outcome = Outcome(outcome.job, "failed", error=outcome.error)
                self.disk_full = outcome.error
            outcomes[outcome.job.number - 1] = outcome
            try:
                self.write_index(jobs, outcomes, at_most_every=INDEX_INTERVAL_S)
            except TokvizError as err:  # the index itself could not be written (full disk)
                self.disk_full = self.disk_full or err.line()
                stop.set()
            on_done(outcome)

        def task(job: Job, name: str) -> None:
            if stop.is_set():
                return
            outcome = self.fetch(job, name)
            with self._lock:
                futures.append(writer.submit(finish, outcome))  # never cancelled: a finished run is kept

        try:
            for job, name in zip(jobs, names):
                if name is not None:
                    pool = api if registry.spec(name).concurrent else serial
                    futures.append(pool.submit(task, job, name))
            while True:
                with self._lock:
                    pending = [f for f in futures if not f.done()]
                if not pending:
                    break
                wait(pending, timeout=0.2)
        except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (errors.Terminated)
            interrupted = True
            self.stopped_by = err
        finally:
            stop.set()  # on Ctrl-C: queued jobs return at once; running ones finish and are written
            api.shutdown(wait=True, cancel_futures=True)
            serial.shutdown(wait=True, cancel_futures=True)
            writer.shutdown(wait=True)
            self.write_index(jobs, outcomes)
        return outcomes, interrupted

    def write_index(self, jobs: list[Job], outcomes: list[Outcome | None], *, at_most_every: float = 0.0) -> None:
        """Rewrite index.json and index.md. Workers call it after each prompt but at most every
        `at_most_every` seconds (rebuilding a 100-item index per prompt was a tenth of a batch's
        wall time); the runner writes it once more at the end, on success and on Ctrl-C alike.
        Results never depend on it: each prompt's own files are what a resume trusts."""
        now = time.monotonic()
        with self._lock:
            if at_most_every and now - self._index_written < at_most_every:
                return
            self._index_written = now
            items = [self._entry(job, outcomes[job.number - 1]) for job in jobs]
            counts = {s: sum(1 for i in items if i["status"] == s) for s in ("ok", "failed", "pending")}
            doc = {"schema": INDEX_SCHEMA, "schema_version": 1, "formats": self.formats,
                   "summary": {"total": len(items), **counts}, "items": items}
            write_atomic(self.out_dir / "index.json",
                         (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))
            write_atomic(self.out_dir / "index.md", markdown_index(items).encode("utf-8"))

    def _entry(self, job: Job, outcome: Outcome | None) -> dict[str, Any]:
        entry: dict[str, Any] = {"n": job.number, "id": job.id, "name": job.name, "prompt": job.request.prompt,
                                 "model": job.request.model, "status": "pending" if outcome is None else outcome.status}
        if outcome is not None and outcome.run is not None:
            entry.update(provider=outcome.run.provider, text=outcome.run.text, tokens=len(outcome.run.steps),
                         files=self.files(job))
        if outcome is not None and outcome.error:
            entry["error"] = outcome.error
        return entry


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


def markdown_index(items: list[dict[str, Any]]) -> str:
    ok = sum(1 for i in items if i["status"] == "ok")
    lines = ["# tokviz batch", "", f"{ok} of {len(items)} prompts done.", "",
             "| # | prompt | model | output | files |", "|---|---|---|---|---|"]
    for i in items:
        if i["status"] == "ok":
            files = " ".join(f"[{fmt}]({name})" for fmt, name in i["files"].items())
            out = _md(i["text"])
        else:
            files = ""
            out = "**" + i["status"] + "**" + (": " + _md(i["error"]) if i.get("error") else "")
        lines.append(f"| {i['n']} | {_md(i['prompt'])} | {_md(i['model'])} | {out} | {files} |")
    graphs = [i for i in items if i["status"] == "ok" and "svg" in i["files"]]
    for i in graphs:
        lines += ["", f"## {i['n']}. {_md(i['prompt'])}", "", f"![graph of prompt {i['n']}]({i['files']['svg']})"]
    return "\n".join(lines) + "\n"
