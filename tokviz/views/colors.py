"""One probability-to-colour scale, shared by the table, the graph and later views.

Low probability is red, high is green, through amber and yellow: the scale a reader already knows
from traffic lights, so "how sure was the model" reads without a legend.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

_STOPS: tuple[tuple[float, tuple[int, int, int]], ...] = (
    (0.00, (0xD7, 0x30, 0x27)),
    (0.25, (0xF4, 0x6D, 0x43)),
    (0.50, (0xE8, 0xB4, 0x1E)),
    (0.75, (0x8C, 0xC0, 0x4F)),
    (1.00, (0x1A, 0x98, 0x50)),
)


@lru_cache(maxsize=8192)  # a node asks for its colour three times (fill, border, edge)
def prob_rgb(p: float) -> tuple[int, int, int]:
    """The colour of probability `p` (clamped to [0, 1]), linearly interpolated between stops."""
    p = min(1.0, max(0.0, p))
    for (p0, c0), (p1, c1) in itertools.pairwise(_STOPS):
        if p <= p1:
            t = (p - p0) / (p1 - p0)
            r, g, b = (round(a + (b_ - a) * t) for a, b_ in zip(c0, c1))
            return (r, g, b)
    return _STOPS[-1][1]


def prob_hex(p: float) -> str:
    return "#{:02x}{:02x}{:02x}".format(*prob_rgb(p))


def tint_hex(p: float, amount: float = 0.7) -> str:
    """A pale version of the colour (mixed with white), for fills that black text must sit on."""
    r, g, b = (round(c + (255 - c) * amount) for c in prob_rgb(p))
    return f"#{r:02x}{g:02x}{b:02x}"


def percent(p: float) -> str:
    """A probability as a short percentage that never rounds a real chance to 0 or 1 silently."""
    if p >= 0.9995:
        return "100%" if p >= 1.0 else ">99.9%"
    if p < 0.0005:
        return "0%" if p <= 0.0 else "<0.1%"
    return f"{p * 100:.1f}%"
