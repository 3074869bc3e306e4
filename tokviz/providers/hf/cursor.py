"""A position in the tree of continuations, kept in the model's KV cache (`tokviz tree`, `tokviz explore`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tokviz.providers.hf.forward import cut, new_cache, rows
from tokviz.providers.hf.pieces import token_of
from tokviz.providers.kvcursor import KVCursor
from tokviz.providers.logits import reduce_row
from tokviz.run import Message, Step, Token, Watched

if TYPE_CHECKING:
    import numpy as np

    from tokviz.providers.hf.models import Model


def step_of(m: Model, row: np.ndarray, chosen: int, k: int, *, rank: bool, watch: Sequence[int] = ()) -> Step:
    """A position from its logits row: the chosen (or scored) token, its top-k alternatives, its
    rank among the whole vocabulary when asked, and each watched token's figure and rank."""
    reduced = reduce_row(row, k, chosen, rank=rank, watch=watch)
    return Step(chosen=token_of(m, chosen, reduced.target_logit - reduced.lse),  # type: ignore[operator]
                alternatives=tuple(token_of(m, i, logit - reduced.lse) for i, logit in reduced.top), rank=reduced.rank,
                watched=tuple(Watched(token=token_of(m, i, logit - reduced.lse), rank=r) for i, logit, r in reduced.watched))


def watch_ids(m: Model, specs: Sequence[str]) -> list[int]:
    """The ids of the tokens asked for with --watch (`providers/watch.py`), in this model's vocabulary."""
    from tokviz.providers.hf.chat import text_ids
    from tokviz.providers.watch import ids

    width = min(len(m.tokenizer), int(getattr(m.model.config, "vocab_size", None) or len(m.tokenizer)))  # the logits row's
    return ids(specs, lambda text: text_ids(m, text), width, m.name)


class Cursor(KVCursor):
    """The prompt and the current path in one transformers KV cache (the walk:
    `tokviz.providers.kvcursor`). The cache is cut back with `forward.cut`; every token of the path
    is fed on its own, as generation feeds it, so a position's figures equal `predict`'s for the
    same tokens. When the cache cannot be cut (a sliding-window layer has dropped what is needed),
    the prompt and path are read again the same way."""

    def __init__(self, m: Model, prefix: Sequence[int], *, forced: Sequence[int], model: str,
                 messages: tuple[Message, ...]) -> None:
        super().__init__()
        self.m, self.model, self.messages = m, model, messages
        self.stop_ids = m.stop_ids
        self.prompt = list(prefix)
        self.forced = list(forced)
        self.base = len(self.prompt) + len(self.forced)
        self.rereads = 0
        self.root = self._start()
        self.row = self.root

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
        while self.valid < len(self.path):
            self.row = rows(self.m, [self.path[self.valid]], self.cache)[-1]
            self.valid += 1
            self.evaluated += 1
        self.current = True
        return self.row

    def _token(self, token_id: int, logprob: float) -> Token:
        return token_of(self.m, token_id, logprob)

    def _step(self, row: np.ndarray, chosen: int, k: int) -> Step:
        return step_of(self.m, row, chosen, k, rank=False)

    def _room(self) -> int:
        return self.m.context - self.base - 1

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {"evaluated_tokens": self.evaluated, "model": self.model, "messages": self.messages,
                               "prompt_tokens": self.base, "engine": self.m.engine,
                               "precision": self.m.precision}
        if self.rereads:
            out["rereads"] = self.rereads
        return out

    def close(self) -> None:
        self.cache = None
