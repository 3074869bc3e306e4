"""The walk of a tree cursor over a model's KV cache, shared by the in-process engines (llama.cpp's
`local`, Hugging Face's `transformers`): what `enter`, `leave`, `goto`, `generate` and `complete`
do to the path is one decision, and each engine only says how it reads the row after the path.

The cache holds the prompt plus the current path. `enter` only records the token; reading the
children evaluates whatever of the path the cache does not hold yet, after cutting the cache back
to the common prefix. Depth first, every evaluated token is a new node: no prefix is evaluated
twice. Every token of the path is evaluated on its own, as generation evaluates it, so a
position's figures do not depend on how the cursor got there: a branch reached by `goto` equals a
fresh `tree --from` of the same path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from tokviz.ground.errors import ProviderError, UsageError
from tokviz.providers.base import Continuation
from tokviz.providers.draw import sample
from tokviz.providers.logits import logsumexp, top_k
from tokviz.run import Params, Step, Token

if TYPE_CHECKING:
    import numpy as np


class KVCursor:
    """A position in the tree of continuations. Subclasses set `stop_ids` and provide `_logits`
    (the row after `path`, evaluating `path[valid:]` and setting `valid` and `current`), `_token`,
    `_step` and `_room`."""

    stop_ids: frozenset[int]

    def __init__(self) -> None:
        self.path: list[int] = []
        self.valid = 0  # how much of `path` the cache holds
        self.current = True  # whether the engine's last row is the one after `path`
        self.evaluated = 0

    # --- what an engine provides --------------------------------------------------------------

    def _logits(self) -> np.ndarray:
        raise NotImplementedError

    def _token(self, token_id: int, logprob: float) -> Token:
        raise NotImplementedError

    def _step(self, row: np.ndarray, chosen: int, k: int) -> Step:
        """A generated position: the chosen token and its top-k alternatives (no rank)."""
        raise NotImplementedError

    def _room(self) -> int:
        """The longest path the context holds."""
        raise NotImplementedError

    # --- the walk -----------------------------------------------------------------------------

    def children(self, k: int) -> list[Token]:
        logits = self._logits()
        lse = logsumexp(logits)
        return [self._token(i, float(logits[i]) - lse) for i in top_k(logits, k) if i not in self.stop_ids]

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
        """Move to `path` (tokens after the prompt), keeping the cache of the shared prefix."""
        if any(t.id is None for t in path):
            raise ProviderError("a path token without an id")
        ids = [int(t.id) for t in path if t.id is not None]
        if any(i in self.stop_ids for i in ids):
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
        room = self._room()
        steps: list[Step] = []
        finish = "length"
        for _ in range(how.max_tokens):
            if stop is not None and stop():
                finish = "cancelled"
                break
            if len(self.path) >= room:
                break
            logits = self._logits()
            chosen = sample(logits, params, rng, how.top_k)
            if chosen in self.stop_ids:
                finish = "stop"
                break
            steps.append(self._step(logits, chosen, k))
            self.path.append(chosen)
            self.current = False
            if on_step is not None:
                on_step(steps[-1])
        return tuple(steps), finish

    def complete(self, n: int) -> tuple[Token, ...]:
        """The greedy continuation of the current path, up to `n` tokens (stops at end of text);
        the cursor stays where it was."""
        depth = len(self.path)
        steps, _ = self.generate(Continuation(max_tokens=n), 0)
        del self.path[depth:]
        self.valid = min(self.valid, depth)
        self.current = False
        return tuple(s.chosen for s in steps)
