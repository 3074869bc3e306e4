"""`tokviz score` on the embedded model: the text's own tokens, their logprobs, ranks and figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tokviz import pipeline
from tokviz.generation import Generation
from tokviz.run import Run, RunKind, load_record

PROMPT = "The capital of France is"


def test_scoring_what_predict_generated_gives_back_its_logprobs() -> None:
    generated = pipeline.predict(pipeline.plan(Generation(max_tokens=8, top_k=3), PROMPT))
    scored = pipeline.score(pipeline.plan(Generation(top_k=3), PROMPT), generated.text)
    assert scored.kind is RunKind.SCORE
    assert [s.chosen.id for s in scored.steps] == [s.chosen.id for s in generated.steps]
    for g, s in zip(generated.steps, scored.steps):
        assert s.chosen.logprob == pytest.approx(g.chosen.logprob, abs=1e-4)  # decoded the same way: exact
        assert s.rank == 1  # greedy tokens were the model's first choice
        assert [a.id for a in s.alternatives] == [a.id for a in g.alternatives]


def test_ranks_count_every_likelier_token_of_the_vocabulary() -> None:
    scored = pipeline.score(pipeline.plan(Generation(top_k=5), PROMPT), " the capital of Spain")
    for step in scored.steps:
        above = [a for a in step.alternatives if a.logprob > step.chosen.logprob]
        assert step.rank is not None and step.rank >= len(above) + 1
        if step.rank <= 5:
            assert step.alternatives[step.rank - 1].id == step.chosen.id


def test_the_score_command_writes_every_view_and_render_redraws_it(tmp_path: Path) -> None:
    saved = tmp_path / "s.json"
    outs = [tmp_path / f"s.{ext}" for ext in ("txt", "dot", "html")]
    args = ["score", "Paris is the capital of France.", "--context", "Fact:", "-k", "3", "--save", str(saved)]
    for o in outs:
        args += ["-o", str(o)]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert "rank" in out and "tokens by rank" in out and "perplexity" in out
    run = load_record(saved.read_text())
    assert isinstance(run, Run) and run.prompt == "Fact:" and json.loads(saved.read_text())["kind"] == "score"
    again = tmp_path / "again.txt"
    assert run_cli("render", str(saved), "-o", str(again)).returncode == 0
    assert again.read_bytes() == outs[0].read_bytes()


def test_stdin_file_and_refusals(tmp_path: Path, fault: object) -> None:
    body = tmp_path / "t.txt"
    body.write_text("Once upon a time\n")
    by_file = Run.from_json(run_cli("score", "--file", str(body), "--json").stdout.decode())
    by_stdin = Run.from_json(run_cli("score", "-", "--json", input=b"Once upon a time\n").stdout.decode())
    assert by_stdin.steps == by_file.steps[: len(by_stdin.steps)]
    assert run_cli("score").returncode == 2
    assert run_cli("score", "x", "--file", str(body)).returncode == 2
    refused = run_cli("score", "x", "-m", "gpt-4.1-mini")
    assert refused.returncode == 2 and b"cannot score" in refused.stderr and b"local" in refused.stderr
