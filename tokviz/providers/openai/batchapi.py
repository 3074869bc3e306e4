"""OpenAI's Batch API and `vllm run-batch`: whole (not streamed) answers read into runs, and batches
submitted through the SDK's files and batches endpoints, polled until they end."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tokviz.ground.errors import ProviderError
from tokviz.providers.base import Request
from tokviz.providers.openai import dialects, logprobs
from tokviz.providers.openai.bodies import request_body
from tokviz.providers.openai.connection import Connection, where
from tokviz.providers.openai.errors import translate_error
from tokviz.run import Run


def run_from_answer(answer: Any, request: Request, dialect: dialects.Dialect, *, origin: str) -> Run:
    """A Run from one whole (not streamed) answer body, as OpenAI's Batch API and `vllm run-batch`
    return them; an answer with no log-probabilities or no finish reason is a failure, not a run."""
    if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list) or not answer["choices"]:
        raise ProviderError(f"{origin}: the answer holds no choices")
    choice = answer["choices"][0] if isinstance(answer["choices"][0], dict) else {}
    try:
        found = logprobs.items(choice.get("logprobs"))
        steps = [logprobs.step(item, dialect) for item in found]
    except ValueError as err:
        raise ProviderError(f"{origin}: log-probabilities tokviz cannot read: {err}") from None
    text = (choice.get("message") or {}).get("content") if "message" in choice else choice.get("text")
    if not steps:
        raise ProviderError(f"{origin}: the answer has no log-probabilities",
                            hint="the requests must ask for logprobs (tokviz batch --export-requests does)")
    if not choice.get("finish_reason"):
        raise ProviderError(f"{origin}: the answer has no finish reason (truncated)")
    params = request.params
    _, _, messages, source = request_body(request, params, dialect, openai=dialects.official(dialect))
    usage_in = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
    usage = {k: int(v) for k, v in usage_in.items() if k in ("prompt_tokens", "completion_tokens") and isinstance(v, int)}
    usage.setdefault("completion_tokens", len(steps))
    steps, loss = logprobs.reconcile(steps, text if isinstance(text, str) else "", dialect,
                                     invalid=sum(logprobs.invalid_figures(i) for i in found))
    if loss:
        source["lossy"] = loss.note
    source["imported"] = origin
    return Run(provider="openai", model=str(answer.get("model") or request.model), prompt=request.prompt, params=params,
               steps=tuple(steps), messages=tuple(messages), finish_reason=str(choice["finish_reason"]), usage=usage,
               timings={}, content=loss.content if loss else None, source=source)


BATCH_DONE = ("completed", "failed", "expired", "cancelled")


def submit(connection: Connection, request: Request, inputs: list[tuple[Path, str]], *,
                 known: list[dict[str, str]] | None, remember: Callable[[list[dict[str, str]]], None],
                 progress: Callable[[str], None], poll_s: float) -> list[bytes]:
    """Run request files through the Batch API (files + batches endpoints, through the SDK): upload
    each (path, endpoint), create its batch, poll until every batch has ended, and return the
    content of their output and error files. `known` are batches submitted by an earlier run of the
    same command (kept in the batch's state by `remember`): they are polled, never submitted twice."""
    client, base_url = connection.client(request)
    try:
        parts = list(known or [])
        if not parts:
            for path, endpoint in inputs:
                with path.open("rb") as fh:
                    uploaded = client.files.create(file=(path.name, fh), purpose="batch")
                created = client.batches.create(input_file_id=uploaded.id, endpoint=endpoint, completion_window="24h")  # type: ignore[arg-type]
                parts.append({"file": uploaded.id, "batch": created.id})
                remember(parts)
            progress(f"tokviz: submitted {len(parts)} batch(es) to {where(base_url)}: {', '.join(p['batch'] for p in parts)}")
        while True:
            states = [client.batches.retrieve(p["batch"]) for p in parts]
            done = sum((b.request_counts.completed + b.request_counts.failed) if b.request_counts else 0 for b in states)
            total = sum(b.request_counts.total if b.request_counts else 0 for b in states)
            progress(f"tokviz: batch {', '.join(b.status for b in states)}: {done} of {total} requests")
            if all(b.status in BATCH_DONE for b in states):
                break
            time.sleep(poll_s)
        bad = [b for b in states if b.status != "completed"]
        if bad:
            errors = "; ".join(e.message or "" for b in bad for e in ((b.errors.data or []) if b.errors else []))
            remember([])  # a failed batch is submitted afresh next time
            raise ProviderError(f"batch {bad[0].id} ended {bad[0].status}" + (f": {errors}" if errors else ""),
                                hint="run the same command again to submit it again")
        contents = []
        for b in states:
            for file_id in (b.output_file_id, b.error_file_id):
                if file_id:
                    contents.append(client.files.content(file_id).read())
        return contents
    except ProviderError:
        raise
    except Exception as err:  # every SDK and transport failure becomes one line
        raise translate_error(err, request, base_url) from None
