"""The probability scale reads the same in every terminal: truecolor, 256, 16 colours and none."""

from __future__ import annotations

import colorsys
import io
import itertools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.color import ColorSystem

from tokviz.views.colors import scale_color

PROBS = [i / 100 for i in range(0, 101, 2)]


def hue(rgb: tuple[int, int, int]) -> float:
    h, _, _ = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
    return h * 360 if h * 360 < 300 else 0.0  # reds just below 360° are red


@pytest.fixture(params=["traffic", "colorblind"])
def palette(request: pytest.FixtureRequest) -> Iterator[str]:
    from tokviz.ground.environment import Environment, using

    with using(Environment(palette=request.param)):  # a palette is a command's choice, kept in its environment
        yield request.param


@pytest.mark.parametrize("system", [ColorSystem.TRUECOLOR, ColorSystem.EIGHT_BIT, ColorSystem.STANDARD, ColorSystem.WINDOWS])
@pytest.mark.parametrize("background", [False, True])
def test_the_scale_never_turns_back(system: ColorSystem, background: bool, palette: str) -> None:
    hues = [hue(tuple(scale_color(p, background=background).downgrade(system).get_truecolor())) for p in PROBS]
    assert all(b >= a - 1.0 for a, b in itertools.pairwise(hues)), list(zip(PROBS, hues))
    if palette == "traffic":
        assert hues[0] < 20 and hues[-1] > 80  # red at the bottom, green at the top
    else:
        assert hues[0] <= 60 and hues[-1] >= 180  # vermillion (yellow in 16 colours) at the bottom, blue at the top


def test_the_palette_reaches_every_view(tmp_path: Path, small_run_file: Path) -> None:
    from tests.conftest import run_cli

    dot, page = tmp_path / "g.dot", tmp_path / "p.html"
    assert run_cli("--palette", "colorblind", "render", str(small_run_file), "-o", str(dot), "-o", str(page)).returncode == 0
    assert "#0072b2" in page.read_text() and "#d55e00" in page.read_text()  # the legend
    default = tmp_path / "d.dot"
    assert run_cli("render", str(small_run_file), "-o", str(default)).returncode == 0  # and back to the default after
    assert dot.read_text() != default.read_text()
    env = tmp_path / "e.dot"
    assert run_cli("render", str(small_run_file), "-o", str(env), env={"TOKVIZ_PALETTE": "colorblind"}).returncode == 0
    assert env.read_text() == dot.read_text()
    assert run_cli("--palette", "rainbow", "render", str(small_run_file)).returncode == 2


def test_no_step_is_grey_or_white_in_16_colours(palette: str) -> None:
    for p in PROBS:
        number = scale_color(p).downgrade(ColorSystem.STANDARD).number
        assert number in (1, 2, 3, 4, 9, 10, 11, 12), (p, number)


@pytest.mark.parametrize(("system", "expect"), [("truecolor", "38;2;"), ("256", "38;5;"), ("standard", "\\x1b[31m")])
def test_each_terminal_gets_its_own_codes(system: str, expect: str) -> None:
    """A fresh process per colour system (rich caches a style's codes for the first console)."""
    code = ("import io; from rich.console import Console; from tokviz.views.table import view; "
            "from tests.conftest import make_run; b = io.StringIO(); "
            f"Console(file=b, force_terminal=True, color_system={system!r}, width=100).print(view(make_run([[('a', 0.05), ('b', 0.9)]]))); "
            "print(repr(b.getvalue()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert expect in out
    if system == "256":
        assert "38;5;160" in out or "38;5;202" in out  # 5% is red, not the dark orange rich would pick


def test_no_colour_means_no_codes() -> None:
    from rich.console import Console

    from tests.conftest import make_run
    from tokviz.views.table import view

    buf = io.StringIO()
    Console(file=buf, force_terminal=True, no_color=True, width=100).print(view(make_run([[("a", 0.05)]])))
    assert "\x1b[3" not in buf.getvalue()
