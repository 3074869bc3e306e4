"""The figures of a set of weighed answers (`predict --choice`), lm-evaluation-harness's way.

Each choice's log-likelihood is the sum of its tokens' logprobs (`loglikelihood` in lm-eval);
`acc` picks the largest sum, `acc_norm` the largest sum per byte of the continuation (lm-eval's
`acc_bytes`: longer answers are not punished for their length); `greedy` says whether every token
of the choice is the model's first choice at its position (lm-eval's `is_greedy`). On top of lm-eval:
each choice's share of the probability the choices hold together, and the mass left to every other
continuation.

A figure that is an upper bound (a provider that lists only the top k) stays one: a rule has a
winner only when the best exact figure is at least every bound, shares are given only when every
figure is exact, and the mass left is then "at least".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tokviz.run import Run, RunSet, same_token
from tokviz.run import tokens as tok

EXACT, BOUND = "exact", "upper bound"


@dataclass(frozen=True)
class Weighed:
    """One choice: as given, the continuation scored (with any whitespace moved from the context),
    its summed logprob, whether that is exact or an upper bound, its tokens and bytes."""

    choice: str
    text: str
    logprob: float
    exact: bool
    tokens: int
    bytes: int
    greedy: bool | None  # None: not known (an upper bound, or no alternatives recorded)
    how: str

    @property
    def prob(self) -> float:
        return math.exp(self.logprob)

    @property
    def per_byte(self) -> float:
        return self.logprob / max(self.bytes, 1)


@dataclass(frozen=True)
class Verdict:
    choices: tuple[Weighed, ...]
    shares: tuple[float, ...] | None  # each choice's p / Σ p; None unless every figure is exact
    acc: int | None  # index of the winner by summed logprob; None when bounds leave it open
    acc_norm: int | None  # by logprob per byte
    rest: float  # 1 − Σ p: every other continuation (at least this much when figures are bounds)
    exact: bool  # every figure exact

    def to_dict(self) -> dict[str, Any]:
        def name(i: int | None) -> str | None:
            return None if i is None else self.choices[i].choice

        return {
            "choices": [{"choice": w.choice, "continuation": w.text, "logprob": round(w.logprob, 6),
                         "prob": round(w.prob, 6), "figure": EXACT if w.exact else BOUND,
                         "share": None if self.shares is None else round(self.shares[i], 6),
                         "logprob_per_byte": round(w.per_byte, 6), "tokens": w.tokens, "bytes": w.bytes,
                         "greedy": w.greedy} for i, w in enumerate(self.choices)],
            "winner": {"acc": name(self.acc), "acc_norm": name(self.acc_norm)},
            "rest": round(self.rest, 6), "rest_is_at_least": not self.exact, "exact": self.exact,
        }


def weighed(run: Run) -> Weighed:
    source = run.source
    exact = source.get("choice_figure", EXACT) == EXACT
    text = tok.join(s.chosen.raw for s in run.steps)
    return Weighed(choice=source.get("choice", text), text=text, logprob=math.fsum(s.chosen.logprob for s in run.steps),
                   exact=exact, tokens=len(run.steps), bytes=len(text.encode("utf-8")), greedy=_greedy(run, exact),
                   how=source.get("choice_how", ""))


def _greedy(run: Run, exact: bool) -> bool | None:
    """Whether each token is its position's first choice (a tie with the first counts); for a bound,
    False when the listed first choice cannot begin the choice, else not known."""
    if not run.steps or any(not s.alternatives for s in run.steps):
        return None
    if not exact:
        first = run.steps[0].alternatives[0]
        data = run.steps[0].chosen.raw
        return False if first.raw and not first.lossy and not data.startswith(first.raw) else None
    return all(same_token(s.chosen, s.alternatives[0]) or s.chosen.logprob >= s.alternatives[0].logprob
               for s in run.steps)


def verdict(record: RunSet) -> Verdict:
    ws = tuple(weighed(r) for r in record.runs)
    exact = all(w.exact for w in ws)
    total = math.fsum(w.prob for w in ws)
    shares = tuple(w.prob / total for w in ws) if exact and total > 0 else None
    return Verdict(choices=ws, shares=shares, acc=_winner(ws, lambda w: w.logprob),
                   acc_norm=_winner(ws, lambda w: w.per_byte), rest=max(0.0, 1.0 - total), exact=exact)


def _winner(ws: tuple[Weighed, ...], key: Any) -> int | None:
    """The first choice with the largest figure among the exact ones, if no bound could beat it."""
    exact = [i for i, w in enumerate(ws) if w.exact]
    if not exact:
        return None
    best = max(exact, key=lambda i: (key(ws[i]), -i))
    if any(key(w) > key(ws[best]) for w in ws if not w.exact):
        return None
    return best
