"""`predict --choice`: given answers weighed, each figure held against an independent computation.

Exact engines against `score --exact` of context + choice and against `predict`'s first step; the
bound from a top-k list against the exact figures of the same model (a bound must never undercut
the truth); a server that cannot echo, through the fixture below, never shown a bound as a figure.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from tests import servers
from tests.conftest import run_cli
from tokviz import pipeline
from tokviz.measures.choices import verdict
from tokviz.providers.base import ScoreSpec
from tokviz.providers.choices import from_step
from tokviz.run import RunKind, RunSet, load_record
from tokviz.run.generation import Generation

pytest_plugins = ["pytester"]

PROMPT = "Question: Is Paris the capital of France? Answer:"
CHOICES = [" Yes", " No", " Maybe not at all", " Oui"]


def _weigh(prompt: str, choices: list[str], **gen: Any) -> RunSet:
    return pipeline.weigh(pipeline.plan(Generation(**gen), prompt), choices)


@pytest.mark.parametrize("provider", ["local", "transformers"])
def test_each_choice_sums_to_score_exact_of_context_and_choice(provider: str) -> None:
    record = _weigh(PROMPT, CHOICES, provider=provider, top_k=5)
    assert record.kind is RunKind.CHOICES and len(record.runs) == len(CHOICES)
    v = verdict(record)
    for choice, w in zip(CHOICES, v.choices):
        scored = pipeline.score(pipeline.plan(Generation(provider=provider, top_k=5), PROMPT), choice,
                                spec=ScoreSpec(exact=True))
        assert w.choice == choice and w.exact and w.text == choice
        assert [s.chosen.id for s in record.runs[CHOICES.index(choice)].steps] == [s.chosen.id for s in scored.steps]
        assert w.logprob == pytest.approx(math.fsum(s.chosen.logprob for s in scored.steps), abs=1e-4)
    assert v.choices[2].tokens > 1  # a multi-token answer is summed over its tokens
    assert sum(v.shares or ()) == pytest.approx(1.0)
    assert v.rest == pytest.approx(1 - sum(w.prob for w in v.choices), abs=1e-9)
    best = max(range(len(CHOICES)), key=lambda i: v.choices[i].logprob)
    assert v.acc == best
    assert v.acc_norm == max(range(len(CHOICES)), key=lambda i: v.choices[i].logprob / len(CHOICES[i].encode()))


def test_single_token_choices_equal_predicts_first_alternatives() -> None:
    run = pipeline.predict(pipeline.plan(Generation(top_k=20, max_tokens=1), PROMPT))
    listed = {a.text: a for a in run.steps[0].alternatives}
    singles = [t for t in (" Yes", " No", " yes") if t in listed]
    assert len(singles) >= 2
    record = _weigh(PROMPT, singles, top_k=20)
    for r, choice in zip(record.runs, singles):
        assert len(r.steps) == 1 and r.steps[0].chosen.id == listed[choice].id
        assert r.steps[0].chosen.logprob == pytest.approx(listed[choice].logprob, abs=1e-4)
    greedy = verdict(record).choices
    assert [w.greedy for w in greedy] == [run.steps[0].chosen.text == c for c in singles]


def test_trailing_whitespace_moves_into_each_choice_as_lm_eval_does() -> None:
    spaced = _weigh(PROMPT + " ", ["Yes", "No"], top_k=3)
    plain = _weigh(PROMPT, [" Yes", " No"], top_k=3)
    for a, b in zip(spaced.runs, plain.runs):
        assert a.source["choice_moved"] and "choice_moved" not in b.source
        assert [s.chosen.id for s in a.steps] == [s.chosen.id for s in b.steps]
        assert a.steps[0].chosen.logprob == b.steps[0].chosen.logprob
    assert [w.choice for w in verdict(spaced).choices] == ["Yes", "No"]
    assert [w.text for w in verdict(spaced).choices] == [" Yes", " No"]


def test_the_prompt_is_read_once_for_all_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    """N choices cost one reading of the prompt plus each choice's own tokens, not N prefills."""
    from llama_cpp import Llama

    _weigh(PROMPT, [" a", " b"])  # the model loaded before counting
    fed: list[int] = []
    real = Llama.eval

    def counting(self: Llama, tokens: Any) -> None:
        fed.append(len(tokens))
        return real(self, tokens)

    monkeypatch.setattr(Llama, "eval", counting)
    record = _weigh("A different prompt, not cached: " + PROMPT, CHOICES, top_k=3)
    prompt_tokens = record.runs[0].usage["prompt_tokens"]
    own = sum(len(r.steps) - 1 for r in record.runs)  # a choice's last token needs no decode
    assert sum(fed) == prompt_tokens + own
    assert max(fed) == prompt_tokens


