"""The one DOT writer: every graph tokviz draws (token graph, tree, samples) is written here.

Hand-written rather than through graphviz.Digraph, so the output is byte-stable (golden files)
and quoted one way we control. As xflr6/graphviz's `quoting.py` shows, the safe rule is to quote
every attribute value, not only the ones that look dangerous: then no value, whatever a token
holds, can end an attribute list or start a new statement.

Inside a double-quoted string Graphviz still reads backslash escapes (``\\n``, ``\\N``, ``\\l``…)
and decodes HTML entities (``&amp;``), so ``\\`` becomes ``\\\\``, ``"`` becomes ``\\"`` and ``&``
becomes ``&amp;`` (measured on 15 hostile strings through the real `dot`, see docs/design.md).
Node ids are synthetic (``s3``, ``t12``): token text never reaches an id.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FONT = "sans-serif"


def escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("&", "&amp;")


def quote(*lines: str) -> str:
    """A DOT double-quoted string that Graphviz renders as exactly `lines`, one per label line."""
    return '"' + "\\n".join(escape(line) for line in lines) + '"'


class Label(tuple[str, ...]):
    """A multi-line label: its lines are joined by DOT's line break, each escaped on its own."""

    __slots__ = ()


class LeftLabel(Label):
    """A multi-line label whose lines are left-aligned (DOT's \\l line ends)."""

    __slots__ = ()


def value(v: object) -> str:
    if isinstance(v, LeftLabel):
        return '"' + "".join(escape(line) + "\\l" for line in v) + '"'
    if isinstance(v, Label):
        return quote(*v)
    if isinstance(v, float):
        return quote(f"{v:.2f}")
    return quote(str(v))


def attrs(**kw: object) -> str:
    """An attribute list with every value quoted; ``None`` values are left out."""
    return "[" + ", ".join(f"{k}={value(v)}" for k, v in kw.items() if v is not None) + "]"


@dataclass
class Digraph:
    """A DOT digraph built statement by statement, in the order given (so the bytes are stable)."""

    name: str
    graph: dict[str, object] = field(default_factory=dict)
    node: dict[str, object] = field(default_factory=dict)
    edge: dict[str, object] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def add_node(self, node_id: str, **kw: object) -> None:
        self.lines.append(f"  {node_id} {attrs(**kw)};")

    def add_edge(self, a: str, b: str, **kw: object) -> None:
        self.lines.append(f"  {a} -> {b} {attrs(**kw)};")

    def add_graph_attrs(self, **kw: object) -> None:
        self.lines.append(f"  graph {attrs(**kw)};")

    def same_rank(self, nodes: list[str]) -> None:
        self.lines.append("  { rank=same; " + "; ".join(nodes) + "; }")

    def source(self) -> str:
        head = [f"digraph {self.name} {{",
                f"  graph {attrs(fontname=FONT, bgcolor='white', charset='UTF-8', **self.graph)};",
                f"  node {attrs(shape='box', style='rounded,filled', fontname=FONT, fontsize=11, **self.node)};",
                f"  edge {attrs(arrowsize=0.5, fontname=FONT, **self.edge)};"]
        return "\n".join([*head, *self.lines, "}"]) + "\n"
