"""The command line as users and scripts meet it: real processes, real files, one-line errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli, run_process
from tokviz.run import Run


@pytest.fixture
def saved(tmp_path: Path, small_run: Run) -> Path:
    path = tmp_path / "run.json"
    path.write_text(small_run.to_json(), encoding="utf-8")
    return path


def assert_one_line_error(proc: subprocess.CompletedProcess[bytes], code: int, *fragments: str) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == code, (proc.returncode, err)
    assert err.count("\n") == 1 and err.startswith("tokviz: "), err
    assert "Traceback" not in err
    for f in fragments:
        assert f in err, (f, err)
    return err


def test_version_and_help() -> None:
    from tokviz import __version__

    v = run_cli("--version")
    assert v.returncode == 0 and v.stdout.decode().strip() == f"tokviz {__version__}"
    for args in (["--help"], ["predict", "--help"], ["render", "--help"], ["providers", "--help"]):
        h = run_process(*args)
        assert h.returncode == 0 and b"Usage" in h.stdout, args
        assert b"{" not in h.stdout and b"<str>" not in h.stdout and b"<list" not in h.stdout, args  # placeholders read well
    assert b"[OPTIONS] PROMPT" in run_process("predict", "--help").stdout


def test_every_help_shows_values_as_names_and_flags_bare() -> None:
    """Every command's help (nested ones too, as real processes): no Typer type placeholder such as
    `<bool>` beside a flag or `<int>` beside an option, no `{PROMPT}` braces round an argument."""
    import re

    import typer

    from tokviz.cli import app

    def paths(cmd: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
        subs = getattr(cmd, "commands", {})
        return [prefix] + [p for name, sub in subs.items() for p in paths(sub, (*prefix, name))]

    every = paths(typer.main.get_command(app))
    assert len(every) >= 12
    for path in every:
        h = run_process(*path, "--help", env={"COLUMNS": "160"})
        text = h.stdout.decode()
        assert h.returncode == 0 and "Usage" in text, path
        assert not re.search(r"<[a-z][\w\[\],|]*>", text) and not re.search(r"{[A-Z]", text), (path, text)


def test_help_imports_no_heavy_module() -> None:
    code = (
        "import sys; from tokviz.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = {'openai', 'networkx', 'graphviz', 'llama_cpp', 'numpy', 'tiktoken'} & set(sys.modules)\n"
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_python_dash_m_works() -> None:
    out = subprocess.run([sys.executable, "-m", "tokviz", "--version"], capture_output=True, check=False)
    assert out.returncode == 0 and out.stdout.startswith(b"tokviz ")


def test_render_writes_every_format_and_prints_the_table(saved: Path, tmp_path: Path) -> None:
    outs = [tmp_path / f"g.{ext}" for ext in ("svg", "png", "dot", "json", "txt")]
    args = ["render", str(saved)]
    for o in outs:
        args += ["-o", str(o)]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert outs[0].read_bytes().lstrip().startswith(b"<?xml")
    assert outs[1].read_bytes()[:4] == b"\x89PNG"
    assert outs[2].read_text().startswith("digraph tokviz {")
    assert Run.from_json(outs[3].read_text()) == Run.from_json(saved.read_text())
    assert "␣Paris" in outs[4].read_text()
    table = run_cli("render", str(saved))
    assert table.returncode == 0 and "␣Paris" in table.stdout.decode()
    assert b"\x1b[" not in table.stdout  # not a terminal: plain text


def test_render_json_on_stdout_and_from_stdin(saved: Path) -> None:
    proc = run_cli("render", "-", "--json", input=saved.read_bytes())
    assert proc.returncode == 0
    assert proc.stdout == saved.read_bytes()


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["render", "missing.json"], 2, "does not exist"),
        (["render", "{saved}", "-o", "x.bmp"], 2, "unknown extension"),
        (["render", "{saved}", "-o", "no/such/folder/x.svg"], 2, "does not exist"),
        (["render", "{saved}", "-o", "{tmp}"], 2, "is a folder"),
        (["predict", ""], 2, "prompt is empty"),
        (["predict", "hi", "--top-k", "101"], 2, "--top-k must be between 0 and 100 for the local provider"),
        (["predict", "hi", "-m", "gpt-4.1-mini", "--top-k", "21"], 2, "--top-k must be at most 20 on OpenAI, got 21"),
        (["predict", "hi", "--top-k", "-1"], 2, "--top-k"),
        (["predict", "hi", "--model", "no-such-model"], 2, "unknown model"),
        (["predict", "hi", "--provider", "nope"], 2, "unknown provider"),
        (["predict", "hi", "--model", "/no/such/model.gguf"], 2, "does not exist"),
        (["predict", "hi", "--max-tokens", "0"], 2, "--max-tokens"),
        (["predict", "hi", "--temperature", "abc"], 2, "see 'tokviz predict --help'"),
        (["predict"], 2, "Missing argument"),
        (["nonsense"], 2, "No such command"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], code: int, fragment: str, saved: Path, tmp_path: Path) -> None:
    args = [a.replace("{saved}", str(saved)).replace("{tmp}", str(tmp_path)) for a in args]
    proc = run_cli(*args, cwd=tmp_path)
    assert_one_line_error(proc, code, fragment)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"not json at all", "not valid JSON"),
        (b"", "is empty, not a tokviz record"),
        (b"\n  \n", "is empty, not a tokviz record"),
        (b'{"some": "other json"}', "not a tokviz run"),
        (b"\xff\xfe\x00", "not UTF-8"),
    ],
)
def test_corrupt_run_file_is_a_failure_not_a_traceback(tmp_path: Path, content: bytes, fragment: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    assert_one_line_error(run_cli("render", str(bad)), 1, fragment)


def test_missing_dot_names_the_fix_and_leaves_no_file(saved: Path, tmp_path: Path) -> None:
    out = tmp_path / "g.svg"
    proc = subprocess.run([sys.executable, "-m", "tokviz", "render", str(saved), "-o", str(out)],
                          capture_output=True, env={**os.environ, "PATH": str(tmp_path)}, check=False)
    assert_one_line_error(proc, 1, "`dot`", "apt-get install graphviz")
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]  # no temp file left behind


def test_a_failed_render_keeps_the_old_file_whole(saved: Path, tmp_path: Path) -> None:
    out = tmp_path / "g.svg"
    out.write_bytes(b"previous good content")
    proc = subprocess.run([sys.executable, "-m", "tokviz", "render", str(saved), "-o", str(out)],
                          capture_output=True, env={**os.environ, "PATH": "/nonexistent"}, check=False)
    assert proc.returncode == 1
    assert out.read_bytes() == b"previous good content"


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    proc = run_cli("--debug", "render", str(bad))
    assert proc.returncode != 0 and b"Traceback" in proc.stderr


def test_output_json_equals_saved_run(saved: Path, tmp_path: Path) -> None:
    out = tmp_path / "again.json"
    assert run_cli("render", str(saved), "-o", str(out)).returncode == 0
    assert json.loads(out.read_text()) == json.loads(saved.read_text())


def test_bare_tokviz_prints_the_help_only() -> None:
    proc = run_process()
    assert proc.returncode == 0 and b"Usage" in proc.stdout and proc.stderr == b""


def test_debug_is_accepted_after_the_command(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    proc = run_cli("render", str(bad), "--debug")
    assert proc.returncode == 1 and b"Traceback" in proc.stderr


def test_render_check_says_a_missing_golden_is_missing(tmp_path: Path, small_run_file: Path) -> None:
    proc = run_cli("render", str(small_run_file), "-o", str(tmp_path / "gone.dot"), "--check")
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "1 missing (of 1 output)" in err and "differ" not in err and "--update writes" in err


def test_one_token_is_one_token(fake: object) -> None:
    out = run_cli("predict", "x", "-m", "fake-1", "-n", "1").stdout.decode()
    assert "1 token ·" in out and "1 tokens" not in out


def test_n_is_tokens_and_parallel_a_number_everywhere_with_the_old_switch_noted(fake: object) -> None:
    """`-n` is the length in every command (`sample -n 3`: tokens per sample, as its --help says)
    and `--parallel` takes N in every command; a bare `--parallel` is still read as meant, with a note."""
    new = run_cli("sample", "x", "-m", "fake-1", "-s", "3", "-n", "2", "--json")
    runs = json.loads(new.stdout)["runs"]
    assert new.returncode == 0 and new.stderr == b"" and len(runs) == 3 and all(len(r["steps"]) == 2 for r in runs)
    tokens = run_cli("sample", "x", "-m", "fake-1", "-n", "3", "--json")
    runs = json.loads(tokens.stdout)["runs"]
    assert tokens.returncode == 0 and tokens.stderr == b"" and len(runs) == 5 and all(len(r["steps"]) == 3 for r in runs)
    bare = run_cli("compare", "x", "y", "-m", "fake-1", "-n", "2", "--parallel", "--json")
    assert bare.returncode == 0 and b"--parallel 64" in bare.stderr
    assert run_cli("tree", "x", "-m", "fake-1", "--parallel", "0").returncode == 2
    helps = {cmd: run_cli(cmd, "--help").stdout.decode() for cmd in ("predict", "sample", "compare", "tree", "batch")}
    assert all(re.search(r"--parallel\s+N\b", h) or "--parallel" not in h for h in helps.values())
    assert re.search(r"--max-tokens\s+-n\s+N\b", helps["sample"]) and re.search(r"--samples\s+-s\s+N\b", helps["sample"])


def test_the_command_list_shows_each_description_whole() -> None:
    """`tokviz --help` once broke the diff and check descriptions mid-sentence (the docstrings'
    line breaks): at a wide terminal each description is one unbroken line."""
    from tokviz.cli import COMMANDS, _command_names, _short_help

    out = run_process("--help", env={"COLUMNS": "400"}).stdout.decode()
    for fn in COMMANDS:
        text = _short_help(fn)
        assert text and text in out, (fn.__name__, text)
        assert f" {fn.__name__} " in out
    assert len(COMMANDS) == len(_command_names()) == 13


def test_help_builds_no_command_and_a_command_line_builds_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """`tokviz --help` lists the commands from their docstrings (building thirteen commands' options
    was 13 ms of its start, docs/benchmarks.md); running one builds only that one."""
    import typer

    built: list[str] = []
    real = typer.main.get_command_from_info

    def counting(info: object, **kwargs: object) -> object:
        built.append(getattr(info, "name", ""))
        return real(info, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(typer.main, "get_command_from_info", counting)
    assert run_cli("--help").returncode == 0 and built == []
    assert run_cli("tokenize", "hello", "--json").returncode == 0 and built == ["tokenize"]
