"""Tokens/s of the local provider (top-k alternatives recorded) against plain generation.

Baseline, measured in the same run on the same loaded model: llama-cpp-python's own `generate`
loop producing the same number of tokens greedily, with no logprobs. Goal: ratio ≤ 1.10.
Runs alternate (baseline, tokviz, baseline, …) so drift on a shared machine hits both.
"""

from __future__ import annotations

import argparse
import time

from bench.common import machine, median, publish
from tokviz.providers import local
from tokviz.providers.base import Request
from tokviz.providers.local import engine as local_engine
from tokviz.run import Params

PROMPT = "The history of the city of Paris begins"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--write", action="store_true", help="write the result into docs/benchmarks.md")
    args = ap.parse_args()

    provider = local.LocalProvider(progress=lambda _: None)
    request = Request(PROMPT, params=Params(max_tokens=args.tokens, top_k=args.top_k))
    run = provider.predict(request)  # warm-up; loads the model
    assert len(run.steps) == args.tokens, "the prompt must not hit end-of-text within the budget"
    llm = local_engine._MODELS[next(iter(local_engine._MODELS))].llm
    ids = llm.tokenize(PROMPT.encode(), add_bos=True)

    def baseline() -> float:
        llm.reset()
        t = time.perf_counter()
        for n, _ in enumerate(llm.generate(ids, temp=0.0, reset=True), start=1):
            if n == args.tokens:
                break
        return time.perf_counter() - t

    def tokviz() -> float:
        t = time.perf_counter()
        provider.predict(request)
        return time.perf_counter() - t

    base, ours = [], []
    for _ in range(args.repeats):
        base.append(baseline())
        ours.append(tokviz())
    b, o = median(base), median(ours)
    ratio = o / b
    lines = [
        f"local provider, {args.tokens} tokens, top-{args.top_k}, median of {args.repeats} ({machine()}):",
        f"- plain generation (llama-cpp-python `generate`, no logprobs): {b:.3f} s = {args.tokens / b:.1f} tokens/s",
        f"- tokviz local provider (prompt + {args.tokens} steps with top-{args.top_k}): {o:.3f} s = {args.tokens / o:.1f} tokens/s",
        f"- ratio tokviz / plain: **{ratio:.3f}** (goal ≤ 1.10)",
    ]
    publish("local", lines, args.write)


if __name__ == "__main__":
    main()
