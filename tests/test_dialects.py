"""Every server dialect, replayed from fixtures written from its source, through every view.

For servers that cannot run here (vLLM, SGLang, Ollama, hosted APIs); llama.cpp's server and
llama-cpp-python's run for real in test_servers.py.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest

from tests import dialect_fixtures as fx
from tests import servers
from tests.conftest import run_cli
from tokviz import pipeline
from tokviz.ground.errors import ProviderError
from tokviz.providers.base import Request, TreeSpec
from tokviz.providers.openai import dialects
from tokviz.run import Params, Run
from tokviz.views import export


def serve(fault: servers.FaultServer, name: str) -> None:
    build, owned_by, _ = fx.DIALECTS[name]
    dialects.forget(fault.base_url)
    if owned_by:
        fault.pages["/v1/models"] = fx.models_page(owned_by)
    fault.script = [servers.reply_stream(build())]


def predict(fault: servers.FaultServer) -> Run:
    request = Request("Say hi", model="m", base_url=fault.base_url, retries=0, params=Params(top_k=3, max_tokens=3, mode="chat"))
    return pipeline.predict(request)


@pytest.mark.parametrize("name", sorted(fx.DIALECTS))
def test_each_dialect_is_detected_and_never_silently_wrong(fault: servers.FaultServer, name: str) -> None:
    serve(fault, name)
    run = predict(fault)
    assert run.source["dialect"] == fx.DIALECTS[name][2]
    assert run.text == fx.ANSWER  # the streamed text, never "Hi ���"
    assert len(run.steps) == 3
    first = run.steps[0]
    assert not first.chosen.lossy and first.chosen.raw == b"Hi"  # whole characters stay exact
    # the partial tokens are either exact (bytes the server really sent) or marked lossy
    for step, expected in zip(run.steps[1:], (b" \xf0\x9f", b"\x99\x82")):
        assert step.chosen.raw == expected or step.chosen.lossy or "lossy" in run.source, (name, step.chosen)
    assert "lossy" in run.source  # and the run says why
    for step in run.steps:  # never the chosen token twice among its alternatives
        same = [a for a in step.alternatives if a.raw == step.chosen.raw and a.text == step.chosen.text
                and a.logprob == step.chosen.logprob]
        assert len(same) <= 1


def test_two_partial_alternatives_with_equal_text_stay_two(fault: servers.FaultServer) -> None:
    serve(fault, "vllm")
    step = predict(fault).steps[1]
    shown = [a for a in step.alternatives if a.text == " \ufffd"]
    assert len(shown) == 2 and len(step.others()) == 2  # " there" and the other partial token


@pytest.mark.parametrize("name", sorted(fx.DIALECTS))
@pytest.mark.parametrize("fmt", ["txt", "dot", "json", "html"])
def test_every_view_marks_lossy_tokens(fault: servers.FaultServer, name: str, fmt: str) -> None:
    serve(fault, name)
    run = predict(fault)
    out = export.render(run, fmt).decode("utf-8")
    if fmt == "json":
        again = Run.from_json(out)
        assert again == run and json.loads(out)["schema_version"] == 2
        return
    assert "Hi" in out
    if any(t.lossy for s in run.steps for t in (s.chosen, *s.alternatives)):
        assert "≈" in out, fmt


def test_the_cli_warns_once_and_saves_the_streamed_text(fault: servers.FaultServer, tmp_path: Path) -> None:
    serve(fault, "vllm")
    saved = tmp_path / "run.json"
    proc = run_cli("predict", "Say hi", "-m", "m", "--base-url", fault.base_url, "--save", str(saved), "-q")
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.decode()
    assert err.count("warning") == 1 and "vLLM" in err and "≈" in err
    assert Run.from_json(saved.read_text()).text == fx.ANSWER


def test_a_null_logprob_is_the_floor_not_a_failure(fault: servers.FaultServer) -> None:
    chunks = servers.answer("ab")
    chunks[1]["choices"][0]["logprobs"]["content"][0]["logprob"] = None
    fault.script = [servers.reply_stream(chunks)]
    run = predict(fault)
    assert run.steps[0].chosen.logprob == -9999.0


def test_llama_servers_whole_character_on_its_last_token_reads_right_and_is_marked(fault: servers.FaultServer) -> None:
    """A character split across tokens arrives as one entry holding it whole: the answer reads
    "Hi 🙂" (it read "Hi��" when the alternative's own bytes were taken), and that entry's figure,
    which is the last token's alone, is marked and explained."""
    dialects.forget(fault.base_url)
    fault.pages["/v1/models"] = fx.models_page("llamacpp")
    fault.script = [servers.reply_stream(fx.llama_server_split())]
    run = predict(fault)
    assert run.source["dialect"] == "llama.cpp" and run.text == fx.ANSWER and len(run.steps) == 2
    merged = run.steps[1].chosen
    assert merged.raw == " 🙂".encode() and merged.lossy and merged.id == 30 and merged.logprob == -0.05
    assert not run.steps[0].chosen.lossy and "split across tokens" in run.source["lossy"]
    assert run.content is None  # the tokens hold the whole text: nothing to keep beside them


def test_tokens_that_do_not_add_up_to_the_streamed_text_are_marked_and_the_text_kept(fault: servers.FaultServer,
                                                                                    tmp_path: Path) -> None:
    """vLLM's raw BPE pieces ('æĺ¯' for '是'): every token marked, the streamed text is the run's
    text, and one warning says so."""
    dialects.forget(fault.base_url)
    fault.pages["/v1/models"] = fx.models_page("vllm")
    fault.script = [servers.reply_stream(fx.vllm_bpe_pieces())]
    saved = tmp_path / "run.json"
    proc = run_cli("predict", "x", "-m", "m", "--base-url", fault.base_url, "--save", str(saved), "-q")
    run = Run.from_json(saved.read_text())
    assert proc.returncode == 0 and proc.stderr.decode().count("warning") == 1 and b"does not add up" in proc.stderr
    assert run.text == "是你" and all(st.chosen.lossy for st in run.steps) and "add up" in run.source["lossy"]
    assert "≈" in export.render(run, "txt").decode()


def test_a_positive_logprob_costs_its_figure_not_the_answer(fault: servers.FaultServer) -> None:
    """Together has sent a positive "logprob" on a first token: that figure is kept as 100% and
    marked, the rest of the answer is shown, and the run says why."""
    chunks = servers.answer("ab")
    chunks[1]["choices"][0]["logprobs"]["content"][0]["logprob"] = 0.3
    fault.script = [servers.reply_stream(chunks)]
    run = predict(fault)
    assert run.text == "ab" and run.steps[0].chosen.lossy and run.steps[0].chosen.prob == 1.0
    assert not run.steps[1].chosen.lossy and "positive log-probability" in run.source["lossy"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "x"])
