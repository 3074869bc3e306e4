"""The OpenAI provider through the real `openai` SDK: a real server, documented shapes, faults."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests import servers
from tests.conftest import run_cli
from tokviz import pipeline
from tokviz.ground.errors import ProviderError, UsageError
from tokviz.providers.base import Request
from tokviz.providers.registry import infer_provider
from tokviz.run import Params, Run

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "sk-test-SECRET-abcdefghij1234567890"


def fixture(name: str) -> object:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def predict_via(base_url: str, prompt: str = "The capital of France is", model: str = "gemma-3-270m",
                retries: int = 0, timeout: float = 30.0, **params: object) -> Run:
    params.setdefault("mode", "chat")  # a server's default, as the CLI chooses it
    request = Request(prompt=prompt, model=model, params=Params(**params), base_url=base_url,  # type: ignore[arg-type]
                      retries=retries, timeout=timeout)
    return pipeline.predict(request)


# --- a real OpenAI-compatible server ------------------------------------------------------------

def test_real_server_run_has_every_token_and_its_alternatives(llama_server: str) -> None:
    run = predict_via(llama_server, max_tokens=4, top_k=3)
    assert run.provider == "openai" and run.params.mode == "chat"
    assert [m.role for m in run.messages] == ["user"]
    assert len(run.steps) == 4
    for step in run.steps:
        assert len(step.alternatives) == 3
        assert step.chosen.logprob == pytest.approx(step.alternatives[0].logprob)  # greedy
        assert [a.logprob for a in step.alternatives] == sorted((a.logprob for a in step.alternatives), reverse=True)
    assert run.timings["ttft_s"] > 0 and run.finish_reason == "length"


def test_real_server_agrees_with_the_local_provider(llama_server: str) -> None:
    """The server wraps the prompt in Gemma's turns as tokviz's local --chat does: same tokens,
    same log-probabilities (up to float noise between two llama.cpp code paths)."""
    remote = predict_via(llama_server, max_tokens=4, top_k=3)
    here = pipeline.predict(Request("The capital of France is", params=Params(max_tokens=4, top_k=3, mode="chat")))
    assert [s.chosen.raw for s in remote.steps] == [s.chosen.raw for s in here.steps]
    for a, b in zip(remote.steps, here.steps):
        assert a.chosen.logprob == pytest.approx(b.chosen.logprob, abs=2e-2)


def test_cli_against_a_keyless_local_server(llama_server: str, tmp_path: Path) -> None:
    out = tmp_path / "g.svg"
    proc = run_cli("predict", "The capital of France is", "--base-url", llama_server, "--model", "gemma-3-270m",
                   "-n", "3", "-o", str(out), "--json", env={"OPENAI_API_KEY": ""})
    assert proc.returncode == 0, proc.stderr
    run = Run.from_json(proc.stdout.decode())
    assert run.provider == "openai" and len(run.steps) == 3
    assert out.read_bytes().lstrip().startswith(b"<?xml")


# --- documented response shapes, replayed through the real SDK -----------------------------------

def test_documented_stream_is_parsed_exactly(fault: servers.FaultServer) -> None:
    fault.script = [servers.reply_stream(fixture("openai_gpt-4.1-mini_stream.json"))]  # type: ignore[arg-type]
    run = predict_via(fault.base_url, "What is 2 + 2?", model="gpt-4.1-mini", max_tokens=16, top_k=3)
    assert run.text == "2 + 2 = 4!🙂"  # the emoji arrives as two byte tokens and joins whole
    assert [s.chosen.raw for s in run.steps[-2:]] == [b"\xf0\x9f", b"\x99\x82"]
    assert run.steps[-2].chosen.label == "\\xf0\\x9f"
    sampled = run.steps[7]
    assert sampled.chosen.text == "!" and sampled.chosen.logprob == pytest.approx(-4.7)
    assert "!" not in [a.text for a in sampled.alternatives]  # its logprob came from the item itself
    assert run.usage == {"completion_tokens": 10, "prompt_tokens": 14}
    assert run.finish_reason == "stop"
    sent = fault.received[0].body
    assert sent["logprobs"] is True and sent["top_logprobs"] == 3 and sent["stream"] is True
    assert sent["messages"] == [{"role": "user", "content": "What is 2 + 2?"}]
    assert "max_tokens" in sent  # a compatible server: the widely known parameter


def test_system_message_seed_and_sampling_pass_through(fault: servers.FaultServer) -> None:
    fault.script = [servers.reply_stream(fixture("openai_gpt-4.1-mini_stream.json"))]  # type: ignore[arg-type]
    request = Request("What is 2 + 2?", model="gpt-4.1-mini", system="Answer briefly.", base_url=fault.base_url,
                      params=Params(temperature=0.7, top_p=0.9, seed=42, max_tokens=16), retries=0)
    run = pipeline.predict(request)
    sent = fault.received[0].body
    assert sent["messages"][0] == {"role": "system", "content": "Answer briefly."}
    assert (sent["temperature"], sent["top_p"], sent["seed"]) == (0.7, 0.9, 42)
    assert [m.role for m in run.messages] == ["system", "user"]


def test_unseeded_sampling_records_the_seed_it_sent(fault: servers.FaultServer) -> None:
    fault.script = [servers.reply_stream(fixture("openai_gpt-4.1-mini_stream.json"))]  # type: ignore[arg-type]
    run = predict_via(fault.base_url, model="gpt-4.1-mini", temperature=1.0)
    assert run.params.seed is not None and fault.received[0].body["seed"] == run.params.seed


# --- faults -------------------------------------------------------------------------------------

def test_429_with_retry_after_is_honoured_then_succeeds(fault: servers.FaultServer) -> None:
    fault.script = [servers.reply_error(429, "Rate limit reached", {"Retry-After": "1"}),
                    servers.reply_stream(fixture("openai_gpt-4.1-mini_stream.json"))]  # type: ignore[arg-type]
    t = time.monotonic()
    run = predict_via(fault.base_url, model="gpt-4.1-mini", retries=2)
    assert time.monotonic() - t >= 1.0  # waited as the server asked
    assert len(fault.received) == 2 and run.text == "2 + 2 = 4!🙂"


def test_persistent_429_gives_up_with_the_figure(fault: servers.FaultServer) -> None:
    fault.script = [servers.reply_error(429, "Rate limit reached for requests", {"Retry-After": "0"})]
    with pytest.raises(ProviderError) as info:
        predict_via(fault.base_url, model="gpt-4.1-mini", retries=1)
    line = info.value.line()
    assert "rate limiting" in line and "gave up after 1 retries" in line and "429" in line
    assert len(fault.received) == 2


def test_server_error_then_success(fault: servers.FaultServer) -> None:
    fault.script = [servers.reply_error(503, "overloaded"),
                    servers.reply_stream(fixture("openai_gpt-4.1-mini_stream.json"))]  # type: ignore[arg-type]
    assert predict_via(fault.base_url, model="gpt-4.1-mini", retries=1).text == "2 + 2 = 4!🙂"


def test_server_error_that_persists(fault: servers.FaultServer) -> None:
    fault.script = [servers.reply_error(500, "boom")]
    with pytest.raises(ProviderError, match=r"server error \(500: boom\) after 0 retries"):
        predict_via(fault.base_url, model="gpt-4.1-mini")


def test_malformed_json_in_the_stream(fault: servers.FaultServer) -> None:
    chunks = fixture("openai_gpt-4.1-mini_stream.json")[:3]  # type: ignore[index]
    fault.script = [servers.reply_stream(chunks, raw_tail=b"data: {not json\n\n")]
    with pytest.raises(ProviderError, match="malformed response"):
        predict_via(fault.base_url, model="gpt-4.1-mini")


def test_connection_dropped_mid_stream(fault: servers.FaultServer) -> None:
    """A stream cut after it started is asked again (--retries), as docs/servers.md says; cut every
    time, it is one line saying so."""
    whole = fixture("openai_gpt-4.1-mini_stream.json")
    fault.script = [servers.reply_stream(whole, drop_after=4), servers.reply_stream(whole)]  # type: ignore[arg-type]
    run = predict_via(fault.base_url, model="gpt-4.1-mini", retries=2)
    assert len(fault.received) == 2 and run.finish_reason == "stop" and run.text
    fault.received.clear()
    fault.script = [servers.reply_stream(whole, drop_after=4)]  # type: ignore[arg-type]
    with pytest.raises(ProviderError, match=r"connection was cut.*3 time"):
        predict_via(fault.base_url, model="gpt-4.1-mini", retries=2)
    assert len(fault.received) == 3


def test_slow_server_times_out(fault: servers.FaultServer) -> None:
    fault.script = [servers.slow(3.0, servers.reply_error(500, "late"))]
    t = time.monotonic()
    with pytest.raises(ProviderError, match=r"no response from .* within 0.5 s"):
        predict_via(fault.base_url, model="gpt-4.1-mini", timeout=0.5)
    assert time.monotonic() - t < 2.5


def test_connection_refused_names_the_url() -> None:
    url = f"http://127.0.0.1:{servers.free_port()}/v1"
    with pytest.raises(ProviderError) as info:
        predict_via(url, model="gpt-4.1-mini")
    assert f"cannot connect to {url}" in info.value.line()


def test_unknown_model_404(fault: servers.FaultServer) -> None:
    fault.script = [servers.reply_error(404, "The model `gpt-9` does not exist", code="model_not_found")]
    with pytest.raises(ProviderError, match="model 'gpt-9' was not found"):
        predict_via(fault.base_url, model="gpt-9")


@pytest.mark.parametrize("status", [400, 403])
def test_model_that_refuses_logprobs(fault: servers.FaultServer, status: int) -> None:
    fault.script = [servers.reply_json(status, fixture("openai_o3_logprobs_refused.json"))]
    with pytest.raises(ProviderError) as info:
        predict_via(fault.base_url, model="o3")
    line = info.value.line()
    assert "'o3' does not expose log-probabilities" in line and "gpt-4.1-mini" in line


def test_server_that_ignores_logprobs(fault: servers.FaultServer) -> None:
    chunks = json.loads(json.dumps(fixture("openai_gpt-4.1-mini_stream.json")))
    for c in chunks:
        for ch in c["choices"]:
            ch["logprobs"] = None
    fault.script = [servers.reply_stream(chunks)]
    with pytest.raises(ProviderError, match="no log-probabilities"):
        predict_via(fault.base_url, model="gpt-4.1-mini")


def test_top_k_21_is_refused_before_any_request(fault: servers.FaultServer) -> None:
    """20 alternatives is OpenAI's limit (its dialect's, not every server's)."""
    with pytest.raises(UsageError, match="at most 20 on OpenAI"):
        predict_via(fault.base_url, model="gpt-4.1-mini", top_k=21, options={"dialect": "openai"})
    assert fault.received == []


