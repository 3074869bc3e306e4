"""The one tree algorithm, over the small `TreeCursor` protocol that a provider implements, and the
cursors it and the explorer open."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from tokviz.ground.errors import ProviderError, UsageError
from tokviz.pipeline.plans import Plan, as_plan, open_provider
from tokviz.providers import registry
from tokviz.providers.base import (
    Capability,
    ExploreCursor,
    Explorer,
    Progress,
    Provider,
    Request,
    Stopped,
    TreeCursor,
    TreeGrower,
    TreeSpec,
)
from tokviz.run import Run, RunKind, Token, TreeInfo, TreeNode, greedy_path


def check_tree(spec: TreeSpec) -> None:
    if not 1 <= spec.depth <= 12:
        raise UsageError(f"--depth must be between 1 and 12, got {spec.depth}")
    if not 1 <= spec.branch <= 20:
        raise UsageError(f"--branch must be between 1 and 20, got {spec.branch}")
    if not 0.0 <= spec.min_prob < 1.0:
        raise UsageError(f"--min-prob must be in [0, 1), got {spec.min_prob}")
    if not 1 <= spec.max_nodes <= 100_000:
        raise UsageError(f"--max-nodes must be between 1 and 100000, got {spec.max_nodes}")
    if not 0 <= spec.complete <= 1000:
        raise UsageError(f"--complete must be between 0 and 1000, got {spec.complete}")


def open_cursor(p: Plan, spec: TreeSpec, *, forced: tuple[Token, ...] = (), progress: Progress | None = None) -> tuple[Provider, TreeCursor]:
    """The provider and its cursor after the prompt and `forced`, for the tree; a provider that
    cannot continue a forced prefix is refused in one line."""
    what = "continue from a forced prefix, so it cannot grow a tree"
    registry.check_can(p.spec, Capability.TREE, what)
    opened = open_provider(p, progress)
    return opened, registry.require(opened, TreeGrower, what).tree_cursor(p.request, spec, forced)


def open_explorer(p: Plan, k: int, depth: int, *, progress: Progress | None = None) -> tuple[Provider, ExploreCursor]:
    """The provider and a cursor that can jump to any path and generate from it (`tokviz explore`)."""
    what = "continue from any path, so it cannot explore"
    registry.check_can(p.spec, Capability.EXPLORE, what)
    opened = open_provider(p, progress)
    return opened, registry.require(opened, Explorer, what).explore_cursor(p.request, k, depth)


def tree(p: Plan | Request, spec: TreeSpec, *, forced: tuple[Token, ...] = (), progress: Progress | None = None,
         on_node: Callable[[int], None] | None = None) -> Run:
    """Grow a tree of alternatives from the prompt (see `tokviz tree`).

    Depth first, most likely child first, so `max_nodes` cuts the least likely branches and a
    local model's KV cache only ever extends or cuts back the current path: every evaluated token
    is a new node. Ctrl-C (or SIGTERM) raises `Stopped` with the tree as far as it grew.
    """
    import time

    check_tree(spec)
    p = as_plan(p)
    t0 = time.perf_counter()
    opened, cursor = open_cursor(p, spec, forced=forced, progress=progress)
    nodes: list[TreeNode] = []
    cut: str | None = None
    offered = 0  # children the provider returned at all, before --min-prob
    likeliest: Token | None = None  # the prompt's likeliest next token, to name when --min-prob leaves none

    def expand(parent: int, depth: int, cum: float) -> None:
        nonlocal cut, offered, likeliest
        kids = cursor.children(spec.branch)
        offered += len(kids)
        if parent == -1 and kids:
            likeliest = max(kids, key=lambda t: t.logprob)
        for token in kids:
            if token.prob < spec.min_prob:
                continue
            if len(nodes) >= spec.max_nodes:
                cut = "max-nodes"
                return
            nodes.append(TreeNode(parent=parent, token=token, depth=depth, cum_logprob=cum + token.logprob))
            index = len(nodes) - 1
            if on_node is not None:
                on_node(len(nodes))
            if depth < spec.depth:
                cursor.enter(token)
                expand(index, depth + 1, cum + token.logprob)
                cursor.leave()
                if cut:
                    return
            elif spec.complete:
                cursor.enter(token)
                nodes[index] = replace(nodes[index], completion=cursor.complete(spec.complete))
                cursor.leave()

    stopped: BaseException | None = None
    try:
        expand(-1, 1, 0.0)
    except KeyboardInterrupt as cause:  # Ctrl-C or SIGTERM: the tree as far as it grew (Stopped, below)
        cut, stopped = "interrupted", cause
    finally:
        cursor.close()
    if stopped is not None and not nodes:
        raise stopped
    if not offered and cut != "interrupted":
        raise ProviderError(f"the {p.provider} provider returned no alternatives to grow a tree from",
                            hint="the server may not return log-probabilities on its completions endpoint")
    if not nodes and cut != "interrupted" and likeliest is not None:  # an empty tree is no answer
        raise UsageError(f"no next token is as likely as --min-prob {spec.min_prob:g}: the likeliest, "
                         f"{likeliest.text!r}, has {likeliest.prob:.1%}", hint="lower --min-prob")
    report = cursor.report()
    info = TreeInfo(depth=spec.depth, branch=spec.branch, min_prob=spec.min_prob, max_nodes=spec.max_nodes,
                    complete=spec.complete, cut=cut, forced_tokens=len(forced),
                    evaluated_tokens=report.get("evaluated_tokens"), requests=report.get("requests"),
                    approximation=report.get("approximation"))
    prompt = p.request.prompt + "".join(t.text for t in forced)
    usage = {"prompt_tokens": report["prompt_tokens"]} if report.get("prompt_tokens") is not None else {}
    run = Run(provider=opened.name, model=report.get("model", p.request.model), prompt=prompt,
              params=replace(p.request.params, top_k=spec.branch), steps=greedy_path(nodes),
              messages=report.get("messages", ()), finish_reason=None, kind=RunKind.TREE, usage=usage,
              timings={"total_s": time.perf_counter() - t0}, nodes=tuple(nodes), tree=info,
              source={"figures": str(report.get("figures") or p.spec.figures),
                      **{key: str(report[key]) for key in ("engine", "precision") if report.get(key)}})
    if stopped is not None:
        raise Stopped(run, stopped)
    return run