def test_impossible_logprobs_are_refused_in_one_line(fault: servers.FaultServer, bad: object) -> None:
    chunks = servers.answer("ab")
    chunks[1]["choices"][0]["logprobs"]["content"][0]["logprob"] = bad
    fault.script = [servers.reply_stream(chunks)]  # json.dumps writes NaN as NaN, which Python's json reads
    with pytest.raises(ProviderError, match="malformed"):
        predict(fault)


@pytest.mark.parametrize("shape", ["nothing", "cut"])
def test_an_answer_without_a_finish_reason_is_retried_then_fails(fault: servers.FaultServer, shape: str) -> None:
    full = servers.answer("hello")
    partial = [full[0]] if shape == "nothing" else full[:3]
    fault.script = [servers.reply_stream(partial), servers.reply_stream(full)]
    request = Request("x", model="m", base_url=fault.base_url, retries=1, params=Params(mode="chat"))
    assert pipeline.predict(request).text == "hello"  # the second answer is whole
    fault.received.clear()
    fault.script = [servers.reply_stream(partial)]
    with pytest.raises(ProviderError, match="no finish reason"):
        pipeline.predict(request)
    assert len(fault.received) == 2  # asked again once, then refused


def test_lm_studio_is_named_when_it_returns_no_logprobs(fault: servers.FaultServer) -> None:
    dialects.forget(fault.base_url)
    fault.pages["/v1/models"] = fx.models_page("organization_owner")
    with pytest.raises(ProviderError, match="LM Studio"):
        predict(fault)
    assert fault.received == []  # refused before sending the prompt


