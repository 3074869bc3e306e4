"""What a local model's row of logits is reduced to: the log-normaliser, the top k, a token's rank.

A row is 262,144 float32 logits for the embedded model (1 MiB). Every local command keeps only
k + 1 logprobs and perhaps one rank of it, so the reduction must cost a small fraction of a
decode. Measured per row on these machines (docs/benchmarks.md): `argpartition` over the whole
row 0.97 ms; the candidate cut used here 0.15 ms; exp-sum 0.7 ms; one comparison pass for the rank
0.2 ms. Rows of one batched decode are reduced on a thread pool (numpy releases the GIL).

The arithmetic is the one generation has always used, so scores, goldens and saved runs keep
their exact figures.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import numpy as np

# Where the candidate cut starts: every logit within this many nats of the maximum. Typically a few
# hundred tokens of the 262,144; widened (doubled) until it holds k of them.
_FIRST_CUT = 6.0
_POOL: ThreadPoolExecutor | None = None
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Reduced:
    """What is kept of one row: logprob = logits[i] - lse."""

    lse: float
    top: tuple[tuple[int, float], ...]  # (id, logit) of the k most likely tokens, best first (ties by id)
    target_logit: float | None = None
    rank: int | None = None  # 1 + the number of tokens strictly likelier than the target
    watched: tuple[tuple[int, float, int], ...] = ()  # (id, logit, rank) of each watched token (--watch)


def logsumexp(logits: np.ndarray) -> float:
    """log Σ exp(logits), so that a token's logprob is ``logits[i] - logsumexp``.

    Only the log-normaliser is computed, not a full log-softmax array: a step needs the logprobs
    of k + 1 tokens, not of 262,144.
    """
    import numpy as np

    top = float(logits.max())
    return top + float(np.log(np.exp(logits - top).sum(dtype=np.float64)))


def top_k(logits: np.ndarray, k: int) -> list[int]:
    """Ids of the k most likely tokens, best first (ties by id, so the order is stable).

    Exact: every logit outside the cut is below every logit inside it, so the top k of the cut are
    the top k of the row; the cut widens until it holds k tokens.
    """
    import numpy as np

    if k <= 0:
        return []
    k = min(k, len(logits))
    best = float(logits.max())
    cut = _FIRST_CUT
    for _ in range(8):  # up to 768 nats below the best: past that, the whole row
        cand = np.flatnonzero(logits >= best - cut)
        if len(cand) >= k:
            break
        cut *= 2
    if len(cand) < k:  # -inf logits (masked tokens), or a spread wider than any real model's
        cand = np.arange(len(logits))
    if len(cand) > 4 * k + 256:
        part = np.argpartition(logits[cand], len(cand) - k)[len(cand) - k :]
        cand = cand[part]
    values = logits[cand]
    order = np.lexsort((cand, -values))[:k]
    return [int(i) for i in cand[order]]


def reduce_row(logits: np.ndarray, k: int, target: int | None = None, *, rank: bool = True,
               watch: Sequence[int] = ()) -> Reduced:
    """The row's log-normaliser, its top k and the target's logit, with the target's rank unless
    `rank` is false (generation records no rank, and counting it is one more pass over the row);
    and the logit and rank of each `watch` id (one more pass each, only when asked)."""
    import numpy as np

    lse = logsumexp(logits)
    top = tuple((i, float(logits[i])) for i in top_k(logits, k))
    watched = tuple((i, float(logits[i]), int(np.count_nonzero(logits > logits[i])) + 1) for i in watch)
    if target is None:
        return Reduced(lse=lse, top=top, watched=watched)
    value = float(logits[target])
    return Reduced(lse=lse, top=top, target_logit=value,
                   rank=int(np.count_nonzero(logits > value)) + 1 if rank else None, watched=watched)


def pool() -> ThreadPoolExecutor:
    """The reduction pool, for work that overlaps a decode (numpy and llama.cpp release the GIL)."""
    return _pool()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="tokviz-logits")
    return _POOL


def reduce_rows(rows: np.ndarray, k: int, targets: Sequence[int | None], watch: Sequence[int] = ()) -> list[Reduced]:
    """Reduce the rows of one batched decode (row i with target i), in parallel.

    The rows may be a view into llama.cpp's output buffer: everything is read before returning.
    """
    if len(rows) == 1:
        return [reduce_row(rows[0], k, targets[0], watch=watch)]
    return list(_pool().map(lambda i: reduce_row(rows[i], k, targets[i], watch=watch), range(len(rows))))


def pool_map(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """`fn` over `items` on the reduction pool (in order); inline for one item."""
    if len(items) == 1:
        return [fn(items[0])]
    return list(_pool().map(fn, items))
