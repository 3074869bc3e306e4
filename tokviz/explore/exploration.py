"""An exploration (`tokviz explore`): every branch the user opened, kept as one growing tree.

At every position a branch generated, its top-k alternatives become nodes too (children of the
token before them), so the alternatives a page shows for a token are its siblings, a click on one
is a click on a node, and the saved record is an ordinary tree run that `render` draws and
`explore --from` reopens. `TreeInfo.branches` says where each branch forked and how the model went
on. Pure data: the model is driven by `tokviz.explore.session`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from tokviz.ground.errors import UsageError
from tokviz.run import Branch, Message, Params, Run, RunKind, Step, Token, TreeInfo, TreeNode, greedy_path, redaction
from tokviz.run import tokens as tok

MAX_NODES = 100_000  # far more than a page can show; a bound so a runaway session cannot fill memory


def _key(token: Token) -> tuple[Any, ...]:
    return (token.id, token.raw, token.text)


class Exploration:
    """The growing tree: append-only nodes (a parent always before its children), and branches."""

    def __init__(self, prompt: str, top_k: int) -> None:
        self.prompt = prompt
        self.top_k = top_k
        self.nodes: list[TreeNode] = []
        self.branches: list[Branch] = []
        self._kids: dict[int, dict[tuple[Any, ...], int]] = {}

    # --- growing -------------------------------------------------------------------------------

    def child(self, parent: int, token: Token) -> int:
        """The node of `token` under `parent`, made if new."""
        kids = self._kids.setdefault(parent, {})
        found = kids.get(_key(token))
        if found is not None:
            return found
        if len(self.nodes) >= MAX_NODES:
            raise UsageError(f"the exploration holds {MAX_NODES} nodes, the most it keeps",
                             hint="prune some branches, or save it and start another")
        cum = (self.nodes[parent].cum_logprob if parent >= 0 else 0.0) + token.logprob
        depth = self.nodes[parent].depth + 1 if parent >= 0 else 1
        self.nodes.append(TreeNode(parent=parent, token=token, depth=depth, cum_logprob=cum))
        kids[_key(token)] = len(self.nodes) - 1
        return len(self.nodes) - 1

    def add_step(self, parent: int, step: Step) -> int:
        """One generated position under `parent`: its alternatives (best first) and the chosen
        token, which may lie outside them when sampled; returns the chosen token's node."""
        for alt in step.alternatives:
            self.child(parent, alt)
        return self.child(parent, step.chosen)

    def open_branch(self, fork: int, how: Branch) -> int:
        self.branches.append(replace(how, tip=fork, fork=fork))
        return len(self.branches) - 1

    def grow(self, branch: int, step: Step) -> int:
        tip = self.add_step(self.branches[branch].tip, step)
        self.branches[branch] = replace(self.branches[branch], tip=tip)
        return tip

    def close_branch(self, branch: int, finish: str) -> None:
        self.branches[branch] = replace(self.branches[branch], finish=finish)

    def drop_branch(self, branch: int) -> None:
        """Forget a branch that generated nothing (its nodes, if any, stay as alternatives)."""
        del self.branches[branch]

    # --- reading -------------------------------------------------------------------------------

    def path(self, node: int) -> list[int]:
        out = []
        while node >= 0:
            out.append(node)
            node = self.nodes[node].parent
        return out[::-1]

    def greedy_branch_through(self, node: int) -> int | None:
        """A greedy branch that forked at `node` or generated past it: continuing greedily from
        `node` would remake that branch's tokens (the model is deterministic at temperature 0)."""
        for n, b in enumerate(self.branches):
            if b.temperature != 0 or b.tip < 0 or b.tip == node:
                continue
            path = self.path(b.tip)
            start = path.index(b.fork) if b.fork >= 0 else -1  # the nodes it generated come after its fork
            if node == b.fork or (node in path and path.index(node) > start):
                return n
        return None

    def depth(self, node: int) -> int:
        return self.nodes[node].depth if node >= 0 else 0

    def tokens(self, node: int) -> list[Token]:
        return [self.nodes[i].token for i in self.path(node)]

    def check_node(self, node: int) -> None:
        if not -1 <= node < len(self.nodes):
            raise UsageError(f"there is no node {node} in this exploration")

    def check_branch(self, branch: int) -> None:
        if not 0 <= branch < len(self.branches):
            raise UsageError(f"there is no branch {branch} in this exploration")

    # --- pruning -------------------------------------------------------------------------------

    def prune(self, branch: int) -> None:
        """Remove a branch and every node only it needed: the tokens past where it left the other
        branches, and the alternatives at positions no other branch reached."""
        self.check_branch(branch)
        if len(self.branches) == 1:
            raise UsageError("the last branch cannot be pruned", hint="edit the prompt to start again")
        rest = [b for i, b in enumerate(self.branches) if i != branch]
        on_path: set[int] = set()
        for b in rest:
            on_path.update(self.path(b.tip))
        reached = {self.nodes[i].parent for i in on_path}  # positions some kept branch generated at
        keep = [i for i, n in enumerate(self.nodes) if i in on_path or n.parent in reached]
        index = {old: new for new, old in enumerate(keep)}
        index[-1] = -1
        self._set_nodes([replace(self.nodes[i], parent=index[self.nodes[i].parent]) for i in keep])
        self.branches = [replace(b, tip=index[b.tip], fork=index[b.fork]) for b in rest]

    def _set_nodes(self, nodes: list[TreeNode]) -> None:
        """Replace every node, and the index of each node's children that `child` looks up."""
        self.nodes = nodes
        self._kids = {}
        for i, n in enumerate(nodes):
            self._kids.setdefault(n.parent, {})[_key(n.token)] = i

    # --- records -------------------------------------------------------------------------------

    def to_run(self, *, provider: str, model: str, params: Params, messages: tuple[Message, ...] = (),
               report: dict[str, Any] | None = None) -> Run:
        """The exploration as a tree run: every node, the branches, and the greedy path as steps."""
        report = report or {}
        info = TreeInfo(depth=max((n.depth for n in self.nodes), default=0), branch=self.top_k, max_nodes=MAX_NODES,
                        evaluated_tokens=report.get("evaluated_tokens"), requests=report.get("requests"),
                        approximation=report.get("approximation"), branches=tuple(self.branches))
        usage = {"prompt_tokens": report["prompt_tokens"]} if report.get("prompt_tokens") is not None else {}
        return Run(provider=provider, model=model, prompt=self.prompt, params=replace(params, top_k=self.top_k),
                   steps=greedy_path(self.nodes), messages=messages, kind=RunKind.TREE, usage=usage,
                   nodes=tuple(self.nodes), tree=info)

    @classmethod
    def from_run(cls, run: Run) -> Exploration:
        """Reopen a saved exploration, a tree (each leaf a branch) or a predict run (one branch),
        with any secret in force now removed (a file saved before redaction reached the explorer)."""
        run = redaction.redact(run)
        if run.kind is RunKind.TREE:
            out = cls(run.prompt, run.params.top_k)
            out._set_nodes([replace(node, completion=()) for node in run.nodes])
            if run.tree is not None and run.tree.branches:
                out.branches = list(run.tree.branches)
            else:
                parents = {n.parent for n in run.nodes}
                out.branches = [Branch(tip=i, fork=i) for i in range(len(run.nodes)) if i not in parents]
            if not out.branches:
                raise UsageError("the tree has no nodes to explore from")
            return out
        if run.kind is not RunKind.PREDICT:
            raise UsageError(f"a {run.kind.value} run cannot be explored", hint="give a predict, tree or explore run")
        if not run.steps:
            raise UsageError("the run generated no tokens to explore from")
        out = cls(run.prompt, run.params.top_k)
        p = run.params
        branch = out.open_branch(-1, Branch(tip=-1, temperature=p.temperature, top_p=p.top_p, seed=p.seed))
        for step in run.steps:
            out.grow(branch, step)
        out.close_branch(branch, "stop" if run.finish_reason == "stop" else "length")
        return out

    def state(self) -> dict[str, Any]:
        """What the page draws: every node and every branch's path with its display pieces."""
        return {"prompt": self.prompt, "k": self.top_k, "nodes": [_node(n) for n in self.nodes],
                "branches": [self._branch(b) for b in self.branches]}

    def state_from(self, first: int, branch: int) -> dict[str, Any]:
        """What changed while `branch` grew: the nodes from `first` on, and the branch itself."""
        return {"nodes_from": first, "nodes": [_node(n) for n in self.nodes[first:]], "index": branch,
                "branch": self._branch(self.branches[branch])}

    def _branch(self, b: Branch) -> dict[str, Any]:
        path = self.path(b.tip)
        return {**b.to_dict(), "path": path, "pieces": pieces(self.nodes[i].token for i in path)}


def _node(n: TreeNode) -> dict[str, Any]:
    return {"p": n.parent, "label": n.token.label, "lp": n.token.logprob, "d": n.depth, "lossy": n.token.lossy}


def pieces(tokens: Iterable[Token]) -> list[str]:
    """What each token shows in the text: a character split over tokens is shown whole on its
    last token ("" before it); a token without bytes shows its text."""
    tokens = list(tokens)
    out = tok.pieces([t.raw for t in tokens])
    return [t.text if (not t.raw and t.text) else piece for t, piece in zip(tokens, out)]