def test_a_base_url_without_v1_names_the_fix(fault: servers.FaultServer) -> None:
    fault.script = [servers.reply_error(404, "Not Found")]
    root = fault.base_url[: -len("/v1")]
    proc = run_cli("predict", "x", "-m", "m", "--base-url", root, "--retries", "0")
    assert proc.returncode == 1 and b"ends in /v1" in proc.stderr


def test_a_404_from_a_route_that_does_not_exist_is_not_a_missing_model(fault: servers.FaultServer) -> None:
    """FastAPI's {"detail": "Not Found"} (llama-cpp-python's server, vLLM) for a route it lacks was
    reported as "model 'm' was not found"."""
    fault.script = [servers.reply_json(404, {"detail": "Not Found"})]
    proc = run_cli("predict", "x", "-m", "m", "--base-url", fault.base_url + "/v1", "--retries", "0")
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "has no /v1/v1/chat/completions route" in err and "model" not in err.split("(")[0]


@pytest.mark.parametrize(("key", "says"), [("sk-abc\n", "whitespace"), ("sk-ab\u2013c", "non-ASCII")])
def test_a_damaged_key_is_named(fault: servers.FaultServer, key: str, says: str) -> None:
    proc = run_cli("predict", "x", "-m", "gpt-4.1-mini", "--base-url", fault.base_url, env={"OPENAI_API_KEY": key})
    assert proc.returncode == 2 and says in proc.stderr.decode()
    assert fault.received == []


@pytest.mark.parametrize("url", ["localhost:8000/v1", "http://127.0.0.1:notaport/v1", "ftp://x/v1", "http://[::1"])
def test_a_malformed_base_url_is_a_usage_error(url: str) -> None:
    proc = run_cli("predict", "x", "-m", "m", "--base-url", url)
    assert proc.returncode == 2 and b"--base-url" in proc.stderr and b"internal error" not in proc.stderr


def test_a_tree_from_a_server_without_completion_logprobs_fails_instead_of_an_empty_tree(fault: servers.FaultServer) -> None:
    dialects.forget(fault.base_url)
    fault.script = [servers.reply_json(200, {"id": "c", "object": "text_completion", "model": "m",
                                             "choices": [{"index": 0, "text": " the", "logprobs": None, "finish_reason": "length"}]})]
    proc = run_cli("tree", "x", "-m", "m", "--base-url", fault.base_url, "--depth", "2")
    assert proc.returncode == 1 and b"no alternatives" in proc.stderr


def test_dialect_flag_overrides_detection(fault: servers.FaultServer) -> None:
    dialects.forget(fault.base_url)
    fault.pages["/v1/models"] = fx.models_page("vllm")
    fault.script = [servers.reply_stream(fx.sglang())]
    proc = run_cli("predict", "x", "-m", "m", "--base-url", fault.base_url, "--dialect", "sglang", "--json")
    assert proc.returncode == 0, proc.stderr
    assert Run.from_json(proc.stdout.decode()).source["dialect"] == "sglang"  # not the vllm it would detect
    assert run_cli("predict", "x", "--dialect", "vllm").returncode == 2  # the local model has none


