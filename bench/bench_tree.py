"""`tokviz tree` on the embedded model, depth 4 × branch 3: evaluated tokens per new node
(ideal: one; goal ≤ 1.2×), and wall time against re-evaluating every prefix from scratch.

The from-scratch baseline expands the same tree (same nodes, same order) but evaluates the prompt
and the whole path again for every node it expands, as a tree built on a plain "complete this
prefix" call would. Both run in this process on the same loaded model.
"""

from __future__ import annotations

import argparse
import time

from bench.common import machine, median, publish
from tokviz import pipeline
from tokviz.providers import logits as local_logits
from tokviz.providers.base import Request, TreeSpec
from tokviz.providers.local import engine as local_engine
from tokviz.views import tree as tree_view

PROMPT = "The capital of France is"


def from_scratch(run: object, prompt_ids: list[int], m: object) -> tuple[float, int]:
    """Re-derive every expanded node's children by evaluating its whole prefix anew."""
    kids = tree_view.children(run)  # type: ignore[arg-type]
    llm = m.llm  # type: ignore[attr-defined]
    tokens = 0
    t = time.perf_counter()
    for parent in kids:
        path = [n.token.id for n in tree_view.path(run, parent)] if parent >= 0 else []  # type: ignore[arg-type]
        llm.reset()
        llm.eval(prompt_ids + path)
        logits = local_engine.last_logits(m)  # type: ignore[arg-type]
        local_logits.top_k(logits, 3)
        tokens += len(prompt_ids) + len(path)
    return time.perf_counter() - t, tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    spec = TreeSpec(depth=4, branch=3)
    pipeline.tree(Request(PROMPT), spec)  # load the model
    m = local_engine._MODELS[next(iter(local_engine._MODELS))]
    prompt_ids = m.llm.tokenize(PROMPT.encode())
    ours, scratch = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        run = pipeline.tree(Request(PROMPT), spec)
        ours.append(time.perf_counter() - t)
        wall, scratch_tokens = from_scratch(run, prompt_ids, m)
        scratch.append(wall)
    nodes, evaluated = len(run.nodes), run.tree.evaluated_tokens
    with_completion = pipeline.tree(Request(PROMPT), TreeSpec(depth=4, branch=3, complete=4))
    timed: dict[tuple[int, bool], float] = {}
    for complete in (0, 4):
        for parallel in (False, True):
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                pipeline.tree(Request(PROMPT), TreeSpec(depth=4, branch=3, complete=complete, parallel=parallel))
                times.append(time.perf_counter() - t)
            timed[(complete, parallel)] = median(times)
    produced = len(with_completion.nodes) + sum(len(n.completion) for n in with_completion.nodes)
    lines = [
        f"tree, depth 4 × branch 3, prompt of {len(prompt_ids)} tokens, median of {args.repeats} ({machine()}):",
        f"- nodes: {nodes}; tokens evaluated after the prompt: {evaluated} "
        f"(**{evaluated / nodes:.2f} per new node**, goal ≤ 1.2; leaves need no evaluation of their own)",
        f"- with --complete 4: {with_completion.tree.evaluated_tokens} tokens evaluated for {produced} tokens produced "
        f"({len(with_completion.nodes)} nodes + {produced - len(with_completion.nodes)} completion tokens): "
        f"{with_completion.tree.evaluated_tokens / produced:.2f} per token",
        f"- from scratch: {scratch_tokens} tokens evaluated for the same tree",
        f"- wall: tokviz {median(ours):.3f} s, from scratch {median(scratch):.3f} s: ratio **{median(ours) / median(scratch):.2f}**",
        f"- `--parallel` (a node's children and its waiting siblings' decoded in one batch, leaves completed "
        f"in lockstep): {timed[(0, False)]:.2f} → {timed[(0, True)]:.2f} s "
        f"(**{timed[(0, False)] / timed[(0, True)]:.1f}×**); with --complete 4 {timed[(4, False)]:.2f} → "
        f"{timed[(4, True)]:.2f} s (**{timed[(4, False)] / timed[(4, True)]:.1f}×**)",
    ]
    publish("tree", lines, args.write)


if __name__ == "__main__":
    main()
