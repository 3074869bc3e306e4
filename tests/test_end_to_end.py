"""`tokviz predict` as a newcomer runs it: the real model, the real `dot`, real files."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import read_to_end, run_cli, tokviz_cmd, without_escapes
from tests.test_graph import png_size, svg_texts
from tokviz.run import Run

FORMATS = ("svg", "png", "dot", "json", "txt")


def test_predict_writes_every_view_and_render_gives_the_same_bytes(tmp_path: Path) -> None:
    args = ["predict", "The capital of France is", "-n", "12", "--save", str(tmp_path / "run.json")]
    for ext in FORMATS:
        args += ["-o", str(tmp_path / f"p.{ext}")]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.decode()
    assert "The capital of France is the capital of the country of France." in table
    assert "␣the" in table and "␣Paris" in table  # Paris is an alternative at step 1
    run = Run.from_json((tmp_path / "run.json").read_text())
    assert len(run.steps) == 12

    svg = (tmp_path / "p.svg").read_bytes()
    assert "␣capital" in svg_texts(svg) and "The capital of France is" in svg_texts(svg)
    w, h = png_size((tmp_path / "p.png").read_bytes())
    assert w > 200 and h > 100

    args = ["render", str(tmp_path / "run.json")]
    for ext in FORMATS:
        args += ["-o", str(tmp_path / f"r.{ext}")]
    assert run_cli(*args).returncode == 0
    for ext in FORMATS:
        assert (tmp_path / f"r.{ext}").read_bytes() == (tmp_path / f"p.{ext}").read_bytes(), ext


def test_prompt_from_stdin_and_json_on_stdout() -> None:
    proc = run_cli("predict", "-", "--json", "-n", "3", input=b"The capital of France is")
    assert proc.returncode == 0, proc.stderr
    run = Run.from_json(proc.stdout.decode())
    assert run.prompt == "The capital of France is" and run.text == " the capital of"
    assert proc.stderr == b""  # nothing but errors and first-run progress goes to stderr


def test_korean_prompt_end_to_end(tmp_path: Path) -> None:
    proc = run_cli("predict", "대한민국의 수도는", "-n", "6", "-o", str(tmp_path / "k.svg"), "-o", str(tmp_path / "k.png"), "--json")
    assert proc.returncode == 0, proc.stderr
    run = Run.from_json(proc.stdout.decode())
    assert "대한민국의 수도는" in svg_texts((tmp_path / "k.svg").read_bytes())
    assert "\ufffd" not in run.text or run.steps[-1].chosen.raw[-1:] >= b"\x80"  # only a cut at the end
    assert png_size((tmp_path / "k.png").read_bytes())[0] > 100


def _on_a_terminal(*args: str, env: dict[str, str]) -> bytes:
    """Run tokviz with stdout on a real pseudo-terminal and return what it printed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([*tokviz_cmd(), *args], stdout=slave, stderr=subprocess.DEVNULL,
                            env={**os.environ, "COLUMNS": "120", **env})
    os.close(slave)
    seen = read_to_end(master)
    proc.wait(timeout=120)
    os.close(master)
    return seen