def test_a_bound_from_the_top_k_never_undercuts_the_exact_figure() -> None:
    """The rule a provider that lists only the top k is held to, checked on the model whose exact
    figures are known: every bound at least the truth, every exact figure the truth."""
    choices = [" Yes", " No", " Maybe not at all", " Oui", " Yesterday", " Absolutely", " N"]
    exact = verdict(_weigh(PROMPT, choices, top_k=5)).choices
    for k in (1, 3, 20):
        step = pipeline.predict(pipeline.plan(Generation(top_k=k, max_tokens=1), PROMPT)).steps[0]
        request = pipeline.plan(Generation(top_k=k), PROMPT).request
        bounded = verdict(RunSet(kind=RunKind.CHOICES, runs=tuple(from_step(request, step, choices, provider="local",
                                                                            model="m"))))
        for truth, got in zip(exact, bounded.choices):
            if got.exact:
                assert got.logprob == pytest.approx(truth.logprob, abs=1e-4) and truth.tokens == 1
            else:
                assert got.logprob >= truth.logprob - 1e-6, (k, truth.choice)
        assert any(not w.exact for w in bounded.choices)
        assert bounded.shares is None


def _stream(tops: list[tuple[str, float]]) -> list[dict[str, Any]]:
    """One generated token with its top list, in Chat Completions' streamed shape (openai-python's
    openai/types/chat/chat_completion_chunk.py: delta, logprobs.content[].top_logprobs)."""
    base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4.1-mini"}

    def item(text: str, lp: float) -> dict[str, Any]:
        return {"token": text, "logprob": lp, "bytes": list(text.encode())}

    first = tops[0]
    return [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                  "finish_reason": None}]},
            {**base, "choices": [{"index": 0, "delta": {"content": first[0]}, "finish_reason": None,
                                  "logprobs": {"content": [{**item(*first), "top_logprobs": [item(*t) for t in tops]}]}}]},
            {**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}]}]


