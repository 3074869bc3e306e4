"""Record → file bytes, through the registry in `tokviz.views.formats`.

One function serves every command's `-o` and `render -o`, which is what makes `render run.json
-o x.svg` give exactly the bytes `predict` wrote for the same run and options. Each kind of record
has one renderer per format it supports; Graphviz images all come from the kind's DOT source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokviz.measures.reshape import Setting
from tokviz.run import Run, RunKind, RunSet
from tokviz.views import DEFAULT_WRAP, formats

Renderer = Callable[..., str]

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


def _chart_set(module: str) -> tuple[dict[str, Renderer], dict[str, Callable[..., bytes]]]:
    """The renderers of a set of runs drawn as a table and a chart by `views/<module>.py` (its
    `to_json`, `table`, `chart` and, if it has one, `page`): text formats, then the PNG of the chart."""
    import importlib

    def view() -> Any:
        return importlib.import_module(f"tokviz.views.{module}")

    def txt(s: RunSet, o: RenderOptions) -> str:
        from tokviz.views import table

        return table.plain_text(view().table(s), width=120)

    def png(s: RunSet, o: RenderOptions) -> bytes:
        from tokviz.ground.errors import redact
        from tokviz.views import chart

        return chart.svg_to_png(redact(view().chart(s), shapes=False), o.dpi)

    text: dict[str, Renderer] = {"json": lambda s, o: view().to_json(s), "txt": txt, "svg": lambda s, o: view().chart(s)}
    if module in ("score_comparison", "choices"):
        text["html"] = lambda s, o: view().page(s)
    return text, {"png": png}


def _json(record: Record, o: RenderOptions) -> str:
    return record.to_json()


# kind → format → renderer of text; "svg"/"png" without an entry are drawn by Graphviz from "dot".
_COMPARISON, _COMPARISON_PNG = _chart_set("comparison")
_SCORE_COMPARISON, _SCORE_COMPARISON_PNG = _chart_set("score_comparison")
_CHOICES, _CHOICES_PNG = _chart_set("choices")
RENDERERS: dict[RunKind, dict[str, Renderer]] = {
    RunKind.PREDICT: {"json": _json, "dot": _predict_dot, "txt": _predict_txt, "html": _predict_html},
    RunKind.TREE: {"json": _json, "dot": _tree_dot, "txt": _tree_txt, "html": _tree_html},
    # a scored text has the shape of a generated run (each position: the actual token, its
    # alternatives, and its rank), so it is drawn by the same views
    RunKind.SCORE: {"json": _json, "dot": _predict_dot, "txt": _predict_txt, "html": _predict_html},
    RunKind.SAMPLES: {"json": _json, "dot": _samples_dot, "txt": _samples_txt, "html": _samples_html},
    RunKind.COMPARISON: _COMPARISON,
    RunKind.SCORE_COMPARISON: _SCORE_COMPARISON,
    RunKind.CHOICES: _CHOICES,
}
# kind → format → renderer of bytes that are not drawn from DOT (images made another way)
BINARY: dict[RunKind, dict[str, Callable[..., bytes]]] = {
    RunKind.COMPARISON: _COMPARISON_PNG,
    RunKind.SCORE_COMPARISON: _SCORE_COMPARISON_PNG,
    RunKind.CHOICES: _CHOICES_PNG,
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
