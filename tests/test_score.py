"""`tokviz score` on the embedded model: the text's own tokens, their logprobs, ranks and figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tokviz import pipeline
from tokviz.providers.base import ScoreSpec
from tokviz.run import Run, RunKind, load_record
from tokviz.run.generation import Generation

PROMPT = "The capital of France is"


def test_scoring_what_predict_generated_gives_back_its_logprobs() -> None:
    generated = pipeline.predict(pipeline.plan(Generation(max_tokens=8, top_k=3), PROMPT))
    scored = pipeline.score(pipeline.plan(Generation(top_k=3), PROMPT), generated.text, spec=ScoreSpec(exact=True))
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


def test_the_fast_path_reads_the_same_tokens_and_says_how_it_decoded() -> None:
    """Batched decoding rounds differently from one token at a time (docs/score.md has the
    figures); the tokens, and the text's total, stay close, and the run says which way it ran."""
    text = " Paris is the capital and largest city of France, on the Seine."
    plan = pipeline.plan(Generation(top_k=5), PROMPT)
    fast = pipeline.score(plan, text)
    exact = pipeline.score(plan, text, spec=ScoreSpec(exact=True))
    assert [s.chosen.id for s in fast.steps] == [s.chosen.id for s in exact.steps]
    assert "fast" in fast.source["scoring"] and "exact" in exact.source["scoring"]
    total_fast = sum(s.chosen.logprob for s in fast.steps)
    total_exact = sum(s.chosen.logprob for s in exact.steps)
    assert abs(total_fast - total_exact) < 0.05 * abs(total_exact)
    for step in fast.steps:  # a batched row is still a whole distribution: rank and top-k agree
        assert step.rank is not None and step.rank >= 1
        if step.rank <= 5:
            assert step.alternatives[step.rank - 1].id == step.chosen.id
        assert [a.logprob for a in step.alternatives] == sorted((a.logprob for a in step.alternatives), reverse=True)


def test_a_sliding_window_scores_every_token_once_with_its_own_context() -> None:
    text = " one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen"
    plan = pipeline.plan(Generation(top_k=3), "Count:")
    whole = pipeline.score(plan, text, spec=ScoreSpec(exact=True))
    slid = pipeline.score(plan, text, spec=ScoreSpec(exact=True, window=12, stride=4))
    assert [s.chosen.id for s in slid.steps] == [s.chosen.id for s in whole.steps]
    assert "window" in slid.source and "window" not in whole.source
    # The first window holds the context and the first tokens as the whole text does: same figures.
    context = len(pipeline.tokenize("Count:", plan.request.model).tokens)  # <bos> included
    first = 12 - context
    for a, b in zip(slid.steps[:first], whole.steps[:first]):
        assert a.chosen.logprob == pytest.approx(b.chosen.logprob, abs=1e-4)
    # Later tokens see at most 11 tokens before them, so some figures move.
    assert any(abs(a.chosen.logprob - b.chosen.logprob) > 1e-3 for a, b in zip(slid.steps[first:], whole.steps[first:]))


def test_window_and_stride_are_checked() -> None:
    assert run_cli("score", "x y z", "--window", "1").returncode == 2
    bad = run_cli("score", "x y z", "--window", "8", "--stride", "8")
    assert bad.returncode == 2 and b"--stride" in bad.stderr


# --- servers ------------------------------------------------------------------------------------

def test_a_real_llama_cpp_python_server_scores_through_echo_as_the_local_model_does(llama_server: str) -> None:
    from tests.test_servers import TOLERANCE

    text = " Paris, a city of light."
    local = pipeline.score(pipeline.plan(Generation(top_k=3), PROMPT), text, spec=ScoreSpec(exact=True))
    served = Run.from_json(run_cli("score", text, "--context", PROMPT, "-m", "gemma-3-270m", "--base-url", llama_server,
                                   "-k", "3", "--json").stdout.decode())
    assert served.kind is RunKind.SCORE and served.source["dialect"] == "llama-cpp-python"
    assert [s.chosen.text for s in served.steps] == [s.chosen.text for s in local.steps]
    assert served.text == text and served.usage["prompt_tokens"] == 5
    for mine, theirs in zip(local.steps, served.steps):
        assert theirs.chosen.logprob == pytest.approx(mine.chosen.logprob, abs=TOLERANCE)
        assert theirs.rank is None  # a server does not say where the token stood in the vocabulary
    sent = json.loads(json.dumps(served.to_dict()))
    assert sent["source"]["scoring"].startswith("teacher-forced by the server")


