"""`tokviz --help` start-up against a minimal Typer app with the same commands (goal ≤ 1.2×).

Both are fresh processes of the same interpreter, alternated, median of N; the ratio is what
counts, since absolute times move with the machine's load.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from bench.common import machine, median, publish

HERE = Path(__file__).resolve().parent


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    # as installed: bytecode written (an editable install under PYTHONDONTWRITEBYTECODE has none,
    # and compiling every module on each start was 20 ms of it; `make install` writes it)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(HERE.parent / "tokviz")], check=True)
    ours_cmd = [sys.executable, "-c", "import sys; from tokviz.cli import main; sys.exit(main(['--help']))"]
    base_cmd = [sys.executable, str(HERE / "minimal_app.py"), "--help"]
    python_cmd = [sys.executable, "-c", "pass"]
    for cmd in (ours_cmd, base_cmd):
        timed(cmd)  # warm the file cache
    ours, base, bare = [], [], []
    for _ in range(args.repeats):
        base.append(timed(base_cmd))
        ours.append(timed(ours_cmd))
        bare.append(timed(python_cmd))
    o, b, p = median(ours), median(base), median(bare)
    lines = [
        f"start-up, `--help`, median of {args.repeats} fresh processes ({machine()}):",
        f"- `python -c pass`: {p * 1000:.0f} ms",
        f"- minimal Typer app with the same commands: {b * 1000:.0f} ms",
        f"- `tokviz --help`: {o * 1000:.0f} ms",
        f"- ratio tokviz / minimal app: **{o / b:.2f}** (goal ≤ 1.2)",
    ]
    publish("startup", lines, args.write)


if __name__ == "__main__":
    main()
