"""Positions in the tree of continuations, kept in the model's cache: one token at a time
(`LocalCursor`, also the explorer's), or a node's children decoded together (`BatchedCursor`,
`tree --parallel`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tokviz.ground.errors import ProviderError
from tokviz.providers.base import TreeSpec
from tokviz.providers.kvcursor import KVCursor
from tokviz.providers.local.engine import LLAMA_MAX_SEQ, Batch, Loaded, last_logits, step_of, token_of, train_context
from tokviz.providers.logits import logsumexp, reduce_row
from tokviz.run import Message, Step, Token

if TYPE_CHECKING:
    import numpy as np


class LocalCursor(KVCursor):
    """A position in the tree, kept in llama.cpp's KV cache (the walk: `tokviz.providers.kvcursor`).

    The cache is cut back with `Llama.n_tokens`, which `Llama.eval` honours by dropping everything
    after it; every token of the path is evaluated on its own, as generation evaluates it
    (llama.cpp rounds a batch differently from single tokens).
    """

    def __init__(self, m: Loaded, root: np.ndarray, *, base: int, model: str, messages: tuple[Message, ...]) -> None:
        super().__init__()
        self.m = m
        self.stop_ids = m.stop_ids
        self.base = base
        self.root = root  # the row after the prompt (and forced tokens): re-reading it would change its batch
        self.model = model
        self.messages = messages

    def _logits(self) -> np.ndarray:
        """The logits row after the current path, evaluating what the cache lacks."""
        llm = self.m.llm
        if not self.path:
            return self.root
        if self.valid == len(self.path) and not self.current:
            self.valid -= 1  # the cache holds the path, but a later token's logits are loaded
        while self.valid < len(self.path):
            llm.n_tokens = self.base + self.valid
            llm.eval([self.path[self.valid]])
            self.valid += 1
            self.evaluated += 1
        self.current = True
        return last_logits(self.m)

    def _token(self, token_id: int, logprob: float) -> Token:
        return token_of(self.m, token_id, logprob)

    def _step(self, row: np.ndarray, chosen: int, k: int) -> Step:
        return step_of(self.m, reduce_row(row, k, chosen, rank=False), chosen)

    def _room(self) -> int:
        return min(train_context(self.m) - self.base - 1, self.m.llm.n_ctx() - self.base - 1)

    def report(self) -> dict[str, Any]:
        return {"evaluated_tokens": self.evaluated, "model": self.model, "messages": self.messages,
                "prompt_tokens": self.base}

    def close(self) -> None:
        """Nothing to free: the cache belongs to the loaded model."""


class BatchedCursor:
    """`tree --parallel`: a node's children decoded together, in one llama.cpp batch.

    When the tree algorithm reads a node's children and will descend into them, each child gets a
    sequence of its own (its path's cells shared from its parent's sequence, in one unified cache)
    and they are decoded in one batch, together with the children of the node's siblings still
    waiting; their logits rows are kept until the algorithm reaches them, and a group's leaves are
    completed in lockstep. Sequences are reused level by level (children at depth d use the d-th
    block), which depth-first order makes safe: a level's block is decoded again only once every
    node of its previous group is done. Every evaluated token is still a new node. llama.cpp
    rounds a batch differently from one token, so the figures differ slightly from the default
    cursor's: the tree says so (`approximation`).
    """

    def __init__(self, m: Loaded, spec: TreeSpec, prefix: list[int], *, model: str, messages: tuple[Message, ...]) -> None:
        self.m, self.spec, self.model, self.messages = m, spec, model, messages
        self.base = len(prefix)
        self.k = spec.branch
        # Children of a node and of its waiting siblings are decoded together when the sequences
        # allow it (k * k per level); else a node's own children only.
        self.wide = 1 + spec.depth * spec.branch * spec.branch <= LLAMA_MAX_SEQ
        self.block = spec.branch * spec.branch if self.wide else spec.branch
        # Cells held at once, at most: the prefix, a block of nodes per level, and a group's leaves
        # (up to a block of them) completed in lockstep.
        self.engine = Batch(m, self.base + (spec.depth + spec.complete) * self.block + 16, 1 + spec.depth * self.block)
        self.path: list[int] = []
        self.held: dict[tuple[int, ...], int] = {(): 0}  # a path → the sequence whose cells hold it
        self.owner: dict[int, tuple[int, ...]] = {0: ()}
        self.rows: dict[tuple[int, ...], Any] = {}
        self.read: dict[tuple[int, ...], tuple[list[Token], list[int]]] = {}  # children read ahead of their turn
        self.completed: dict[tuple[int, ...], tuple[Token, ...]] = {}  # leaves finished ahead of their turn
        self.evaluated = 0
        rows = self.engine.decode([(t, i, 0, i == len(prefix) - 1) for i, t in enumerate(prefix)])
        self.rows[()] = rows[0].copy()

    def _row(self, key: tuple[int, ...]) -> Any:
        """The logits after `key`, read once (kept rows are dropped as they are used)."""
        row = self.rows.pop(key, None)
        if row is None:  # not decoded ahead: decode it from its parent's cells on its own
            self._ahead(key[:-1], [key[-1]])
            row = self.rows.pop(key)
        return row

    def _ahead(self, parent: tuple[int, ...], kids: list[int],
               group: Sequence[tuple[tuple[int, ...], list[int]]] = ()) -> None:
        """Decode `kids` after `parent`, and the kids of `group`'s nodes (the parent's siblings), in one batch."""
        jobs = [(parent, kids), *group]
        entries = []
        for j, (node, its_kids) in enumerate(jobs):
            if node not in self.held:
                raise ProviderError("the tree cursor lost its place (a path without cells)")
            source, level, pos = self.held[node], len(node), self.base + len(node)
            for i, kid in enumerate(its_kids):
                seq = 1 + level * self.block + j * self.k + i
                old = self.owner.pop(seq, None)
                if old is not None:
                    self.held.pop(old, None)
                self.engine.drop(seq)
                self.engine.share(source, seq, pos)
                self.held[(*node, kid)], self.owner[seq] = seq, (*node, kid)
                entries.append((kid, pos, seq, True))
        rows = iter(self.engine.decode(entries))
        for node, its_kids in jobs:
            for kid in its_kids:
                self.rows[(*node, kid)] = next(rows).copy()
        self.evaluated += len(entries)

    def _kids(self, key: tuple[int, ...], k: int) -> tuple[list[Token], list[int]]:
        """A node's children (read once, from its row) and those the algorithm will descend into."""
        if key in self.read:
            return self.read.pop(key)
        reduced = reduce_row(self._row(key), k)
        kids = [token_of(self.m, i, logit - reduced.lse) for i, logit in reduced.top if i not in self.m.stop_ids]
        ahead = ([int(t.id) for t in kids if t.prob >= self.spec.min_prob and t.id is not None]
                 if len(key) + 1 < self.spec.depth or self.spec.complete else [])
        return kids, ahead

    def children(self, k: int) -> list[Token]:
        key = tuple(self.path)
        if key in self.read:  # decoded ahead with a sibling's
            return self.read.pop(key)[0]
        kids, ahead = self._kids(key, k)
        if ahead:
            # The siblings still waiting (their rows decoded with this node's) have their children
            # decoded in the same batch: a batch of k * k tokens instead of k batches of k.
            group = []
            if self.wide and key:
                for other in [r for r in self.rows if len(r) == len(key) and r[:-1] == key[:-1] and r != key]:
                    other_kids, other_ahead = self._kids(other, k)
                    self.read[other] = (other_kids, [])
                    if other_ahead:
                        group.append((other, other_ahead))
            self._ahead(key, ahead, group)
            if len(key) + 1 == self.spec.depth and self.spec.complete:  # the leaves: finished together too
                self._complete_all([(*node, kid) for node, its in [(key, ahead), *group] for kid in its],
                                   self.spec.complete)
        return kids

    def _complete_all(self, leaves: list[tuple[int, ...]], n: int) -> None:
        """The greedy completions of several leaves in lockstep, one batch per token, each on its
        leaf's own sequence (whose cells past the leaf are dropped after)."""
        import numpy as np

        logits = {leaf: self._row(leaf) for leaf in leaves}
        done: dict[tuple[int, ...], list[Token]] = {leaf: [] for leaf in leaves}
        running = list(leaves)
        try:
            for j in range(n):
                entries = []
                for leaf in running:
                    row = logits[leaf]
                    chosen = int(np.argmax(row))
                    if chosen in self.m.stop_ids:
                        continue
                    done[leaf].append(token_of(self.m, chosen, float(row[chosen]) - logsumexp(row)))
                    if j + 1 < n:
                        entries.append((leaf, chosen))
                running = [leaf for leaf, _ in entries]
                if not entries:
                    break
                rows = self.engine.decode([(chosen, self.base + len(leaf) + j, self.held[leaf], True)
                                           for leaf, chosen in entries])
                logits = dict(zip(running, rows))
                self.evaluated += len(entries)
        finally:
            for leaf in leaves:
                self.engine.drop(self.held[leaf], self.base + len(leaf))
        self.completed.update({leaf: tuple(tokens) for leaf, tokens in done.items()})

    def enter(self, token: Token) -> None:
        if token.id is None:
            raise ProviderError("a tree token without an id")
        self.path.append(int(token.id))

    def leave(self) -> None:
        self.path.pop()

    def complete(self, n: int) -> tuple[Token, ...]:
        """The greedy continuation of the current path (finished already if it was a group's leaf)."""
        key = tuple(self.path)
        if key not in self.completed:
            self._complete_all([key], n)
        return self.completed.pop(key)[:n]

    def report(self) -> dict[str, Any]:
        return {"evaluated_tokens": self.evaluated, "model": self.model, "messages": self.messages,
                "prompt_tokens": self.base,
                "approximation": "each node's children decoded together in one llama.cpp batch (tree --parallel): "
                                 "figures differ slightly from decoding one token at a time"}

    def close(self) -> None:
        self.engine.close()