def test_missing_key_for_openai_says_how_to_set_it() -> None:
    with pytest.raises(UsageError) as info:
        pipeline.predict(Request("hi", model="gpt-4.1-mini"))
    assert "OPENAI_API_KEY" in info.value.line() and "embedded model" in info.value.line()


# --- the key never leaks --------------------------------------------------------------------------

def test_key_never_appears_in_output_saved_run_or_errors(fault: servers.FaultServer, tmp_path: Path) -> None:
    env = {"OPENAI_API_KEY": SECRET}
    fault.script = [servers.reply_stream(fixture("openai_gpt-4.1-mini_stream.json"))]  # type: ignore[arg-type]
    ok = run_cli("predict", "What is 2 + 2?", "-m", "gpt-4.1-mini", "--base-url", fault.base_url, "--json",
                 "--save", str(tmp_path / "run.json"), "-o", str(tmp_path / "g.dot"), env=env)
    assert ok.returncode == 0, ok.stderr
    assert fault.received[0].headers.get("authorization") == f"Bearer {SECRET}"  # it was really used
    fault.script = [servers.reply_json(401, fixture("openai_401_invalid_key.json"))]
    bad = run_cli("predict", "hi", "-m", "gpt-4.1-mini", "--base-url", fault.base_url, env=env)
    debug = run_cli("--debug", "predict", "hi", "-m", "gpt-4.1-mini", "--base-url", fault.base_url, env=env)
    assert bad.returncode == 1 and b"rejected the API key (401" in bad.stderr and b"OPENAI_API_KEY" in bad.stderr
    assert b"Traceback" in debug.stderr
    everything = b"".join([ok.stdout, ok.stderr, bad.stdout, bad.stderr, debug.stdout, debug.stderr,
                           (tmp_path / "run.json").read_bytes(), (tmp_path / "g.dot").read_bytes()])
    for fragment in (SECRET, SECRET[-10:], "sk-test-"):
        assert fragment.encode() not in everything, fragment


