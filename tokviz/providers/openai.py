"""OpenAI and OpenAI-compatible servers (vLLM, llama.cpp's server, Ollama, LM Studio) through the
official `openai` SDK's Chat Completions API, streamed, with `logprobs` and `top_logprobs`.

What the API gives per generated token: its text, logprob, exact `bytes` (a list of ints, or null
on some compatible servers) and the top alternatives with the same fields. The chosen token's own
logprob is read from the item itself, never looked up among the alternatives: when sampling picks
a token outside the top k it is not there. Bytes are kept exactly, so a character split across
tokens (emoji, Korean) joins back whole.

Every failure becomes one `ProviderError` line that names the server and the fix; the API key is
redacted from every message (see `tokviz.errors.redact`).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tokviz.errors import ProviderError, RateLimitedError, UsageError, redact
from tokviz.providers.ratelimit import RateGate
from tokviz.providers.registry import Progress, Request, TreeSpec
from tokviz.run import Message, Run, Step, Token, Tokenization, TreeNode, greedy_path

if TYPE_CHECKING:
    from openai import OpenAI

OPENAI_URL = "https://api.openai.com/v1"
# Sent to servers that need no key: the SDK refuses to start without one.
PLACEHOLDER_KEY = "sk-no-key-required"
LOGPROB_MODELS = "gpt-4.1, gpt-4.1-mini, gpt-4o, gpt-4o-mini"


def _is_openai(base_url: str | None) -> bool:
    return base_url is None or (urlsplit(base_url).hostname or "").endswith("openai.com")


def _where(base_url: str | None) -> str:
    """The server, for messages: scheme, host and path only (credentials in a URL stay out)."""
    if base_url is None:
        return OPENAI_URL
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _token(item: dict[str, Any]) -> Token:
    """One logprob item (the chosen token or an alternative) as a Token, bytes exact."""
    text = item.get("token") or ""
    raw = bytes(item["bytes"]) if item.get("bytes") is not None else text.encode("utf-8")
    return Token(text=text, raw=raw, logprob=float(item["logprob"]))


def parse_logprob_item(item: dict[str, Any]) -> Step:
    alternatives = sorted((_token(a) for a in (item.get("top_logprobs") or [])), key=lambda t: -t.logprob)
    return Step(chosen=_token(item), alternatives=tuple(alternatives))


def _stream(client: OpenAI, body: dict[str, Any]) -> Any:
    """POST the chat request and yield each streamed chunk as a plain dict.

    The SDK's generic `post` keeps everything the typed `chat.completions.create` gives (auth,
    retries with Retry-After, typed errors, SSE decoding) but skips building a pydantic model per
    chunk, which halved the client's CPU per request (6.4 → 3.1 ms, measured): what decides how
    many requests a batch can keep in flight on two cores.
    """
    from openai import Stream

    return client.post("/chat/completions", body=body, cast_to=object, stream=True, stream_cls=Stream[object])


class OpenAIProvider:
    """Chat Completions with logprobs; works against OpenAI and any server that speaks its API."""

    name = "openai"

    def __init__(self, *, progress: Progress) -> None:
        self.progress = progress
        # One client per server and settings, shared by threads (batch): building an HTTP client
        # per request costs more CPU than a 200 ms request leaves for sixteen workers.
        self._clients: dict[tuple[str | None, str, float, int], OpenAI] = {}
        self._lock = threading.Lock()
        self.gate = RateGate()

    def tokenize(self, text: str, model: str) -> Tokenization:
        return tokenize(text, model)

    def tree(self, request: Request, spec: TreeSpec, forced: tuple[Token, ...] = ()) -> Run:
        return _grow_tree(self, request, spec, forced)

    def client(self, request: Request) -> tuple[OpenAI, str | None]:
        from openai import DefaultHttpxClient, OpenAI

        base_url = request.base_url or os.environ.get("OPENAI_BASE_URL") or None
        key = os.environ.get("OPENAI_API_KEY")
        if not key:
            if _is_openai(base_url):
                raise UsageError(
                    "no OpenAI API key: set OPENAI_API_KEY (export OPENAI_API_KEY=sk-...)",
                    hint="or run the embedded model offline by leaving out --model, or point --base-url at a local server",
                )
            key = PLACEHOLDER_KEY
        cache_key = (base_url, key, request.timeout, request.retries)
        with self._lock:
            client = self._clients.get(cache_key)
            if client is None:
                http = DefaultHttpxClient(event_hooks={"request": [self.gate.wait], "response": [self.gate.observe]})
                client = self._clients[cache_key] = OpenAI(api_key=key, base_url=base_url, timeout=request.timeout,
                                                           max_retries=request.retries, http_client=http)
        return client, base_url

    def predict(self, request: Request) -> Run:
        params = replace(request.params, mode="chat")  # the Chat Completions API always is
        if params.temperature > 0 and params.seed is None:
            params = replace(params, seed=random.randrange(2**31))  # recorded, so replayable
        client, base_url = self.client(request)
        messages = ([Message("system", request.system)] if request.system else []) + [Message("user", request.prompt)]
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "logprobs": True,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if params.top_k:
            kwargs["top_logprobs"] = params.top_k
        if params.seed is not None:
            kwargs["seed"] = params.seed
        # OpenAI wants max_completion_tokens (max_tokens is deprecated and refused by reasoning
        # models); compatible servers mostly know only max_tokens.
        kwargs["max_completion_tokens" if _is_openai(base_url) else "max_tokens"] = params.max_tokens

        steps: list[Step] = []
        usage: dict[str, int] = {}
        finish: str | None = None
        text_without_logprobs = False
        t0 = time.perf_counter()
        t_first: float | None = None
        chunks = 0
        try:
            for chunk in _stream(client, kwargs):
                chunks += 1
                if chunk.get("usage"):
                    usage = {"prompt_tokens": int(chunk["usage"].get("prompt_tokens") or 0),
                             "completion_tokens": int(chunk["usage"].get("completion_tokens") or 0)}
                for choice in chunk.get("choices") or []:
                    content = (choice.get("logprobs") or {}).get("content")
                    for item in content or []:
                        if t_first is None:
                            t_first = time.perf_counter() - t0
                        steps.append(parse_logprob_item(item))
                    if not content and (choice.get("delta") or {}).get("content"):
                        text_without_logprobs = True
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
        except Exception as err:  # every SDK and transport failure becomes one line
            raise translate_error(err, request, base_url, mid_stream=chunks > 0) from None
        total = time.perf_counter() - t0
        if text_without_logprobs and not steps:
            raise ProviderError(
                f"{_where(base_url)} returned no log-probabilities for model {request.model!r}",
                hint="the server may not support logprobs; for OpenAI use one of " + LOGPROB_MODELS,
            )
        ttft = t_first if t_first is not None else total
        decode = max(total - ttft, 1e-9)
        timings = {"ttft_s": ttft, "total_s": total,
                   "tokens_per_s": (len(steps) - 1) / decode if len(steps) > 1 else 0.0}
        usage.setdefault("completion_tokens", len(steps))
        return Run(provider=self.name, model=request.model, prompt=request.prompt, params=params,
                   steps=tuple(steps), messages=tuple(messages), finish_reason=finish, usage=usage,
                   timings=timings)


def _grow_tree(provider: OpenAIProvider, request: Request, spec: TreeSpec, forced: tuple[Token, ...]) -> Run:
    """A tree through the legacy completions endpoint: prompt + path text, one token, top-k logprobs.

    Level by level, with the requests of a level in flight together (bounded). Approximations,
    labelled in the run: the path goes back as text, so the server re-tokenizes it (usually, not
    always, into the same tokens), and servers key alternatives by text, so they come without ids
    or exact bytes.
    """
    from concurrent.futures import ThreadPoolExecutor

    if _is_openai(request.base_url or os.environ.get("OPENAI_BASE_URL") or None):
        raise UsageError(
            "OpenAI's chat API cannot continue from a forced prefix, so it cannot grow a tree",
            hint="use the local model, or --base-url with a server that has the completions endpoint (vLLM, llama.cpp)",
        )
    client, base_url = provider.client(request)
    t0 = time.perf_counter()
    prompt = request.prompt + "".join(t.text for t in forced)

    def ask(text: str, max_tokens: int, k: int) -> dict[str, Any]:
        body = {"model": request.model, "prompt": text, "max_tokens": max_tokens, "temperature": 0.0,
                "logprobs": k}
        try:
            return client.post("/completions", body=body, cast_to=object)  # type: ignore[return-value]
        except Exception as err:  # every SDK and transport failure becomes one line
            raise translate_error(err, request, base_url) from None

    def children(text: str) -> list[tuple[str, float]]:
        answer = ask(text, 1, spec.branch)
        tops = ((answer.get("choices") or [{}])[0].get("logprobs") or {}).get("top_logprobs") or [{}]
        kids = sorted(tops[0].items(), key=lambda kv: -kv[1])[: spec.branch]
        return [(t, float(lp)) for t, lp in kids if math.exp(lp) >= spec.min_prob and t]

    nodes: list[TreeNode] = []
    texts: dict[int, str] = {-1: prompt}
    frontier = [-1]
    cut = None
    requests = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        try:
            for depth in range(1, spec.depth + 1):
                answers = list(pool.map(lambda i: children(texts[i]), frontier))
                requests += len(frontier)
                next_frontier = []
                for parent, kids in zip(frontier, answers):
                    for text, lp in kids:
                        if len(nodes) >= spec.max_nodes:
                            cut = "max-nodes"
                            break
                        base = nodes[parent].cum_logprob if parent >= 0 else 0.0
                        nodes.append(TreeNode(parent=parent, token=Token(text=text, raw=text.encode("utf-8"), logprob=lp),
                                              depth=depth, cum_logprob=base + lp))
                        texts[len(nodes) - 1] = texts[parent] + text
                        next_frontier.append(len(nodes) - 1)
                frontier = next_frontier
                if cut:
                    break
            if spec.complete and frontier:
                done = list(pool.map(lambda i: ask(texts[i], spec.complete, 1), frontier))
                requests += len(frontier)
                for i, answer in zip(frontier, done):
                    lps = ((answer.get("choices") or [{}])[0].get("logprobs") or {})
                    toks = [Token(text=t, raw=t.encode("utf-8"), logprob=float(lp))
                            for t, lp in zip(lps.get("tokens") or [], lps.get("token_logprobs") or [])]
                    nodes[i] = replace(nodes[i], completion=tuple(toks))
        except KeyboardInterrupt:
            cut = "interrupted"
    return Run(provider=provider.name, model=request.model, prompt=prompt, params=replace(request.params, top_k=spec.branch),
               steps=greedy_path(nodes), kind="tree", timings={"total_s": time.perf_counter() - t0}, nodes=tuple(nodes),
               tree={**spec.to_dict(), "cut": cut, "requests": requests, "forced_tokens": len(forced),
                     "approximation": "path sent back as text and re-tokenized by the server; alternatives keyed by text"})


def tokenize(text: str, model: str) -> Tokenization:
    """tiktoken's split of `text` for an OpenAI model, offline (message framing tokens not included)."""
    from tokviz.providers import tiktoken_offline

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
            return fail(f"model {request.model!r} was not found at {where} (404: {detail})",
                        hint="check the model name; `GET /v1/models` on the server lists them")
        if status == 429:
            after = err.response.headers.get("retry-after") if err.response is not None else None
            waited = f"; the server asked to wait {after} s more" if after else ""
            limited = RateLimitedError(redact(f"{where} is rate limiting requests (429: {detail}); gave up after "
                                              f"{request.retries} retries{waited}", key),
                                       hint="wait and try again, or raise --retries")
            with contextlib.suppress(TypeError, ValueError):
                limited.retry_after = float(after) if after is not None else None
            return limited
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
