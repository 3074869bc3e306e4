"""Run → file bytes, with the format chosen by the output file's extension.

One function serves `predict -o` and `render -o`, which is what makes `render run.json -o x.svg`
give exactly the bytes `predict` wrote for the same run and options.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tokviz.errors import UsageError
from tokviz.run import Run
from tokviz.sampling import Setting
from tokviz.views import graph, table

# extension → format name; the format names are what `--format` lists accept too.
EXTENSIONS: dict[str, str] = {
    ".svg": "svg",
    ".png": "png",
    ".dot": "dot",
    ".gv": "dot",
    ".json": "json",
    ".txt": "txt",
    ".html": "html",
    ".htm": "html",
}
FORMATS = sorted(set(EXTENSIONS.values()))


@dataclass(frozen=True)
class RenderOptions:
    wrap: int = graph.DEFAULT_WRAP
    width: int = 100  # columns of the plain-text table
    sampling: tuple[Setting, ...] = ()  # --show-sampling: sub-rows in the table, cut tokens greyed in graphs
    stats: bool = False  # --stats: the run summary under the plain-text table

    @property
    def cut_by(self) -> Setting | None:
        """The graph can show one cut: the first top-k or top-p setting asked for."""
        return next((s for s in self.sampling if s.cuts), None)


def format_for(path: Path) -> str:
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(EXTENSIONS))
        raise UsageError(f"cannot tell what to write for {path.name!r}: unknown extension {path.suffix or '(none)'!r}",
                         hint=f"use one of {known}")
    return fmt


def render(run: Run, fmt: str, options: RenderOptions = RenderOptions()) -> bytes:
    """The bytes of `run` in format `fmt`."""
    if fmt == "json":
        return run.to_json().encode("utf-8")
    if fmt == "html":
        return _render_html(run, options)
    if run.kind == "tree" and fmt != "json":
        return _render_tree(run, fmt, options)
    if fmt == "txt":
        return table.render_text(run, width=options.width, sampling=options.sampling, stats=options.stats).encode("utf-8")
    dot = graph.to_dot(graph.build(run), graph.GraphOptions(wrap=options.wrap, cut_by=options.cut_by))
    if fmt == "dot":
        return dot.encode("utf-8")
    if fmt in ("svg", "png"):
        return graph.render(dot, fmt)
    raise UsageError(f"unknown output format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")


def _render_tree(run: Run, fmt: str, options: RenderOptions) -> bytes:
    from tokviz.views import tree

    if fmt == "txt":
        return table.plain_text(tree.view(run), width=options.width).encode("utf-8")
    dot = tree.to_dot(run)
    if fmt == "dot":
        return dot.encode("utf-8")
    if fmt in ("svg", "png"):
        return graph.render(dot, fmt)
    raise UsageError(f"unknown output format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")


def _render_html(run: Run, options: RenderOptions) -> bytes:
    """The self-contained page; the graph is embedded when Graphviz is there, left out (not fatal) when not."""
    from tokviz.errors import RenderError
    from tokviz.views import html

    try:
        svg = _render_tree(run, "svg", options) if run.kind == "tree" else render(run, "svg", options)
    except RenderError:
        svg = None
    page = html.tree_page(run, svg) if run.kind == "tree" else html.page(run, graph_svg=svg)
    return page.encode("utf-8")
