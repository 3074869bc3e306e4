"""A batch's jobs: read from a prompts file as a stream, one line each, and what became of them.

A prompts file is one prompt per line (blank lines and #comments skipped), or JSON Lines with
"prompt" and optional "id", "model", "system", "provider", parameters (flat or under "params")
and "choices" (answers to weigh instead of generating, as `predict --choice`). A job's file stem is stable: its id, or a slug of the prompt and a short hash of all
that makes its answer, so editing one line renames only that line's files.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tokviz import pipeline
from tokviz.ground.errors import TokvizError, UsageError, redact
from tokviz.providers.base import Request
from tokviz.providers.registry import default_model
from tokviz.run import Params, Run, RunSet, codec
from tokviz.run.generation import Generation

_PARAM_KEYS = ("top_k", "max_tokens", "temperature", "top_p", "seed", "mode")



@dataclass(frozen=True)
class Job:
    number: int  # 1-based position in the input
    name: str  # file stem in the output folder
    request: Request
    id: str | None = None
    provider: str | None = None  # the provider that serves it (None when the job cannot run)
    problem: str | None = None  # a line that cannot run (bad parameters): recorded as failed
    choices: tuple[str, ...] = ()  # answers to weigh instead of generating ("choices" in a JSON line)


@dataclass
class Outcome:
    job: Job
    status: str  # "ok" | "failed"
    run: Run | RunSet | None = None  # a set: the weighed answers of a job with choices
    error: str | None = None
    fresh: bool = False  # generated in this invocation (not resumed from disk)


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


def guarded(job: Job, step: Callable[[], Outcome]) -> Outcome:
    """Run one step of a job; any failure becomes that job's recorded error, never the batch's."""
    try:
        return step()
    except TokvizError as err:
        return Outcome(job, "failed", error=err.line())
    except Exception as err:  # one prompt's bug must not stop the others; it is recorded
        return Outcome(job, "failed", error=f"internal error: {type(err).__name__}: {err}")


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


def job_name(request: Request, id_: str | None, choices: tuple[str, ...] = ()) -> str:
    """A stable file stem: the id if given, else a slug of the prompt and a short hash of all that
    makes the answer (so editing one line renames only that line's files)."""
    if id_:
        return _safe_id(redact(id_, shapes=False))
    asked: dict[str, Any] = {"model": request.model, "prompt": request.prompt, "system": request.system,
                             "params": request.params.to_dict()}
    if choices:
        asked["choices"] = list(choices)
    key = json.dumps(asked, sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{_slug(redact(request.prompt, shapes=False))}-{digest}"  # a key in a prompt never names a file


MAX_LINE = 1_000_000  # characters of one input line: more is no prompt a model reads, and would be held whole


class LongLine(str):
    """A line of the input longer than MAX_LINE, not read: it stands for that line (its job fails)."""


def read_lines(path: Path) -> Iterator[str]:
    """The lines of a prompts file, streamed; a line longer than MAX_LINE becomes a `LongLine`
    without ever being held whole (a 1 GB line once took 4 GB)."""
    with path.open(encoding="utf-8", newline=None) as fh:
        while line := fh.readline(MAX_LINE):
            if len(line) == MAX_LINE and not line.endswith("\n"):
                while (rest := fh.readline(MAX_LINE)) and not rest.endswith("\n"):
                    pass
                yield LongLine("x")
                continue
            yield line


def iter_jobs(lines: Iterable[str], *, source: str, defaults: Generation,
              environ: Mapping[str, str] | None = None, jsonl: bool | None = None,
              schema: dict[str, Any] | None = None) -> Iterator[Job]:
    """Jobs from a prompts file, read as a stream: one prompt per line (blank lines and #comments
    skipped), or JSON Lines with "prompt" and optional "id", "model", "system", "provider" and
    parameters (flat or under "params"). A line that is not valid JSON is a usage error naming
    it; bad parameter values make that job fail without stopping the others. Duplicates (the
    same prompt with the same settings) are not dropped here: the batch's state does that."""
    first = True
    for number, line in enumerate(lines, start=1):
        if isinstance(line, LongLine):
            yield Job(number=number, name=f"line-{number}-too-long", request=Request(prompt="", model=defaults.model or ""),
                      problem=f"{source} line {number} is longer than {MAX_LINE:,} characters: not read")
            first = False
            continue
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
        yield _job(stripped, number, source=source, defaults=defaults, environ=environ, jsonl=jsonl, schema=schema)


def _job(stripped: str, number: int, *, source: str, defaults: Generation, environ: Mapping[str, str] | None,
         jsonl: bool, schema: dict[str, Any] | None = None) -> Job:
    """One line's job; `schema` (batch --json-schema) holds every answer whose line names none."""
    choices: tuple[str, ...] = ()
    if not jsonl:
        prompt, gen, id_, problem = stripped, defaults, None, None
    else:
        prompt, gen, id_, problem = _jsonl_job(stripped, number, source, defaults)
        choices, problem = _choices(stripped, problem)
        own, problem = _schema(stripped, problem)
        schema = own if own is not None else schema
    try:
        if problem:
            raise UsageError(problem)
        planned = pipeline.plan(gen, prompt, environ=environ)
        if schema is not None:
            from tokviz.pipeline.structured import structured

            planned = structured(planned, schema)
        request, provider = planned.request, planned.provider
    except TokvizError as err:
        request = Request(prompt=prompt, model=gen.model or default_model(environ), system=gen.system)
        provider, problem = None, err.line()
    return Job(number=number, name=job_name(request, id_, choices), request=request, id=id_, provider=provider,
               problem=problem, choices=choices)


def _schema(line: str, problem: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """A JSON line's "json_schema" (the answer held to it, as `predict --json-schema`), checked; a
    bad schema fails that job only."""
    from tokviz.pipeline.structured import check

    if problem or '"json_schema"' not in line:
        return None, problem
    given = json.loads(line).get("json_schema")
    if given is None:
        return None, None
    try:
        return check(given, '"json_schema"'), None
    except UsageError as err:
        return None, err.message


def _choices(line: str, problem: str | None) -> tuple[tuple[str, ...], str | None]:
    """A JSON line's "choices" (answers to weigh), checked as `predict --choice` checks them; a bad
    list fails that job only."""
    from tokviz.providers.choices import check

    if problem or '"choices"' not in line:  # most lines: not parsed twice
        return (), problem
    given = json.loads(line).get("choices")
    if given is None:
        return (), problem
    if not isinstance(given, list) or not all(isinstance(c, str) for c in given):
        return (), "\"choices\" must be a list of strings"
    try:
        return tuple(check(list(given))), None
    except UsageError as err:
        return (), err.message


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
        if isinstance(line, LongLine):
            count += 1
            continue
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
    except ValueError as err:  # an integer of thousands of digits
        raise UsageError(f"{source} line {number}: {str(err)[:120]}") from None
    except RecursionError:
        raise UsageError(f"{source} line {number} is nested too deeply") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str):
        raise UsageError(f"{source} line {number} has no \"prompt\" string")
    return obj


def _jsonl_job(line: str, number: int, source: str, defaults: Generation) -> tuple[str, Generation, str | None, str | None]:
    obj = _json_line(line, number, source)
    id_ = None if obj.get("id") is None else codec.printable(str(obj["id"]))
    if codec.has_surrogate(obj["prompt"]):  # that job fails; the batch goes on
        return codec.printable(obj["prompt"]), defaults, id_, "the prompt holds a lone surrogate (\\ud800-\\udfff), which is no character"
    nested = obj.get("params", {})
    if not isinstance(nested, dict):
        return obj["prompt"], defaults, id_, f"\"params\" must be an object, not {type(nested).__name__}"
    given = {**nested, **{k: obj[k] for k in _PARAM_KEYS if k in obj}}
    mode_given = "mode" in given
    mode = given.pop("mode", "chat" if (defaults.chat or defaults.system) else "raw" if defaults.raw else "default")
    if mode not in ("chat", "raw", "default"):
        return obj["prompt"], defaults, id_, f"bad parameters: mode must be 'chat' or 'raw', not {mode!r}"
    base = Params(top_k=defaults.top_k, max_tokens=defaults.max_tokens, temperature=defaults.temperature,
                  top_p=defaults.top_p, seed=defaults.seed)
    try:  # read as a saved run's params are: whole numbers whole (not true, not 1e30), numbers finite
        params = Params.from_dict({**base.to_dict(), **given})
    except (TypeError, ValueError, KeyError, OverflowError) as err:
        return obj["prompt"], defaults, id_, f"bad parameters: {err}"
    for key in ("model", "system", "provider"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            return obj["prompt"], defaults, id_, f"\"{key}\" must be a string"
    system = obj.get("system", defaults.system)
    chat = mode == "chat" or bool(obj.get("system") and not mode_given)
    gen = replace(defaults, model=obj.get("model") or defaults.model, system=system,
                  provider=obj.get("provider", defaults.provider), top_k=params.top_k, max_tokens=params.max_tokens,
                  temperature=params.temperature, top_p=params.top_p, seed=params.seed,
                  chat=chat, raw=mode == "raw" and not chat)
    return obj["prompt"], gen, id_, None


def chunks(stream: Iterator[Job], size: int) -> Iterator[list[Job]]:
    chunk: list[Job] = []
    for job in stream:
        chunk.append(job)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
