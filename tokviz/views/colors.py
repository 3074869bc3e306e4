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


# --- the scale in every terminal ------------------------------------------------------------------
# Rich downgrades a hex colour to the nearest one a terminal has, which breaks the scale: in 256
# colours 0-5% became dark orange and 20% bright red; in 16 colours 70% became white and 90% grey.
# So each colour system gets its own steps, chosen along the same red → amber → green hues (hue never
# decreases as the probability grows; tests check every system), and a pale set for backgrounds.
_XTERM_FG = (160, 202, 166, 208, 172, 178, 142, 106, 70, 34, 28)  # 0%, 10%, … 100%
_XTERM_BG = (210, 209, 209, 215, 215, 221, 186, 150, 150, 114, 78)  # lighter steps that dark text reads on
_ANSI_FG = ((0.3, 1), (0.7, 3), (1.01, 2))  # red, yellow, green (the 16 colours every terminal has)
_ANSI_BG = ((0.3, 1), (0.7, 3), (1.01, 2))


def _make_scale_color() -> type:
    from rich.color import Color, ColorSystem, ColorType

    class ScaleColor(Color):
        """A truecolor shade of the scale that knows its own steps in 256 and 16 colours."""

        def downgrade(self, system: ColorSystem) -> Color:
            if system == ColorSystem.TRUECOLOR:
                return self
            p, background = _SCALE_OF.get(self.name, (0.0, False))
            if system == ColorSystem.EIGHT_BIT:
                index = (_XTERM_BG if background else _XTERM_FG)[round(min(1.0, max(0.0, p)) * 10)]
                return Color(f"color({index})", ColorType.EIGHT_BIT, number=index)
            for limit, number in (_ANSI_BG if background else _ANSI_FG):
                if p < limit:
                    return Color(f"color({number})", ColorType.STANDARD, number=number)
            return Color("color(2)", ColorType.STANDARD, number=2)

    return ScaleColor


_SCALE_OF: dict[str, tuple[float, bool]] = {}


@lru_cache(maxsize=1)
def _scale_color_type() -> type:
    return _make_scale_color()


@lru_cache(maxsize=4096)
def scale_color(p: float, *, background: bool = False) -> object:
    """The rich Color of probability `p`: the hex shade in truecolor terminals, the scale's own
    steps in 256 and 16 colours (see above). `background=True` gives the pale shade text sits on."""
    from rich.color import ColorType
    from rich.color_triplet import ColorTriplet

    rgb = prob_rgb(p)
    if background:
        rgb = tuple(round(c + (255 - c) * 0.25) for c in rgb)  # as tint_hex(p, 0.25): dark text reads on it
    name = "#{:02x}{:02x}{:02x}".format(*rgb) + ("/bg" if background else "") + f"/{p:.4f}"
    _SCALE_OF[name] = (p, background)
    return _scale_color_type()(name, ColorType.TRUECOLOR, triplet=ColorTriplet(*rgb))


def prob_style(p: float, *, bold: bool = False, dim: bool = False, italic: bool = False, on: float | None = None,
               fg: str | None = None) -> object:
    """A rich Style in the probability's colour (or `fg` on the probability's pale background)."""
    from rich.style import Style

    color = fg if fg is not None else scale_color(p)
    return Style(color=color, bold=bold or None, dim=dim or None, italic=italic or None,
                 bgcolor=scale_color(on, background=True) if on is not None else None)
