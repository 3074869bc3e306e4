"""Two scores of the same text, side by side: where the models agree, where they part.

Two models need not cut a text into the same tokens, so they are compared on segments: the
stretches between byte boundaries both tokenizations share. Offsets are counted in bytes of the
tokens themselves, never in characters of their text: a byte piece of a split character is shown
as one "�" for up to three bytes, and counting that as one character made every later segment
drift (a segment's text is what its bytes complete, so no segment shows half a character). A segment's log-probability under
a model is the sum over its tokens (the chain rule), so the per-segment difference is exact even
where the tokens differ. The distribution figures (KL, forks) need one position in both models,
so they are given only where a segment is one token in each.

KL is computed over the two top-k lists with everything outside them merged into one "rest"
bucket (the unseen mass) — a coarse-graining, so it is a lower bound on the full divergence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tokviz.measures.compare import byte_ends, raw_of
from tokviz.run import Run, Step, Token, same_token
from tokviz.run import tokens as tok


@dataclass(frozen=True)
class Segment:
    start: int  # byte offsets in the text (UTF-8)
    end: int
    text: str
    logprob_a: float
    logprob_b: float
    tokens_a: int  # how many tokens of each model the segment spans
    tokens_b: int
    kl: float | None = None  # KL(A ‖ B) over the top-k lists and the rest bucket, nats; one-token segments only
    top_a: Token | None = None  # each model's first choice at this position (one-token segments)
    top_b: Token | None = None

    @property
    def delta(self) -> float:
        """log P_B − log P_A: positive where B finds the text likelier."""
        return self.logprob_b - self.logprob_a

    @property
    def fork(self) -> bool:
        """The two models' first choices differ here."""
        return self.top_a is not None and self.top_b is not None and not same_token(self.top_a, self.top_b)


@dataclass(frozen=True)
class Summary:
    tokens_a: int
    tokens_b: int
    perplexity_a: float
    perplexity_b: float
    mean_delta: float  # per segment
    segments: int
    aligned: int  # segments of one token in each model
    forks: int
    mean_kl: float | None
    # |Δ logprob| over the segments: its median, 99th percentile and largest value (nats) — the
    # figures the noise floor is measured in (measures/noise.py), so a reader can hold them against it
    median_abs_delta: float = 0.0
    p99_abs_delta: float = 0.0
    max_abs_delta: float = 0.0


def kl_topk(a: Step, b: Step) -> float:
    """KL(A ‖ B) in nats over the tokens both top-k lists hold, plus one bucket for the rest."""
    shared = [(x, y) for x in a.alternatives for y in b.alternatives if same_token(x, y)]
    p = [x.prob for x, _ in shared]
    q = [y.prob for _, y in shared]
    p_rest = max(0.0, 1.0 - sum(p))
    q_rest = max(0.0, 1.0 - sum(q))
    total = 0.0
    for pi, qi in [*zip(p, q), (p_rest, q_rest)]:
        if pi > 0:
            total += pi * (math.log(pi) - math.log(max(qi, 1e-12)))
    return max(total, 0.0)


def align(a: Run, b: Run) -> list[Segment]:
    """The segments of the text both runs scored, in order."""
    data = b"".join(raw_of(s.chosen) for s in a.steps)
    if a.text != b.text or data != b"".join(raw_of(s.chosen) for s in b.steps):
        raise ValueError("the two runs did not score the same text")
    # where each token ends, in bytes (a byteless piece counted with the character it begins): the
    # same rule `tokviz diff` aligns by
    sa, sb = list(zip(byte_ends(a.steps), a.steps)), list(zip(byte_ends(b.steps), b.steps))
    cuts = sorted({e for e, _ in sa} & {e for e, _ in sb})
    texts = dict(zip(cuts, tok.pieces(data[x:y] for x, y in zip([0, *cuts], cuts))))
    out: list[Segment] = []
    ia = ib = 0
    start = 0
    for cut in cuts:
        ga, gb = [], []
        while ia < len(sa) and sa[ia][0] <= cut:
            ga.append(sa[ia][1])
            ia += 1
        while ib < len(sb) and sb[ib][0] <= cut:
            gb.append(sb[ib][1])
            ib += 1
        if not ga or not gb:
            continue
        one = len(ga) == 1 and len(gb) == 1
        out.append(Segment(
            start=start, end=cut, text=texts[cut],
            logprob_a=sum(s.chosen.logprob for s in ga), logprob_b=sum(s.chosen.logprob for s in gb),
            tokens_a=len(ga), tokens_b=len(gb),
            kl=kl_topk(ga[0], gb[0]) if one and ga[0].alternatives and gb[0].alternatives else None,
            top_a=ga[0].alternatives[0] if one and ga[0].alternatives else None,
            top_b=gb[0].alternatives[0] if one and gb[0].alternatives else None))
        start = cut
    return out


def summarize(a: Run, b: Run, segments: list[Segment]) -> Summary:
    def ppl(run: Run) -> float:
        return math.exp(min(700.0, -sum(s.chosen.logprob for s in run.steps) / max(1, len(run.steps))))

    kls = [s.kl for s in segments if s.kl is not None]
    sizes = sorted(abs(s.delta) for s in segments)
    return Summary(median_abs_delta=_quantile(sizes, 0.5), p99_abs_delta=_quantile(sizes, 0.99),
                   max_abs_delta=sizes[-1] if sizes else 0.0,
                   tokens_a=len(a.steps), tokens_b=len(b.steps), perplexity_a=ppl(a), perplexity_b=ppl(b),
                   mean_delta=sum(s.delta for s in segments) / max(1, len(segments)), segments=len(segments),
                   aligned=sum(1 for s in segments if s.tokens_a == 1 and s.tokens_b == 1),
                   forks=sum(1 for s in segments if s.fork), mean_kl=sum(kls) / len(kls) if kls else None)


def _quantile(ordered: list[float], q: float) -> float:
    """The q-quantile of sorted values, interpolated between neighbours (numpy's default method)."""
    if not ordered:
        return 0.0
    at = q * (len(ordered) - 1)
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def largest(segments: list[Segment], n: int = 10) -> list[Segment]:
    """The segments of largest disagreement, by |Δ logprob|, in text order."""
    chosen = sorted(segments, key=lambda s: -abs(s.delta))[:n]
    return sorted(chosen, key=lambda s: s.start)