def test_llama_cpp_server_cannot_score_and_says_who_can(llama_cpp_server: str) -> None:
    refused = run_cli("score", "Paris.", "--context", PROMPT, "-m", "gemma-3-270m", "--base-url", llama_cpp_server)
    assert refused.returncode == 2
    line = refused.stderr.decode()
    assert "cannot score" in line and "llama.cpp" in line and "vLLM" in line and "local model" in line
    assert "Traceback" not in line


def test_vllm_echo_with_its_bos_and_shifted_offsets(fault: object) -> None:
    from tests import dialect_fixtures as fx
    from tests.servers import reply_json

    pieces = [("The", -3.0), (" capital", -2.0), (" of", -0.5), (" France", -0.25), (" is", -0.1), (" Paris", -1.5), (".", -0.75)]
    fault.pages["/v1/models"] = fx.models_page("vllm")  # type: ignore[attr-defined]
    fault.script.append(reply_json(200, fx.vllm_echo(pieces, k=3)))  # type: ignore[attr-defined]
    run = Run.from_json(run_cli("score", " Paris.", "--context", PROMPT, "-m", "m", "--base-url", fault.base_url,  # type: ignore[attr-defined]
                                "-k", "3", "--json").stdout.decode())
    assert [(s.chosen.text, s.chosen.logprob) for s in run.steps] == [(" Paris", -1.5), (".", -0.75)]
    assert run.source["dialect"] == "vllm" and "lossy" not in run.source
    assert [a.text for a in run.steps[0].alternatives] == [" Paris", "alt5_0", "alt5_1"]
    body = fault.received[-1].body  # type: ignore[attr-defined]
    assert body["echo"] is True and body["max_tokens"] == 0 and body["prompt"] == PROMPT + " Paris."


def test_openai_scores_only_with_its_legacy_models(fault: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests import dialect_fixtures as fx
    from tests.servers import reply_json

    refused = run_cli("score", "x", "-m", "gpt-4.1-mini", "--base-url", fault.base_url, "--dialect", "openai")  # type: ignore[attr-defined]
    assert refused.returncode == 2 and b"cannot score" in refused.stderr and b"davinci-002" in refused.stderr
    answer = fx.vllm_echo([("Hello", -4.0), (" world", -2.0)])
    answer["choices"][0]["logprobs"]["tokens"][0] = ""  # OpenAI echoes no <bos>: drop it from the answer
    for key in ("tokens", "token_logprobs", "top_logprobs", "text_offset"):
        answer["choices"][0]["logprobs"][key] = answer["choices"][0]["logprobs"][key][1:]
    answer["choices"][0]["logprobs"]["text_offset"] = [0, 5]
    answer["choices"][0]["logprobs"]["token_logprobs"][0] = None
    fault.script.append(reply_json(200, answer))  # type: ignore[attr-defined]
    run = Run.from_json(run_cli("score", " world", "--context", "Hello", "-m", "davinci-002", "--base-url", fault.base_url,  # type: ignore[attr-defined]
                                "--dialect", "openai", "--json").stdout.decode())
    assert [s.chosen.text for s in run.steps] == [" world"] and run.usage["prompt_tokens"] == 1


# --- two models, one text -------------------------------------------------------------------------

def test_two_models_on_one_text(tmp_path: Path, second_model: Path) -> None:
    from tokviz.measures import align as scorediff
    from tokviz.run import RunSet

    text = " Paris is the capital of France, and the Seine runs through it."
    saved = tmp_path / "ab.json"
    outs = [tmp_path / f"ab.{ext}" for ext in ("txt", "svg", "png", "html")]
    args = ["score", text, "--context", PROMPT, "-m", "gemma-3-270m", "-m", str(second_model), "--save", str(saved)]
    for o in outs:
        args += ["-o", str(o)]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert "forks" in proc.stdout.decode() and "KL" in proc.stdout.decode()
    record = load_record(saved.read_text())
    assert isinstance(record, RunSet) and record.kind is RunKind.SCORE_COMPARISON
    a, b = record.runs
    segments = scorediff.align(a, b)
    assert "".join(g.text for g in segments) == text  # one vocabulary: every segment is one token in both
    assert all(g.tokens_a == g.tokens_b == 1 for g in segments)
    for g, sa, sb in zip(segments, a.steps, b.steps):
        assert g.delta == pytest.approx(sb.chosen.logprob - sa.chosen.logprob)
        assert g.kl is not None and g.kl >= 0
        assert g.fork == (sa.alternatives[0].id != sb.alternatives[0].id)
    assert any(abs(g.delta) > 0.01 for g in segments)  # a requantized model really differs
    assert outs[2].read_bytes().startswith(b"\x89PNG")
    again = tmp_path / "again.svg"
    assert run_cli("render", str(saved), "-o", str(again)).returncode == 0
    assert again.read_bytes() == outs[1].read_bytes()
    assert run_cli("score", "x", "-m", "a", "-m", "b", "-m", "c").returncode == 2


def test_segments_of_two_tokenizations_sum_their_tokens() -> None:
    """Different vocabularies: a segment spans the tokens of each model between shared boundaries."""
    from dataclasses import replace

    from tests.conftest import make_run
    from tokviz.measures import align as scorediff
    from tokviz.run import Step, Token

    def scored(pieces: list[tuple[str, float]]) -> Run:
        steps = tuple(Step(chosen=Token(text=t, raw=t.encode(), logprob=lp), alternatives=(Token(text=t, raw=t.encode(), logprob=lp),))
                      for t, lp in pieces)
        return replace(make_run([[("x", 0.5)]]), steps=steps, kind=RunKind.SCORE)

    a = scored([(" un", -1.0), ("believ", -2.0), ("able", -0.5), (" story", -1.5)])
    b = scored([(" unbeliev", -2.0), ("able", -0.25), (" st", -1.0), ("ory", -0.1)])
    segments = scorediff.align(a, b)
    assert [(g.text, g.tokens_a, g.tokens_b) for g in segments] == [(" un" + "believ", 2, 1), ("able", 1, 1), (" story", 1, 2)]
    assert [g.delta for g in segments] == pytest.approx([1.0, 0.25, 0.4])
    assert segments[0].kl is None and segments[1].kl is not None and not segments[1].fork
    import math

    p, q = math.exp(-0.5), math.exp(-0.25)  # "able": the shared token, then the rest bucket
    expected = p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))
    assert segments[1].kl == pytest.approx(expected)


