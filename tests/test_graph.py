"""The branching graph: structure, deterministic DOT, exact labels through the real Graphviz."""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import HOSTILE, check_golden, make_run
from tokviz.run import Run
from tokviz.views import export, graph
from tokviz.views.export import RenderOptions

SVG_NS = "{http://www.w3.org/2000/svg}"


def svg_texts(svg: bytes) -> list[str]:
    root = ET.fromstring(svg)
    return ["".join(t.itertext()) for t in root.iter(f"{SVG_NS}text")]


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_graph_has_the_chain_and_the_alternatives(small_run: Run) -> None:
    g = graph.build(small_run)
    chain = [n for n, d in g.nodes(data=True) if d["kind"] == "chosen"]
    assert chain == ["s0", "s1", "s2", "s3", "s4"]
    assert list(g.successors("start")) == ["s0", "s0a0", "s0a1"]
    assert g.nodes["s0a0"]["label"] == "␣a"
    assert g.edges["start", "s0"]["prob"] == pytest.approx(0.8123)
    assert g.edges["s0", "s1a0"]["prob"] == pytest.approx(0.3)
    # the chosen token is not repeated among the alternatives hanging off its step
    assert [g.nodes[n]["label"] for n in g.successors("s0")] == [".", ",", "↵"]


def test_dot_is_deterministic_and_golden(small_run: Run) -> None:
    a = export.render(small_run, "dot")
    assert a == export.render(Run.from_json(small_run.to_json()), "dot")
    check_golden("small_run.dot", a)


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_label_renders_exactly_in_svg(text: str) -> None:
    run = make_run([[(text, 0.7), ("x", 0.2)]], prompt="p")
    svg = export.render(run, "svg")
    expected = run.steps[0].chosen.label
    assert expected in svg_texts(svg), (expected, svg_texts(svg))


def test_prompt_label_is_escaped_and_shortened() -> None:
    run = make_run([[("a", 0.5)]], prompt='x' * 60 + ' "end" \\ & <b>')
    texts = svg_texts(export.render(run, "svg"))
    assert graph.prompt_label(run.prompt) in texts
    assert graph.prompt_label(run.prompt).startswith("…") and texts[0] != ""


def test_svg_and_png_from_the_real_dot(small_run: Run) -> None:
    svg = export.render(small_run, "svg")
    texts = svg_texts(svg)
    assert "␣Paris" in texts and "81.2%" in texts
    width, height = png_size(export.render(small_run, "png"))
    assert 100 < width < 5000 and 50 < height < 3000


def test_long_runs_wrap_into_rows_and_stay_readable() -> None:
    run = make_run([[(f"t{i}", 0.6), ("alt", 0.3)] for i in range(200)])
    dot = export.render(run, "dot", RenderOptions(wrap=20)).decode()
    assert dot.count('shape="plaintext"') == 9  # rows 2..10 start with a continuation node
    width, height = png_size(export.render(run, "png", RenderOptions(wrap=20)))
    assert width < 32767 and height < 32767
    # one unwrapped row of 200 tokens would be far wider than tall; wrapped it is not
    assert width < 4 * height
    svg = export.render(run, "svg", RenderOptions(wrap=20))
    m = re.search(rb'<svg width="(\d+)pt" height="(\d+)pt"', svg)
    assert m and int(m.group(1)) < 4 * int(m.group(2))


def test_korean_and_emoji_reach_the_svg() -> None:
    run = make_run([[("한국어", 0.5), ("🙂", 0.4)]], prompt="서울은")
    texts = svg_texts(export.render(run, "svg"))
    assert "한국어" in texts and "🙂" in texts and "서울은" in texts


def test_a_near_tie_is_marked_in_the_graph_as_in_the_table() -> None:
    """⚖ marks a step decided at a near-tie in DOT (so SVG and PNG) too, with its note under the graph."""
    from tests.conftest import make_run
    from tokviz.views import export

    run = make_run([[("Paris", 0.40), ("Lyon", 0.39)], [(" is", 0.9), (" was", 0.05)]])
    dot = export.render(run, "dot").decode()
    assert dot.count("⚖") == 2  # the step's node, and the note under the graph
    assert "near-tie" in dot
    clear = make_run([[("Paris", 0.9), ("Lyon", 0.05)]])
    assert "⚖" not in export.render(clear, "dot").decode()
