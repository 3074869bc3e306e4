"""Batch files for engines that run them elsewhere: OpenAI's Batch API and `vllm run-batch`.

tokviz does not build a cluster scheduler. People who outgrow one machine hand a JSONL file of
requests to OpenAI's Batch API (half price, within 24 h, at most 50,000 requests and 200 MB per
file) or to `vllm run-batch` on GPU nodes, which reads the same format. `export` writes those
files from a prompts file (bodies built by the same function `predict` uses, so they ask for the
same log-probabilities); `Results` reads the output lines back (OpenAI's, vLLM's `response.body`
form and older vLLM's bare form, errors included) so that `tokviz batch --import` renders and
indexes them exactly as a live batch would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokviz.batch.state import State
from tokviz.ground.errors import ProviderError, UsageError
from tokviz.ground.files import write_atomic_chunks
from tokviz.providers import registry
from tokviz.providers.base import BatchFiles, Request
from tokviz.run import Run, codec

MAX_REQUESTS = 50_000  # OpenAI Batch API: requests per input file
MAX_BYTES = 200 * 1024 * 1024  # and bytes per file


@dataclass(frozen=True)
class Exported:
    files: tuple[Path, ...]
    requests: int
    completions: int  # requests on /v1/completions (which `vllm run-batch` does not accept)
    skipped: int  # lines whose settings are invalid (their error is printed by the command)
    first_problem: str | None = None


def part_path(path: Path, part: int) -> Path:
    """requests.jsonl, requests-2.jsonl, requests-3.jsonl…"""
    return path if part == 1 else path.with_name(f"{path.stem}-{part}{path.suffix}")


def engine(provider: str | None) -> BatchFiles:
    """The provider that writes and reads batch files for a job's provider, or the one usage line."""
    return registry.require(registry.get_provider(provider or ""), BatchFiles,
                            "write or read request files for an offline batch engine (OpenAI's Batch API, vllm run-batch)")


def export(jobs: Iterable[Any], path: Path, *, dialect_name: str = "openai",
           max_requests: int | None = None, max_bytes: int | None = None) -> Exported:
    """Write one request line per job (custom_id = the job's stable name, which `--import` maps back),
    split at the API's limits. Each file is written atomically."""
    engines: dict[str | None, BatchFiles] = {}
    max_requests = max_requests or MAX_REQUESTS
    max_bytes = max_bytes or MAX_BYTES
    seen: set[str] = set()
    files: list[Path] = []
    part: list[bytes] = []
    size = requests = completions = skipped = 0
    first_problem = None

    def flush() -> None:
        nonlocal part, size
        if part:
            target = part_path(path, len(files) + 1)
            write_atomic_chunks(target, part)
            files.append(target)
        part, size = [], 0

    for job in jobs:
        if job.problem:
            skipped += 1
            first_problem = first_problem or f"line {job.number}: {job.problem}"
            continue
        if job.name in seen:
            continue
        seen.add(job.name)
        if job.provider not in engines:
            engines[job.provider] = engine(job.provider)
        try:  # what only the target's dialect can check (its most alternatives) leaves this prompt out
            url, body = engines[job.provider].batch_request(job.request, dialect_name)
        except UsageError as err:
            skipped += 1
            first_problem = first_problem or f"line {job.number}: {err.message}"
            continue
        line = (codec.dumps({"custom_id": job.name, "method": "POST", "url": "/v1" + url, "body": body},
                           ensure_ascii=False) + "\n").encode("utf-8")
        if part and (len(part) >= max_requests or size + len(line) > max_bytes):
            flush()
        part.append(line)
        size += len(line)
        requests += 1
        completions += url == "/completions"
    flush()
    if not requests:
        raise UsageError("no requests to export", hint=first_problem)
    return Exported(files=tuple(files), requests=requests, completions=completions, skipped=skipped,
                    first_problem=first_problem)


