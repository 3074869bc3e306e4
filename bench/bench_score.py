"""Scoring a 2,000-token text on the embedded model, against llama.cpp's own tools in the same run.

Baselines, on the same GGUF and threads, measured in this run:
- `llama-bench -p 512 -n 0`: prompt processing, which computes logits for the last token only;
- `llama-perplexity -c 512`: llama.cpp's own scorer. It reads the text in windows of 512 and asks
  for logits only for the second half of each (tools/perplexity/perplexity.cpp: `batch.logits[idx]
  = batch.pos[idx] >= first`, first = n_ctx/2), so per pass it runs the body over 512 positions and
  the output layer over 256, and scores 255 tokens: its rate is given per position read and per
  token scored;
- llama.cpp's `llama_decode` itself (the same build tokviz runs, through its C API) over the whole
  text with logits at every position, nothing else: the floor of any scorer that gives every
  token its figure, since the output layer over 262,144 tokens costs as much as the body.
The scorer is timed warm (the model loaded at the text's context first), as the tools' per-pass
figures are. Also the agreement of the fast (batched) path with the exact one (one token at a
time, as `predict` decodes), and peak memory.
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
from tokviz.providers.local.scoring import SCORE_CHUNK
from tokviz.run.generation import Generation

ROOT = Path(__file__).resolve().parent.parent


def corpus(tokens: int) -> str:
    """The project's own docs, cut to `tokens` tokens of the embedded model (offline, readable)."""
    text = "\n\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md")))
    ids = pipeline.tokenize(text, local_models.DEFAULT_MODEL).tokens[1 : tokens + 1]
    return "".join(t.text for t in ids)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bare_decode(text: str) -> float:
    """Seconds llama.cpp takes to decode `text` with logits at every position ({SCORE_CHUNK} per
    decode, as the scorer's batches), with nothing read from them."""
    import llama_cpp

    from tokviz.providers.local.engine import forget_cache

    path = local_models.resolve_model_path(local_models.DEFAULT_MODEL, lambda _: None)
    probed = local_models.probe(path, None)
    ids = probed.llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
    m = local_models.sized(probed, path, None, len(ids) + 1)
    forget_cache(m)
    batch = llama_cpp.llama_batch_init(512, 0, 1)
    t = time.perf_counter()
    for start in range(0, len(ids), SCORE_CHUNK):
        stop = min(start + SCORE_CHUNK, len(ids))
        batch.n_tokens = stop - start
        for i, pos in enumerate(range(start, stop)):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = ids[pos], pos, 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = True
        llama_cpp.llama_decode(m.llm.ctx, batch)
    took = time.perf_counter() - t
    llama_cpp.llama_batch_free(batch)
    m.llm.n_tokens = 0
    return took


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
    pipeline.score(plan, text, spec=ScoreSpec())  # loaded at this text's context, warm
    floor_s = bare_decode(text)
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
    scored_speed = perplexity_speed * 255 / 512
    lines = [
        f"scoring {n} tokens (the project's docs) with top-5 and ranks, embedded model, warm ({machine()}):",
        f"- llama.cpp `llama-bench` pp512 (logits of the last token only): {pp:.0f} tokens/s",
        f"- llama.cpp `llama-perplexity -c 512` (logits for the second half of each 512-token window): "
        f"{perplexity_speed:.0f} positions read/s = {scored_speed:.0f} tokens scored/s",
        f"- llama.cpp `llama_decode` with logits at every position, nothing else (the floor): {floor_s:.2f} s = "
        f"{n / floor_s:.0f} tokens/s",
        f"- tokviz score, fast ({SCORE_CHUNK} positions per decode): {fast_s:.2f} s = {ours:.0f} tokens/s — "
        f"**{floor_s / fast_s:.2f}× the bare decode**, **{ours / scored_speed:.2f}× llama-perplexity per token scored** "
        f"({ours / perplexity_speed:.2f}× per position read, {ours / pp:.2f}× pp)",
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
