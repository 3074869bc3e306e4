"""The draw: which token a sampled step takes, exactly as a seed has always drawn it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tokviz.providers.logits import top_k
from tokviz.run import Params

if TYPE_CHECKING:
    import numpy as np


def sample(logits: np.ndarray, params: Params, rng: Any, limit: int = 0) -> int:
    """Pick the next token: argmax at temperature 0, else temperature + top-p sampling, among the
    `limit` most likely tokens when a limit is given (`tokviz explore`'s top-k; `params.top_k` is
    how many alternatives are recorded, not a sampling limit)."""
    import numpy as np

    if params.temperature <= 0.0:
        return int(np.argmax(logits))
    # In float64, in place, and drawn by `_draw` rather than Generator.choice, which re-checks the
    # probabilities (2 ms a row). Without a limit, the whole vocabulary, as always: a real model's
    # 262,144 logits lie within ~40 nats of each other, so none can be left out without moving the draw.
    ids = np.asarray(top_k(logits, limit)) if 0 < limit < len(logits) else None
    row = logits if ids is None else logits[ids]
    # One pass to float64 and the temperature (dividing by 1.0 changes no bit, so it is skipped).
    probs = row.astype(np.float64) if params.temperature == 1.0 else np.divide(row, params.temperature, dtype=np.float64)
    probs -= probs.max()
    np.exp(probs, out=probs)
    if params.top_p < 1.0:
        probs /= probs.sum()
        # The nucleus is almost always inside the top 1024; sort every candidate only if not.
        cand = np.argpartition(-probs, 1023)[:1024] if len(probs) > 1024 else np.arange(len(probs))
        if probs[cand].sum() < params.top_p:
            cand = np.arange(len(probs))
        order = cand[np.argsort(-probs[cand], kind="stable")]
        cum = np.cumsum(probs[order])
        keep = order[: int(np.searchsorted(cum, params.top_p)) + 1]
        picked = int(keep[_draw(probs[keep] / probs[keep].sum(), rng)])
    else:
        picked = _draw(probs, rng)
    return picked if ids is None else int(ids[picked])


_BLOCK = 1024  # weights per block of the blocked cumulative sum (256 blocks for Gemma's vocabulary)


def _draw(weights: np.ndarray, rng: Any) -> int:
    """The inverse-CDF draw of `rng.choice(len(weights), p=weights / weights.sum())`: one uniform,
    and the first token whose cumulative weight exceeds it, so a seed draws the token it always has.

    Without Generator.choice's checks, and, for a long row, without its one-by-one cumulative sum
    of 262,144 float64 values (1.2 ms here, 40 % of the draw): block totals first, then the sum
    inside the one block the uniform lands in (0.1 ms). The two sums round differently in the last
    bits of a float64, so the two draws could only part when the uniform falls within rounding of
    a token's edge: measured on real rows at T = 0.3–3, at most 2e-8 per draw, which is the
    one-by-one sum's own disagreement with an exact sum (docs/sampling.md; the tests check the
    draws against Generator.choice).
    """
    import numpy as np

    n = len(weights)
    if n <= 4 * _BLOCK:
        cdf = weights.cumsum()
        cdf /= cdf[-1]
        return int(cdf.searchsorted(rng.random(), side="right"))
    full = n - n % _BLOCK
    totals = weights[:full].reshape(-1, _BLOCK).sum(axis=1)
    if full < n:
        totals = np.append(totals, weights[full:].sum())
    edges = totals.cumsum()
    target = rng.random() * edges[-1]
    block = min(int(edges.searchsorted(target, side="right")), len(edges) - 1)
    start = block * _BLOCK
    inside = weights[start : start + _BLOCK].cumsum()
    if block:
        inside += edges[block - 1]
    i = int(inside.searchsorted(target, side="right"))
    if i < len(inside):
        return start + i
    # The block's own sum fell a rounding short of its total: the token is the next with weight.
    later = np.flatnonzero(weights[start + len(inside) :] > 0)
    return start + len(inside) + int(later[0]) if len(later) else int(np.flatnonzero(weights > 0)[-1])