def submit(state_of: Callable[[], State], request: Request, provider: str, jobs: Callable[[], Iterable[Any]], output: Path, *,
           progress: Callable[[str], None], poll_s: float) -> Path:
    """`batch --openai-batch`: the requests exported into the folder, submitted to the Batch API
    (once: the batch ids are kept in the batch's state, so running again polls them), waited for,
    and their answers saved to FOLDER/openai-batch-results.jsonl, which is then imported like any
    results file."""
    submitter = registry.require(registry.get_provider(provider), BatchFiles, "run OpenAI's Batch API (--openai-batch)")
    state = state_of()
    known = json.loads(state.meta("openai_batch") or "[]")
    inputs: list[tuple[Path, str]] = []
    if not known:
        done = export(jobs(), output / "openai-batch-requests.jsonl", dialect_name="openai")
        for path in done.files:
            urls = {json.loads(ln)["url"] for ln in path.read_text(encoding="utf-8").splitlines()}
            if len(urls) != 1:
                raise UsageError("one Batch API batch takes one endpoint: these prompts mix chat and raw completions",
                                 hint="run the chat and the --raw prompts as two batches")
            inputs.append((path, urls.pop()))

    def remember(parts: list[dict[str, str]]) -> None:
        state.set_meta("openai_batch", json.dumps(parts))
        state.commit()

    contents = submitter.submit_batches(request, inputs, known=known, remember=remember, progress=progress, poll_s=poll_s)
    target = output / "openai-batch-results.jsonl"
    write_atomic_chunks(target, contents)
    return target


class Results:
    """An output file of OpenAI's Batch API or `vllm run-batch`, read by custom_id.

    Only each line's offset is kept (the file may hold gigabytes of answers); a job's line is read
    when its turn comes.
    """

    def __init__(self, path: Path, *, dialect_name: str = "openai") -> None:
        self.path = path
        self.dialect = dialect_name
        self.engines: dict[str | None, BatchFiles] = {}
        self.offsets: dict[str, int] = {}
        self.lock = threading.Lock()
        try:
            self.fh = path.open("rb")
        except OSError as err:
            raise UsageError(f"cannot read the results file {path}: {err.strerror}") from None
        at = 0
        for number, line in enumerate(self.fh, start=1):
            if line.strip():
                try:
                    obj = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                    raise UsageError(f"{path} line {number} is not valid JSON") from None
                custom_id = obj.get("custom_id") if isinstance(obj, dict) else None
                if not isinstance(custom_id, str):
                    raise UsageError(f"{path} line {number} has no \"custom_id\"")
                self.offsets[custom_id] = at
            at += len(line)
        if not self.offsets:
            raise UsageError(f"{path} holds no results")

    def close(self) -> None:
        self.fh.close()

    def run(self, job: Any) -> Run:
        """The job's run, or a ProviderError saying why there is none (no line, an error line, a
        non-200 answer, an answer without log-probabilities)."""
        origin = f"{self.path.name} ({job.name})"
        at = self.offsets.get(job.name)
        if at is None:
            raise ProviderError(f"{self.path.name} has no result for {job.name}",
                                hint="the batch may not have finished, or the file came from other prompts")
        with self.lock:
            self.fh.seek(at)
            obj = json.loads(self.fh.readline())
        error = obj.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise ProviderError(f"{origin}: the batch reported an error: {message}")
        response = obj.get("response")
        if not isinstance(response, dict):
            raise ProviderError(f"{origin}: no response")
        if "body" in response:  # OpenAI, and vLLM since it copied the shape
            status = response.get("status_code", 200)
            body = response["body"]
            if status != 200:
                detail = body.get("error", {}).get("message") if isinstance(body, dict) and isinstance(body.get("error"), dict) else body
                raise ProviderError(f"{origin}: the server answered {status}: {detail}")
        else:  # older vLLM: the answer itself
            body = response
        with self.lock:
            if job.provider not in self.engines:
                self.engines[job.provider] = engine(job.provider)
        return self.engines[job.provider].batch_answer(body, job.request, self.dialect, origin)
