"""`tokviz batch` at scale: per-prompt cost and peak memory from 1,000 to 100,000 prompts.

A fake instant server in its own process (`bench/slow_server.py` with no delay) answers every
request; the whole `tokviz batch … -f json -n 4 -j 16` command runs as a subprocess, so its
peak RSS is its own. Goals (issue 17): per-prompt cost at the largest size within 1.2× of the
cost at 1,000, and peak RSS growth from 1,000 to the largest size under 50 MB.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import machine, publish


def run_once(n: int, base_url: str, scratch: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one batch of n prompts, in a fresh folder."""
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        prompts = Path(tmp) / "p.txt"
        with prompts.open("w") as fh:
            for i in range(n):
                fh.write(f"prompt number {i}\n")
        cmd = [sys.executable, "-c", "import resource, sys, runpy; sys.argv = ['tokviz'] + sys.argv[1:]\n"
               "try:\n    runpy.run_module('tokviz', run_name='__main__')\nfinally:\n"
               "    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)",
               "batch", str(prompts), "-o", str(Path(tmp) / "out"), "-m", "gpt-4.1-mini", "--base-url", base_url,
               "-j", "16", "-f", "json", "-n", "4", "-q"]
        t = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t
        if done.returncode != 0:
            raise SystemExit(f"batch of {n} failed: {done.stderr[-500:]}")
        rss = int(done.stderr.strip().splitlines()[-1]) / 1024
        out = Path(tmp) / "out"
        assert sum(1 for _ in out.rglob("*.json")) == n + 1  # every run, and the index
    return wall, rss


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,100000")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    root = Path(__file__).resolve().parent.parent
    scratch = root / "build"
    scratch.mkdir(exist_ok=True)
    server = subprocess.Popen([sys.executable, "-m", "bench.slow_server", "0"], cwd=root, stdout=subprocess.PIPE, text=True)
    base_url = server.stdout.readline().strip()  # type: ignore[union-attr]
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
        results = {n: run_once(n, base_url, scratch) for n in sizes}
    finally:
        server.kill()
    small, large = sizes[0], sizes[-1]
    per = {n: wall / n * 1000 for n, (wall, _) in results.items()}
    lines = [f"`tokviz batch -f json -n 4 -j 16` against an instant local server in its own process ({machine()}):",
             "| prompts | wall | per prompt | peak RSS |", "|---|---|---|---|"]
    lines += [f"| {n:,} | {wall:.1f} s | {per[n]:.2f} ms | {rss:.0f} MB |" for n, (wall, rss) in results.items()]
    lines += [f"- per-prompt cost at {large:,} / at {small:,}: **{per[large] / per[small]:.2f}×** (goal ≤ 1.2)",
              f"- peak RSS growth from {small:,} to {large:,}: **{results[large][1] - results[small][1]:.0f} MB** (goal < 50 MB)",
              "- the previous design, measured the same day with this benchmark: 1,000 prompts 4.39 ms / 71 MB, 5,000 prompts 4.61 ms / 116 MB (issue 17's own figures: 5,000 prompts 1.8 ms / 117 MB, 20,000 3.8 ms / 279 MB)"]
    publish("batch-scale", lines, args.write)


if __name__ == "__main__":
    main()
