"""Several samples of one prompt: where they agree and where they part.

The samples are merged into a prefix tree: a node is one token after one exact prefix, so paths
shared by several samples are drawn once (thicker, with a count), and every fork is a point where
sampling went different ways.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

from rich import box
from rich.table import Table
from rich.text import Text

from tokviz.run import Run
from tokviz.run import tokens as tok
from tokviz.views.colors import percent, prob_hex, prob_style, tint_hex
from tokviz.views.dot import Digraph, Label
from tokviz.views.graph import prompt_label

if TYPE_CHECKING:
    import networkx as nx


def sequence_logprob(run: Run) -> float:
    return math.fsum(s.chosen.logprob for s in run.steps)


def common_prefix(a: Run, b: Run) -> int:
    n = 0
    for x, y in zip(a.steps, b.steps):
        if x.chosen.raw != y.chosen.raw or x.chosen.text != y.chosen.text:
            break
        n += 1
    return n


def branch_points(runs: list[Run]) -> list[tuple[int, int] | None]:
    """For each sample after the first: (earlier sample it shares most with, tokens shared)."""
    out: list[tuple[int, int] | None] = [None]
    for i in range(1, len(runs)):
        best = max(range(i), key=lambda j: (common_prefix(runs[i], runs[j]), -j))
        out.append((best + 1, common_prefix(runs[i], runs[best])))
    return out


def table(runs: list[Run]) -> Table:
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    t.add_column("#", justify="right", style="dim")
    t.add_column("sample", overflow="fold")
    t.add_column("seq. prob", justify="right", no_wrap=True)
    t.add_column("mean p", justify="right", no_wrap=True)
    t.add_column("seed", justify="right", style="dim", no_wrap=True)
    t.add_column("parts from", no_wrap=True)
    for n, (run, branch) in enumerate(zip(runs, branch_points(runs)), start=1):
        seq = math.exp(sequence_logprob(run))
        mean = math.fsum(s.chosen.prob for s in run.steps) / len(run.steps) if run.steps else 0.0
        where = "—" if branch is None else (f"#{branch[0]} at token {branch[1] + 1}" if branch[1] < len(run.steps) else f"same as #{branch[0]}")
        t.add_row(str(n), Text(tok.visible(run.text, visible_spaces=False)), Text(percent(seq) if seq >= 0.0005 else f"{seq:.1e}"),
                  Text(percent(mean), style=prob_style(mean)), str(run.params.seed), where)
    return t


def prefix_tree(runs: list[Run]) -> nx.DiGraph:
    """The samples merged into one tree (node ids in order of first appearance: deterministic)."""
    import networkx as nx

    g = nx.DiGraph(prompt=runs[0].prompt if runs else "")
    g.add_node("start", label=prompt_label(runs[0].prompt) if runs else "", count=len(runs), samples=[], prob=1.0)
    ids: dict[tuple[bytes | str, ...], str] = {(): "start"}
    for n, run in enumerate(runs, start=1):
        path: tuple[bytes | str, ...] = ()
        parent = "start"
        g.nodes["start"]["samples"].append(n)
        for step in run.steps:
            path = (*path, step.chosen.raw or step.chosen.text)
            node = ids.get(path)
            if node is None:
                node = ids[path] = f"n{len(ids)}"
                g.add_node(node, label=step.chosen.label, count=0, samples=[], prob=step.chosen.prob)
                g.add_edge(parent, node)
            g.nodes[node]["count"] += 1
            g.nodes[node]["samples"].append(n)
            parent = node
    return g


def tree_dot(g: nx.DiGraph, wrap: int = 0) -> str:
    """DOT for a prefix tree: width by how many samples took a path, colour by token probability.

    Long samples wrap as the token graph does: every `wrap` tokens each branch continues on a new
    row, from a continuation node at the left edge naming the samples it carries (rows stacked
    under the prompt), so a 40-token sample is not one 40-box-wide line (Cairo caps a PNG at
    32767 px)."""
    import networkx as nx

    total = max(g.nodes["start"]["count"], 1)
    depth = nx.shortest_path_length(g, "start")
    d = Digraph("tokviz_samples", graph={"rankdir": "LR", "nodesep": 0.1, "ranksep": 0.25, "newrank": "true"},
                node={"margin": "0.06,0.03", "height": 0.3})
    d.add_node("start", label=g.nodes["start"]["label"], fillcolor="#eeeeee", color="#888888", style="rounded,filled,bold")
    for node in g.nodes:
        if node == "start":
            continue
        data = g.nodes[node]
        p = data["prob"]
        count = data["count"]
        leaves = "" if any(True for _ in g.successors(node)) else " #" + ",".join(map(str, data["samples"]))
        shared = f" ×{count}" if count > 1 else ""  # how many samples took this token, when more than one
        d.add_node(node, label=Label((data["label"], f"{percent(p)}{shared}{leaves}")), fillcolor=tint_hex(p, 0.55),
                   color=prob_hex(p))
    rows: dict[int, list[str]] = {}
    for a, b in g.edges:
        share = g.nodes[b]["count"] / total
        if wrap > 0 and depth[b] > 1 and (depth[b] - 1) % wrap == 0:  # a new row starts at this token
            cont = f"c{b}"
            # which samples go on here, instead of a dotted line across the picture from the row's end
            who = "#" + ",".join(map(str, g.nodes[b]["samples"]))
            d.add_node(cont, label=f"↪ {who}", shape="plaintext", style="", fontcolor="#777777")
            d.add_edge(cont, b, penwidth=0.6 + 4 * share, color="#555555")
            rows.setdefault((depth[b] - 1) // wrap, []).append(cont)
        else:
            d.add_edge(a, b, penwidth=0.6 + 4 * share, color="#555555")
    if rows:
        starts = ["start", *(c for r in sorted(rows) for c in rows[r])]
        d.same_rank(starts)
        for a, b in itertools.pairwise(starts):
            d.add_edge(a, b, style="invis")
    return d.source()
