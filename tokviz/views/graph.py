"""The branching token graph: the chosen path, and the alternatives competing at each step.

The graph is built once as a networkx DiGraph (the same object the notebook API hands out), and
the DOT text is generated from it by hand rather than through graphviz.Digraph, for two reasons:
the output must be byte-stable (golden files), and every label must be quoted one way we control.

Every DOT statement goes through `tokviz.views.dot`, which quotes every value one way.

Layout: rankdir=LR with the chain on one ``group`` so it stays a straight line, wrapped every
``wrap`` steps into a new row, because Cairo caps a PNG at 32767 px and a long single row becomes
unreadable. A row starts at a small continuation node standing for the previous token, so the
first step of a row keeps its alternatives beside it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tokviz.measures.metrics import NEAR_TIE_NOTE, TIE, near_tie
from tokviz.measures.reshape import NOTE, Setting, reshape
from tokviz.run import Run
from tokviz.run import tokens as tok
from tokviz.views import DEFAULT_WRAP
from tokviz.views.colors import percent, prob_hex, tint_hex
from tokviz.views.dot import Digraph, Label, LeftLabel

if TYPE_CHECKING:
    import networkx as nx

PROMPT_LABEL_CHARS = 40


@dataclass(frozen=True)
class GraphOptions:
    wrap: int = DEFAULT_WRAP  # chosen tokens per row; 0 means never wrap
    cut_by: Setting | None = None  # grey out the tokens this top-k / top-p setting would cut


def chosen_id(i: int) -> str:
    return f"s{i}"


def alt_id(i: int, j: int) -> str:
    return f"s{i}a{j}"


def prompt_label(prompt: str, limit: int = PROMPT_LABEL_CHARS) -> str:
    """The start node's label: the end of the prompt, which is what the first token continues."""
    text = tok.visible(prompt, visible_spaces=False)
    if len(text) <= limit:
        return text
    tail = text[-(limit - 1) :]
    cut = tail.find(" ")  # start at a word, not in the middle of one
    return "…" + (tail[cut + 1 :] if 0 <= cut < limit // 2 else tail)


CAPTION_CHARS = 160


def caption(prompt: str, text: str) -> str:
    """The prompt and what was generated, on one line; when long, its end, from a word's start."""
    line = " ".join(tok.visible(prompt + text, visible_spaces=False).split())
    if len(line) <= CAPTION_CHARS:
        return line
    tail = line[-(CAPTION_CHARS - 1):]
    cut = tail.find(" ")
    return "…" + (tail[cut + 1:] if 0 <= cut < 30 else tail)


def build(run: Run) -> nx.DiGraph:
    """The run as a DiGraph: ``start`` → chosen chain, each step's other alternatives hanging off
    the node they compete after. Nodes carry ``kind``, ``step``, ``label``, ``text``, ``bytes``,
    ``prob``; edges carry ``prob`` and ``logprob``."""
    import networkx as nx

    g = nx.DiGraph(prompt=run.prompt, model=run.model, provider=run.provider, text=run.text, figures=run.figures_note)
    g.add_node("start", kind="start", step=-1, label=prompt_label(run.prompt), text=run.prompt,
               bytes=run.prompt.encode("utf-8"), prob=1.0)
    fields, forced_steps = _fields(run)
    prev = "start"
    for i, step in enumerate(run.steps):
        c = step.chosen
        node = chosen_id(i)
        g.add_node(node, kind="chosen", step=i, label=c.label, text=c.text, bytes=c.raw, prob=c.prob,
                   tie=near_tie(step), field=fields.get(i, ""), forced=i in forced_steps)
        g.add_edge(prev, node, prob=c.prob, logprob=c.logprob, chosen=True)
        for j, alt in enumerate(step.others()):
            a = alt_id(i, j)
            g.add_node(a, kind="alternative", step=i, label=alt.label, text=alt.text, bytes=alt.raw,
                       prob=alt.prob, forbidden=alt.forbidden)
            g.add_edge(prev, a, prob=alt.prob, logprob=alt.logprob, chosen=False)
        prev = node
    return g


def _fields(run: Run) -> tuple[dict[int, str], set[int]]:
    """An answer held to a JSON schema: the line naming each value's field, on its first token
    ("sentiment 83%"), and the steps the grammar forced."""
    if run.params.json_schema is None:
        return {}, set()
    from tokviz.measures.fields import fields_of, forced

    labels = {f.steps[0]: f"{tok.visible(f.path, visible_spaces=False)} {percent(f.prob)}"
              for f in fields_of(run).fields if f.kind == "value"}
    return labels, {n for n, step in enumerate(run.steps) if forced(step)}


def _node(d: Digraph, node: str, data: dict, *, cut: bool = False) -> None:
    figure = percent(data["prob"]) + (f" {TIE}" if data.get("tie") else "") + (" forced" if data.get("forced") else "")
    lines = (("⊘ " if data.get("forbidden") else "") + data["label"], figure, *([f"◆ {data['field']}"] if data.get("field") else []))
    label = Label(lines)
    p = data["prob"]
    if cut:
        d.add_node(node, label=label, fillcolor="#f4f4f4", color="#c8c8c8", fontcolor="#a0a0a0", style="rounded,filled,dotted")
    elif data["kind"] == "chosen":
        d.add_node(node, label=label, fillcolor=tint_hex(p, 0.55), color=prob_hex(p), penwidth=2, group="chain")
    else:
        d.add_node(node, label=label, fillcolor="white", color=prob_hex(p), fontcolor="#444444", style="rounded,filled,dashed")


def _edge(d: Digraph, a: str, b: str, data: dict, *, weight: int | None = None, cut: bool = False) -> None:
    if cut:
        d.add_edge(a, b, penwidth=0.5, color="#d0d0d0", style="dotted", weight=weight)
        return
    p = data["prob"]
    d.add_edge(a, b, penwidth=0.5 + 4.0 * p, color=prob_hex(p), style=None if data["chosen"] else "dashed", weight=weight)


def to_dot(g: nx.DiGraph, options: GraphOptions = GraphOptions()) -> str:
    """Deterministic DOT for a graph made by `build` (same graph and options, same bytes)."""
    steps = sorted({d["step"] for _, d in g.nodes(data=True) if d["kind"] == "chosen"})
    wrap = options.wrap if options.wrap > 0 else len(steps) + 1
    d = Digraph("tokviz", graph={"rankdir": "LR", "nodesep": 0.12, "ranksep": 0.3, "newrank": "true"},
                node={"margin": "0.08,0.04", "height": 0.3})
    sentence = caption(g.graph.get("prompt", ""), g.graph.get("text", ""))
    lines = [sentence] if sentence else []
    if any(d.get("tie") for _, d in g.nodes(data=True)):  # as the table and the HTML mark them
        lines.append(f"{TIE} near-tie: {NEAR_TIE_NOTE}")
    if g.graph.get("figures"):  # what the percentages are (before or after sampling), under every graph
        lines.append(tok.visible(str(g.graph["figures"]), visible_spaces=False))
    if any(d.get("field") or d.get("forbidden") for _, d in g.nodes(data=True)):  # --json-schema
        lines.append("◆ a field's value (on its first token) and its probability · ⊘ forbidden by the schema's grammar · "
                     "forced: taken though the model gave an alternative the grammar forbade more")
    if options.cut_by is not None:
        lines.append(f"greyed: tokens {options.cut_by.label} would cut, {NOTE}")
    if lines:  # the generated sentence under the graph (and what greyed tokens mean)
        d.add_graph_attrs(label=LeftLabel(lines), labelloc="b", labeljust="l", fontsize=10, fontcolor="#555555")
    d.add_node("start", label=g.nodes["start"]["label"], style="rounded,filled,bold", fillcolor="#eeeeee",
               color="#888888", group="chain")
    row_starts = ["start"]
    prev = "start"
    for i in steps:
        node = chosen_id(i)
        src = prev
        if i and i % wrap == 0:
            # A new row: a continuation node stands in for `prev` at the left edge.
            cont = f"r{i // wrap}"
            d.add_node(cont, label="↪", shape="plaintext", style="", group="chain")
            d.add_edge(prev, cont, style="dotted", color="#999999", constraint="false")
            row_starts.append(cont)
            src = cont
        alts = sorted((a for a in g.successors(prev) if g.nodes[a]["kind"] == "alternative"),
                      key=lambda a: (-g.nodes[a]["prob"], a))
        cut = _cut(g, [node, *alts], options.cut_by)
        _node(d, node, g.nodes[node], cut=node in cut)
        _edge(d, src, node, g.edges[prev, node], weight=8, cut=node in cut)
        for a in alts:
            _node(d, a, g.nodes[a], cut=a in cut)
            _edge(d, src, a, g.edges[prev, a], cut=a in cut)
        prev = node
    if len(row_starts) > 1:
        d.same_rank(row_starts)
        for a, b in itertools.pairwise(row_starts):
            d.add_edge(a, b, style="invis")
    return d.source()


def _cut(g: nx.DiGraph, nodes: list[str], setting: Setting | None) -> set[str]:
    """The nodes of one step (chosen first, then its competitors) that `setting` would cut."""
    if setting is None:
        return set()
    shaped = reshape([math.log(max(g.nodes[n]["prob"], 1e-300)) for n in nodes], setting)
    return {n for n, p in zip(nodes, shaped) if p <= 0.0}


def render(dot: str, fmt: str, dpi: int | None = None) -> bytes:
    """DOT text through the real Graphviz `dot` binary into `fmt` ("svg" or "png").

    `dot` runs in its own session: Ctrl-C in a terminal signals the whole foreground process
    group, and a renderer killed that way used to turn an answer that had already arrived into a
    "Graphviz failed" error. tokviz handles the interrupt itself; the renderer finishes its picture.
    """
    import shutil
    import subprocess

    from tokviz.ground.errors import RenderError

    exe = shutil.which("dot")
    if exe is None:
        raise RenderError(
            "Graphviz's `dot` program was not found on PATH, so SVG/PNG cannot be drawn",
            hint="install Graphviz: `sudo apt-get install graphviz` or `brew install graphviz`; "
            ".dot and .json outputs work without it",
        )
    try:
        scale = [f"-Gdpi={dpi}"] if dpi and fmt == "png" else []
        done = subprocess.run([exe, f"-T{fmt}", *scale], input=dot.encode("utf-8"), capture_output=True,
                              start_new_session=True, check=False)
    except OSError as err:
        raise RenderError(f"Graphviz's `dot` could not be started: {err.strerror or err}") from None
    if done.returncode != 0 or not done.stdout:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RenderError(f"Graphviz failed to draw the graph: {detail[-1] if detail else f'exit {done.returncode}'}")
    return done.stdout
