"""How temperature, top-k and top-p would reshape a step's distribution, from its logprobs.

Honest about what it computes: only the returned alternatives are known, so every reshaped
distribution is over those tokens alone (the unseen tail is excluded and the result renormalised),
and some servers (vLLM-style) return raw logprobs from before their own sampling settings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from tokviz.ground.errors import UsageError

NOTE = "computed over the returned alternatives only (the unseen tail is excluded)"


@dataclass(frozen=True)
class Setting:
    kind: str  # "T", "top_k" or "top_p"
    value: float

    @property
    def label(self) -> str:
        return f"{self.kind}={int(self.value) if self.kind == 'top_k' else f'{self.value:g}'}"

    @property
    def cuts(self) -> bool:
        """Whether this setting removes tokens (top-k, top-p) rather than only reweighting them."""
        return self.kind != "T"


def parse_settings(text: str) -> tuple[Setting, ...]:
    """'T=0.2,T=1.5,top_k=3,top_p=0.9' → settings, in order; a bad item is a usage error naming it."""
    out = []
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        m = re.fullmatch(r"(T|t|temperature|top_k|top_p)\s*=\s*([0-9]*\.?[0-9]+)", item)
        if not m:
            raise UsageError(f"cannot read sampling setting {item!r}", hint="use T=0.7, top_k=3 or top_p=0.9, comma-separated")
        kind = {"t": "T", "temperature": "T"}.get(m.group(1).lower(), m.group(1))
        value = float(m.group(2))
        if kind == "top_k" and (value < 1 or value != int(value)):
            raise UsageError(f"top_k must be a whole number of at least 1, got {m.group(2)}")
        if kind == "top_p" and not 0 < value <= 1:
            raise UsageError(f"top_p must be in (0, 1], got {m.group(2)}")
        out.append(Setting(kind, value))
    if not out:
        raise UsageError("--show-sampling needs at least one setting, such as T=0.7")
    return tuple(out)


def normalise(probs: Sequence[float]) -> list[float]:
    total = math.fsum(probs)
    return [p / total for p in probs] if total > 0 else list(probs)


def with_temperature(logprobs: Sequence[float], t: float) -> list[float]:
    """Softmax of logprobs / T; T → 0 is one-hot on the most likely token (first on ties)."""
    if not logprobs:
        return []
    if t <= 1e-6:
        best = max(range(len(logprobs)), key=lambda i: (logprobs[i], -i))
        return [1.0 if i == best else 0.0 for i in range(len(logprobs))]
    top = max(logprobs)
    weights = [math.exp((lp - top) / t) for lp in logprobs]
    return normalise(weights)


def keep_top_k(probs: Sequence[float], k: int) -> list[float]:
    order = sorted(range(len(probs)), key=lambda i: (-probs[i], i))
    kept = set(order[:k])
    return normalise([p if i in kept else 0.0 for i, p in enumerate(probs)])


def keep_top_p(probs: Sequence[float], p: float) -> list[float]:
    """The smallest set of most likely tokens whose (renormalised) probability reaches p."""
    probs = normalise(probs)
    order = sorted(range(len(probs)), key=lambda i: (-probs[i], i))
    kept, total = set(), 0.0
    for i in order:
        kept.add(i)
        total += probs[i]
        if total >= p - 1e-12:
            break
    return normalise([q if i in kept else 0.0 for i, q in enumerate(probs)])


def reshape(logprobs: Sequence[float], setting: Setting) -> list[float]:
    """The distribution over the given tokens as `setting` would make it (sums to 1)."""
    if setting.kind == "T":
        return with_temperature(logprobs, setting.value)
    probs = normalise([math.exp(lp) for lp in logprobs])
    if setting.kind == "top_k":
        return keep_top_k(probs, int(setting.value))
    return keep_top_p(probs, setting.value)
