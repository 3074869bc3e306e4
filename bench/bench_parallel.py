"""The embedded model against llama.cpp's own tools, in the same run (issue 18).

- one sequence: tokviz's local provider with top-5 (generation speed, the prompt excluded as
  llama-bench's tg excludes it) against `llama-bench` tg64 (goal ≥ 0.9×), in alternating rounds
  (the median of the rounds' ratios: these machines drift within minutes), with the binding's own
  bare `Llama.eval` loop for scale;
- several samples of one prompt: `sample -n 8 --parallel` against the serial path as the issue
  found it — that commit's code itself, run from `git archive` (goal: 3× faster), with the ceiling
  no sampler can pass: the serial time over llama-batched-bench's own decode time at 8 sequences;
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


def batched_bench(tools: Path, model: Path, env: dict[str, str], *extra: str) -> dict[int, tuple[float, float]]:
    """llama-batched-bench, prompt 8 and 32 new tokens per sequence: B → (S_TG tokens/s, T_TG s)."""
    out = subprocess.run([str(tools / "llama-batched-bench"), "-m", str(model), "-t", str(os.cpu_count() or 1), "-c", "4096",
                          "-npp", "8", "-ntg", "32", "-npl", "1,8,16", *extra], capture_output=True, text=True, env=env, check=True)
    rows = [ln.split("|") for ln in out.stdout.splitlines() if re.match(r"\|\s+8\s+\|\s+32\s+\|", ln)]
    return {int(r[3]): (float(r[8]), float(r[7])) for r in rows}


# The commit issue 18 was filed against: `sample -n 8` as the issue found it is that code, run.
AS_FOUND = "ad868c0"
AS_FOUND_SAMPLE = """
import sys, time
from tokviz import pipeline
from tokviz.generation import Generation
many = pipeline.plan(Generation(max_tokens=32, top_k=5, temperature=1.0, seed=1), sys.argv[1])
pipeline.sample(many, 1)
times = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    pipeline.sample(many, 8)
    times.append(time.perf_counter() - t)
print(sorted(times)[len(times) // 2])
"""


def as_found_seconds(work: Path, rounds: int) -> float | None:
    """`sample -n 8` timed in the code of commit AS_FOUND (None outside a git checkout)."""
    root = Path(__file__).resolve().parent.parent
    tree = work / "as-found"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(root), "archive", AS_FOUND, "tokviz"], capture_output=True)
    if archive.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    out = subprocess.run([sys.executable, "-c", AS_FOUND_SAMPLE, PROMPT, str(rounds)], capture_output=True, text=True,
                         check=True, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)})
    return float(out.stdout.split()[-1])


def bare_speed(m: local._Loaded, n: int = 64) -> float:
    """Greedy generation through the binding's own `Llama.eval`, argmax only: the binding's ceiling."""
    import numpy as np

    llm = m.llm
    llm.reset()
    llm.eval(llm.tokenize(PROMPT.encode()))
    t = time.perf_counter()
    for _ in range(n - 1):
        llm.eval([int(np.argmax(local._last_logits(m)))])
    return (n - 1) / (time.perf_counter() - t)


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
    speeds = batched_bench(tools, model, env)
    unified = batched_bench(tools, model, env, "-kvu")

    one = pipeline.plan(Generation(max_tokens=64, top_k=5), PROMPT)
    pipeline.predict(one)  # load
    m = local._load(model, local.DEFAULT_N_CTX)
    rounds = []
    for _ in range(3):
        tg = llama_bench(tools, model, generate=64)
        mine = median([pipeline.predict(one).timings["tokens_per_s"] for _ in range(3)])
        bare = median([bare_speed(m) for _ in range(3)])
        rounds.append((tg, mine, bare))
    single = median([mine / tg for tg, mine, _ in rounds])
    bare_ratio = median([bare / tg for tg, _, bare in rounds])

    many = pipeline.plan(Generation(max_tokens=32, top_k=5, temperature=1.0, seed=1), PROMPT)
    serial_s, parallel_s = [], []
    for _ in range(3):
        t = time.perf_counter()
        pipeline.sample(many, 8)
        serial_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        together = pipeline.sample(many, 8, parallel=True)
        parallel_s.append(time.perf_counter() - t)
    s, p = median(serial_s), median(parallel_s)
    tokens = sum(len(r.steps) for r in together)
    with tempfile.TemporaryDirectory() as tmp:
        b = as_found_seconds(Path(tmp), 3)
    decode_8 = speeds[8][1]  # llama.cpp's own time to decode 8 sequences × 32 tokens, nothing else

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t1 = median([batch_seconds(1, 16, work / f"a{i}") for i in range(2)])
        t32 = median([batch_seconds(32, 16, work / f"b{i}") for i in range(2)])
        serial_batch = batch_seconds(32, 1, work / "serial")
    batch_speed = 16 * 31 / (t32 - t1)
    found = (f"as issue 18 found it (commit {AS_FOUND}, run) {b:.2f} s, " if b is not None else "")
    against = (f" — **{b / p:.2f}×** faster than as found (goal 3×; ceiling {b / decode_8:.2f}×: llama-batched-bench "
               f"decodes the same 8 × 32 tokens in {decode_8:.2f} s with no sampling at all)" if b is not None else "")
    lines = [
        f"the embedded model against llama.cpp's own tools, same run ({machine()}):",
        f"- one sequence, 3 alternating rounds: `llama-bench` tg64 {' / '.join(f'{r[0]:.1f}' for r in rounds)} tokens/s; "
        f"tokviz predict, top-5, 64 tokens, generation speed {' / '.join(f'{r[1]:.1f}' for r in rounds)} — "
        f"**{single:.2f}×** (median of the rounds' ratios; goal ≥ 0.9); the binding's bare `Llama.eval` loop, argmax "
        f"only: {bare_ratio:.2f}×",
        f"- `llama-batched-bench` (prompt 8, 32 new, aggregate generation S_TG): 1 / 8 / 16 sequences "
        f"{speeds[1][0]:.1f} / {speeds[8][0]:.1f} / {speeds[16][0]:.1f} tokens/s "
        f"(with its unified cache, `-kvu`: {unified[1][0]:.1f} / {unified[8][0]:.1f} / {unified[16][0]:.1f})",
        f"- `sample -n 8 --max-tokens 32 -t 1`: serial {found}serial now {s:.2f} s, `--parallel` {p:.2f} s{against}; "
        f"{s / p:.2f}× faster than serial now; parallel aggregate {tokens / p:.1f} tokens/s",
        f"- `tokviz batch` 16 prompts × 32 tokens, top-5, whole command: serial {serial_batch:.1f} s, `--parallel 16` "
        f"{t32:.1f} s ({serial_batch / t32:.1f}× faster); its generation speed (the same batch with -n 1, "
        f"{t1:.1f} s, subtracted) {batch_speed:.1f} tokens/s — **{batch_speed / speeds[16][0]:.2f}×** "
        f"llama-batched-bench at 16 (goal ≥ 0.8; {batch_speed / unified[16][0]:.2f}× its -kvu figure)",
    ]
    print("\n".join(lines))
    if args.write:
        write_block("parallel", "\n".join(lines))


if __name__ == "__main__":
    main()
