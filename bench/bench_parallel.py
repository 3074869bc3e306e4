"""The embedded model against llama.cpp's own tools, in the same run (issue 18).

- one sequence: tokviz's local provider with top-5 (generation speed, the prompt excluded as
  llama-bench's tg excludes it) against `llama-bench` tg64 (goal ≥ 0.9×);
- several samples of one prompt: `sample -n 8` serial against `--parallel` (goal: 3× faster than
  the serial path as the issue found it, whose sampler is kept here as the reference);
- 16 prompts through `tokviz batch --parallel 16` (the whole command, its start-up and prompt
  reading removed by subtracting the same batch with -n 1) against `llama-batched-bench`'s
  aggregate generation speed at 16 sequences (goal ≥ 0.8×).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import llama_bench, llama_tools, machine, median, write_block
from tokviz import pipeline
from tokviz.generation import Generation
from tokviz.providers import local

PROMPT = "The history of the city of Paris begins"
ANIMALS = ["cat", "dog", "bird", "fish", "horse", "lion", "tiger", "bear", "wolf", "fox", "owl", "frog", "deer", "goat", "sheep", "cow"]


def batched_bench(tools: Path, model: Path, env: dict[str, str], *extra: str) -> dict[int, float]:
    out = subprocess.run([str(tools / "llama-batched-bench"), "-m", str(model), "-t", str(os.cpu_count() or 1), "-c", "4096",
                          "-npp", "8", "-ntg", "32", "-npl", "1,8,16", *extra], capture_output=True, text=True, env=env, check=True)
    rows = [ln for ln in out.stdout.splitlines() if re.match(r"\|\s+8\s+\|\s+32\s+\|", ln)]
    return {int(r.split("|")[3]): float(r.split("|")[8]) for r in rows}  # B → S_TG t/s


def full_draw(logits, params, rng):  # type: ignore[no-untyped-def]
    """The sampler as issue 18 found it: float64 over the vocabulary, drawn by Generator.choice."""
    import numpy as np

    if params.temperature <= 0.0:
        return int(np.argmax(logits))
    scaled = logits.astype(np.float64) / params.temperature
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    return int(rng.choice(len(probs), p=probs))


def batch_seconds(n: int, parallel: int, work: Path) -> float:
    work.mkdir(parents=True, exist_ok=True)
    prompts = work / "prompts.txt"
    prompts.write_text("".join(f"Write a short story about a {a} who\n" for a in ANIMALS))
    out = work / f"out-{n}-{parallel}"
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tokviz", "batch", str(prompts), "-o", str(out), "-f", "json", "-n", str(n),
                    "-k", "5", "--parallel", str(parallel), "-q"], check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    model = local.embedded_model_path(lambda _: None)
    tools = llama_tools()
    env = {**os.environ, "LD_LIBRARY_PATH": str(tools)}
    tg_speed = llama_bench(tools, model, generate=64)
    speeds = batched_bench(tools, model, env)
    unified = batched_bench(tools, model, env, "-kvu")

    one = pipeline.plan(Generation(max_tokens=64, top_k=5), PROMPT)
    pipeline.predict(one)  # load
    single = median([pipeline.predict(one).timings["tokens_per_s"] for _ in range(5)])

    many = pipeline.plan(Generation(max_tokens=32, top_k=5, temperature=1.0, seed=1), PROMPT)
    serial_s, parallel_s, before_s = [], [], []
    for _ in range(2):
        t = time.perf_counter()
        pipeline.sample(many, 8)
        serial_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        together = pipeline.sample(many, 8, parallel=True)
        parallel_s.append(time.perf_counter() - t)
        kept, local.sample = local.sample, full_draw  # type: ignore[assignment]
        try:
            t = time.perf_counter()
            pipeline.sample(many, 8)
            before_s.append(time.perf_counter() - t)
        finally:
            local.sample = kept  # type: ignore[assignment]
    s, p, b = median(serial_s), median(parallel_s), median(before_s)
    tokens = sum(len(r.steps) for r in together)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t1 = median([batch_seconds(1, 16, work / f"a{i}") for i in range(2)])
        t32 = median([batch_seconds(32, 16, work / f"b{i}") for i in range(2)])
        serial_batch = batch_seconds(32, 1, work / "serial")
    batch_speed = 16 * 31 / (t32 - t1)
    lines = [
        f"the embedded model against llama.cpp's own tools, same run ({machine()}):",
        f"- one sequence: `llama-bench` tg64 {tg_speed:.1f} tokens/s; tokviz predict, top-5, 64 tokens, generation "
        f"speed {single:.1f} tokens/s — **{single / tg_speed:.2f}×** (goal ≥ 0.9)",
        f"- `llama-batched-bench` (prompt 8, 32 new, aggregate generation S_TG): 1 / 8 / 16 sequences "
        f"{speeds.get(1, 0):.1f} / {speeds.get(8, 0):.1f} / {speeds.get(16, 0):.1f} tokens/s "
        f"(with its unified cache, `-kvu`: {unified.get(1, 0):.1f} / {unified.get(8, 0):.1f} / {unified.get(16, 0):.1f})",
        f"- `sample -n 8 --max-tokens 32 -t 1`: serial as issue 18 found it (float64 sampler drawn by "
        f"Generator.choice) {b:.2f} s, serial now {s:.2f} s, `--parallel` {p:.2f} s — **{b / p:.2f}×** faster than "
        f"as found (goal 3×), {s / p:.2f}× faster than serial now; parallel aggregate {tokens / p:.1f} tokens/s",
        f"- `tokviz batch` 16 prompts × 32 tokens, top-5, whole command: serial {serial_batch:.1f} s, `--parallel 16` "
        f"{t32:.1f} s ({serial_batch / t32:.1f}× faster); its generation speed (the same batch with -n 1, "
        f"{t1:.1f} s, subtracted) {batch_speed:.1f} tokens/s — **{batch_speed / speeds.get(16, 1):.2f}×** "
        f"llama-batched-bench at 16 (goal ≥ 0.8; {batch_speed / unified.get(16, 1):.2f}× its -kvu figure)",
    ]
    print("\n".join(lines))
    if args.write:
        write_block("parallel", "\n".join(lines))


if __name__ == "__main__":
    main()
