"""Run every benchmark and write its figures into docs/benchmarks.md (`make bench`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHES = ["bench.bench_local", "bench.bench_startup", "bench.bench_batch", "bench.bench_tree", "bench.bench_score", "bench.bench_choices", "bench.bench_threads", "bench.bench_batch_scale", "bench.bench_parallel", "bench.bench_explore", "bench.bench_noise", "bench.bench_transformers"]

if __name__ == "__main__":
    for name in BENCHES:
        print(f"== {name}", flush=True)
        subprocess.run([sys.executable, "-m", name, "--write"], cwd=ROOT, check=True)
