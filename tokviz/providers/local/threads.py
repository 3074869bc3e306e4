"""How many threads llama.cpp gets: the cores no other process is using now.

llama.cpp's threads spin while they wait for each other, so a thread that shares its core with
another busy process holds the others up at every step: on two cores beside four busy-loop processes
64 tokens took 17.0 s with both cores and 7.5 s with one (docs/benchmarks.md, `bench/bench_threads.py`).
So unless `-O n_threads=N` says otherwise, each run counts the processes the kernel has running
right now that are not ours (`procs_running` in /proc/stat, a few samples, less this process's own
running threads) and leaves their cores to them. Quiet, that is every core; it is chosen again for
every run (at most once a second), so a batch follows the load as it changes. The figures do not depend on it (llama.cpp
splits a matrix product by rows: one thread or two give the same bits, tested).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

SAMPLES = 5
GAP_S = 0.002
FRESH_S = 1.0  # a count younger than this is used again: a batch of short runs does not sample before each
_last: tuple[float, int] | None = None  # (when, threads) of the last count


def cores() -> int:
    """The cores this process may run on (its affinity, which a container or `taskset` narrows)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _procs_running() -> int | None:
    try:
        with open("/proc/stat", "rb") as fh:
            for line in fh:
                if line.startswith(b"procs_running"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _own_running() -> int:
    """This process's threads the kernel has running now (state R): our own llama.cpp threads may
    still be spinning from the last decode, and they are not someone else's load."""
    n = 0
    try:
        for task in Path("/proc/self/task").iterdir():
            try:
                stat = (task / "stat").read_bytes()
            except OSError:
                continue
            n += stat[stat.rfind(b")") + 2: stat.rfind(b")") + 3] == b"R"
    except OSError:
        return 1
    return max(n, 1)


def others_running() -> int | None:
    """How many runnable threads of other processes there are now (the median of a few samples,
    2 ms apart), or None where the system does not say (not Linux)."""
    seen = []
    for i in range(SAMPLES):
        total = _procs_running()
        if total is None:
            return None
        seen.append(max(0, total - _own_running()))
        if i + 1 < SAMPLES:
            time.sleep(GAP_S)
    return sorted(seen)[len(seen) // 2]


def choose(requested: int | None = None) -> int:
    """The threads for the next decode: `requested` when given, else the cores others leave free
    (at least one)."""
    global _last
    if requested:
        return requested
    now = time.monotonic()
    if _last is not None and now - _last[0] < FRESH_S:
        return _last[1]
    have = cores()
    busy = others_running()
    chosen = have if busy is None else max(1, have - busy)
    _last = (now, chosen)
    return chosen
