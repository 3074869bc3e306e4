"""Views of a tree run: a rich tree, a ranked list of completions, and the Graphviz graph."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from tokviz.run import Run, Step, TreeNode, greedy_indices
from tokviz.run import tokens as tok
from tokviz.views.colors import percent, prob_hex, prob_style, tint_hex
from tokviz.views.dot import Digraph, Label
from tokviz.views.graph import prompt_label


def children(run: Run) -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for i, n in enumerate(run.nodes):
        kids.setdefault(n.parent, []).append(i)
    return kids


def path(run: Run, index: int) -> list[TreeNode]:
    return [run.nodes[i] for i in path_indices(run, index)]


def path_text(run: Run, index: int, *, with_completion: bool = True) -> str:
    nodes = path(run, index)
    raws = [n.token.raw for n in nodes]
    if with_completion and nodes:
        raws += [t.raw for t in nodes[-1].completion]
    return tok.join(raws)


def _continuation(run: Run, index: int) -> str:
    """A path's text for the ranking: a token the server sent without its bytes (a piece of a
    split character) is shown as ≈, never as nothing (a path of such tokens read as blank)."""
    nodes = path(run, index)
    tokens = [n.token for n in nodes] + (list(nodes[-1].completion) if nodes else [])
    out, raws = [], []
    for t in tokens:
        if t.lossy and not t.raw:
            out.append(tok.visible(tok.join(raws), visible_spaces=False) + "≈")
            raws = []
        else:
            raws.append(t.raw)
    return "".join(out) + tok.visible(tok.join(raws), visible_spaces=False)


def path_steps(run: Run, index: int) -> tuple[Step, ...]:
    """The path to node `index` as steps (each node with its siblings as the alternatives, best
    first), then the leaf's greedy completion, so a path reads and draws as a generated run."""
    kids = children(run)
    steps = []
    for node_index in path_indices(run, index):
        node = run.nodes[node_index]
        siblings = sorted((run.nodes[i].token for i in kids.get(node.parent, [])), key=lambda t: -t.logprob)
        steps.append(Step(chosen=node.token, alternatives=tuple(siblings)))
    steps += [Step(chosen=t, alternatives=()) for t in run.nodes[index].completion]
    return tuple(steps)


def path_indices(run: Run, index: int) -> list[int]:
    out = []
    while index >= 0:
        out.append(index)
        index = run.nodes[index].parent
    return out[::-1]


def leaves(run: Run) -> list[int]:
    """Leaf indices, most likely path first."""
    kids = children(run)
    found = [i for i in range(len(run.nodes)) if i not in kids]
    return sorted(found, key=lambda i: (-run.nodes[i].cum_logprob, i))


def cut_note(run: Run) -> str | None:
    cut = run.tree.cut if run.tree else None
    if cut == "max-nodes":
        return f"cut at --max-nodes {run.tree.max_nodes if run.tree else '?'}: the least likely branches were not expanded"
    if cut == "interrupted":
        return "stopped (Ctrl-C or SIGTERM): the tree holds what was expanded before"
    return None


def rich_tree(run: Run) -> Tree:
    kids = children(run)
    greedy = set(greedy_indices(run.nodes))
    root = Tree(Text(prompt_label(run.prompt, 60), style="bold"))

    def add(branch: Tree, parent: int) -> None:
        for i in kids.get(parent, []):
            n = run.nodes[i]
            label = Text()
            label.append(n.token.label, style=prob_style(n.token.prob, bold=i in greedy) + (Style(underline=True) if i in greedy else Style()))
            label.append(f"  {percent(n.token.prob)}", style="dim")
            label.append(f"  path {percent(n.cum_prob)}", style="dim")
            if n.completion:
                label.append("  …" + tok.visible(tok.join(t.raw for t in n.completion), visible_spaces=False), style="italic")
            add(branch.add(label), i)

    add(root, -1)
    return root


def ranking(run: Run, limit: int = 10) -> Table:
    t = Table(title="most likely continuations", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    t.add_column("#", justify="right", style="dim")
    t.add_column("path prob", justify="right")
    t.add_column("continuation", overflow="fold")
    for n, i in enumerate(leaves(run)[:limit], start=1):
        p = run.nodes[i].cum_prob
        t.add_row(str(n), Text(percent(p), style=prob_style(p)), Text(_continuation(run, i)))
    return t


def view(run: Run) -> RenderableType:
    parts: list[RenderableType] = [rich_tree(run), Text(""), ranking(run)]
    info = run.tree
    work = (f"{tok.count(info.evaluated_tokens, 'token')} evaluated" if info and info.evaluated_tokens is not None
            else f"{info.requests} requests" if info and info.requests is not None else None)
    figures = [f"{len(run.nodes)} nodes", f"depth {info.depth if info else '?'}", f"branch {info.branch if info else '?'}",
               *([work] if work else []), f"{run.provider}:{run.model}"]
    summary = tok.safe(" · ".join(figures))
    parts.append(Text(summary, style="dim"))
    note = cut_note(run)
    if note:
        parts.append(Text(note, style="yellow"))
    return Group(*parts)


def to_dot(run: Run) -> str:
    """Deterministic DOT: the prompt on the left, leaves ordered by path probability, the greedy
    path drawn bold, each leaf's greedy completion in its label."""
    kids = children(run)
    greedy = set(greedy_indices(run.nodes))
    rank = {i: n for n, i in enumerate(leaves(run))}
    d = Digraph("tokviz_tree", graph={"rankdir": "LR", "nodesep": 0.08, "ranksep": 0.35, "ordering": "out"},
                node={"margin": "0.06,0.03", "height": 0.3})
    note = cut_note(run)
    if note:
        d.add_graph_attrs(label=note, labelloc="b", labeljust="l", fontsize=10, fontcolor="#aa6600")
    d.add_node("start", label=prompt_label(run.prompt), fillcolor="#eeeeee", color="#888888", style="rounded,filled,bold")

    def best_leaf(i: int) -> int:
        return min((rank[j] for j in _descendant_leaves(kids, i)), default=len(rank))

    def emit(parent: int, src: str) -> None:
        for i in sorted(kids.get(parent, []), key=lambda j: (-run.nodes[j].token.logprob, j)):  # likeliest first
            n = run.nodes[i]
            p = n.token.prob
            extra = [f"{percent(p)} · path {percent(n.cum_prob)}"]
            if n.completion:
                extra.append("…" + tok.visible(tok.join(t.raw for t in n.completion), visible_spaces=False))
            bold = i in greedy
            d.add_node(f"t{i}", label=Label((n.token.label, *extra)), fillcolor=tint_hex(p, 0.55), color=prob_hex(p),
                       penwidth=2.5 if bold else None)
            d.add_edge(src, f"t{i}", penwidth=0.6 + 4 * p, color=prob_hex(p), style=None if bold else "dashed")
            emit(i, f"t{i}")

    emit(-1, "start")
    return d.source()


def _descendant_leaves(kids: dict[int, list[int]], i: int) -> list[int]:
    if i not in kids:
        return [i]
    return [leaf for k in kids[i] for leaf in _descendant_leaves(kids, k)]
