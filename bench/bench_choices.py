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


# Classifier-like prompts for the share noise: each answer's share weighed serially (predict --choice)
# against the same answers scored by the fast scorer's batched decoding.
NOISE_CASES = [
    ("The movie was wonderful. Sentiment:", [" positive", " negative", " neutral"]),
    ("The food was cold and the waiter was rude. Sentiment:", [" positive", " negative", " neutral"]),
    ("Question: Is Paris the capital of France? Answer:", [" Yes", " No"]),
    ("Question: Is the sun cold? Answer:", [" Yes", " No"]),
    ("2 + 2 =", [" 4", " 5", " 22"]),
    ("The color of the sky on a clear day is", [" blue", " green", " red", " grey"]),
    ("Water boils at 100 degrees", [" Celsius", " Fahrenheit", " Kelvin"]),
    ("The opposite of hot is", [" cold", " warm", " cool"]),
    ("Q: What is the largest planet? A:", [" Jupiter", " Saturn", " Earth", " Mars"]),
    ("Translate to French: cat =>", [" chat", " chien", " maison"]),
    ("The first president of the United States was", [" George Washington", " Abraham Lincoln", " Thomas Jefferson"]),
    ("Is this review positive or negative? 'Terrible, I want my money back.' Answer:", [" positive", " negative"]),
    ("My favourite fruit is the", [" apple", " banana", " orange", " pear"]),
    ("Once upon a time there was a", [" princess", " dragon", " king", " little girl"]),
    ("The chemical symbol for gold is", [" Au", " Ag", " Gd", " Go"]),
    ("Monday, Tuesday,", [" Wednesday", " Thursday", " Friday"]),
    ("The capital of Japan is", [" Tokyo", " Kyoto", " Osaka"]),
    ("A triangle has", [" three sides", " four sides", " five sides"]),
    ("Dogs are", [" mammals", " reptiles", " birds"]),
    ("The answer is", [" true", " false"]),
]


def share_noise() -> tuple[list[float], int]:
    """Each prompt's largest |Δ share| (points) between serial and batched decoding, and how many
    winners differ."""
    import math

    from tokviz.measures.choices import verdict

    moves, flips = [], 0
    for prompt, choices in NOISE_CASES:
        plan = pipeline.plan(Generation(top_k=3), prompt)
        serial = verdict(pipeline.weigh(plan, choices))
        sums = [sum(s.chosen.logprob for s in pipeline.score(plan, c, spec=ScoreSpec()).steps) for c in choices]
        total = sum(math.exp(x) for x in sums)
        moves.append(100 * max(abs(a - math.exp(x) / total) for a, x in zip(serial.shares or (), sums)))
        flips += serial.acc != max(range(len(sums)), key=lambda i: sums[i])
    return sorted(moves), flips


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
    moves, flips = share_noise()
    lines.append(f"- share noise, {len(moves)} classifier-like prompts, serial (`--choice`) against batched decoding "
                 f"(the fast scorer): largest |Δ share| median {median(moves):.1f}, max {moves[-1]:.1f} percentage "
                 f"points; winners that differ: {flips} (the default --share-points, 8, is this max with a margin)")
    publish("choices", lines, args.write)


if __name__ == "__main__":
    main()