# --- provider inference ---------------------------------------------------------------------------

@pytest.mark.parametrize(("model", "base_url", "expected"), [
    ("gpt-4.1-mini", None, "openai"), ("gpt-4o", None, "openai"), ("o3-mini", None, "openai"),
    ("ft:gpt-4o-mini:acme::x", None, "openai"), ("gemma-3-270m", None, "local"), ("model.gguf", None, "local"),
    ("llama3.2", "http://127.0.0.1:11434/v1", "openai"), ("gemma-3-270m", "http://x/v1", "openai"),
])
def test_provider_is_inferred_from_the_model(model: str, base_url: str | None, expected: str) -> None:
    assert infer_provider(model, base_url) == expected


def test_openai_base_url_env_routes_unknown_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
    assert infer_provider("qwen2.5") == "openai"
    assert infer_provider("gemma-3-270m") == "local"  # the embedded default stays offline


def test_tokviz_model_env_sets_the_default(fault: servers.FaultServer) -> None:
    fault.script = [servers.reply_stream(fixture("openai_gpt-4.1-mini_stream.json"))]  # type: ignore[arg-type]
    proc = run_cli("predict", "What is 2 + 2?", "--json", env={"TOKVIZ_MODEL": "gpt-4.1-mini", "OPENAI_BASE_URL": fault.base_url})
    assert proc.returncode == 0, proc.stderr
    assert Run.from_json(proc.stdout.decode()).model == "gpt-4.1-mini"
    assert os.environ.get("TOKVIZ_MODEL") is None
