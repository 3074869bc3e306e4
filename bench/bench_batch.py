"""A batch of 100 prompts against a local OpenAI-shaped server that takes 200 ms per answer, with
--concurrency 16, against the ideal 100 / 16 × 0.2 s = 1.25 s (goal ≤ 1.3×).

The server runs in its own process (`bench/slow_server.py`), as a real one would. The batch is
measured in-process (the Batch workflow, writing run JSON and DOT for every prompt) so that the
interpreter's start-up is not counted; the whole `tokviz batch` command is timed too, for reference.
Note the floor: 100 requests on 16 workers need ceil(100/16) = 7 rounds of 200 ms = 1.4 s, a ratio
of 1.12 before any overhead.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import machine, median, publish
from tokviz.batch import Batch, parse_jobs
from tokviz.run.generation import Generation


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--formats", default="json,dot")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()

    root = Path(__file__).resolve().parent.parent
    scratch = root / "build"  # this machine's /tmp creates files ~15x slower than the work tree
    scratch.mkdir(exist_ok=True)
    server = subprocess.Popen([sys.executable, "-m", "bench.slow_server", str(args.latency)], cwd=root,
                              stdout=subprocess.PIPE, text=True)
    base_url = server.stdout.readline().strip()  # type: ignore[union-attr]
    text = "".join(f"prompt number {i}\n" for i in range(args.prompts))
    defaults = Generation(model="gpt-4.1-mini", max_tokens=4, base_url=base_url, retries=0)
    ideal = args.prompts / args.concurrency * args.latency
    walls = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(dir=scratch) as tmp:
            jobs = parse_jobs(text, source="bench.txt", defaults=defaults)
            batch = Batch(out_dir=Path(tmp), formats=args.formats.split(","), concurrency=args.concurrency)
            t = time.perf_counter()
            tally, _ = batch.run(jobs, lambda _: None, threading.Event())
            walls.append(time.perf_counter() - t)
            assert tally.ok == tally.total == args.prompts, tally
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        prompts = Path(tmp) / "p.txt"
        prompts.write_text(text)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tokviz", "batch", str(prompts), "-o", str(Path(tmp) / "o"), "-m",
                        "gpt-4.1-mini", "--base-url", base_url, "-j", str(args.concurrency), "-f", "json,dot",
                        "-n", "4", "-q"], check=True)
        cli = time.perf_counter() - t
    server.kill()
    wall = median(walls)
    lines = [
        f"batch, {args.prompts} prompts, server latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency}, "
        f"median of {args.repeats} ({machine()}):",
        f"- ideal {args.prompts}/{args.concurrency} × {args.latency} s: {ideal:.3f} s",
        f"- in-process batch (JSON + DOT per prompt, index after each): {wall:.3f} s",
        f"- ratio batch / ideal: **{wall / ideal:.2f}** (goal ≤ 1.3)",
        f"- whole `tokviz batch` command, start-up included: {cli:.3f} s ({cli / ideal:.2f}× ideal)",
    ]
    publish("batch", lines, args.write)


if __name__ == "__main__":
    main()
