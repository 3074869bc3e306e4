"""A tree or an exploration on a server: the path goes back as text to /v1/completions."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from tokviz.ground.errors import ProviderError, UsageError
from tokviz.providers.base import Continuation, Request, TreeSpec
from tokviz.providers.openai import dialects, logprobs
from tokviz.providers.openai.connection import Connection, where
from tokviz.providers.openai.errors import translate_error
from tokviz.providers.openai.stream import Incomplete, stream_once
from tokviz.run import Step, Token


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

    def __init__(self, connection: Connection, request: Request, spec: TreeSpec, prompt: str) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.client, self.base_url = connection.client(request)
        self.dialect = connection.dialect(self.client, self.base_url, request)
        self.turn = connection.turn(self.base_url, self.dialect)
        if not self.dialect.completions_logprobs:
            raise ProviderError(f"{where(self.base_url)} ({self.dialect.label}) returns no log-probabilities on /v1/completions, "
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
                answer = stream_once(self.client, "/completions", body, self.request, self.base_url, self.dialect,
                                     arrived, stop)
        except Incomplete as cut:
            raise cut.error(self.base_url) from None
        finally:
            with self.lock:
                self.requests += 1
        if not answer.steps and answer.finish not in ("stop", "cancelled"):
            raise ProviderError(f"{where(self.base_url)} answered with no tokens", hint="is the model loaded?")
        return tuple(answer.steps), answer.finish if answer.finish in ("stop", "cancelled") else "length"

    def report(self) -> dict[str, Any]:
        exact = self.dialect.ids and self.dialect.exact_bytes
        return {"requests": self.requests,
                "approximation": "path sent back as text and re-tokenized by the server" + ("" if exact else
                                 "; alternatives keyed by text")}

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