def test_colour_on_a_terminal_and_none_with_no_color(tmp_path: Path, small_run_file: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env["TERM"] = "xterm-256color"
    coloured = _on_a_terminal("render", str(small_run_file), env={**env, "NO_COLOR": ""})
    assert b"\x1b[38;" in coloured
    plain = _on_a_terminal("render", str(small_run_file), env={**env, "NO_COLOR": "1"})
    assert b"\x1b[38;" not in plain and b"Paris" in plain and b"81.2%" in plain


def test_first_run_assembles_the_model_once_into_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = run_cli("predict", "Hi", "-n", "1", "--json", env={"TOKVIZ_CACHE_DIR": str(cache)})
    assert first.returncode == 0, first.stderr
    assert b"preparing the embedded model" in first.stderr and first.stderr.count(b"\n") == 1
    files = sorted(p.name for p in cache.iterdir())
    assert files == ["gemma-3-270m-q4_k_m.gguf"]  # no temporary file left behind
    second = run_cli("predict", "Hi", "-n", "1", "--json", env={"TOKVIZ_CACHE_DIR": str(cache)})
    assert second.returncode == 0 and second.stderr == b""
    assert json.loads(first.stdout)["steps"] == json.loads(second.stdout)["steps"]


def _stopped_on_a_terminal(args: list[str], ready: bytes, cwd: Path, sig: int = signal.SIGINT) -> tuple[int, bytes]:
    """Run tokviz on a pseudo-terminal (its live display on), send `sig` once the output matches the
    regular expression `ready`, and return the exit status and everything it printed (no escapes)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([*tokviz_cmd(), *args], stdin=slave, stdout=slave, stderr=slave, cwd=cwd,
                            env={**os.environ, "COLUMNS": "100", "TERM": "xterm-256color"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not re.search(ready, seen):
        if select.select([master], [], [], 1.0)[0]:
            try:
                seen += os.read(master, 65536)
            except OSError:
                break
    assert re.search(ready, seen), seen[-800:]
    proc.send_signal(sig)
    seen += read_to_end(master)
    code = proc.wait(timeout=60)
    os.close(master)
    return code, without_escapes(seen)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopped_predict_keeps_the_generation(tmp_path: Path, sig: int, code: int) -> None:
    """Ctrl-C (or SIGTERM) while `predict` generates on a terminal: the run as far as it got is
    saved and drawn, marked interrupted, the table printed, and the exit status still says stopped."""
    status, text = _stopped_on_a_terminal(["predict", "Once upon a time", "-n", "300", "-o", "n300.svg", "--save",
                                           "n300.json"], rb"generating\S* (1\d|[2-9]\d) tokens", tmp_path, sig)
    assert status == code
    run = Run.from_json((tmp_path / "n300.json").read_text())
    assert run.finish_reason == "interrupted" and 10 <= len(run.steps) < 300 and "interrupted" in run.source
    assert (tmp_path / "n300.svg").read_bytes().startswith(b"<?xml")
    assert b"finish: interrupted" in b" ".join(text.split())  # the footer may wrap at the terminal width
    assert (b"interrupted" if sig == signal.SIGINT else b"terminated") in text.strip().splitlines()[-1]


def test_a_stopped_sample_keeps_the_samples_drawn(tmp_path: Path) -> None:
    status, text = _stopped_on_a_terminal(["sample", "Once upon a time", "-s", "8", "--max-tokens", "120",
                                           "--save", "s.json", "-o", "s.svg"], rb"samples\S*.*[2-7]/8", tmp_path)
    assert status == 130
    from tokviz.run import RunSet, load_record

    record = load_record((tmp_path / "s.json").read_text())
    assert isinstance(record, RunSet) and 2 <= len(record.runs) <= 8
    assert record.runs[-1].finish_reason == "interrupted" or len(record.runs) < 8
    assert (tmp_path / "s.svg").exists() and b"interrupted" in text.strip().splitlines()[-1]


def test_a_stopped_score_keeps_the_tokens_scored(tmp_path: Path) -> None:
    text_file = tmp_path / "long.txt"
    text_file.write_text(" ".join(["The quick brown fox jumps over the lazy dog near the river bank."] * 200))
    status, text = _stopped_on_a_terminal(["score", "--file", str(text_file), "--exact", "--save", "sc.json"],
                                          rb"tokens\S*.*\b([1-9]\d\d)/", tmp_path)
    assert status == 130
    run = Run.from_json((tmp_path / "sc.json").read_text())
    assert run.finish_reason == "interrupted" and 100 <= len(run.steps) < 2600 and run.provider == "local"
    assert b"interrupted" in text.strip().splitlines()[-1]
