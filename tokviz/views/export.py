"""Record → file bytes, through the registry in `tokviz.views.formats`.

One function serves every command's `-o` and `render -o`, which is what makes `render run.json
-o x.svg` give exactly the bytes `predict` wrote for the same run and options. Each kind of record
has one renderer per format it supports; Graphviz images all come from the kind's DOT source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tokviz.measures.reshape import Setting
from tokviz.run import Run, RunKind, RunSet
from tokviz.views import DEFAULT_WRAP, formats

Record = Run | RunSet


@dataclass(frozen=True)
class RenderOptions:
    wrap: int = DEFAULT_WRAP
    width: int = 100  # columns of the plain-text table
    sampling: tuple[Setting, ...] = ()  # --show-sampling: sub-rows in the table, cut tokens greyed in graphs
    stats: bool = False  # --stats: the run summary under the plain-text table
    dpi: int | None = None  # --dpi: PNG resolution (Graphviz's default is 96), for projectors and print

    @property
    def cut_by(self) -> Setting | None:
        """The graph can show one cut: the first top-k or top-p setting asked for."""
        return next((s for s in self.sampling if s.cuts), None)


def format_for(path: Path, kind: str | None = None) -> str:
    return formats.from_path(path.name, path.suffix, kind)


# --- one renderer per (kind, format) ------------------------------------------------------------

def _predict_dot(run: Run, o: RenderOptions) -> str:
    from tokviz.views import graph

    return graph.to_dot(graph.build(run), graph.GraphOptions(wrap=o.wrap, cut_by=o.cut_by))


def _predict_txt(run: Run, o: RenderOptions) -> str:
    from tokviz.views import table

    return table.render_text(run, width=o.width, sampling=o.sampling, stats=o.stats)


def _predict_html(run: Run, o: RenderOptions) -> str:
    from tokviz.views import html

    return html.page(run, graph_svg=_optional_svg(run, o))


def _tree_dot(run: Run, o: RenderOptions) -> str:
    from tokviz.views import tree

    return tree.to_dot(run)


def _tree_txt(run: Run, o: RenderOptions) -> str:
    from tokviz.views import table, tree

    return table.plain_text(tree.view(run), width=o.width)


def _tree_html(run: Run, o: RenderOptions) -> str:
    from tokviz.views import html

    return html.tree_page(run, _optional_svg(run, o))


def _samples_dot(s: RunSet, o: RenderOptions) -> str:
    from tokviz.views import samples

    return samples.tree_dot(samples.prefix_tree(list(s.runs)), wrap=o.wrap)


def _samples_txt(s: RunSet, o: RenderOptions) -> str:
    from tokviz.views import samples, table

    return table.plain_text(samples.table(list(s.runs)), width=o.width)


def _samples_html(s: RunSet, o: RenderOptions) -> str:
    from tokviz.ground.errors import RenderError
    from tokviz.views import html

    try:
        svg = render(s, "svg", o)
    except RenderError:
        svg = None
    return html.samples_page(list(s.runs), svg)


def _comparison_json(s: RunSet, o: RenderOptions) -> str:
    from tokviz.views import comparison

    return comparison.to_json(s)


def _comparison_txt(s: RunSet, o: RenderOptions) -> str:
    from tokviz.views import comparison, table

    return table.plain_text(comparison.table(s), width=120)


def _comparison_svg(s: RunSet, o: RenderOptions) -> str:
    from tokviz.views import comparison

    return comparison.chart(s)


def _comparison_png(s: RunSet, o: RenderOptions) -> bytes:
    from tokviz.ground.errors import redact
    from tokviz.views import chart, comparison

    return chart.svg_to_png(redact(comparison.chart(s), shapes=False), o.dpi)


def _scorediff_json(s: RunSet, o: RenderOptions) -> str:
    from tokviz.views import score_comparison as scorediff

    return scorediff.to_json(s)


def _scorediff_txt(s: RunSet, o: RenderOptions) -> str:
    from tokviz.views import score_comparison as scorediff
    from tokviz.views import table

    return table.plain_text(scorediff.table(s), width=120)


def _scorediff_html(s: RunSet, o: RenderOptions) -> str:
    from tokviz.views import score_comparison as scorediff

    return scorediff.page(s)


def _scorediff_svg(s: RunSet, o: RenderOptions) -> str:
    from tokviz.views import score_comparison as scorediff

    return scorediff.chart(s)


def _scorediff_png(s: RunSet, o: RenderOptions) -> bytes:
    from tokviz.ground.errors import redact
    from tokviz.views import chart

    return chart.svg_to_png(redact(_scorediff_svg(s, o), shapes=False), o.dpi)


def _json(record: Record, o: RenderOptions) -> str:
    return record.to_json()


Renderer = Callable[..., str]
# kind → format → renderer of text; "svg"/"png" without an entry are drawn by Graphviz from "dot".
RENDERERS: dict[RunKind, dict[str, Renderer]] = {
    RunKind.PREDICT: {"json": _json, "dot": _predict_dot, "txt": _predict_txt, "html": _predict_html},
    RunKind.TREE: {"json": _json, "dot": _tree_dot, "txt": _tree_txt, "html": _tree_html},
    # a scored text has the shape of a generated run (each position: the actual token, its
    # alternatives, and its rank), so it is drawn by the same views
    RunKind.SCORE: {"json": _json, "dot": _predict_dot, "txt": _predict_txt, "html": _predict_html},
    RunKind.SAMPLES: {"json": _json, "dot": _samples_dot, "txt": _samples_txt, "html": _samples_html},
    RunKind.COMPARISON: {"json": _comparison_json, "txt": _comparison_txt, "svg": _comparison_svg},
    RunKind.SCORE_COMPARISON: {"json": _scorediff_json, "txt": _scorediff_txt, "html": _scorediff_html, "svg": _scorediff_svg},
}
# kind → format → renderer of bytes that are not drawn from DOT (images made another way)
BINARY: dict[RunKind, dict[str, Callable[..., bytes]]] = {
    RunKind.COMPARISON: {"png": lambda s, o: _comparison_png(s, o)},
    RunKind.SCORE_COMPARISON: {"png": lambda s, o: _scorediff_png(s, o)},
}


def render(record: Record, fmt: str, options: RenderOptions = RenderOptions()) -> bytes:
    """The bytes of `record` in format `fmt` (checked against what its kind can be drawn as)."""
    formats.check(fmt, record.kind.value)
    own = RENDERERS[record.kind]
    if fmt in own:
        return own[fmt](record, options).encode("utf-8")
    binary = BINARY.get(record.kind, {})
    if fmt in binary:
        return binary[fmt](record, options)
    from tokviz.ground.errors import redact
    from tokviz.views import graph

    return graph.render(redact(own["dot"](record, options), shapes=False), fmt, options.dpi)


def _optional_svg(run: Run, o: RenderOptions) -> bytes | None:
    """The graph for a page: embedded when Graphviz is there, left out (not fatal) when not."""
    from tokviz.ground.errors import RenderError

    try:
        return render(run, "svg", o)
    except RenderError:
        return None
