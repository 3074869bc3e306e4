"""The noise floor: how far one model's figures move when only the arithmetic changes.

The same GGUF (the embedded Gemma 3 270M), greedy, the same prompts, decoded several ways that
should all give "the same answer":
- serial (`predict`, one token at a time) against `--parallel` (8 sequences in one llama.cpp batch);
- serial against llama.cpp's own `llama-server` (another build of ggml, another batch shape);
- the fast scorer (64 positions per decode) against the exact one (one token at a time);
- the fast scorer against `predict`'s own figures for the tokens it generated.
For each pair, every chosen token both share: |Δ logprob| (median, p99, max), the smallest top-k
overlap, the largest KL over the top-k lists and the rest (a lower bound), the forks and how close
the two tokens were at each (nats). Then the verdict of `tokviz diff` under its default tolerances,
which must be "within noise" for every pair: the defaults in `measures/noise.py` are these figures
with a margin, and `make bench` writes the table into docs/benchmarks.md (docs/ci.md explains it).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bench.common import machine, publish
from tokviz import pipeline
from tokviz.measures import noise
from tokviz.measures.compare import Tolerance, compare_steps
from tokviz.providers.base import ScoreSpec
from tokviz.run import Run, RunKind
from tokviz.run.generation import Generation

PROMPTS = [
    "The capital of France is", "Once upon a time", "The best way to learn a language is", "In 1969, the first",
    "Water boils at", "The theory of relativity", "My favourite recipe for bread", "The stock market today",
    "def fibonacci(n):", "The mitochondria is", "A haiku about autumn:", "The three laws of robotics are",
    "To be or not to be", "Photosynthesis converts", "The largest ocean on Earth is", "Machine learning models",
]
TEXT = Path("/usr/share/common-licenses/GPL-3")


def row(name: str, a: list[Run], b: list[Run]) -> tuple[str, dict[str, float]]:
    """One pair of decodings: the figures of every comparison (measured with no tolerance at all),
    and how many of them the default tolerances call within noise."""
    loose = Tolerance(atol=99, atol_mean=99, min_overlap=0, max_kl=99, near_tie=99)
    measured = [compare_steps(x.steps, y.steps, name=name, kind=x.kind.value, label_a="a", label_b="b", tolerance=loose)
                for x, y in zip(a, b)]
    judged = [compare_steps(x.steps, y.steps, name=name, kind=x.kind.value, label_a="a", label_b="b", tolerance=Tolerance())
              for x, y in zip(a, b)]
    deltas = sorted(abs(p.delta) for c in measured for p in c.aligned)
    overlaps = [p.overlap for c in measured for p in c.aligned if p.overlap is not None]
    kls = [p.kl for c in measured for p in c.aligned if p.kl is not None]
    forks = [c.fork for c in measured if c.fork is not None and c.fork.ended is None]
    gaps = [max(abs(f.gap_a), abs(f.gap_b)) for f in forks if f.gap_a is not None and f.gap_b is not None]
    means = [c.mean_abs_delta or 0.0 for c in measured]
    figures = {"tokens": len(deltas), "median": statistics.median(deltas) if deltas else 0.0,
               "p99": deltas[min(len(deltas) - 1, int(0.99 * len(deltas)))] if deltas else 0.0,
               "max": max(deltas, default=0.0), "overlap": min(overlaps, default=1.0), "kl": max(kls, default=0.0),
               "forks": len(forks), "gap": max(gaps, default=0.0), "mean": max(means, default=0.0)}
    within = sum(c.ok for c in judged)
    changed = next((c.reasons[0] for c in judged if not c.ok), "")
    line = (f"| {name} | {figures['tokens']} | {figures['median']:.3f} | {figures['p99']:.3f} | {figures['max']:.3f} | "
            f"{figures['mean']:.3f} | {figures['overlap']:.0%} | {figures['kl']:.3f} | {figures['forks']} "
            f"({figures['gap']:.3f}) | {within}/{len(judged)}{' (' + changed + ')' if changed else ''} |")
    return line, figures


def requantized(work: Path) -> Path:
    """The embedded model's weights requantized to Q4_0 by llama.cpp's own llama-quantize."""
    import os
    import subprocess

    from tests.servers import llama_cpp_tools
    from tokviz.providers.local.models import embedded_model_path

    tools = llama_cpp_tools(work)
    target = work / "q4_0.gguf"
    subprocess.run([str(tools / "llama-quantize"), "--allow-requantize", str(embedded_model_path(lambda _: None)),
                    str(target), "Q4_0", "2"], check=True, capture_output=True, env={**os.environ, "LD_LIBRARY_PATH": str(tools)})
    return target


def _as_score(run: Run) -> Run:
    """A generation seen as the scored text it produced (for the comparison's kind)."""
    from dataclasses import replace

    return replace(run, kind=RunKind.SCORE)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    gen = Generation(max_tokens=args.tokens, top_k=10)
    plans = [pipeline.plan(gen, p) for p in PROMPTS]
    serial = [pipeline.predict(p) for p in plans]
    together = pipeline.predict_together(plans)
    rows = [row("serial vs --parallel (16 sequences per batch)", serial, together)]

    from tests.servers import start_llama_cpp_server
    from tokviz.providers.local.models import embedded_model_path

    with tempfile.TemporaryDirectory() as work:
        proc, base = start_llama_cpp_server(embedded_model_path(lambda _: None), Path(work))
        try:
            served_gen = Generation(max_tokens=args.tokens, top_k=10, base_url=base, raw=True, model="gemma-3-270m")
            served = [pipeline.predict(pipeline.plan(served_gen, p)) for p in PROMPTS]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    rows.append(row("embedded vs llama-server (same GGUF)", serial, served))
    with tempfile.TemporaryDirectory() as work:  # a real change, for contrast: the same weights requantized
        other = requantized(Path(work))
        changed = [pipeline.predict(pipeline.plan(Generation(max_tokens=args.tokens, top_k=10, model=str(other)), p))
                   for p in PROMPTS]
        contrast = row("a real change: the same weights requantized to Q4_0", serial, changed)

    text = " ".join(TEXT.read_text().split("\n")[9:42]) if TEXT.exists() else " ".join(PROMPTS * 8)
    context = pipeline.plan(Generation(top_k=10), "Preamble:")
    fast = pipeline.score(context, text)
    exact = pipeline.score(context, text, spec=ScoreSpec(exact=True))
    rows.append(row(f"fast scorer vs exact scorer ({len(fast.steps)}-token text)", [fast], [exact]))
    rescored = [pipeline.score(plan, run.text) for plan, run in zip(plans, serial)]
    rows.append(row("predict vs the fast scorer of its own text", [_as_score(r) for r in serial], rescored))
    lines = [f"the noise floor of the embedded model, greedy, {len(PROMPTS)} prompts × {args.tokens} tokens, top-10 "
             f"({machine()}); |Δ logprob| of the chosen tokens both share, in nats:", "",
             "| pair | tokens | median | p99 | max | largest mean of a record | min top-k overlap | max KL (≥) | "
             "forks (largest gap) | within noise under the defaults |", "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [line for line, _ in rows]
    lines += ["", "for contrast, what the defaults must call a change (the verdict column counts \"within noise\"):", "",
              lines[2], lines[3], contrast[0]]
    worst = {k: max(f[k] for _, f in rows) for k in ("max", "kl", "gap", "mean")}
    lines += ["", f"largest: |Δ| {worst['max']:.3f}, mean |Δ| of a pair {worst['mean']:.3f}, KL {worst['kl']:.3f}, "
                  f"fork gap {worst['gap']:.3f}; min overlap {min(f['overlap'] for _, f in rows):.0%}",
              f"defaults in measures/noise.py: --atol {noise.ATOL} --atol-mean {noise.ATOL_MEAN} --near-tie {noise.NEAR_TIE} "
              f"--min-overlap {noise.MIN_OVERLAP} --max-kl {noise.MAX_KL}"]
    publish("noise", lines, args.write)


if __name__ == "__main__":
    main()
