"""Certainty measures computed from a step's returned log-probabilities.

Providers return only the top-k alternatives, so the probabilities seen sum to less than one. The
missing mass 1 − Σp is real probability spread over tokens we were not shown; treating it as one
extra "other" outcome gives a lower bound on the true entropy instead of pretending the top-k
list is the whole distribution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tokviz.run import Step


def other_mass(probs: Sequence[float]) -> float:
    """Probability not covered by the returned alternatives (0 if they already sum to ≥ 1)."""
    return max(0.0, 1.0 - math.fsum(probs))


def entropy_bits(probs: Sequence[float], *, with_other: bool = True) -> float:
    """Shannon entropy in bits, over `probs` plus (by default) the unseen "other" bucket."""
    ps = list(probs)
    if with_other:
        ps.append(other_mass(probs))
    return max(0.0, -math.fsum(p * math.log2(p) for p in ps if p > 0.0)) + 0.0


def step_entropy(step: Step) -> float:
    """Entropy of one step in bits; a step with no alternatives is judged by its chosen token."""
    tokens = step.alternatives or (step.chosen,)
    return entropy_bits([t.prob for t in tokens])
