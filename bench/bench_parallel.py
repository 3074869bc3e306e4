"""The embedded model against llama.cpp's own tools, in the same run (issue 18).

- one sequence: tokviz's local provider with top-5 against `llama-bench` tg64 (goal ≥ 0.9×);
- several samples of one prompt: `sample -n 8` serial against `--parallel` (goal: 3× faster),
  with `llama-batched-bench` (prompt 8, 32 new tokens, 8 sequences) as the engine's ceiling.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import time

from bench.common import llama_tools, machine, median, write_block
from tokviz import pipeline
from tokviz.generation import Generation
from tokviz.providers import local

PROMPT = "The history of the city of Paris begins"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    model = local.embedded_model_path(lambda _: None)
    tools = llama_tools()
    env = {**os.environ, "LD_LIBRARY_PATH": str(tools)}
    threads = str(os.cpu_count() or 1)
    tg = subprocess.run([str(tools / "llama-bench"), "-m", str(model), "-t", threads, "-p", "0", "-n", "64", "-o", "json"],
                        capture_output=True, text=True, env=env, check=True)
    tg_speed = float(json.loads(tg.stdout)[0]["avg_ts"])
    bb = subprocess.run([str(tools / "llama-batched-bench"), "-m", str(model), "-t", threads, "-c", "4096", "-npp", "8",
                         "-ntg", "32", "-npl", "1,8"], capture_output=True, text=True, env=env, check=True)
    rows = [ln for ln in bb.stdout.splitlines() if re.match(r"\|\s+8\s+\|\s+32\s+\|", ln)]
    speeds = {int(r.split("|")[3]): float(r.split("|")[8]) for r in rows}  # B → S_TG t/s

    one = pipeline.plan(Generation(max_tokens=64, top_k=5), PROMPT)
    pipeline.predict(one)  # load
    ours = []
    for _ in range(3):
        t = time.perf_counter()
        run = pipeline.predict(one)
        ours.append(len(run.steps) / (time.perf_counter() - t))
    single = median(ours)

    many = pipeline.plan(Generation(max_tokens=32, top_k=5, temperature=1.0, seed=1), PROMPT)
    serial_s, parallel_s = [], []
    for _ in range(2):
        t = time.perf_counter()
        pipeline.sample(many, 8)
        serial_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        together = pipeline.sample(many, 8, parallel=True)
        parallel_s.append(time.perf_counter() - t)
    s, p = median(serial_s), median(parallel_s)
    tokens = sum(len(r.steps) for r in together)
    lines = [
        f"the embedded model against llama.cpp's own tools, same run ({machine()}):",
        f"- `llama-bench` tg64: {tg_speed:.1f} tokens/s; tokviz predict, top-5, 64 tokens: {single:.1f} tokens/s — "
        f"**{single / tg_speed:.2f}×** (goal ≥ 0.9)",
        f"- `llama-batched-bench` (prompt 8, 32 new, aggregate generation): 1 sequence {speeds.get(1, 0):.1f}, "
        f"8 sequences {speeds.get(8, 0):.1f} tokens/s",
        f"- `sample -n 8 --max-tokens 32 -t 1`: serial {s:.2f} s, `--parallel` {p:.2f} s — **{s / p:.2f}× faster** "
        f"(goal 3×); parallel aggregate {tokens / p:.1f} tokens/s = {tokens / p / speeds.get(8, 1):.2f}× llama-batched-bench at 8",
    ]
    print("\n".join(lines))
    if args.write:
        write_block("parallel", "\n".join(lines))


if __name__ == "__main__":
    main()
