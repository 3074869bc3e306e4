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

import os
import random
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tokviz.errors import ProviderError, RateLimitedError, UsageError, redact
from tokviz.providers.ratelimit import RateGate
from tokviz.providers.registry import Capability, OptionSpec, Progress, ProviderSpec, Request, TreeSpec
from tokviz.run import Message, Run, Step, Token, Tokenization

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

    def tree_cursor(self, request: Request, spec: TreeSpec, forced: tuple[Token, ...] = ()) -> ServerCursor:
        if _is_openai(request.base_url or os.environ.get("OPENAI_BASE_URL") or None):
            raise UsageError(
                "OpenAI's chat API cannot continue from a forced prefix, so it cannot grow a tree",
                hint="use the local model, or --base-url with a server that has the completions endpoint (vLLM, llama.cpp)",
            )
        return ServerCursor(self, request, spec, request.prompt + "".join(t.text for t in forced))

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
        kwargs.update(params.options)  # -O settings, checked against SPEC.options
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


def _completion_items(answer: Any) -> list[dict[str, Any]]:
    """The logprob items of a /v1/completions answer, in either shape servers send.

    OpenAI's legacy shape (vLLM, llama-cpp-python) is parallel lists: `tokens`, `token_logprobs`
    and `top_logprobs` as one {text: logprob} dict per position. llama.cpp's own server answers in
    the chat shape instead: `content`, a list of items with `token`, `logprob`, `bytes`, `id` and
    `top_logprobs` (a list of the same). Both become chat-shaped items here.
    """
    choice = ((answer or {}).get("choices") or [{}])[0] or {}
    lps = choice.get("logprobs") or {}
    if isinstance(lps.get("content"), list):
        return [i for i in lps["content"] if isinstance(i, dict)]
    items = []
    for n, (text, lp) in enumerate(zip(lps.get("tokens") or [], lps.get("token_logprobs") or [])):
        tops = (lps.get("top_logprobs") or [])
        top = tops[n] if n < len(tops) and isinstance(tops[n], dict) else {}
        items.append({"token": text, "logprob": lp,
                      "top_logprobs": [{"token": t, "logprob": v} for t, v in top.items()]})
    return items


class ServerCursor:
    """A tree position on a server: the path goes back as text to /v1/completions.

    Approximations, labelled in the run: the server re-tokenizes the path text (usually, not
    always, into the same tokens), and servers of the legacy shape key alternatives by text, so
    they come without ids or exact bytes. While the tree algorithm walks one branch, the requests
    its next steps will need are already in flight (up to eight), so a wide tree does not wait
    for one answer at a time.
    """

    APPROXIMATION = "path sent back as text and re-tokenized by the server; alternatives keyed by text"

    def __init__(self, provider: OpenAIProvider, request: Request, spec: TreeSpec, prompt: str) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.client, self.base_url = provider.client(request)
        self.request = request
        self.spec = spec
        self.texts = [prompt]
        self.requests = 0
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tokviz-tree")
        self.pending: dict[tuple[str, int, int], Any] = {}
        self.lock = threading.Lock()

    def _post(self, text: str, max_tokens: int, k: int) -> Any:
        body = {"model": self.request.model, "prompt": text, "max_tokens": max_tokens, "temperature": 0.0,
                "logprobs": k}
        try:
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
        items = _completion_items(self._ask(self.texts[-1], 1, k))
        tops = (items[0].get("top_logprobs") or []) if items else []
        kids = sorted((_token(t) for t in tops if t.get("token") or t.get("bytes")), key=lambda t: -t.logprob)[:k]
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
        return tuple(_token(i) for i in _completion_items(self._ask(self.texts[-1], n, 1)))

    def report(self) -> dict[str, Any]:
        return {"requests": self.requests, "approximation": self.APPROXIMATION}

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


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
    capabilities=frozenset({Capability.CHAT, Capability.TREE, Capability.TOKENIZE}),
    options=(
        OptionSpec("frequency_penalty", float, "penalise tokens by how often they appeared (-2 to 2)", check=_penalty),
        OptionSpec("presence_penalty", float, "penalise tokens that appeared at all (-2 to 2)", check=_penalty),
        OptionSpec("repeat_penalty", float, "llama.cpp-style repeat penalty, for compatible servers (1 is off)",
                   check=_positive_float),
    ),
    priority=50,
)