def test_a_tree_never_sends_a_lossy_token_back_as_text(fault: servers.FaultServer) -> None:
    """A node whose token came back as U+FFFD (vLLM's legacy completions shape) is not expanded:
    its text would ask about another prompt. The run says how many were left, and no request ever
    held U+FFFD."""
    dialects.forget(fault.base_url)
    fault.pages["/v1/models"] = fx.models_page("vllm")

    def answer(body: dict[str, object]) -> servers.Handler:
        first = body["prompt"] == "Say"
        tops = {" hi": -0.4, " \ufffd": -1.2} if first else {"!": -0.1, ".": -2.5}
        best = next(iter(tops))
        return servers.reply_json(200, {"id": "cmpl-x", "object": "text_completion", "created": 0, "model": "m", "choices": [
            {"index": 0, "text": best, "finish_reason": "length",
             "logprobs": {"tokens": [best], "token_logprobs": [tops[best]], "top_logprobs": [tops], "text_offset": [0]}}]})

    fault.route = answer
    run = pipeline.tree(Request("Say", model="m", base_url=fault.base_url, retries=0, params=Params(top_k=2, mode="raw")),
                        TreeSpec(depth=2, branch=2))
    prompts = [r.body.get("prompt") for r in fault.received]
    assert prompts and all("\ufffd" not in str(p) for p in prompts)
    lossy = [i for i, n in enumerate(run.nodes) if n.token.lossy]
    assert lossy and not any(n.parent in lossy for n in run.nodes)  # nothing grown under it
    assert any(n.parent >= 0 and run.nodes[n.parent].token.text == " hi" for n in run.nodes)  # the exact one was
    assert run.tree is not None and "1 node(s) not expanded" in (run.tree.approximation or "")


@pytest.mark.parametrize(("owned_by", "figures"), [("sglang", "after temperature"), ("vllm", "before sampling"),
                                                   (None, "unknown")])
def test_what_the_figures_are_is_recorded_per_dialect_and_shown(fault: servers.FaultServer, owned_by: str | None,
                                                                 figures: str) -> None:
    """SGLang reports after temperature, vLLM before sampling (its default mode), a server tokviz
    cannot name "unknown": recorded in the run and said in the table, the HTML page and the graph."""
    dialects.forget(fault.base_url)
    if owned_by:
        fault.pages["/v1/models"] = fx.models_page(owned_by)
    fault.script = [servers.reply_stream(servers.answer("ab"))]
    run = predict(fault)
    assert run.figures.startswith(figures)
    for fmt in ("txt", "html", "dot"):
        shown = " ".join(html.unescape(export.render(run, fmt).decode()).replace("\\l", " ").split())
        assert run.figures_note in shown, fmt
    assert ("not known" in run.figures_note) == (figures == "unknown")


def test_top_k_is_capped_by_the_dialect_not_the_provider(fault: servers.FaultServer) -> None:
    """20 alternatives is OpenAI's (and Ollama's) limit, not llama-server's or vLLM's."""
    proc = run_cli("predict", "x", "-m", "gpt-4.1-mini", "-k", "21", env={"OPENAI_API_KEY": "sk-test"},
                   )
    assert proc.returncode == 2 and b"at most 20 on OpenAI" in proc.stderr
    dialects.forget(fault.base_url)
    fault.pages["/v1/models"] = fx.models_page("vllm")
    fault.script = [servers.reply_stream(servers.answer("ab"))]
    run = pipeline.predict(Request("x", model="m", base_url=fault.base_url, retries=0,
                                   params=Params(top_k=40, max_tokens=2, mode="chat")))
    assert fault.received[-1].body["top_logprobs"] == 40 and run.text == "ab"


def test_with_no_model_named_a_run_is_labelled_with_what_the_server_serves(fault: servers.FaultServer) -> None:
    """No --model with --base-url: the one model /v1/models lists, not tokviz's embedded default;
    a server listing several (or none) is asked to be told which."""
    dialects.forget(fault.base_url)
    fault.pages["/v1/models"] = {"object": "list", "data": [{"id": "qwen2.5-7b", "object": "model", "owned_by": "vllm"}]}
    fault.script = [servers.reply_stream(servers.answer("ab"))]
    proc = run_cli("predict", "x", "--base-url", fault.base_url, "--json")
    assert proc.returncode == 0, proc.stderr
    assert Run.from_json(proc.stdout.decode()).model == "qwen2.5-7b" and fault.received[-1].body["model"] == "qwen2.5-7b"
    fault.pages["/v1/models"] = {"object": "list", "data": [{"id": "a", "owned_by": "vllm"}, {"id": "b", "owned_by": "vllm"}]}
    other = servers.FaultServer(pages=fault.pages)
    try:
        two = run_cli("predict", "x", "--base-url", other.base_url)
        assert two.returncode == 2 and b"serves 2 models (a, b): name one with --model" in two.stderr
    finally:
        other.close()


