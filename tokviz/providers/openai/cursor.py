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


def _text_is_exact(token: Token) -> bool:
    """The token's text is its own bytes: sending the text sends the token (not a U+FFFD, not
    part of a character)."""
    if token.lossy:
        return False
    try:
        return token.raw.decode("utf-8") == token.text
    except UnicodeDecodeError:
        return False


def _generated(answer: Any) -> bool:
    """The server says it generated a token (usage), whatever its log-probabilities showed."""
    usage = answer.get("usage") if isinstance(answer, dict) else None
    return isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int) and usage["completion_tokens"] > 0


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

    def __init__(self, connection: Connection, request: Request, spec: TreeSpec, forced: Sequence[Token] = ()) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.client, self.base_url = connection.client(request)
        self.dialect = connection.dialect(self.client, self.base_url, request)
        self.turn = connection.turn(self.base_url, self.dialect)
        if not self.dialect.completions_logprobs:
            raise ProviderError(f"{where(self.base_url)} ({self.dialect.label}) returns no log-probabilities on /v1/completions, "
                                "so it cannot grow a tree or explore", hint=self.dialect.refuses_logprobs)
        self.request = request
        self.spec = spec
        self.prompt = request.prompt
        self.forced = list(forced)  # the tokens a tree from a saved run starts after
        self.path: list[Token] = []  # the tokens from there to the current node
        self.unexpanded = 0  # nodes whose path cannot be sent back exactly (see `_prompt`)
        self.withheld = 0  # nodes whose children the server did not send (see `children`)
        self.requests = 0
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tokviz-tree")
        self.pending: dict[tuple[str, int, int], Any] = {}
        self.lock = threading.Lock()

    def _prompt(self, path: Sequence[Token]) -> str | list[str | int] | None:
        """What to send as the prompt for `path`, or None when it cannot be sent exactly.

        The path goes back as text while every token's text is its own bytes. A token that came
        back lossy (U+FFFD, '') or that is part of a character (bytes that are not UTF-8 alone)
        would send another prompt: from the first such token on, llama-server takes the token
        ids after the text (a mixed prompt, tools/server utils.hpp tokenize_mixed); other servers
        cannot be sent that path, and the node is not expanded (counted in the run's report)."""
        path = [*self.forced, *path]
        cut = next((n for n, t in enumerate(path) if not _text_is_exact(t)), None)
        if cut is None:
            return self.prompt + "".join(t.text for t in path)
        rest = path[cut:]
        if self.dialect.name != "llama.cpp" or any(t.id is None for t in rest):
            return None
        return [self.prompt + "".join(t.text for t in path[:cut]), *(int(t.id) for t in rest if t.id is not None)]

    def _post(self, prompt: str | list[str | int], max_tokens: int, k: int) -> Any:
        return self._send({"model": self.request.model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0,
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

    def _ask(self, prompt: str | list[str | int], max_tokens: int, k: int) -> Any:
        key = (repr(prompt), max_tokens, k)
        with self.lock:
            future = self.pending.pop(key, None)
        return future.result() if future is not None else self._post(prompt, max_tokens, k)

    def _prefetch(self, prompt: str | list[str | int] | None, max_tokens: int, k: int) -> None:
        if prompt is None:
            return
        key = (repr(prompt), max_tokens, k)
        with self.lock:
            if key not in self.pending:
                self.pending[key] = self.pool.submit(self._post, prompt, max_tokens, k)

    def children(self, k: int) -> list[Token]:
        prompt = self._prompt(self.path)
        if prompt is None:  # not sent: the answer would be to another prompt
            self.unexpanded += 1
            return []
        answer = self._ask(prompt, 1, k)
        found = _completion_items(answer)
        if not found and _generated(answer):
            # llama-server sends no entry for a token that ends inside a character (text_to_send):
            # the node has children the server did not show, so it is not a leaf; said in the run
            self.withheld += 1
        kids = list(logprobs.step(found[0], self.dialect).alternatives[:k]) if found else []
        depth = len(self.path) + 1  # the depth of these children
        for kid in kids:
            if kid.prob < self.spec.min_prob:
                continue
            if depth < self.spec.depth:
                self._prefetch(self._prompt([*self.path, kid]), 1, k)
            elif self.spec.complete:
                self._prefetch(self._prompt([*self.path, kid]), self.spec.complete, 1)
        return kids

    def enter(self, token: Token) -> None:
        self.path.append(token)

    def leave(self) -> None:
        self.path.pop()

    def complete(self, n: int) -> tuple[Token, ...]:
        prompt = self._prompt(self.path)
        if prompt is None:
            self.unexpanded += 1
            return ()
        return tuple(logprobs.token(i, self.dialect) for i in _completion_items(self._ask(prompt, n, 1)))

    def goto(self, path: Sequence[Token]) -> None:
        self.path = list(path)

    def generate(self, how: Continuation, k: int, on_step: Callable[[Step], None] | None = None,
                 stop: Callable[[], bool] | None = None) -> tuple[tuple[Step, ...], str]:
        """One streamed request for the whole continuation: each token reaches `on_step` as the
        server sends it, and `stop` closes the request between tokens (the server drops it)."""
        if stop is not None and stop():
            return (), "cancelled"
        prompt = self._prompt(self.path)
        if prompt is None:
            raise UsageError(f"this path holds a token {self.dialect.label} sent without its exact text (marked ≈), "
                             "so it cannot be sent back: the answer would be to another prompt",
                             hint="continue from a node before it, or explore on the local model or llama-server")
        body: dict[str, Any] = {"model": self.request.model, "prompt": prompt, "max_tokens": how.max_tokens,
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
            self.path.append(step.chosen)
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
        skipped = (f"; {self.unexpanded} node(s) not expanded: a token on their path came back without its exact "
                   "text, and this server takes no token ids" if self.unexpanded else "")
        if self.withheld:
            skipped += (f"; {self.withheld} node(s) shown without children: the server sent no log-probabilities "
                        "for their next token, which ends inside a character")
        return {"requests": self.requests, "figures": self.dialect.figures, "model": self.request.model,
                "approximation": "path sent back as text and re-tokenized by the server" + ("" if exact else
                                 "; alternatives keyed by text") + skipped}

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