def test_a_server_that_lists_only_the_top_k_gives_bounds_never_figures(fault: servers.FaultServer) -> None:
    tops = [(" Yes", -0.5), (" No", -1.2), (" Ye", -2.0), (" Maybe", -3.0)]
    fault.script = [servers.reply_stream(_stream(tops))]  # type: ignore[attr-defined]
    proc = run_cli("predict", PROMPT, "--base-url", fault.base_url, "-m", "gpt-4.1-mini", "--chat", "--json",
                   "--choice", " Yes", "--choice", " Yesterday", "--choice", " Absolutely", "--choice", " Maybe so",
                   env={"OPENAI_API_KEY": "sk-test"})
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    got = {c["choice"]: c for c in doc["choices"]}
    assert got[" Yes"]["figure"] == "exact" and got[" Yes"]["logprob"] == -0.5
    assert got[" Yesterday"]["figure"] == "upper bound" and got[" Yesterday"]["logprob"] == -0.5  # " Yes" or " Ye" first
    assert got[" Absolutely"]["figure"] == "upper bound" and got[" Absolutely"]["logprob"] == -3.0  # not listed
    assert got[" Maybe so"]["figure"] == "upper bound" and got[" Maybe so"]["logprob"] == -3.0
    # " Yesterday" can at most tie " Yes" (its first token's figure), so " Yes" wins acc; per byte the
    # longer answer's bound (−0.05) beats " Yes" (−0.125), so acc_norm is not known
    assert doc["winner"] == {"acc": " Yes", "acc_norm": None}
    assert all(c["share"] is None for c in doc["choices"]) and doc["rest_is_at_least"]
    sent = fault.received[-1].body  # type: ignore[attr-defined]
    assert sent["max_completion_tokens" if "max_completion_tokens" in sent else "max_tokens"] == 1
    assert sent["top_logprobs"] == 20
    table = run_cli("predict", PROMPT, "--base-url", fault.base_url, "-m", "gpt-4.1-mini", "--chat", "--choice", " Yes",
                    "--choice", " Absolutely", env={"OPENAI_API_KEY": "sk-test"}, width=120).stdout.decode()
    assert "< 5.0%" in table and "≤ -3.000" in table and "upper bound" in table


def test_an_echoing_server_scores_each_choice_exactly(llama_server: str) -> None:
    """llama-cpp-python's real server echoes prompt logprobs: each choice equals its own score."""
    record = pipeline.weigh(pipeline.plan(Generation(base_url=llama_server, model="gemma-3-270m", raw=True, top_k=3),
                                          PROMPT), [" Yes", " Maybe not at all"])
    for r, choice in zip(record.runs, [" Yes", " Maybe not at all"]):
        scored = pipeline.score(pipeline.plan(Generation(base_url=llama_server, model="gemma-3-270m", top_k=3), PROMPT),
                                choice)
        assert r.source["choice_figure"] == "exact" and r.text == choice
        assert [s.chosen.logprob for s in r.steps] == [s.chosen.logprob for s in scored.steps]


def test_llama_server_bounds_what_it_cannot_read(llama_cpp_server: str) -> None:
    """llama.cpp's own server has no echo: one token with its top 20, multi-token answers bounded."""
    record = pipeline.weigh(pipeline.plan(Generation(base_url=llama_cpp_server, model="gemma-3-270m", raw=True),
                                          PROMPT), [" Yes", " Maybe not at all"])
    yes, maybe = verdict(record).choices
    assert yes.exact and not maybe.exact and maybe.tokens == 1
    assert "upper bound" in record.runs[1].source["choice_figure"]


