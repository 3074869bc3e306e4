"""The terminal table: golden text at a fixed width, hostile text stays data, colour only on terminals."""

from __future__ import annotations

from io import StringIO

import pytest
from rich.console import Console

from tests.conftest import HOSTILE, check_golden
from tokviz.run import Run
from tokviz.views import table


def test_table_golden(small_run: Run) -> None:
    check_golden("small_run.txt", table.render_text(small_run, width=100).encode())


def test_table_shows_each_step_its_probability_and_alternatives(small_run: Run) -> None:
    text = table.render_text(small_run)
    assert "␣Paris" in text and "81.2%" in text
    assert "␣a 7.1%" in text and "␣the 5.0%" in text
    assert "\\xc3" in text and "\\xa9" in text  # the two halves of "é", shown as bytes
    assert " Paris.café" in text  # the joined text above the table has the whole character


def test_hostile_tokens_render_as_literal_text(hostile_run: Run) -> None:
    text = table.render_text(hostile_run, width=200)
    for h in HOSTILE:
        shown = h.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥")
        assert shown in text, h
    check_golden("hostile_run.txt", text.encode())


def _print(run: Run, **console_kw: object) -> str:
    buf = StringIO()
    Console(file=buf, width=120, highlight=False, markup=False, emoji=False, **console_kw).print(table.view(run))  # type: ignore[arg-type]
    return buf.getvalue()


def test_colour_on_a_terminal(small_run: Run) -> None:
    assert "\x1b[" in _print(small_run, force_terminal=True, color_system="truecolor")


def test_no_escape_codes_when_not_a_terminal(small_run: Run) -> None:
    assert "\x1b" not in _print(small_run)


def test_no_colour_with_no_color(small_run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    out = _print(small_run, force_terminal=True)
    assert "\x1b[" in out  # still a terminal: bold and dim are allowed
    assert "38;" not in out and "\x1b[3" not in out  # but no colour


def test_at_80_columns_no_token_is_parted_from_its_figure() -> None:
    from tests.conftest import make_run
    from tokviz.views.table import plain_text, view

    names = [" Switzerland", " Luxembourg", " Liechtenstein", " Netherlands", " Belgium", " Austria"]
    run = make_run([[(n, 0.3 - 0.04 * i) for i, n in enumerate(names)]] * 3)
    for width in (60, 80, 100):
        text = plain_text(view(run, timings=False), width=width)
        for name in names:
            label = "␣" + name.strip()
            for line in text.splitlines():
                if label in line:
                    after = line.split(label, 1)[1]
                    assert after.lstrip().split(" ")[0].endswith("%"), (width, line)
