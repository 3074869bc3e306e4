"""OpenAI and OpenAI-compatible servers (vLLM, llama.cpp's server, Ollama, LM Studio) through the
official `openai` SDK, streamed, with log-probabilities: Chat Completions (`--chat`, the default)
or Completions (`--raw`), read through the server's dialect (`dialects.py`, `logprobs.py`).

What the API gives per generated token: its text, logprob, exact `bytes` (a list of ints, or null
on some compatible servers) and the top alternatives with the same fields. The chosen token's own
logprob is read from the item itself, never looked up among the alternatives: when sampling picks
a token outside the top k it is not there. Bytes are kept exactly, so a character split across
tokens (emoji, Korean) joins back whole.

Every failure becomes one `ProviderError` line that names the server and the fix; the API key is
redacted from every message (see `tokviz.ground.errors.redact`).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tokviz.ground.errors import ProviderError, RateLimitedError, UsageError, redact
from tokviz.providers.openai import dialects, logprobs
from tokviz.providers.openai.ratelimit import RateGate
from tokviz.providers.registry import (
    Capability,
    Continuation,
    OptionSpec,
    Progress,
    ProviderSpec,
    Request,
    ScoreSpec,
    TreeSpec,
)
from tokviz.run import Message, Run, RunKind, Step, Token, Tokenization
from tokviz.run import tokens as tok

if TYPE_CHECKING:
    from openai import OpenAI

OPENAI_URL = "https://api.openai.com/v1"
# Sent to servers that need no key: the SDK refuses to start without one.
PLACEHOLDER_KEY = "sk-no-key-required"
LOGPROB_MODELS = "gpt-4.1, gpt-4.1-mini, gpt-4o, gpt-4o-mini"


def _base_url(request: Request) -> str | None:
    return request.base_url or os.environ.get("OPENAI_BASE_URL") or None


def _where(base_url: str | None) -> str:
    """The server, for messages: scheme, host and path only (credentials in a URL stay out)."""
    if base_url is None:
        return OPENAI_URL
    try:
        parts = urlsplit(base_url)
        host = parts.hostname or ""
    except ValueError:
        return base_url
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _stream(client: OpenAI, path: str, body: dict[str, Any]) -> Any:
    """POST a streamed request and yield each chunk as a plain dict.

    The SDK's generic `post` keeps everything the typed `chat.completions.create` gives (auth,
    retries with Retry-After, typed errors, SSE decoding) but skips building a pydantic model per
    chunk, which halved the client's CPU per request (6.4 → 3.1 ms, measured): what decides how
    many requests a batch can keep in flight on two cores.
    """
    from openai import Stream

    return client.post(path, body=body, cast_to=object, stream=True, stream_cls=Stream[object])


class Incomplete(Exception):
    """An answer that ended with no finish reason: interrupted or truncated, never a run."""

    def error(self, base_url: str | None, times: str = "", hint: str | None = None) -> ProviderError:
        """The one line that says so (`times`: how often it happened, when it was asked again)."""
        return ProviderError(f"the answer from {_where(base_url)} ended {self} with no finish reason "
                             f"(interrupted or truncated){times}", hint=hint)


@dataclass
class _Answer:
    steps: list[Step]
    text: list[str]
    finish: str | None = None
    usage: dict[str, int] | None = None
    text_without_logprobs: bool = False
    t_first: float | None = None


def check_key(key: str) -> None:
    """Keys pasted with a newline or typed with a look-alike character fail as 401s far away."""
    if key != key.strip():
        raise UsageError("OPENAI_API_KEY has leading or trailing whitespace (a newline from a file?)",
                         hint='strip it: export OPENAI_API_KEY="$(tr -d "[:space:]" < keyfile)"')
    if not key.isascii() or not key.isprintable():
        raise UsageError("OPENAI_API_KEY holds a non-ASCII or control character",
                         hint="copy the key again from its source; a typographic dash or quote may have crept in")


class OpenAIProvider:
    """OpenAI and OpenAI-compatible servers: chat or raw completions, with logprobs, per dialect."""

    name = "openai"

    def __init__(self, *, progress: Progress) -> None:
        self.progress = progress
        # One client per server and settings, shared by threads (batch): building an HTTP client
        # per request costs more CPU than a 200 ms request leaves for sixteen workers.
        self._clients: dict[tuple[str | None, str, float, int], OpenAI] = {}
        self._lock = threading.Lock()
        self.gate = RateGate()
        self._one_at_a_time: dict[str, threading.Lock] = {}

    def _turn(self, base_url: str | None, dialect: dialects.Dialect) -> Any:
        """A lock per server that must see one request at a time (a null context otherwise)."""
        import contextlib

        if not dialect.one_at_a_time:
            return contextlib.nullcontext()
        with self._lock:
            return self._one_at_a_time.setdefault(base_url or "", threading.Lock())

    def tokenize(self, text: str, model: str) -> Tokenization:
        return tokenize(text, model)

    def tree_cursor(self, request: Request, spec: TreeSpec, forced: tuple[Token, ...] = ()) -> ServerCursor:
        if dialects.is_openai(_base_url(request)):
            raise UsageError(
                "OpenAI's chat API cannot continue from a forced prefix, so it cannot grow a tree or explore",
                hint="use the local model, or --base-url with a server that has the completions endpoint (vLLM, llama.cpp)",
            )
        if request.params.mode == "chat":
            raise UsageError("a tree on a server continues raw text through /v1/completions; it cannot use the chat format",
                             hint="leave out --chat, or grow the tree on the local model, which applies the chat format itself")
        return ServerCursor(self, request, spec, request.prompt + "".join(t.text for t in forced))

    def score(self, request: Request, text: str, progress: Any = None, spec: ScoreSpec | None = None) -> Run:
        """The prompt log-probabilities of context + text, through /v1/completions with `echo`.

        Only servers whose dialect returns them can (vLLM, SGLang, llama-cpp-python; OpenAI only
        for its legacy completion models); the rest are refused in one line naming who can. The
        server tokenizes context and text together: a token that straddles the boundary belongs
        to the context, and the run says so when the scored tokens do not rebuild the text.
        """
        spec = spec or ScoreSpec()
        if spec.exact or spec.window or spec.stride:
            raise UsageError("--exact, --window and --stride are for the local model; a server scores the text as it reads it")
        base_url = _base_url(request)
        able = "the local model; vLLM, SGLang and llama-cpp-python servers (echo); OpenAI's babbage-002 and davinci-002"
        if dialects.is_openai(base_url) and not dialects.can_score(dialects.DIALECTS["openai"], request.model):
            raise UsageError(f"OpenAI's {request.model} cannot score a given text (its API returns no prompt log-probabilities)",
                             hint=f"providers that can: {able}")
        client, base_url = self.client(request)
        dialect = self.dialect(client, base_url, request)
        if not dialects.can_score(dialect, request.model):
            raise UsageError(f"{_where(base_url)} ({dialect.label}) cannot score a given text: {dialect.score}",
                             hint=f"providers that can: {able}")
        t0 = time.perf_counter()
        whole = request.prompt + text
        body = {"model": request.model, "prompt": whole, "max_tokens": dialect.echo_max_tokens, "echo": True,
                "logprobs": max(request.params.top_k, dialect.min_completion_logprobs), "temperature": 0.0,
                **dialect.greedy_body}
        try:
            with self._turn(base_url, dialect):
                answer = client.post("/completions", body=body, cast_to=object)
        except Exception as err:  # every SDK and transport failure becomes one line
            raise translate_error(err, request, base_url) from None
        choice = ((answer.get("choices") if isinstance(answer, dict) else None) or [{}])[0]
        try:
            echoed = logprobs.echoed(choice.get("logprobs") if isinstance(choice, dict) else None, whole)
        except ValueError as err:
            raise ProviderError(f"{_where(base_url)} sent log-probabilities tokviz cannot read: {err}") from None
        start, stop = len(request.prompt), len(whole)
        if not echoed or echoed[0][0] > 0:
            raise ProviderError(f"{_where(base_url)} ({dialect.label}) did not echo the text with its log-probabilities",
                                hint=f"it may not support echo on /v1/completions; providers that can score: {able}")
        scored = [(at, item) for at, item in echoed if start <= at < stop]
        steps, unscored = [], 0
        try:
            for _, item in scored:
                if item is None:
                    unscored += 1
                    continue
                steps.append(logprobs.step(item, dialect))
        except ValueError as err:
            raise ProviderError(f"{_where(base_url)} sent log-probabilities tokviz cannot read: {err}") from None
        if not steps:
            raise ProviderError(f"{_where(base_url)} returned no log-probabilities for the text",
                                hint="the first token of a text has none on a server (nothing precedes it): give --context")
        if progress is not None:
            progress(len(steps), len(steps))
        source = {"dialect": dialect.name, "scoring": "teacher-forced by the server: echo with logprobs on /v1/completions"}
        notes = []
        if unscored:
            notes.append("the text's first token has no log-probability on a server (nothing precedes it; give --context)")
        if "".join(t.text for t in (st.chosen for st in steps)) != text and not unscored:
            notes.append("the server's tokens do not rebuild the text exactly (a token straddles the context's end, "
                         "or partial characters were dropped)")
        if any(st.chosen.lossy for st in steps):
            notes.append(f"{sum(st.chosen.lossy for st in steps)} token(s) reported without their exact bytes")
        if notes:
            source["lossy"] = "; ".join(notes)
            self.progress(f"tokviz: warning: {'; '.join(notes)}")
        elapsed = time.perf_counter() - t0
        before = sum(1 for at, _ in echoed if at < start)
        return Run(provider=self.name, model=request.model, prompt=request.prompt,
                   params=replace(request.params, max_tokens=len(steps), temperature=0.0),
                   steps=tuple(steps), finish_reason=None, kind=RunKind.SCORE,
                   usage={"prompt_tokens": before, "scored_tokens": len(steps)},
                   timings={"total_s": elapsed, "tokens_per_s": len(steps) / elapsed if elapsed > 0 else 0.0},
                   source=source)

    def client(self, request: Request) -> tuple[OpenAI, str | None]:
        from openai import DefaultHttpxClient, OpenAI

        base_url = _base_url(request)
        if base_url is not None:
            dialects.check_base_url(base_url)
        key = os.environ.get("OPENAI_API_KEY")
        if not key:
            if dialects.is_openai(base_url):
                raise UsageError(
                    "no OpenAI API key: set OPENAI_API_KEY (export OPENAI_API_KEY=sk-...)",
                    hint="or run the embedded model offline by leaving out --model, or point --base-url at a local server",
                )
            key = PLACEHOLDER_KEY
        check_key(key)
        cache_key = (base_url, key, request.timeout, request.retries)
        with self._lock:
            client = self._clients.get(cache_key)
            if client is None:
                http = DefaultHttpxClient(event_hooks={"request": [self.gate.wait], "response": [self.gate.observe]})
                client = self._clients[cache_key] = OpenAI(api_key=key, base_url=base_url, timeout=request.timeout,
                                                           max_retries=request.retries, http_client=http)
        return client, base_url

    @staticmethod
    def _probe(client: OpenAI, request: Request) -> Callable[[str], Any]:
        """GET a URL once, quickly: probes answer at once or not at all (no retries)."""
        quick = client.with_options(max_retries=0, timeout=min(request.timeout, 5.0))
        return lambda url: quick.get(url, cast_to=object)

    def dialect(self, client: OpenAI, base_url: str | None, request: Request) -> dialects.Dialect:
        named = request.params.options.get("dialect")
        if named:
            return dialects.DIALECTS[str(named)]
        return dialects.detect(base_url, self._probe(client, request))

    def describe(self, request: Request) -> list[tuple[bool | None, str]]:
        """What the server at request.base_url supports, as (ok?, line) pairs for `tokviz server`."""
        client, base_url = self.client(request)
        lines: list[tuple[bool | None, str]] = []
        try:
            listed = self._probe(client, request)((base_url or OPENAI_URL).rstrip("/") + "/models")
            names = [tok.visible(str(m.get("id")), visible_spaces=False)  # a server's text is data, never escapes
                     for m in (listed.get("data") or []) if isinstance(m, dict)]  # type: ignore[union-attr]
            lines.append((True, f"reachable: /models lists {len(names)} model(s)" + (f": {', '.join(names[:5])}" if names else "")))
        except Exception as err:
            import openai

            if isinstance(err, openai.APIConnectionError):  # nothing answers: there is nothing to describe
                raise translate_error(err, request, base_url) from None
            lines.append((False, translate_error(err, request, base_url).line()))  # it answers, without /models
        d = self.dialect(client, base_url, request)
        lines.append((None, f"dialect: {d.label} ({d.name}; facts from {d.source}; --dialect NAME overrides)"))
        lines.append((d.chat_logprobs, "log-probabilities on chat (--chat, the default on servers)"))
        lines.append((d.completions_logprobs, "log-probabilities on /v1/completions (--raw, tree)"))
        lines.append((d.ids and d.exact_bytes, "token ids and exact bytes" if d.ids and d.exact_bytes else
                      "no token ids or exact bytes: partial characters marked ≈"))
        lines.append((None, f"partial characters: {d.partial_tokens}"))
        lines.append((None, f"logprobs are {d.logprobs_are}"))
        lines.append((None, f"default penalties: {d.default_penalties}" +
                      (f" (tokviz sends {d.greedy_body} at temperature 0)" if d.greedy_body else "")))
        lines.append((None, f"scoring a given text: {d.score}"))
        if d.refuses_logprobs:
            lines.append((False, d.refuses_logprobs))
        return lines

    def predict(self, request: Request, on_step: Any = None) -> Run:
        params = request.params
        if params.temperature > 0 and params.seed is None:
            params = replace(params, seed=random.randrange(2**31))  # recorded, so replayable
        client, base_url = self.client(request)
        dialect = self.dialect(client, base_url, request)
        chat = params.mode == "chat"
        if dialect.refuses_logprobs or not (dialect.chat_logprobs if chat else dialect.completions_logprobs):
            endpoint = "chat" if chat else "completions"
            raise ProviderError(f"{_where(base_url)} ({dialect.label}) returns no log-probabilities on its {endpoint} endpoint",
                                hint=dialect.refuses_logprobs or ("try --chat" if not chat else "try --raw"))
        path, body, messages, source = request_body(request, params, dialect, openai=dialects.is_openai(base_url))
        body.update({"stream": True, "stream_options": {"include_usage": True}})
        with self._turn(base_url, dialect):  # requests that would interrupt each other wait their turn
            t0 = time.perf_counter()
            answer = self._answer(client, path, body, request, base_url, dialect, on_step)
            total = time.perf_counter() - t0
        steps = answer.steps
        if answer.text_without_logprobs and not steps:
            hints = {"openai": "use a model that returns them, such as " + LOGPROB_MODELS,
                     "generic": "the server (or this route) may not support logprobs"}
            raise ProviderError(f"{_where(base_url)} returned text but no log-probabilities for model {request.model!r}",
                                hint=hints.get(dialect.name, f"{dialect.label} did not send them"))
        ttft = answer.t_first if answer.t_first is not None else total
        decode = max(total - ttft, 1e-9)
        timings = {"ttft_s": ttft, "total_s": total,
                   "tokens_per_s": (len(steps) - 1) / decode if len(steps) > 1 else 0.0}
        usage = dict(answer.usage or {})
        usage.setdefault("completion_tokens", len(steps))
        loss = logprobs.reconcile(steps, "".join(answer.text), dialect)
        content = loss.content if loss else None
        if loss:
            source["lossy"] = loss.note
            self.progress(f"tokviz: warning: {_where(base_url)} ({dialect.label}) reported {loss.what} without their "
                          f"exact bytes ({dialect.partial_tokens}); marked ≈ in every view, and the run's text is the "
                          "streamed text")
        return Run(provider=self.name, model=request.model, prompt=request.prompt, params=params,
                   steps=tuple(steps), messages=tuple(messages), finish_reason=answer.finish, usage=usage,
                   timings=timings, content=content, source=source)

    def _answer(self, client: OpenAI, path: str, body: dict[str, Any], request: Request, base_url: str | None,
                dialect: dialects.Dialect, on_step: Any = None) -> _Answer:
        """The streamed answer; one that ends with no finish reason (nothing, or cut short) is
        asked again like a dropped connection, up to --retries times, and then is a failure."""
        for attempt in range(request.retries + 1):
            try:
                return self._stream_once(client, path, body, request, base_url, dialect, on_step)
            except Incomplete as cut:
                if attempt == request.retries:
                    raise cut.error(base_url, f", {request.retries + 1} time(s)",
                                    hint="a server that serves one request at a time may drop a waiting one; "
                                         "lower --concurrency, or raise --retries") from None
        raise AssertionError("unreachable")

    def _stream_once(self, client: OpenAI, path: str, body: dict[str, Any], request: Request, base_url: str | None,
                     dialect: dialects.Dialect, on_step: Any = None, stop: Callable[[], bool] | None = None) -> _Answer:
        """One streamed answer, each token handed to `on_step` as it comes. `stop()` is asked after
        every chunk: when true the connection is closed (servers abort a request whose client went
        away) and the answer so far comes back with finish "cancelled"."""
        answer = _Answer(steps=[], text=[])
        t0 = time.perf_counter()
        chunks = 0
        try:
            stream = _stream(client, path, body)
            for chunk in stream:
                chunks += 1
                if not isinstance(chunk, dict):
                    raise ValueError("a streamed chunk is not a JSON object")
                if chunk.get("usage"):
                    answer.usage = {"prompt_tokens": int(chunk["usage"].get("prompt_tokens") or 0),
                                    "completion_tokens": int(chunk["usage"].get("completion_tokens") or 0)}
                for choice in chunk.get("choices") or []:
                    found = logprobs.items(choice.get("logprobs"))
                    for item in found:
                        if answer.t_first is None:
                            answer.t_first = time.perf_counter() - t0
                        answer.steps.append(logprobs.step(item, dialect))
                        if on_step is not None:
                            on_step(answer.steps[-1])
                    piece = (choice.get("delta") or {}).get("content") if "delta" in choice else choice.get("text")
                    if isinstance(piece, str) and piece:
                        answer.text.append(piece)
                        if not found:
                            answer.text_without_logprobs = True
                    if choice.get("finish_reason"):
                        answer.finish = str(choice["finish_reason"])
                if stop is not None and answer.finish is None and stop():
                    answer.finish = "cancelled"
                    stream.close()
                    break
        except Exception as err:  # every SDK and transport failure becomes one line
            raise translate_error(err, request, base_url, mid_stream=chunks > 0) from None
        if answer.finish is None:
            raise Incomplete("after " + (f"{len(answer.steps)} tokens" if answer.steps else "no tokens"))
        return answer


def request_body(request: Request, params: Any, dialect: dialects.Dialect, *,
                 openai: bool) -> tuple[str, dict[str, Any], list[Message], dict[str, str]]:
    """The one place a request's body is built: (path, body without streaming, messages, the run's
    `source` notes). `predict` streams it; `batch --export-requests` writes it for OpenAI's Batch
    API and `vllm run-batch`."""
    chat = params.mode == "chat"
    messages = (([Message("system", request.system)] if request.system else []) + [Message("user", request.prompt)]) if chat else []
    body: dict[str, Any] = {"model": request.model, "temperature": params.temperature, "top_p": params.top_p}
    if chat:
        body["messages"] = [{"role": m.role, "content": m.content} for m in messages]
        body["logprobs"] = True
        if params.top_k:
            body["top_logprobs"] = params.top_k
    else:
        body["prompt"] = request.prompt
        body["logprobs"] = max(params.top_k, dialect.min_completion_logprobs)
    if params.seed is not None:
        body["seed"] = params.seed
    source = {"dialect": dialect.name, "logprobs": dialect.logprobs_are}
    if params.temperature == 0 and dialect.greedy_body:
        body.update({k: v for k, v in dialect.greedy_body.items() if k not in params.options})
        source["greedy"] = (f"sent {', '.join(f'{k}={v}' for k, v in dialect.greedy_body.items())} "
                            f"(the server's default: {dialect.default_penalties})")
    elif dialect.default_penalties != "none":
        source["penalties"] = f"server default: {dialect.default_penalties}"
    body.update({k: v for k, v in params.options.items() if k != "dialect"})  # -O settings, checked by SPEC
    # OpenAI wants max_completion_tokens on chat (max_tokens is deprecated and refused by
    # reasoning models); compatible servers mostly know only max_tokens.
    body["max_completion_tokens" if (chat and openai) else "max_tokens"] = params.max_tokens
    return ("/chat/completions" if chat else "/completions"), body, messages, source


def run_from_answer(answer: Any, request: Request, dialect: dialects.Dialect, *, origin: str) -> Run:
    """A Run from one whole (not streamed) answer body, as OpenAI's Batch API and `vllm run-batch`
    return them; an answer with no log-probabilities or no finish reason is a failure, not a run."""
    if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list) or not answer["choices"]:
        raise ProviderError(f"{origin}: the answer holds no choices")
    choice = answer["choices"][0] if isinstance(answer["choices"][0], dict) else {}
    try:
        steps = [logprobs.step(item, dialect) for item in logprobs.items(choice.get("logprobs"))]
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
    loss = logprobs.reconcile(steps, text if isinstance(text, str) else "", dialect)
    if loss:
        source["lossy"] = loss.note
    source["imported"] = origin
    return Run(provider="openai", model=str(answer.get("model") or request.model), prompt=request.prompt, params=params,
               steps=tuple(steps), messages=tuple(messages), finish_reason=str(choice["finish_reason"]), usage=usage,
               timings={}, content=loss.content if loss else None, source=source)


BATCH_DONE = ("completed", "failed", "expired", "cancelled")


def openai_batch(provider: OpenAIProvider, request: Request, inputs: list[tuple[Path, str]], *,
                 known: list[dict[str, str]] | None, remember: Callable[[list[dict[str, str]]], None],
                 progress: Callable[[str], None], poll_s: float) -> list[bytes]:
    """Run request files through the Batch API (files + batches endpoints, through the SDK): upload
    each (path, endpoint), create its batch, poll until every batch has ended, and return the
    content of their output and error files. `known` are batches submitted by an earlier run of the
    same command (kept in the batch's state by `remember`): they are polled, never submitted twice."""
    client, base_url = provider.client(request)
    try:
        parts = list(known or [])
        if not parts:
            for path, endpoint in inputs:
                with path.open("rb") as fh:
                    uploaded = client.files.create(file=(path.name, fh), purpose="batch")
                created = client.batches.create(input_file_id=uploaded.id, endpoint=endpoint, completion_window="24h")  # type: ignore[arg-type]
                parts.append({"file": uploaded.id, "batch": created.id})
                remember(parts)
            progress(f"tokviz: submitted {len(parts)} batch(es) to {_where(base_url)}: {', '.join(p['batch'] for p in parts)}")
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


def _first_choice(answer: Any) -> dict[str, Any]:
    """The first choice of a /v1/completions answer, or {} when the answer has none."""
    choice = (answer.get("choices") or [{}])[0] if isinstance(answer, dict) else {}
    return choice if isinstance(choice, dict) else {}


def _completion_items(answer: Any) -> list[dict[str, Any]]:
    """The logprob items of a /v1/completions answer, in either shape servers send (OpenAI's
    legacy parallel lists, or llama.cpp's chat-shaped `content`; see `logprobs.items`)."""
    return logprobs.items(_first_choice(answer).get("logprobs"))


class ServerCursor:
    """A tree position on a server: the path goes back as text to /v1/completions.

    Approximations, labelled in the run: the server re-tokenizes the path text (usually, not
    always, into the same tokens), and servers of the legacy shape key alternatives by text, so
    they come without ids or exact bytes. While the tree algorithm walks one branch, the requests
    its next steps will need are already in flight (up to eight), so a wide tree does not wait
    for one answer at a time.
    """

    def __init__(self, provider: OpenAIProvider, request: Request, spec: TreeSpec, prompt: str) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.provider = provider
        self.client, self.base_url = provider.client(request)
        self.dialect = provider.dialect(self.client, self.base_url, request)
        self.turn = provider._turn(self.base_url, self.dialect)
        if not self.dialect.completions_logprobs:
            raise ProviderError(f"{_where(self.base_url)} ({self.dialect.label}) returns no log-probabilities on /v1/completions, "
                                "so it cannot grow a tree or explore", hint=self.dialect.refuses_logprobs)
        self.request = request
        self.spec = spec
        self.texts = [prompt]
        self.requests = 0
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tokviz-tree")
        self.pending: dict[tuple[str, int, int], Any] = {}
        self.lock = threading.Lock()

    def _post(self, text: str, max_tokens: int, k: int) -> Any:
        return self._send({"model": self.request.model, "prompt": text, "max_tokens": max_tokens, "temperature": 0.0,
                           "logprobs": k, **self.dialect.greedy_body})

    def _send(self, body: dict[str, Any]) -> Any:
        """One /v1/completions request (counted), every failure turned into one line."""
        try:
            with self.turn:
                answer = self.client.post("/completions", body=body, cast_to=object)
        except Exception as err:  # every SDK and transport failure becomes one line
            raise translate_error(err, self.request, self.base_url) from None
        with self.lock:
            self.requests += 1
        return answer

    def _ask(self, text: str, max_tokens: int, k: int) -> Any:
        key = (text, max_tokens, k)
        with self.lock:
            future = self.pending.pop(key, None)
        return future.result() if future is not None else self._post(text, max_tokens, k)

    def _prefetch(self, text: str, max_tokens: int, k: int) -> None:
        key = (text, max_tokens, k)
        with self.lock:
            if key not in self.pending:
                self.pending[key] = self.pool.submit(self._post, text, max_tokens, k)

    def children(self, k: int) -> list[Token]:
        found = _completion_items(self._ask(self.texts[-1], 1, k))
        kids = list(logprobs.step(found[0], self.dialect).alternatives[:k]) if found else []
        depth = len(self.texts)  # the depth of these children
        for kid in kids:
            if kid.prob < self.spec.min_prob:
                continue
            if depth < self.spec.depth:
                self._prefetch(self.texts[-1] + kid.text, 1, k)
            elif self.spec.complete:
                self._prefetch(self.texts[-1] + kid.text, self.spec.complete, 1)
        return kids

    def enter(self, token: Token) -> None:
        self.texts.append(self.texts[-1] + token.text)

    def leave(self) -> None:
        self.texts.pop()

    def complete(self, n: int) -> tuple[Token, ...]:
        return tuple(logprobs.token(i, self.dialect) for i in _completion_items(self._ask(self.texts[-1], n, 1)))

    def goto(self, path: Sequence[Token]) -> None:
        texts = [self.texts[0]]
        for token in path:
            texts.append(texts[-1] + token.text)
        self.texts = texts

    def generate(self, how: Continuation, k: int, on_step: Callable[[Step], None] | None = None,
                 stop: Callable[[], bool] | None = None) -> tuple[tuple[Step, ...], str]:
        """One streamed request for the whole continuation: each token reaches `on_step` as the
        server sends it, and `stop` closes the request between tokens (the server drops it)."""
        if stop is not None and stop():
            return (), "cancelled"
        body: dict[str, Any] = {"model": self.request.model, "prompt": self.texts[-1], "max_tokens": how.max_tokens,
                                "temperature": how.temperature, "logprobs": k, "stream": True, **self.dialect.greedy_body}
        if how.temperature > 0:
            body["top_p"] = how.top_p
            if how.seed is not None:
                body["seed"] = how.seed
            if how.top_k:
                if dialects.official(self.dialect):
                    raise UsageError("OpenAI's API has no top-k sampling setting", hint="set top-k to 0 (no limit)")
                body["top_k"] = how.top_k

        def arrived(step: Step) -> None:
            self.texts.append(self.texts[-1] + step.chosen.text)
            if on_step is not None:
                on_step(step)

        try:
            with self.turn:
                answer = self.provider._stream_once(self.client, "/completions", body, self.request, self.base_url,
                                                    self.dialect, arrived, stop)
        except Incomplete as cut:
            raise cut.error(self.base_url) from None
        finally:
            with self.lock:
                self.requests += 1
        if not answer.steps and answer.finish not in ("stop", "cancelled"):
            raise ProviderError(f"{_where(self.base_url)} answered with no tokens", hint="is the model loaded?")
        return tuple(answer.steps), answer.finish if answer.finish in ("stop", "cancelled") else "length"

    def report(self) -> dict[str, Any]:
        exact = self.dialect.ids and self.dialect.exact_bytes
        return {"requests": self.requests,
                "approximation": "path sent back as text and re-tokenized by the server" + ("" if exact else
                                 "; alternatives keyed by text")}

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def tokenize(text: str, model: str) -> Tokenization:
    """tiktoken's split of `text` for an OpenAI model, offline (message framing tokens not included)."""
    from tokviz.providers.openai import tiktoken_offline

    name = tiktoken_offline.encoding_name_for_model(model)
    enc = tiktoken_offline.get_encoding(name)
    ids = enc.encode(text, disallowed_special=())
    tokens = []
    for i in ids:
        raw = enc.decode_single_token_bytes(i)
        tokens.append(Token(text=raw.decode("utf-8", "replace"), raw=raw, logprob=0.0, id=i))
    return Tokenization(model=model, tokenizer=f"{name} (tiktoken)", text=text, tokens=tuple(tokens))


def _cause(err: BaseException) -> str:
    """The underlying transport error, briefly: "connection refused", "RemoteProtocolError"…"""
    cause = err.__cause__ or err.__context__ or err
    text = str(cause).lower()
    if "refused" in text:
        return "connection refused"
    return type(cause).__name__


def _server_message(err: Any) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(getattr(err, "message", "") or err)


def translate_error(err: Exception, request: Request, base_url: str | None, *, mid_stream: bool = False) -> ProviderError:
    """One clear line for every way a request can fail; the key is never part of it."""
    import openai

    where = _where(base_url)
    key = os.environ.get("OPENAI_API_KEY")

    def fail(message: str, hint: str | None = None) -> ProviderError:
        return ProviderError(redact(message, key), hint=redact(hint, key) if hint else None)

    if isinstance(err, openai.APIStatusError):
        status = err.status_code
        detail = " ".join(_server_message(err).split())[:300]
        if status in (400, 403) and "logprob" in detail.lower():
            return fail(f"model {request.model!r} does not expose log-probabilities ({status}: {detail})",
                        hint=f"reasoning models refuse them; use a model that returns them, such as {LOGPROB_MODELS}")
        if status == 401:
            return fail(f"{where} rejected the API key (401: {detail})",
                        hint="check OPENAI_API_KEY (export OPENAI_API_KEY=sk-...), or run the embedded model by leaving out --model")
        if status == 403:
            return fail(f"{where} refused the request (403: {detail})")
        if status == 404:
            if base_url and not base_url.rstrip("/").endswith("/v1") and "model" not in detail.lower():
                return fail(f"{where} has no such route (404: {detail})",
                            hint="check that --base-url ends in /v1, e.g. http://127.0.0.1:8000/v1")
            return fail(f"model {request.model!r} was not found at {where} (404: {detail})",
                        hint="check the model name; `GET /v1/models` on the server lists them")
        if status == 429:
            after = err.response.headers.get("retry-after") if err.response is not None else None
            waited = f"; the server asked to wait {after} s more" if after else ""
            return RateLimitedError(redact(f"{where} is rate limiting requests (429: {detail}); gave up after "
                                           f"{request.retries} retries{waited}", key),
                                    hint="wait and try again, or raise --retries")
        if status >= 500:
            return fail(f"{where} failed with a server error ({status}: {detail}) after {request.retries} retries",
                        hint="try again later")
        return fail(f"{where} rejected the request ({status}: {detail})")
    if mid_stream and isinstance(err, openai.APIConnectionError | OSError):
        return fail(f"the response from {where} was cut off after it had started ({_cause(err)})", hint="try again")
    if isinstance(err, openai.APITimeoutError):
        return fail(f"no response from {where} within {request.timeout:g} s", hint="raise --timeout or try again")
    if isinstance(err, openai.APIConnectionError):
        return fail(f"cannot connect to {where}: {_cause(err)}",
                    hint="is the server running? check --base-url / OPENAI_BASE_URL")
    if isinstance(err, openai.APIResponseValidationError | ValueError | KeyError | TypeError | AttributeError):
        return fail(f"{where} sent a malformed response ({type(err).__name__}: {' '.join(str(err).split())[:200]})")
    # Transport errors raised while reading the stream (a dropped connection mid-response).
    return fail(f"the response from {where} was cut off ({type(err).__name__}: {' '.join(str(err).split())[:200]})",
                hint="try again")


def _penalty(value: Any) -> str | None:
    return None if -2.0 <= value <= 2.0 else "must be between -2 and 2"


def _positive_float(value: Any) -> str | None:
    return None if 0.0 < value <= 10.0 else "must be above 0 and at most 10"


SPEC = ProviderSpec(
    name="openai",
    description="OpenAI's API, and OpenAI-compatible servers (vLLM, llama.cpp, Ollama, LM Studio) with --base-url",
    factory=OpenAIProvider,
    models=(r"^(gpt-|chatgpt-|o\d|ft:|davinci|babbage|text-)",),
    claims_base_url=True,
    base_url_env="OPENAI_BASE_URL",
    secret_env="OPENAI_API_KEY",
    concurrent=True,
    max_top_k=20,
    capabilities=frozenset({Capability.CHAT, Capability.RAW, Capability.TREE, Capability.SCORE, Capability.TOKENIZE}),
    default_mode="chat",
    options=(
        OptionSpec("dialect", str, f"the server's dialect, instead of detecting it ({', '.join(dialects.DIALECTS)})",
                   check=lambda v: None if v in dialects.DIALECTS else f"must be one of {', '.join(dialects.DIALECTS)}"),
        OptionSpec("frequency_penalty", float, "penalise tokens by how often they appeared (-2 to 2)", check=_penalty),
        OptionSpec("presence_penalty", float, "penalise tokens that appeared at all (-2 to 2)", check=_penalty),
        OptionSpec("repeat_penalty", float, "llama.cpp-style repeat penalty, for compatible servers (1 is off)",
                   check=_positive_float),
    ),
    priority=50,
)
