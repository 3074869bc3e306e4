"""The embedded model's default thread count, quiet and beside busy processes (issue 39).

llama.cpp's threads spin while they wait for each other, so on cores other processes keep busy
"every core" is the slowest choice. The same decode (64 tokens, top-5, greedy) runs in a fresh
process with the default (threads chosen from the cores others leave free: providers/local/threads.py)
and with -O n_threads=1 and =N (every core), quiet and beside 1 and 4 busy-loop processes. Goal: the
default within 1.2× of the best in each condition. Each figure is the median of `--repeat` runs'
decode time (the model loaded first, not timed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from bench.common import machine, median, publish

DECODE = r"""
import json, sys, time
from tokviz import pipeline
from tokviz.run.generation import Generation
opts = tuple(sys.argv[1:])
pipeline.predict(pipeline.plan(Generation(max_tokens=2, options=opts), "Warm up"))
import tokviz.providers.local.threads as th
th._last = None  # counted again for the timed run
run = pipeline.predict(pipeline.plan(Generation(max_tokens=64, top_k=5, options=opts), "Once upon a time, in a small village,"))
from tokviz.providers.local import engine
threads = next(iter(engine._MODELS.values())).threads
print(json.dumps({"decode_s": run.timings["decode_s"], "tokens": len(run.steps), "threads": threads}))
"""


def decode(options: list[str]) -> tuple[float, int]:
    done = subprocess.run([sys.executable, "-c", DECODE, *options], capture_output=True, text=True, check=True)
    got = json.loads(done.stdout.strip().splitlines()[-1])
    return got["decode_s"] * 64 / max(got["tokens"], 1), got["threads"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    n = os.cpu_count() or 1
    settings = {"default": [], "1 thread": ["n_threads=1"], f"{n} threads": [f"n_threads={n}"]}
    lines = [f"64 tokens, top-5, embedded model, decode time (median of {args.repeat}) by thread setting ({machine()}):", "",
             "| beside | " + " | ".join(settings) + " | default / best | default chose |", "|---|" + "---|" * (len(settings) + 2)]
    worst = 0.0
    for busy in (0, 1, 4):
        procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        try:
            time.sleep(0.5)
            figures, chose = {}, 0
            for name, options in settings.items():
                runs = [decode(options) for _ in range(args.repeat)]
                figures[name] = median([r[0] for r in runs])
                if name == "default":
                    chose = runs[-1][1]
        finally:
            for p in procs:
                p.kill()
                p.wait()
        ratio = figures["default"] / min(figures.values())
        worst = max(worst, ratio)
        lines.append(f"| {busy} busy-loop process{'es' if busy != 1 else ''} | "
                     + " | ".join(f"{v:.1f} s" for v in figures.values()) + f" | **{ratio:.2f}×** | {chose} |")
    lines += ["", f"The default is within **{worst:.2f}×** of the best setting in every condition (goal ≤ 1.2×)."]
    publish("threads", lines, args.write)


if __name__ == "__main__":
    main()