@pytest.mark.parametrize(("version", "ok"), [("0.12.10", False), ("0.12.11", True), ("0.13.2", True)])
def test_ollama_gives_log_probabilities_from_v0_12_11_on(fault: servers.FaultServer, version: str, ok: bool) -> None:
    """ollama/ollama PR #12899 (v0.12.11): logprobs on /v1/chat/completions and /v1/completions (the
    chat shape on both). An older Ollama is refused in one line naming the version needed."""
    dialects.forget(fault.base_url)
    fault.pages["/v1/models"] = fx.models_page("library")
    fault.pages["/api/version"] = {"version": version}
    fault.script = [servers.reply_stream(servers.answer("ab"))]
    proc = run_cli("predict", "x", "-m", "llama3.2", "--base-url", fault.base_url, "--raw", "--json")
    if ok:
        assert proc.returncode == 0 and Run.from_json(proc.stdout.decode()).text == "ab"
        assert fault.received[-1].path == "/v1/completions"
    else:
        assert proc.returncode == 1 and b"Ollama 0.12.10 returns no log-probabilities (they came in v0.12.11)" in proc.stderr
        assert fault.received == []


# --- vLLM 0.32 as the real server sends it (issue 34) ----------------------------------------------

def _vllm(fault: servers.FaultServer, chunks: list[dict[str, object]], **params: object) -> Run:
    dialects.forget(fault.base_url)
    fault.pages["/v1/models"] = fx.models_page("vllm")
    fault.script = [servers.reply_stream(chunks)]
    p = Params(**{"top_k": 2, "max_tokens": 4, "mode": "chat", **params})  # type: ignore[arg-type]
    return pipeline.predict(Request("Say hi", model="m", base_url=fault.base_url, retries=0, params=p))


def test_vllms_empty_pieces_and_its_whole_character_on_the_last_token_are_marked(fault: servers.FaultServer) -> None:
    run = _vllm(fault, fx.vllm_032())
    assert run.text == "Hi 🙂"
    piece, whole = run.steps[2], run.steps[3]
    assert piece.chosen.lossy and piece.chosen.raw == b""  # "" and [] is no token's bytes
    assert all(a.lossy for a in piece.alternatives)
    assert whole.chosen.lossy and whole.chosen.text == "🙂"  # whole, but its figure is the last byte's
    assert all(a.lossy for a in whole.alternatives)  # alternatives spelled whole by the same correction
    assert not run.steps[1].chosen.lossy and "whole on the token that completes it" in run.source["lossy"]
    table = export.render(run, "txt").decode()
    assert "≈" in table


def test_vllms_injected_chosen_token_gets_no_invented_rank(fault: servers.FaultServer) -> None:
    """vLLM adds the chosen token to the top-k list when it lies outside it: k + 1 entries. Its
    rank is unknown, not k + 1."""
    from tokviz.measures.compare import rank_in

    run = _vllm(fault, fx.vllm_032())
    first = run.steps[0]
    assert len(first.alternatives) == 2 and all(a.text != "Hi" for a in first.alternatives)
    assert rank_in(first) is None and first.rank is None


def test_vllms_processed_logprobs_are_after_sampling_and_its_fillers_no_tokens(fault: servers.FaultServer) -> None:
    run = _vllm(fault, fx.vllm_032(fillers=True), temperature=0.8, top_p=0.5, seed=1)
    assert run.source["figures"] == "after sampling" and "processed_logprobs" in run.source["logprobs"]
    assert all(a.logprob > -9999 for st in run.steps for a in st.alternatives)
    assert "<pad>" not in export.render(run, "txt").decode()


def test_every_chosen_token_certain_beside_real_alternatives_is_refused(fault: servers.FaultServer) -> None:
    with pytest.raises(ProviderError) as caught:
        _vllm(fault, fx.vllm_032(all_zero=True))
    assert "exactly 0" in caught.value.line() and "draft model" in caught.value.line()


