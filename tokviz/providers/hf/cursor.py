"""A position in the tree of continuations, kept in the model's KV cache (`tokviz tree`, `tokviz explore`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tokviz.ground.errors import ProviderError, UsageError
from tokviz.providers.base import Continuation
from tokviz.providers.draw import sample
from tokviz.providers.hf.forward import cut, new_cache, rows
from tokviz.providers.hf.pieces import token_of
from tokviz.providers.logits import logsumexp, reduce_row, top_k
from tokviz.run import Message, Params, Step, Token

if TYPE_CHECKING:
    import numpy as np

    from tokviz.providers.hf.models import Model


def step_of(m: Model, row: np.ndarray, chosen: int, k: int, *, rank: bool) -> Step:
    """A position from its logits row: the chosen (or scored) token, its top-k alternatives, and
    its rank among the whole vocabulary when asked."""
    reduced = reduce_row(row, k, chosen, rank=rank)
    return Step(chosen=token_of(m, chosen, reduced.target_logit - reduced.lse),  # type: ignore[operator]
                alternatives=tuple(token_of(m, i, logit - reduced.lse) for i, logit in reduced.top), rank=reduced.rank)


class Cursor:
    """The prompt and the current path in one KV cache.

    As the llama.cpp cursor does: `enter` only records the token; reading the children cuts the
    cache back to the prefix it shares with the path and feeds the rest one token at a time, as
    generation feeds it, so a position's figures do not depend on how the cursor got there and
    equal `predict`'s for the same tokens. When the cache cannot be cut (a sliding-window layer
    has dropped what is needed), the prompt and path are read again the same way.
    """

    def __init__(self, m: Model, prefix: Sequence[int], *, forced: Sequence[int], model: str,
                 messages: tuple[Message, ...]) -> None:
        self.m, self.model, self.messages = m, model, messages
        self.prompt = list(prefix)
        self.forced = list(forced)
        self.base = len(self.prompt) + len(self.forced)
        self.path: list[int] = []
        self.valid = 0
        self.current = True
        self.evaluated = 0
        self.rereads = 0
        self.root = self._start()

    def _start(self) -> np.ndarray:
        """Read the prompt (in one pass, as predict reads it) and the forced tokens (one at a time)."""
        self.cache = new_cache(self.m)
        row = rows(self.m, self.prompt, self.cache, keep=1)[-1]
        for token_id in self.forced:
            row = rows(self.m, [token_id], self.cache)[-1]
        return row.copy()

    def _logits(self) -> np.ndarray:
        if not self.path:
            return self.root
        if self.valid == len(self.path) and not self.current:
            self.valid -= 1  # the cache holds the path, but the loaded row is another's
        if not cut(self.m, self.cache, self.base + self.valid):
            self._start()
            self.valid = 0
            self.rereads += 1
        row = None
        while self.valid < len(self.path):
            row = rows(self.m, [self.path[self.valid]], self.cache)[-1]
            self.valid += 1
            self.evaluated += 1
        self.current = True
        self.row = row if row is not None else self.row
        return self.row

    def children(self, k: int) -> list[Token]:
        logits = self._logits()
        lse = logsumexp(logits)
        return [token_of(self.m, i, float(logits[i]) - lse) for i in top_k(logits, k) if i not in self.m.stop_ids]

    def enter(self, token: Token) -> None:
        if token.id is None:
            raise ProviderError("a tree token without an id")
        self.path.append(int(token.id))
        self.current = False

    def leave(self) -> None:
        self.path.pop()
        self.valid = min(self.valid, len(self.path))
        self.current = False

    def goto(self, path: Sequence[Token]) -> None:
        if any(t.id is None for t in path):
            raise ProviderError("a path token without an id")
        ids = [int(t.id) for t in path if t.id is not None]
        if any(i in self.m.stop_ids for i in ids):
            raise UsageError("the model ends its text at that token: nothing follows it")
        same = 0
        while same < min(len(ids), self.valid) and ids[same] == self.path[same]:
            same += 1
        if ids != self.path:
            self.current = False
        self.path, self.valid = ids, same

    def generate(self, how: Continuation, k: int, on_step: Callable[[Step], None] | None = None,
                 stop: Callable[[], bool] | None = None) -> tuple[tuple[Step, ...], str]:
        import numpy as np

        params = Params(temperature=how.temperature, top_p=how.top_p, seed=how.seed)
        rng = np.random.default_rng(how.seed)
        steps: list[Step] = []
        finish = "length"
        for _ in range(how.max_tokens):
            if stop is not None and stop():
                finish = "cancelled"
                break
            if self.base + len(self.path) + 1 >= self.m.context:
                break
            logits = self._logits()
            chosen = sample(logits, params, rng, how.top_k)
            if chosen in self.m.stop_ids:
                finish = "stop"
                break
            steps.append(step_of(self.m, logits, chosen, k, rank=False))
            self.path.append(chosen)
            self.current = False
            if on_step is not None:
                on_step(steps[-1])
        return tuple(steps), finish

    def complete(self, n: int) -> tuple[Token, ...]:
        depth = len(self.path)
        steps, _ = self.generate(Continuation(max_tokens=n), 0)
        del self.path[depth:]
        self.valid = min(self.valid, depth)
        self.current = False
        return tuple(s.chosen for s in steps)

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {"evaluated_tokens": self.evaluated, "model": self.model, "messages": self.messages,
                               "prompt_tokens": self.base, "engine": self.m.engine}
        if self.rereads:
            out["rereads"] = self.rereads
        return out

    def close(self) -> None:
        self.cache = None
