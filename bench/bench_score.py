"""Scoring a 2,000-token text on the embedded model, against llama.cpp's own tools in the same run.

Baselines, on the same GGUF and threads, measured in this run:
- `llama-bench -p 512 -n 0`: prompt processing, which computes logits for the last token only;
- `llama-perplexity -c 512`: llama.cpp's own scorer, logits for every position (the like-for-like
  baseline: scoring must compute all 262,144 logits at every position, which prompt processing
  skips).
Also the agreement of the fast (batched) path with the exact one (one token at a time, as
`predict` decodes), and peak memory. Goal (issue 15): ≥ 0.5× of llama-bench's pp speed.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import llama_bench, llama_tools, machine, publish
from tokviz import pipeline
from tokviz.providers.base import ScoreSpec
from tokviz.providers.local import models as local_models
from tokviz.run.generation import Generation

ROOT = Path(__file__).resolve().parent.parent


def corpus(tokens: int) -> str:
    """The project's own docs, cut to `tokens` tokens of the embedded model (offline, readable)."""
    text = "\n\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md")))
    ids = pipeline.tokenize(text, local_models.DEFAULT_MODEL).tokens[1 : tokens + 1]
    return "".join(t.text for t in ids)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=2000)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()

    model = local_models.embedded_model_path(lambda _: None)
    text = corpus(args.tokens)
    tools = llama_tools()
    env = {**os.environ, "LD_LIBRARY_PATH": str(tools)}
    threads = str(os.cpu_count() or 1)

    pp = llama_bench(tools, model, prompt=512)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8", delete=False) as f:
        f.write(text)
    ppl = subprocess.run([str(tools / "llama-perplexity"), "-m", str(model), "-f", f.name, "-c", "512", "-b", "512", "-t", threads],
                         capture_output=True, text=True, env=env, check=True)
    os.unlink(f.name)
    per_pass = float(re.search(r"([\d.]+) seconds per pass", ppl.stderr + ppl.stdout).group(1))  # type: ignore[union-attr]
    perplexity_speed = 512 / per_pass

    plan = pipeline.plan(Generation(top_k=5), "", allow_empty=True)
    pipeline.score(plan, "warm up the model", spec=ScoreSpec())
    before = rss_mb()
    t = time.perf_counter()
    fast = pipeline.score(plan, text, spec=ScoreSpec())
    fast_s = time.perf_counter() - t
    fast_rss = rss_mb()
    t = time.perf_counter()
    exact = pipeline.score(plan, text, spec=ScoreSpec(exact=True))
    exact_s = time.perf_counter() - t
    n = len(fast.steps)
    diffs = sorted(abs(a.chosen.logprob - b.chosen.logprob) for a, b in zip(fast.steps, exact.steps))
    total_fast = sum(s.chosen.logprob for s in fast.steps)
    total_exact = sum(s.chosen.logprob for s in exact.steps)
    ranks = sum(a.rank == b.rank for a, b in zip(fast.steps, exact.steps))
    ours = n / fast_s
    lines = [
        f"scoring {n} tokens (the project's docs) with top-5 and ranks, embedded model ({machine()}):",
        f"- llama.cpp `llama-bench` pp512 (logits of the last token only): {pp:.0f} tokens/s",
        f"- llama.cpp `llama-perplexity -c 512` (logits of every position): {perplexity_speed:.0f} tokens/s",
        f"- tokviz score, fast (64 positions per decode): {fast_s:.2f} s = {ours:.0f} tokens/s — "
        f"**{ours / pp:.2f}× pp**, **{ours / perplexity_speed:.2f}× llama-perplexity**",
        f"- tokviz score --exact (one token at a time, as predict): {exact_s:.2f} s = {n / exact_s:.0f} tokens/s",
        f"- fast vs exact, per token |Δ logprob|: median {diffs[n // 2]:.3f}, p99 {diffs[int(n * 0.99)]:.3f}, "
        f"max {diffs[-1]:.3f} nats; same rank at {ranks}/{n} positions; perplexity "
        f"{pow(2.718281828, -total_fast / n):.3f} (fast) vs {pow(2.718281828, -total_exact / n):.3f} (exact)",
        f"- peak RSS of the process: {before:.0f} MB before the fast score, {fast_rss:.0f} MB after "
        f"(the 2,000 positions are never held: 64 rows at a time)",
    ]
    publish("score", lines, args.write)


if __name__ == "__main__":
    main()
