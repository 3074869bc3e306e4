"""Certainty measures computed from the log-probabilities a run holds, per step and per run.

Providers return only the top-k alternatives, so the probabilities seen sum to less than one. The
missing mass 1 − Σp is real probability spread over tokens we were not shown; treating it as one
extra "other" outcome gives a lower bound on the true entropy instead of pretending the top-k
list is the whole distribution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tokviz.run import Run, Step, Token, same_token


def other_mass(probs: Sequence[float]) -> float:
    """Probability not covered by the returned alternatives (0 if they already sum to ≥ 1)."""
    return max(0.0, 1.0 - math.fsum(probs))


def entropy_bits(probs: Sequence[float], *, with_other: bool = True) -> float:
    """Shannon entropy in bits, over `probs` plus (by default) the unseen "other" bucket."""
    ps = list(probs)
    if with_other:
        ps.append(other_mass(probs))
    return max(0.0, -math.fsum(p * math.log2(p) for p in ps if p > 0.0)) + 0.0


def candidates(step: Step) -> tuple[Token, ...]:
    """The tokens a step's distribution is known over: its alternatives, plus the chosen token
    when sampling picked one outside them."""
    if any(same_token(a, step.chosen) for a in step.alternatives):
        return step.alternatives
    return (*step.alternatives, step.chosen)


def near_tie(step: Step, within: float | None = None) -> bool:
    """The chosen token was the model's first choice, and the runner-up lies within `within` nats of
    it (the engines' measured noise by default): decided within the noise of the arithmetic, so
    another engine, build or batch shape may choose the runner-up."""
    from tokviz.measures import noise

    ranked = sorted(step.alternatives, key=lambda t: -t.logprob)
    return (len(ranked) >= 2 and same_token(ranked[0], step.chosen)
            and ranked[0].logprob - ranked[1].logprob <= (noise.NEAR_TIE if within is None else within))


def near_ties(run: Run, within: float | None = None) -> tuple[int, ...]:
    """The 1-based steps decided at a near-tie (see `near_tie`)."""
    return tuple(n for n, step in enumerate(run.steps, 1) if near_tie(step, within))


TIE = "⚖"  # the mark of a step decided at a near-tie, in every view
NEAR_TIE_NOTE = "decided within the engines' noise: another engine may choose the runner-up"


def step_entropy(step: Step) -> float:
    """Entropy of one step in bits, over the known candidates and the unseen rest."""
    return entropy_bits([t.prob for t in candidates(step)])


@dataclass(frozen=True)
class StepStats:
    chosen_prob: float
    entropy_bits: float
    surprisal_bits: float  # −log2 p(chosen): how surprising the chosen token was
    rank: int | None  # 1 = the most likely alternative; None = not among the returned alternatives
    margin: float | None  # p(chosen) − p(best other alternative); negative when a likelier token was passed over


def step_stats(step: Step) -> StepStats:
    p = step.chosen.prob
    rank = next((n for n, a in enumerate(step.alternatives, start=1) if same_token(a, step.chosen)), None)
    others = step.others()
    margin = p - max(a.prob for a in others) if others else None
    surprisal = -step.chosen.logprob / math.log(2) if step.chosen.logprob > -9999 else math.inf
    return StepStats(chosen_prob=p, entropy_bits=step_entropy(step), surprisal_bits=surprisal + 0.0,
                     rank=rank, margin=margin)


@dataclass(frozen=True)
class RunStats:
    tokens: int
    mean_chosen_prob: float | None
    perplexity: float | None  # exp of the mean negative log-likelihood of the chosen tokens
    mean_entropy_bits: float | None
    least_certain: tuple[int, ...]  # 1-based positions of the highest-entropy steps, most uncertain first
    distinct_alternatives: int  # different token texts that competed and lost, over all steps
    ttft_s: float | None
    tokens_per_s: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None
    price_source: str | None
    # A scored text (ranks known): the share of its tokens that were the model's first choice, or
    # among its 10 / 100 / 1000 likeliest (GLTR's buckets), and the mean surprisal in bits.
    top1_share: float | None = None
    top10_share: float | None = None
    top100_share: float | None = None
    top1000_share: float | None = None
    mean_surprisal_bits: float | None = None
    near_ties: tuple[int, ...] = ()  # 1-based steps whose choice lay within the engines' noise

    def to_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            if isinstance(v, float):
                return round(v, 6) + 0.0 if math.isfinite(v) else None
            return list(v) if isinstance(v, tuple) else v

        return {k: clean(v) for k, v in asdict(self).items()}


def steps_stats(run: Run) -> list[dict[str, Any]]:
    """Every per-step figure the table shows, for scripts (`--stats --json`): probability, entropy
    (None without alternatives), surprisal, rank among the alternatives, margin to the best other."""
    def clean(v: float | None) -> float | None:
        return None if v is None or not math.isfinite(v) else round(v, 6) + 0.0

    out = []
    for n, step in enumerate(run.steps, start=1):
        st = step_stats(step)
        out.append({"step": n, "chosen_prob": clean(st.chosen_prob), "vocab_rank": step.rank,
                    "entropy_bits": clean(st.entropy_bits) if step.alternatives else None,
                    "surprisal_bits": clean(st.surprisal_bits), "rank": st.rank, "margin": clean(st.margin),
                    "near_tie": near_tie(step)})
    return out


def run_stats(run: Run, *, least: int = 3) -> RunStats:
    from tokviz.measures.prices import estimate_cost

    steps = run.steps
    per = [step_stats(s) for s in steps]
    n = len(steps)
    mean_p = math.fsum(s.chosen_prob for s in per) / n if n else None
    nll = -math.fsum(s.chosen.logprob for s in steps) / n if n else None
    perplexity = math.exp(nll) if nll is not None and nll < 700 else (math.inf if nll is not None else None)
    # With no alternatives (-k 0) a step's entropy would be computed over one token: not known.
    known = [s.entropy_bits for s, step in zip(per, steps) if step.alternatives]
    mean_h = math.fsum(known) / len(known) if known else None
    order = sorted(range(n), key=lambda i: (-per[i].entropy_bits, i))[:least]
    distinct = len({a.raw or a.text.encode() for s in steps for a in s.others()})
    cost, source = estimate_cost(run.provider, run.model, run.usage)
    ranks = [s.rank for s in steps if s.rank is not None]
    shares = {k: (sum(1 for r in ranks if r <= k) / len(ranks) if ranks else None) for k in (1, 10, 100, 1000)}
    return RunStats(
        top1_share=shares[1], top10_share=shares[10], top100_share=shares[100], top1000_share=shares[1000],
        mean_surprisal_bits=nll / math.log(2) if (ranks and nll is not None) else None,
        tokens=n, mean_chosen_prob=mean_p, perplexity=perplexity, mean_entropy_bits=mean_h,
        least_certain=tuple(i + 1 for i in order), distinct_alternatives=distinct,
        ttft_s=run.timings.get("ttft_s"), tokens_per_s=run.timings.get("tokens_per_s"),
        prompt_tokens=run.usage.get("prompt_tokens"), completion_tokens=run.usage.get("completion_tokens"),
        cost_usd=cost, price_source=source, near_ties=near_ties(run),
    )
