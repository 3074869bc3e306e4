"""Streamed answers: each chunk read as it comes, each token handed on, a cut answer asked again.

An answer that ends with no finish reason (nothing, or cut short) is `Incomplete`: asked again
like a dropped connection up to --retries times, then a failure, never a run. `stop` closes the
connection between two chunks (servers abort a request whose client went away).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tokviz.ground.errors import ProviderError
from tokviz.providers.base import Request, StepListener
from tokviz.providers.openai import dialects, logprobs
from tokviz.providers.openai.connection import where
from tokviz.providers.openai.errors import translate_error
from tokviz.run import Step
from tokviz.run import tokens as tok

if TYPE_CHECKING:
    from openai import OpenAI


def post_stream(client: OpenAI, path: str, body: dict[str, Any]) -> Any:
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
        return ProviderError(f"the answer from {where(base_url)} ended {self} with no finish reason "
                             f"(interrupted or truncated){times}", hint=hint)


class NotOpenAI(Exception):
    """A streamed chunk without `choices`: the URL answers, but not in the OpenAI shape (llama-server's
    own /completion route answers `content` and `completion_probabilities` at its root)."""

    def __init__(self, chunk: dict[str, Any]) -> None:
        super().__init__()
        self.native = "completion_probabilities" in chunk or ("content" in chunk and "stop" in chunk)

    def error(self, base_url: str | None) -> ProviderError:
        no_v1 = bool(base_url) and not str(base_url).rstrip("/").endswith("/v1")
        what = "llama-server's own /completion shape" if self.native else "a shape that is not the OpenAI API's"
        return ProviderError(f"{where(base_url)} answered in {what} (no `choices`): this URL is not its "
                             "OpenAI-compatible API",
                             hint=f"use {str(base_url).rstrip('/')}/v1" if no_v1 else "check --base-url")


@dataclass
class Answer:
    steps: list[Step]
    text: list[str]
    finish: str | None = None
    usage: dict[str, int] | None = None
    text_without_logprobs: bool = False
    t_first: float | None = None
    invalid: int = 0  # positive log-probabilities, kept as marked figures (logprobs.reconcile)
    post_sampling: bool = False  # figures after the server's samplers (llama-server's post_sampling_probs)
    fillers: int = 0  # alternatives at -9999 dropped (vLLM's processed_logprobs: the samplers' mask)


def stream_once(client: OpenAI, path: str, body: dict[str, Any], request: Request, base_url: str | None,
                 dialect: dialects.Dialect, on_step: StepListener | None = None, stop: Callable[[], bool] | None = None) -> Answer:
    """One streamed answer, each token handed to `on_step` as it comes. `stop()` is asked after
    every chunk: when true the connection is closed (servers abort a request whose client went
    away) and the answer so far comes back with finish "cancelled"."""
    answer = Answer(steps=[], text=[])
    t0 = time.perf_counter()
    chunks = 0
    try:
        stream = post_stream(client, path, body)
        for chunk in stream:
            chunks += 1
            if not isinstance(chunk, dict):
                raise ValueError("a streamed chunk is not a JSON object")
            if "choices" not in chunk and not chunk.get("usage"):
                raise NotOpenAI(chunk)
            if chunk.get("usage"):
                answer.usage = {"prompt_tokens": int(chunk["usage"].get("prompt_tokens") or 0),
                                "completion_tokens": int(chunk["usage"].get("completion_tokens") or 0)}
            for choice in chunk.get("choices") or []:
                found = logprobs.items(choice.get("logprobs"))
                for item in found:
                    if answer.t_first is None:
                        answer.t_first = time.perf_counter() - t0
                    answer.steps.append(logprobs.step(item, dialect, request.params.top_k))
                    answer.invalid += logprobs.invalid_figures(item)
                    answer.fillers += logprobs.fillers(item) if dialect.fillers else 0
                    answer.post_sampling = answer.post_sampling or logprobs.post_sampling(item)
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
    except NotOpenAI as odd:
        raise odd.error(base_url) from None
    except Exception as err:  # every SDK and transport failure becomes one line
        import openai

        if (chunks > 0 and isinstance(err, openai.APIConnectionError | OSError | ConnectionError)) or (
                chunks > 0 and type(err).__name__ in ("RemoteProtocolError", "ReadError", "ReadTimeout")):
            raise Incomplete(f"after {tok.count(len(answer.steps), 'token')} (the connection was cut: "
                             f"{type(err).__name__})") from None  # asked again, as a dropped answer is
        raise translate_error(err, request, base_url, mid_stream=chunks > 0) from None
    if answer.finish is None:
        raise Incomplete("after " + (tok.count(len(answer.steps), "token") if answer.steps else "no tokens"))
    return answer


def read_answer(client: OpenAI, path: str, body: dict[str, Any], request: Request, base_url: str | None,
            dialect: dialects.Dialect, on_step: StepListener | None = None) -> Answer:
    """The streamed answer; one that ends with no finish reason (nothing, or cut short) is
    asked again like a dropped connection, up to --retries times, and then is a failure."""
    shown = [0]  # steps already handed to `on_step`: an answer asked again repeats them (greedy, or seeded)

    def forwarding(count: list[int]) -> StepListener | None:
        if on_step is None:
            return None

        def forward(step: Step) -> None:
            count[0] += 1
            if count[0] > shown[0]:  # only what earlier attempts did not show
                on_step(step)
                shown[0] = count[0]
        return forward

    for attempt in range(request.retries + 1):
        try:
            return stream_once(client, path, body, request, base_url, dialect, forwarding([0]))
        except Incomplete as cut:
            if attempt == request.retries:
                raise cut.error(base_url, f", {request.retries + 1} time(s)",
                                hint="a server that serves one request at a time may drop a waiting one; "
                                     "lower --concurrency, or raise --retries") from None
    raise AssertionError("unreachable")
