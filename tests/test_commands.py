"""Every generating command, in this process, against the test provider: options, outputs and
re-rendering of every kind of record (the real model and servers are tested elsewhere)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import fakes
from tests.conftest import run_cli
from tokviz.run import Run, RunKind, RunSet, load_record
from tokviz.views import formats

pytestmark = pytest.mark.usefixtures("fake")


def every_format(kind: str) -> list[str]:
    return [f.name for f in formats.for_kind(kind)]


def test_predict_generates_the_fake_words(tmp_path: Path) -> None:
    proc = run_cli("predict", "hello", "-m", "fake-1", "-n", "3", "-k", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    run = Run.from_json(proc.stdout.decode())
    expected = []
    context = "hello"
    for _ in range(3):
        word = fakes.distribution(context, 1)[0].text
        expected.append(word)
        context += word
    assert [s.chosen.text for s in run.steps] == expected
    assert all(len(s.alternatives) == 2 for s in run.steps)


@pytest.mark.parametrize(("command", "kind"), [
    (["predict", "hello", "-n", "3"], formats.PREDICT),
    (["sample", "hello", "-s", "3", "--max-tokens", "3", "--seed", "1"], formats.SAMPLES),
    (["compare", "hello", "bye", "-t", "0", "-t", "0.5"], formats.COMPARISON),
    (["tree", "hello", "--depth", "2", "--branch", "2"], formats.TREE),
    (["score", "--file", "{file}", "--context", "hi"], formats.SCORE),
])
def test_every_command_writes_its_formats_and_render_redraws_them(command: list[str], kind: str, tmp_path: Path) -> None:
    outs = [tmp_path / f"out.{fmt}" for fmt in every_format(kind)]
    text = tmp_path / "text.txt"
    text.write_text("alpha beta")
    args = [*(a.replace("{file}", str(text)) for a in command), "-m", "local" if kind == formats.SCORE else "fake-1"]
    for o in outs:
        args += ["-o", str(o)]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    record = load_record((tmp_path / "out.json").read_text())
    assert record.kind.value == kind
    again = tmp_path / "again"
    again.mkdir()
    redraw = ["render", str(tmp_path / "out.json")]
    for o in outs:
        redraw += ["-o", str(again / o.name)]
    assert run_cli(*redraw).returncode == 0
    for o in outs:
        assert (again / o.name).read_bytes() == o.read_bytes(), o.name  # byte for byte, offline
    printed = run_cli("render", str(tmp_path / "out.json"))
    assert printed.returncode == 0 and printed.stdout


@pytest.mark.parametrize(("command", "ext", "says"), [
    (["compare", "hello"], "x.dot", "a comparison cannot be drawn as .dot"),
    (["compare", "hello"], "x.html", "a comparison cannot be drawn as .html"),
    (["predict", "hello"], "x.bmp", "unknown extension"),
])
def test_formats_a_kind_cannot_take_are_refused_before_any_work(command: list[str], ext: str, says: str, tmp_path: Path) -> None:
    proc = run_cli(*command, "-m", "fake-1", "-o", str(tmp_path / ext))
    assert proc.returncode == 2 and says in proc.stderr.decode()
    assert not (tmp_path / ext).exists()


def test_sample_saves_a_set_that_replays_its_seeds(tmp_path: Path) -> None:
    saved = tmp_path / "s.json"
    assert run_cli("sample", "hello", "-m", "fake-1", "-s", "3", "--seed", "7", "--save", str(saved), "-q").returncode == 0
    record = load_record(saved.read_text())
    assert isinstance(record, RunSet) and record.kind is RunKind.SAMPLES
    assert [r.params.seed for r in record.runs] == [7, 8, 9]


def test_compare_json_carries_figures_and_runs(tmp_path: Path) -> None:
    proc = run_cli("compare", "hello", "-m", "fake-1", "-m", "fake-2", "--json")
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "tokviz.comparison" and len(doc["rows"]) == 2 and len(doc["runs"]) == 2
    assert doc["rows"][1]["model"] == "fake-2" and "perplexity" in doc["rows"][0]["stats"]


def test_compare_saves_its_record_and_can_be_quiet_like_every_command(tmp_path: Path) -> None:
    """`compare --save` writes the record `render` redraws (the same chart, byte for byte), and -q
    prints nothing, as in predict, sample, score and tree."""
    saved, chart = tmp_path / "cmp.json", tmp_path / "cmp.svg"
    proc = run_cli("compare", "hello", "bye", "-m", "fake-1", "--save", str(saved), "-o", str(chart), "-q")
    assert proc.returncode == 0 and proc.stdout == b"" and proc.stderr == b"", proc.stderr
    again = tmp_path / "again.svg"
    assert run_cli("render", str(saved), "-o", str(again)).returncode == 0
    assert again.read_bytes() == chart.read_bytes() and b"<svg" in chart.read_bytes()


def test_tree_counts_the_provider_work_and_respects_limits() -> None:
    proc = run_cli("tree", "hello", "-m", "fake-1", "--depth", "3", "--branch", "2", "--json")
    run = Run.from_json(proc.stdout.decode())
    assert len(run.nodes) == 2 + 4 + 8 and run.tree is not None and run.tree.requests == 1 + 2 + 4
    capped = Run.from_json(run_cli("tree", "hello", "-m", "fake-1", "--max-nodes", "5", "--json").stdout.decode())
    assert len(capped.nodes) == 5 and capped.tree is not None and capped.tree.cut == "max-nodes"


def test_batch_runs_the_fake_provider_concurrently(tmp_path: Path) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("\n".join(f"prompt {i}" for i in range(20)) + "\n")
    proc = run_cli("batch", str(prompts), "-o", str(tmp_path / "out"), "-m", "fake-1", "-f", "json,txt", "-j", "8", "-q")
    assert proc.returncode == 0, proc.stderr
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["summary"] == {"total": 20, "ok": 20, "failed": 0, "pending": 0}


def test_the_notebook_api_takes_the_same_options() -> None:
    import tokviz
    from tokviz.ground.errors import UsageError

    run = tokviz.predict("hello", "fake-1", max_tokens=2, top_k=3)
    assert len(run.steps) == 2 and run.params.top_k == 3 and run.params.temperature == 0.0
    with pytest.raises(UsageError, match="unknown option colour"):
        tokviz.predict("hello", "fake-1", colour="red")


def test_stdin_drops_one_trailing_newline_like_shell_substitution() -> None:
    piped = Run.from_json(run_cli("predict", "-", "-m", "fake-1", "-n", "2", "--json", input=b"hello\n").stdout.decode())
    given = Run.from_json(run_cli("predict", "hello", "-m", "fake-1", "-n", "2", "--json").stdout.decode())
    assert piped.prompt == "hello" and piped.steps == given.steps
    two = Run.from_json(run_cli("predict", "-", "-m", "fake-1", "-n", "1", "--json", input=b"hello\n\n").stdout.decode())
    assert two.prompt == "hello\n"  # only one newline is the shell's


def test_chat_shows_the_turns_apart() -> None:
    out = run_cli("predict", "Why?", "-m", "fake-1", "-n", "2", "--chat").stdout.decode()
    assert "user: Why?" in out and "model: " in out and "Why? alpha" not in out


def test_no_alternatives_means_no_entropy_figure() -> None:
    out = run_cli("predict", "hello", "-m", "fake-1", "-n", "2", "-k", "0", "--stats").stdout.decode()
    assert "—" in out and "mean entropy" not in out


def test_sample_graph_counts_only_shared_tokens(tmp_path: Path) -> None:
    dot = tmp_path / "s.dot"
    assert run_cli("sample", "hello", "-m", "fake-1", "-s", "2", "--max-tokens", "2", "-o", str(dot)).returncode == 0
    assert "×1" not in dot.read_text() and "×2" in dot.read_text()  # the fake model is deterministic: both agree


def test_batch_names_keep_korean_prompts_readable(tmp_path: Path) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("대한민국의 수도는\n")
    assert run_cli("batch", str(prompts), "-o", str(tmp_path / "o"), "-m", "fake-1", "-f", "json", "-q").returncode == 0
    assert [p.name for p in (tmp_path / "o").glob("대한민국의-수도는-*.json")]


def test_shell_completion_is_offered() -> None:
    from tests.conftest import run_process

    out = run_process("--help").stdout.decode()
    assert "--install-completion" in out and "--show-completion" in out


def test_stats_json_carries_every_per_step_figure() -> None:
    doc = json.loads(run_cli("predict", "hello", "-m", "fake-1", "-n", "3", "--stats", "--json").stdout)
    assert [s["step"] for s in doc["step_stats"]] == [1, 2, 3]
    first = doc["step_stats"][0]
    assert first["rank"] == 1 and first["chosen_prob"] == pytest.approx(0.5)
    assert first["surprisal_bits"] == pytest.approx(1.0) and first["entropy_bits"] > 0


def test_batch_writes_html_too(tmp_path: Path) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("hello\n")
    out = tmp_path / "o"
    assert run_cli("batch", str(prompts), "-o", str(out), "-m", "fake-1", "-f", "html,json", "-q").returncode == 0
    page = next(out.glob("*.html")).read_text()
    assert page.lower().startswith("<!doctype html>") and ("alpha" in page or "beta" in page)


def test_dpi_scales_png_outputs(tmp_path: Path, small_run_file: Path) -> None:
    import struct

    def size(path: Path) -> tuple[int, int]:
        return struct.unpack(">II", path.read_bytes()[16:24])

    normal, big = tmp_path / "a.png", tmp_path / "b.png"
    assert run_cli("render", str(small_run_file), "-o", str(normal)).returncode == 0
    assert run_cli("render", str(small_run_file), "-o", str(big), "--dpi", "192").returncode == 0
    assert size(big)[0] > 1.8 * size(normal)[0]
    assert run_cli("render", str(small_run_file), "-o", str(big), "--dpi", "5").returncode == 2


def test_compare_chart_as_png(tmp_path: Path) -> None:
    png = tmp_path / "c.png"
    proc = run_cli("compare", "hello", "bye", "-m", "fake-1", "-t", "0", "-t", "1", "-o", str(png))
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_long_samples_wrap_into_labelled_rows(tmp_path: Path) -> None:
    dot = tmp_path / "s.dot"
    assert run_cli("sample", "hello", "-m", "fake-1", "-s", "2", "--max-tokens", "30", "-o", str(dot)).returncode == 0
    text = dot.read_text()
    assert text.count('label="↪ #1,2"') == 2  # rows 2 and 3 (12 tokens a row), carrying both samples
    unwrapped = tmp_path / "u.dot"
    assert run_cli("sample", "hello", "-m", "fake-1", "-s", "2", "--max-tokens", "30", "-o", str(unwrapped),
                   "--wrap", "0").returncode == 0
    assert "↪" not in unwrapped.read_text()
