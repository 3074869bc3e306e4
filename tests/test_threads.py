"""The embedded model's threads: chosen from the cores other processes leave free (llama.cpp's
threads spin while they wait, so a busy core slows every step), with the same figures whatever
the count."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.conftest import run_cli
from tokviz.providers.local import threads


def test_busy_cores_are_left_to_their_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    have = threads.cores()
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(have + 2)]
    try:
        time.sleep(0.5)
        monkeypatch.setattr(threads, "_last", None)
        assert threads.others_running() >= have
        assert threads.choose() == 1
        assert threads.choose(3) == 3  # -O n_threads wins
    finally:
        for p in busy:
            p.kill()
            p.wait()
    time.sleep(0.3)
    monkeypatch.setattr(threads, "_last", None)
    assert 1 <= threads.choose() <= have


def test_the_figures_do_not_depend_on_the_thread_count() -> None:
    """Why the choice may change from run to run: llama.cpp splits a product by rows, so one thread
    and every core give the same bits (generation and the batched scorer alike)."""
    got = []
    for n in (1, 2):
        for command in (["predict", "The capital of France is", "-n", "12"], ["score", "Paris is the capital of France."]):
            proc = run_cli(*command, "-O", f"n_threads={n}", "--json")
            assert proc.returncode == 0, proc.stderr
            got.append(json.loads(proc.stdout)["steps"])
    assert got[0] == got[2] and got[1] == got[3]
