"""`--watch TOKEN`: a named token's probability and rank at every step, held against the full row
computed independently (float64 softmax of the model's own logits), and, on a server that lists
only its top k, marked as a bound wherever it is not listed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli
from tokviz import pipeline
from tokviz.providers.base import ScoreSpec
from tokviz.providers.watch import from_top_k
from tokviz.run import Run
from tokviz.run.generation import Generation

PROMPT = "The capital of France is"
WATCH = [" Paris", " London", "id:5"]


def _full_rows(prompt: str, ids: list[int]) -> list[np.ndarray]:
    """The model's log-softmax (float64) before each of `ids`, read token by token from llama.cpp."""
    from tokviz.providers.local import models
    from tokviz.providers.local.engine import last_logits

    path = models.resolve_model_path(models.DEFAULT_MODEL, lambda _: None)
    m = models.probe(path, None)
    llm = m.llm
    llm.reset()
    llm.eval(llm.tokenize(prompt.encode(), add_bos=True, special=False))
    out = []
    for token in ids:
        row = last_logits(m).astype(np.float64)
        out.append(row - (row.max() + np.log(np.exp(row - row.max()).sum())))
        llm.eval([token])
    m.prompt = None
    return out


def test_watched_tokens_equal_the_full_row_at_every_step() -> None:
    run = pipeline.predict(pipeline.watching(pipeline.plan(Generation(max_tokens=8, top_k=3), PROMPT), WATCH))
    assert run.params.watch == tuple(WATCH)
    from tokviz.providers.local import models
    from tokviz.providers.local.engine import watch_ids

    m = models.probe(models.resolve_model_path(models.DEFAULT_MODEL, lambda _: None), None)
    wanted = watch_ids(m, WATCH, "gemma-3-270m")
    assert wanted[2] == 5
    rows = _full_rows(PROMPT, [s.chosen.id for s in run.steps])  # type: ignore[misc]
    for step, row in zip(run.steps, rows):
        assert [w.token.id for w in step.watched] == wanted
        for w, i in zip(step.watched, wanted):
            assert not w.bound
            assert w.token.logprob == pytest.approx(row[i], abs=1e-4)
            assert w.rank == 1 + int(np.count_nonzero(row > row[i]))
            listed = next((a for a in step.alternatives if a.id == i), None)
            if listed is not None:
                assert listed.logprob == w.token.logprob and step.alternatives.index(listed) + 1 == w.rank
    assert any(w.rank > 3 for s in run.steps for w in s.watched)  # far outside the top k, still exact


def test_score_watches_at_every_position_and_survives_a_round_trip() -> None:
    plan = pipeline.watching(pipeline.plan(Generation(top_k=3), "Fact:"), [" Paris"])
    fast = pipeline.score(plan, " Paris is the capital of France.")
    exact = pipeline.score(plan, " Paris is the capital of France.", spec=ScoreSpec(exact=True))
    rows = _full_rows("Fact:", [s.chosen.id for s in exact.steps])  # type: ignore[misc]
    for step, row in zip(exact.steps, rows):
        assert step.watched[0].token.logprob == pytest.approx(row[step.watched[0].token.id], abs=1e-4)
    assert [len(s.watched) for s in fast.steps] == [1] * len(fast.steps)
    again = Run.from_json(exact.to_json())
    assert again == exact and json.loads(exact.to_json())["schema_version"] == 3
    plain = pipeline.score(pipeline.plan(Generation(top_k=3), "Fact:"), " Paris is")
    assert json.loads(plain.to_json())["schema_version"] == 2  # nothing watched: the older version still holds it


def test_transformers_watches_from_its_own_row() -> None:
    run = pipeline.predict(pipeline.watching(pipeline.plan(Generation(provider="transformers", max_tokens=4, top_k=5),
                                                           PROMPT), [" Paris", "id:5"]))
    for step in run.steps:
        paris = step.watched[0]
        assert not paris.bound and paris.rank is not None and paris.token.text == " Paris"
        listed = next((a for a in step.alternatives if a.id == paris.token.id), None)
        if listed is not None:
            assert listed.logprob == paris.token.logprob
        assert step.watched[1].token.id == 5 and step.watched[1].rank > 1000


def test_a_bound_from_the_top_k_never_undercuts_the_full_row() -> None:
    exact = pipeline.predict(pipeline.watching(pipeline.plan(Generation(max_tokens=8, top_k=3), PROMPT), WATCH))
    for step in exact.steps:
        listed_only = from_top_k(step, WATCH)
        for got, truth in zip(listed_only, step.watched):
            if got.bound:
                assert got.token.logprob >= truth.token.logprob and truth.rank > 3
                assert got.token.logprob == min(a.logprob for a in step.alternatives) or got.token.id == 5
            else:
                assert got.token.logprob == truth.token.logprob and got.rank == truth.rank


def test_llama_server_marks_what_it_did_not_list(llama_cpp_server: str) -> None:
    proc = run_cli("predict", PROMPT, "--raw", "--base-url", llama_cpp_server, "-m", "gemma-3-270m", "-n", "4", "-k", "3",
                   "--watch", " Paris", "--watch", " London", "--json")
    assert proc.returncode == 0, proc.stderr
    run = Run.from_json(proc.stdout.decode())
    assert "watch" in run.source
    for step in run.steps:
        for spec, w in zip((" Paris", " London"), step.watched):
            listed = next((a for a in step.alternatives if a.raw == spec.encode()), None)
            if listed is None:
                assert w.bound and w.token.logprob == min(a.logprob for a in step.alternatives)
            else:
                assert not w.bound and w.token.logprob == listed.logprob
    assert any(w.bound for s in run.steps for w in s.watched)
    table = run_cli("render", "-", input=proc.stdout, width=120).stdout.decode()
    assert "< " in table and "an upper bound" in table


def test_the_views_show_the_watched_tokens(tmp_path: Path) -> None:
    out = tmp_path / "w.html"
    saved = tmp_path / "w.json"
    proc = run_cli("predict", PROMPT, "-n", "5", "--watch", " Paris", "-o", str(out), "--save", str(saved), width=120)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    assert "␣Paris" in text.splitlines()[2] and "#3" in text  # the column, and the rank at step 1
    page = out.read_text()
    assert 'aria-label="watched tokens"' in page and page.count("<circle") == 5
    again = tmp_path / "again.html"
    assert run_cli("render", str(saved), "-o", str(again)).returncode == 0
    assert again.read_bytes() == out.read_bytes()


@pytest.mark.parametrize(("args", "says"), [
    (["--watch", " Paris is big"], "is 3 tokens"),
    (["--watch", " Paris", "--watch", " Paris"], "given twice"),
    (["--watch", "id:99999999"], "vocabulary has 262,144 tokens"),
    (["--watch", "id:x"], "whole number"),
    (["--watch", ""], "needs a token"),
    (["--watch", " a", "--choice", " a", "--choice", " b"], "does not go with"),
])
def test_bad_watches_are_one_line(args: list[str], says: str) -> None:
    proc = run_cli("predict", PROMPT, "-n", "2", *args)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.decode()
    assert says in err and "Traceback" not in err


def test_the_notebook_api_watches_too() -> None:
    import tokviz

    run = tokviz.predict(PROMPT, max_tokens=3, watch=" Paris")
    cli = pipeline.predict(pipeline.watching(pipeline.plan(Generation(max_tokens=3), PROMPT), [" Paris"]))
    assert [s.watched for s in run.steps] == [s.watched for s in cli.steps] and run.steps[0].watched[0].rank