def test_predict_score_with_judges_the_generated_text_under_another_model(second_model: Path) -> None:
    proc = run_cli("predict", PROMPT, "-n", "6", "-k", "3", "--score-with", str(second_model), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # one JSON document: the comparison, holding both runs
    assert doc["schema"] == "tokviz.score-comparison"
    a, b = doc["runs"]
    assert a["model"] == "gemma-3-270m" and b["model"] == str(second_model)
    generated = "".join(s["chosen"]["text"] for s in a["steps"])
    assert "".join(g["text"] for g in doc["segments"]) == generated
    local = pipeline.predict(pipeline.plan(Generation(max_tokens=6, top_k=3), PROMPT))
    assert [s["chosen"]["logprob"] for s in a["steps"]] == [s.chosen.logprob for s in local.steps]  # A: as generated


def test_a_context_and_a_text_without_a_space_between_are_joined_with_one_and_it_is_said() -> None:
    """`--context "Fact:" "Paris is…"` meant two words, not "Fact:Paris": joined with one space, the
    run records it, stderr says it once, and the table shows where the context ends."""
    proc = run_cli("score", "Paris is the capital of France.", "--context", "Fact:", "--json")
    run = Run.from_json(proc.stdout.decode())
    assert proc.returncode == 0 and run.steps[0].chosen.text == " Paris" and run.text.startswith(" Paris")
    assert "joined with one space" in run.source["joined"] and b"joined with one space" in proc.stderr
    explicit = run_cli("score", " Paris is the capital of France.", "--context", "Fact:", "--json")
    said = Run.from_json(explicit.stdout.decode())  # the same space typed by the user: the same figures, no note
    assert explicit.stderr == b"" and "joined" not in said.source
    assert [s.chosen.logprob for s in said.steps] == [s.chosen.logprob for s in run.steps]
    shown = run_cli("score", "Paris is the capital of France.", "--context", "Fact:").stdout.decode()
    assert "Fact:│ Paris is the capital" in shown and "the context ends here" in shown
    spaced = run_cli("score", "Paris is the capital of France.", "--context", "Fact: ", "--json")
    assert spaced.stderr == b"" and "joined" not in Run.from_json(spaced.stdout.decode()).source