def test_k_over_vllms_limit_is_one_line_and_not_retried(fault: servers.FaultServer) -> None:
    message = "Requested sample logprobs of 25, which is greater than max allowed: 20"
    dialects.forget(fault.base_url)
    fault.pages["/v1/models"] = fx.models_page("vllm")
    fault.script = [servers.reply_stream(fx.vllm_error_event(message))]
    proc = run_cli("predict", "x", "-m", "m", "--base-url", fault.base_url, "-k", "25", "--chat")
    err = proc.stderr.decode()
    assert proc.returncode == 1 and err.count("\n") == 1 and "25" in err and "max allowed: 20" in err
    assert "--max-logprobs" in err and "try again" not in err
    assert len(fault.received) == 1  # not retried as a cut stream


def test_vllms_split_character_and_a_byte_level_engine_are_within_noise() -> None:
    """The same weights: vLLM's "" + whole-character entries against an engine that gives each
    byte token its own bytes (transformers) — aligned on the character, the figures agree."""
    from tokviz.measures.compare import Tolerance, Verdict, compare_steps
    from tokviz.run import Step, Token

    def step(raw: bytes, lp: float, text: str | None = None, lossy: bool = False) -> Step:
        t = Token(text=raw.decode("utf-8", "replace") if text is None else text, raw=raw, logprob=lp, lossy=lossy)
        return Step(chosen=t, alternatives=(t,))

    served = [step(b"Hi", -0.1), step(b" ", -0.2), step(b"", -0.3, "", True), step("🙂".encode(), -0.05, "🙂", True),
              step(b"!", -0.4)]
    engine = [step(b"Hi", -0.1), step(b" ", -0.2), step(b"\xf0\x9f", -0.3), step(b"\x99\x82", -0.05), step(b"!", -0.4)]
    c = compare_steps(served, engine, name="x", kind="predict", label_a="vllm", label_b="transformers",
                      tolerance=Tolerance())
    assert c.verdict is not Verdict.CHANGED, c.reasons
    assert max(abs(p.delta) for p in c.positions) < 1e-9


# --- the Responses API (--api responses) ------------------------------------------------------------

def test_the_responses_api_gives_exact_steps_from_its_answer(fault: servers.FaultServer) -> None:
    fault.script = [servers.reply_json(200, fx.responses_answer(status="incomplete"))]
    proc = run_cli("predict", "Say hi", "-m", "m", "--base-url", fault.base_url, "--api", "responses", "-k", "3",
                   "-n", "3", "--system", "Be brief.", "--json")
    assert proc.returncode == 0, proc.stderr
    run = Run.from_json(proc.stdout.decode())
    sent = fault.received[-1]
    assert sent.path == "/v1/responses" and sent.body["include"] == ["message.output_text.logprobs"]
    assert sent.body["top_logprobs"] == 3 and sent.body["instructions"] == "Be brief." and "stream" not in sent.body
    assert [st.chosen.raw for st in run.steps] == [s[0][0] for s in fx.STEPS]  # the bytes it sent: exact
    assert run.text == fx.ANSWER and run.finish_reason == "length" and run.source["api"] == "responses"
    assert "api" not in sent.body and run.params.options["api"] == "responses"


def test_a_responses_answer_without_logprobs_is_refused_naming_chat(fault: servers.FaultServer) -> None:
    fault.script = [servers.reply_json(200, fx.responses_answer(with_logprobs=False))]
    proc = run_cli("predict", "Say hi", "-m", "m", "--base-url", fault.base_url, "--api", "responses")
    err = proc.stderr.decode()
    assert proc.returncode == 1 and err.count("\n") == 1 and "/v1/chat/completions" in err and "--api chat" in err


def test_the_responses_api_refuses_raw_text_and_other_providers() -> None:
    raw = run_cli("predict", "x", "-m", "m", "--base-url", "http://127.0.0.1:9/v1", "--api", "responses", "--raw")
    assert raw.returncode == 2 and b"--raw" in raw.stderr
    local = run_cli("predict", "x", "--api", "responses")
    assert local.returncode == 2 and b"--api is for" in local.stderr