def test_the_command_draws_every_view_and_render_redraws_them(tmp_path: Path) -> None:
    outs = [tmp_path / f"c.{ext}" for ext in ("svg", "png", "html", "txt", "json")]
    choices_file = tmp_path / "choices.txt"
    choices_file.write_text(" positive\n negative\n\n neutral\n")
    args = ["predict", "The movie was wonderful. Sentiment:", "--choices-file", str(choices_file), "-k", "3"]
    for o in outs:
        args += ["-o", str(o)]
    proc = run_cli(*args, width=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert "␣positive" in out and "acc (the largest summed logprob)" in out and "left to every other continuation" in out
    assert outs[1].read_bytes().startswith(b"\x89PNG")
    assert "<svg" in outs[0].read_text() and "How likely is each answer?" in outs[0].read_text()
    page = outs[2].read_text()
    assert "␣positive" in page and "share" in page
    record = load_record(outs[4].read_text())
    assert isinstance(record, RunSet) and record.kind is RunKind.CHOICES
    assert [r.source["choice"] for r in record.runs] == [" positive", " negative", " neutral"]
    for o in outs[:4]:
        again = tmp_path / f"again{o.suffix}"
        assert run_cli("render", str(outs[4]), "-o", str(again)).returncode == 0
        assert again.read_bytes() == o.read_bytes()


@pytest.mark.parametrize(("args", "says"), [
    (["--choice", " yes"], "at least two"),
    (["--choice", " yes", "--choice", ""], "a choice is empty"),
    (["--choice", " yes", "--choice", " yes"], "given twice"),
    (["--choices-file", "/nonexistent/c.txt"], "does not exist"),
    (["--choice", " a", "--choice", " b", "--score-with", "gemma-3-270m"], "does not go with"),
    (["--choice", " a", "--choice", " b", "-o", "x.dot"], "cannot be drawn as .dot"),
])
def test_bad_choices_are_one_line(args: list[str], says: str) -> None:
    proc = run_cli("predict", PROMPT, *args)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.decode()
    assert says in err and "Traceback" not in err


def test_the_notebook_api() -> None:
    import tokviz

    c = tokviz.choices("The sky is", [" blue", " green"])
    assert c.winner == " blue" and set(c.shares or {}) == {" blue", " green"}
    assert c.probs[" blue"] == pytest.approx(math.exp(verdict(c.record).choices[0].logprob))
    assert "how likely is each answer" in c._repr_html_()


def _as_choices(runs: list[Any], like: RunSet) -> RunSet:
    """Scored runs dressed as `like`'s choices (the same notes), for a second engine's reading."""
    from dataclasses import replace

    return RunSet(kind=RunKind.CHOICES, runs=tuple(replace(r, source={**r.source, **{k: v for k, v in o.source.items()
                                                                                    if k.startswith("choice")}})
                                                   for r, o in zip(runs, like.runs)))


def test_diff_of_choices_tells_noise_from_change(tmp_path: Path) -> None:
    """The same answers weighed serially and through the fast scorer's batched decoding are within
    noise; a moved share or a new winner is a change, said with both figures."""
    from dataclasses import replace

    from tokviz.measures.compare import Tolerance, Verdict, compare_records

    choices = [" George Washington", " Abraham Lincoln", " Thomas Jefferson"]
    prompt = "The first president of the United States was"
    serial = _weigh(prompt, choices, top_k=3)
    batched = _as_choices([pipeline.score(pipeline.plan(Generation(top_k=3), prompt), c) for c in choices], serial)
    same = compare_records(serial, serial, Tolerance())[0]
    assert same.verdict is Verdict.IDENTICAL and same.kind == "choices"
    noise = compare_records(serial, batched, Tolerance())[0]
    assert noise.verdict is Verdict.WITHIN_NOISE, noise.reasons
    assert compare_records(serial, batched, Tolerance(share_points=0.1))[0].verdict is Verdict.CHANGED  # it did move

    def shifted(record: RunSet, n: int, by: float) -> RunSet:  # one answer's first token made likelier
        runs = list(record.runs)
        step = runs[n].steps[0]
        runs[n] = replace(runs[n], steps=(replace(step, chosen=replace(step.chosen, logprob=min(0.0, step.chosen.logprob + by))),
                                          *runs[n].steps[1:]))
        return RunSet(kind=RunKind.CHOICES, runs=tuple(runs))

    changed = compare_records(serial, shifted(serial, 0, 6.0), Tolerance())[0]
    assert changed.verdict is Verdict.CHANGED
    assert any("winner changed" in r for r in changed.reasons) and any("share of" in r for r in changed.reasons)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(serial.to_json())
    b.write_text(shifted(serial, 0, 6.0).to_json())
    proc = run_cli("diff", str(a), str(b), "-o", str(tmp_path / "r.html"))
    assert proc.returncode == 1 and "winner changed" in proc.stdout.decode()
    assert run_cli("diff", str(a), str(a)).returncode == 0


def test_check_weighs_a_choices_golden_again(tmp_path: Path) -> None:
    golden = tmp_path / "g.json"
    golden.write_text(_weigh(PROMPT, [" Yes", " No"], top_k=3).to_json())
    proc = run_cli("check", str(golden))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "identical" in proc.stdout.decode()


def test_the_pytest_plugin_takes_a_choices_record(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_c="""
import tokviz

def test_sky(tokviz_golden):
    tokviz_golden.check(tokviz.choices("The sky is", [" blue", " green"]))
""")
    pytester.runpytest_subprocess("--tokviz-update").assert_outcomes(passed=1, warnings=1)
    pytester.runpytest_subprocess().assert_outcomes(passed=1)
    golden = next(pytester.path.rglob("*.json"))
    assert '"schema": "tokviz.choices"' in golden.read_text()


def test_a_batch_weighs_the_lines_that_carry_choices(tmp_path: Path) -> None:
    lines = [{"id": "s1", "prompt": "The movie was wonderful. Sentiment:", "choices": [" positive", " negative"]},
             {"id": "g", "prompt": "The capital of France is", "max_tokens": 3},
             {"id": "bad", "prompt": "x", "choices": [" only one"]},
             {"prompt": "Dogs are", "choices": [" mammals", " birds", " fish"]}]
    source = tmp_path / "p.jsonl"
    source.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    out = tmp_path / "out"
    proc = run_cli("batch", str(source), "-o", str(out), "-f", "json,svg,dot")
    assert proc.returncode == 1, proc.stderr  # one line failed, the others are done
    items = {i["name"].split("-")[0]: i for i in json.loads((out / "index.json").read_text())["items"]}
    s1 = items["s1"]
    want = verdict(_weigh(lines[0]["prompt"], lines[0]["choices"]))
    assert s1["choices"]["winner"] == want.choices[want.acc].choice and s1["text"] == s1["choices"]["winner"]
    assert s1["choices"]["share"] == pytest.approx(max(want.shares or ()), abs=1e-6)
    assert set(s1["files"]) == {"json", "svg"}  # weighed answers have no token graph
    assert items["g"]["files"].keys() == {"json", "svg", "dot"} and "choices" not in items["g"]
    assert items["bad"]["status"] == "failed" and "at least two" in items["bad"]["error"]
    assert items["dogs"]["choices"]["winner"] == " mammals"
    record = load_record((out / "s1.json").read_text())
    assert isinstance(record, RunSet) and [r.steps for r in record.runs] == [r.steps for r in _weigh(
        lines[0]["prompt"], lines[0]["choices"]).runs]
    assert "winner: ' positive'" in (out / "index.md").read_text() or "winner: ' negative'" in (out / "index.md").read_text()
    again = run_cli("batch", str(source), "-o", str(out), "-f", "json,svg,dot")
    assert "0 generated" in again.stderr.decode()
    lines[0]["choices"] = [" positive", " negative", " mixed"]  # the same id, other answers: asked again
    source.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    third = run_cli("batch", str(source), "-o", str(out), "-f", "json,svg,dot")
    assert "1 generated" in third.stderr.decode()
    assert [r.source["choice"] for r in load_record((out / "s1.json").read_text()).runs] == lines[0]["choices"]
    twin = tmp_path / "twin"
    run_cli("batch", str(source), "-o", str(twin), "-f", "json")
    assert run_cli("diff", str(out), str(twin)).returncode == 0


def test_in_chat_the_choices_continue_the_models_turn() -> None:
    question = "Is Paris the capital of France? Answer yes or no."
    run = pipeline.predict(pipeline.plan(Generation(top_k=20, max_tokens=1, chat=True), question))
    listed = {a.text: a for a in run.steps[0].alternatives if a.raw and a.text.strip()}
    singles = list(listed)[:3]  # the base model's own first choices in the model's turn, whatever they are
    assert len(singles) == 3
    record = _weigh(question, singles, top_k=20, chat=True)
    for r, choice in zip(record.runs, singles):
        assert r.params.mode == "chat" and "choice_moved" not in r.source
        assert r.steps[0].chosen.logprob == pytest.approx(listed[choice].logprob, abs=1e-4)
