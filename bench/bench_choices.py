"""Weighing answers (`predict --choice`) against scoring each answer on its own, embedded model.

10 three-token choices after a 400-token context: `pipeline.weigh` (the context read once, each
choice teacher-forced after it) against 10 separate `score` runs of context + choice (the default
fast scorer, and `--exact`), in the same process with the model loaded. Goal (issue 37): ≤ 0.25× of
the separate runs. The figures must agree with `score --exact` exactly; the largest difference is
printed.
"""

from __future__ import annotations

import argparse
import time

from bench.bench_score import corpus
from bench.common import machine, median, publish
from tokviz import pipeline
from tokviz.providers.base import ScoreSpec
from tokviz.run.generation import Generation

CHOICES = [" the red house", " a small dog", " seven more times", " in the garden", " after the rain",
           " every single day", " for the children", " with great care", " under the bridge", " once again today"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--context", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    context = corpus(args.context).rstrip()
    plan = pipeline.plan(Generation(top_k=5), context)
    lengths = [len(pipeline.tokenize(c, "gemma-3-270m").tokens) - 1 for c in CHOICES]  # less <bos>
    pipeline.weigh(pipeline.plan(Generation(top_k=5), "Warm up:"), CHOICES[:2])  # the model loaded, not this context

    def separate(spec: ScoreSpec) -> tuple[float, list[float]]:
        t = time.perf_counter()
        sums = [sum(s.chosen.logprob for s in pipeline.score(plan, c, spec=spec).steps) for c in CHOICES]
        return time.perf_counter() - t, sums

    weigh_s, fast_s, exact_s = [], [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        record = pipeline.weigh(plan, CHOICES)
        weigh_s.append(time.perf_counter() - t)
        fast_s.append(separate(ScoreSpec())[0])
        took, exact_sums = separate(ScoreSpec(exact=True))
        exact_s.append(took)
    ours = [sum(s.chosen.logprob for s in r.steps) for r in record.runs]
    worst = max(abs(a - b) for a, b in zip(ours, exact_sums))
    w, f, e = median(weigh_s), median(fast_s), median(exact_s)
    lines = [
        f"weighing {len(CHOICES)} choices of {min(lengths)}–{max(lengths)} tokens after a {args.context}-token context, "
        f"top-5, embedded model ({machine()}), median of {args.repeat}:",
        f"- `predict --choice` ×{len(CHOICES)} (the context read once): {w:.2f} s",
        f"- {len(CHOICES)} separate `score` runs of context + choice (fast scorer): {f:.2f} s — **{w / f:.2f}×** of them",
        f"- {len(CHOICES)} separate `score --exact` runs: {e:.2f} s — **{w / e:.2f}×**",
        f"- largest |Δ| between a choice's summed logprob and `score --exact` of context + choice: {worst:.2g} nats",
    ]
    publish("choices", lines, args.write)


if __name__ == "__main__":
    main()
