"""One probability-to-colour scale, shared by the table, the graph and later views.

Low probability is red, high is green, through amber and yellow: the scale a reader already knows
from traffic lights, so "how sure was the model" reads without a legend.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

Stops = tuple[tuple[float, tuple[int, int, int]], ...]
PALETTES: dict[str, Stops] = {
    # red → amber → green: the traffic-light scale (the default)
    "traffic": ((0.00, (0xD7, 0x30, 0x27)), (0.25, (0xF4, 0x6D, 0x43)), (0.50, (0xE8, 0xB4, 0x1E)),
                (0.75, (0x8C, 0xC0, 0x4F)), (1.00, (0x1A, 0x98, 0x50))),
    # vermillion → orange → sky blue → blue (Okabe & Ito's colour-blind-safe colours): red-green
    # colour blindness, the common kind, cannot read the traffic scale's two ends apart
    "colorblind": ((0.00, (0xD5, 0x5E, 0x00)), (0.40, (0xE6, 0x9F, 0x00)), (0.70, (0x56, 0xB4, 0xE9)),
                   (1.00, (0x00, 0x72, 0xB2))),
}


def check_palette(name: str) -> str:
    """A palette name the views know, or the one usage line (`--palette`, $TOKVIZ_PALETTE)."""
    if name not in PALETTES:
        from tokviz.ground.errors import UsageError

        raise UsageError(f"unknown palette {name!r}", hint=f"use one of {', '.join(PALETTES)}")
    return name


def palette() -> str:
    """The palette of the running command (its environment's choice), "traffic" by default."""
    from tokviz.ground.environment import current

    name = current().palette_name
    return name if name in PALETTES else "traffic"


def css_gradient() -> str:
    """The scale as a CSS gradient, for the HTML legend."""
    return "linear-gradient(90deg," + ",".join("#{:02x}{:02x}{:02x}".format(*rgb) for _, rgb in PALETTES[palette()]) + ")"


def prob_rgb(p: float) -> tuple[int, int, int]:
    """The colour of probability `p` (clamped to [0, 1]), linearly interpolated between stops."""
    return _rgb(palette(), p)


@lru_cache(maxsize=8192)  # a node asks for its colour three times (fill, border, edge)
def _rgb(name: str, p: float) -> tuple[int, int, int]:
    stops = PALETTES[name]
    p = min(1.0, max(0.0, p))
    for (p0, c0), (p1, c1) in itertools.pairwise(stops):
        if p <= p1:
            t = (p - p0) / (p1 - p0)
            r, g, b = (round(a + (b_ - a) * t) for a, b_ in zip(c0, c1))
            return (r, g, b)
    return stops[-1][1]


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
_TERMINAL_STEPS = {
    # xterm-256 steps for 0%, 10%, … 100% (text, then backgrounds that dark text reads on), and
    # the 16-colour bands (red, yellow, green / yellow, blue: colours every terminal has)
    "traffic": ((160, 202, 166, 208, 172, 178, 142, 106, 70, 34, 28),
                (210, 209, 209, 215, 215, 221, 186, 150, 150, 114, 78),
                ((0.3, 1), (0.7, 3), (1.01, 2)), ((0.3, 1), (0.7, 3), (1.01, 2))),
    "colorblind": ((166, 166, 172, 172, 178, 178, 74, 74, 32, 32, 25),
                   (216, 216, 222, 222, 222, 186, 117, 117, 153, 153, 111),
                   ((0.55, 3), (1.01, 4)), ((0.55, 3), (1.01, 6))),
}


def _make_scale_color() -> type:
    from rich.color import Color, ColorSystem, ColorType

    class ScaleColor(Color):
        """A truecolor shade of the scale that knows its own steps in 256 and 16 colours."""

        def downgrade(self, system: ColorSystem) -> Color:
            if system == ColorSystem.TRUECOLOR:
                return self
            p, background = _SCALE_OF.get(self.name, (0.0, False))
            fg, bg, ansi_fg, ansi_bg = _TERMINAL_STEPS[_PALETTE_OF.get(self.name, "traffic")]
            if system == ColorSystem.EIGHT_BIT:
                index = (bg if background else fg)[round(min(1.0, max(0.0, p)) * 10)]
                return Color(f"color({index})", ColorType.EIGHT_BIT, number=index)
            for limit, number in (ansi_bg if background else ansi_fg):
                if p < limit:
                    return Color(f"color({number})", ColorType.STANDARD, number=number)
            return Color("color(2)", ColorType.STANDARD, number=(ansi_bg if background else ansi_fg)[-1][1])

    return ScaleColor


_SCALE_OF: dict[str, tuple[float, bool]] = {}
_PALETTE_OF: dict[str, str] = {}


@lru_cache(maxsize=1)
def _scale_color_type() -> type:
    return _make_scale_color()


def scale_color(p: float, *, background: bool = False) -> object:
    """The rich Color of probability `p`: the hex shade in truecolor terminals, the scale's own
    steps in 256 and 16 colours (see above). `background=True` gives the pale shade text sits on."""
    return _scale_color(palette(), p, background)


@lru_cache(maxsize=4096)
def _scale_color(palette_name: str, p: float, background: bool) -> object:
    from rich.color import ColorType
    from rich.color_triplet import ColorTriplet

    rgb = _rgb(palette_name, p)
    if background:
        rgb = tuple(round(c + (255 - c) * 0.25) for c in rgb)  # as tint_hex(p, 0.25): dark text reads on it
    name = "#{:02x}{:02x}{:02x}".format(*rgb) + ("/bg" if background else "") + f"/{p:.4f}/{palette_name}"
    _SCALE_OF[name] = (p, background)
    _PALETTE_OF[name] = palette_name
    return _scale_color_type()(name, ColorType.TRUECOLOR, triplet=ColorTriplet(*rgb))


def prob_style(p: float, *, bold: bool = False, dim: bool = False, italic: bool = False, on: float | None = None,
               fg: str | None = None) -> object:
    """A rich Style in the probability's colour (or `fg` on the probability's pale background)."""
    from rich.style import Style

    color = fg if fg is not None else scale_color(p)
    return Style(color=color, bold=bold or None, dim=dim or None, italic=italic or None,
                 bgcolor=scale_color(on, background=True) if on is not None else None)
