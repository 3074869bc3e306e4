"""The gemini provider through Google's own SDK, against a Gemini API on 127.0.0.1 whose answers
are built from the SDK's response types (tests/gemini_server.py): predict (streamed and not),
sample, batch, a character split across tokens, and an error per documented status."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.gemini_server import GeminiServer

pytest.importorskip("google.genai", reason="the gemini extra is part of `make test`")  # never skipped there

KEY = "AIzaTestKey-do-not-print-0123456789"
ENV = {"GEMINI_API_KEY": KEY}


@pytest.fixture(scope="module")
def gemini() -> Iterator[GeminiServer]:
    server = GeminiServer()
    yield server
    server.close()


def cli(server: GeminiServer, *args: str, model: str = "gemini-2.0-flash", env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return run_cli(*args, "-p", "gemini", "-m", model, "--base-url", server.base_url, env={**ENV, **(env or {})})


def test_predict_reads_every_token_and_its_alternatives(gemini: GeminiServer) -> None:
    proc = cli(gemini, "predict", "Where is the Louvre?", "-k", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    run = json.loads(proc.stdout)
    assert [s["chosen"]["text"] for s in run["steps"]] == ["Paris", " is", " lovely", "."]
    assert [a["text"] for a in run["steps"][0]["alternatives"]] == ["Paris", "the", "a"]
    assert run["steps"][0]["chosen"]["logprob"] == -0.05 and run["steps"][0]["chosen"]["id"] == 1000
    assert run["finish_reason"] == "stop" and run["provider"] == "gemini" and run["model"] == "gemini-2.0-flash"
    assert run["source"]["figures"] == "unknown"  # Google does not say before or after temperature: not assumed
    sent = gemini.received[-1]
    assert sent.path.startswith("/v1beta/models/gemini-2.0-flash:")
    config = sent.body["generationConfig"]
    assert config["responseLogprobs"] is True and config["logprobs"] == 3 and config["temperature"] == 0
    assert sent.headers.get("x-goog-api-key") == KEY
    assert KEY not in proc.stdout.decode() + proc.stderr.decode()


def test_a_terminal_sees_the_answer_streamed(gemini: GeminiServer) -> None:
    proc = run_cli("predict", "Where is the Louvre?", "-k", "3", "-p", "gemini", "-m", "gemini-2.0-flash",
                   "--base-url", gemini.base_url, env={**ENV, "NO_COLOR": "1"}, terminal=True, width=120)
    assert proc.returncode == 0, proc.stderr
    assert gemini.received[-1].path.endswith(":streamGenerateContent?alt=sse")
    out = proc.stdout.decode()
    assert "Paris is lovely." in out and "gemini:gemini-2.0-flash" in out
    assert "before or after sampling not known" in out


def test_streaming_gives_the_same_run_as_one_answer(gemini: GeminiServer) -> None:
    from tokviz.ground import environment
    from tokviz.providers.base import Request
    from tokviz.providers.registry import get_provider
    from tokviz.run import Params

    provider = get_provider("gemini")
    request = Request(prompt="Hi", model="gemini-bytes", params=Params(top_k=2, mode="chat"), base_url=gemini.base_url)
    with environment.using(environment.Environment(environ={**ENV})):
        whole = provider.predict(request)
        seen: list[object] = []
        live = provider.predict_live(request, seen.append)
    assert gemini.received[-1].path.endswith(":streamGenerateContent?alt=sse")
    assert live.steps == whole.steps and len(seen) == len(whole.steps) == 6
    assert whole.text == "Hi 🙂" and whole.content is None  # byte pieces: exact, nothing kept beside them
    assert not any(s.chosen.lossy for s in whole.steps)


def test_a_character_split_across_tokens_is_marked_and_the_answer_kept(gemini: GeminiServer) -> None:
    proc = cli(gemini, "predict", "Hi", "--json", model="gemini-split")
    assert proc.returncode == 0, proc.stderr
    run = json.loads(proc.stdout)
    assert run["content"] == "Hi 🙂"
    assert [s["chosen"].get("lossy", False) for s in run["steps"]] == [False, False, True, True]
    assert "token 3" in run["source"]["lossy"]


def test_sample_sends_each_seed(gemini: GeminiServer) -> None:
    before = len(gemini.received)
    proc = cli(gemini, "sample", "Where is the Louvre?", "-s", "3", "--seed", "11", "-t", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    seeds = sorted(r.body["generationConfig"]["seed"] for r in gemini.received[before:])
    assert seeds == [11, 12, 13]


def test_batch_runs_every_prompt(gemini: GeminiServer, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("One\nTwo\nThree\n", encoding="utf-8")
    proc = cli(gemini, "batch", str(prompts), "-o", str(tmp_path / "out"), "-f", "json", "--parallel", "3")
    assert proc.returncode == 0, proc.stderr
    runs = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("*.json") if p.name != "index.json"]
    assert sorted(r["prompt"] for r in runs if "prompt" in r) == ["One", "Three", "Two"]


@pytest.mark.parametrize(("model", "status", "words"), [
    ("gemini-2.5-pro", 2, "gemini-2.5-pro gives no log-probabilities"),
    ("gemini-badkey", 2, "the Gemini API refused the key"),
    ("gemini-e400", 2, "refused the request (400: Request contains an invalid argument.)"),
    ("gemini-e403", 2, "the Gemini API refused the key (403"),
    ("gemini-e404", 2, "the Gemini API has no model 'gemini-e404'"),
    ("gemini-e429", 1, "rate-limiting this key (429"),
    ("gemini-e500", 1, "the Gemini API failed (500"),
    ("gemini-e503", 1, "the Gemini API failed (503"),
    ("gemini-nologprobs", 1, "answered without log-probabilities"),
    ("gemini-empty", 1, "answered nothing (finish: safety)"),
])
def test_each_error_is_one_line(gemini: GeminiServer, model: str, status: int, words: str) -> None:
    proc = run_cli("predict", "Hi", "-p", "gemini", "-m", model, "--base-url", gemini.base_url, "--retries", "0", env=ENV)
    err = proc.stderr.decode()
    assert proc.returncode == status, err
    assert words in err and err.count("\n") == 1 and "Traceback" not in err and KEY not in err
    if model == "gemini-2.5-pro":
        assert "models that do: gemini-2.0-flash" in err


def test_an_overloaded_model_is_asked_again(gemini: GeminiServer) -> None:
    gemini.flaky["gemini-2.0-flash"] = 1
    proc = cli(gemini, "predict", "Hi", "--retries", "2")
    assert proc.returncode == 0, proc.stderr
    assert gemini.flaky["gemini-2.0-flash"] == 0


def test_more_than_twenty_alternatives_is_refused_before_sending(gemini: GeminiServer) -> None:
    before = len(gemini.received)
    proc = cli(gemini, "predict", "Hi", "-k", "21")
    assert proc.returncode == 2 and "--top-k must be between 0 and 20 for the gemini provider" in proc.stderr.decode()
    assert len(gemini.received) == before


def test_no_key_is_one_line(gemini: GeminiServer) -> None:
    proc = run_cli("predict", "Hi", "-p", "gemini", "-m", "gemini-2.0-flash", "--base-url", gemini.base_url,
                   env={"GEMINI_API_KEY": "", "GOOGLE_API_KEY": ""})
    assert proc.returncode == 2 and "no Gemini API key" in proc.stderr.decode()


def test_a_gemini_model_name_finds_the_provider() -> None:
    from tokviz.providers import registry

    assert registry.infer_provider("gemini-2.0-flash", environ={}) == "gemini"


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "claude-3-haiku-20240307"])
def test_a_claude_model_is_told_why_not(model: str) -> None:
    proc = run_cli("predict", "Hi", "-m", model)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.count("\n") == 1
    assert "Anthropic's API returns no log-probabilities" in err and "gemini" in err and "local" in err


def test_choices_on_gemini_are_exact_where_listed_and_bounds_elsewhere(gemini: GeminiServer) -> None:
    """Gemini lists the top k of each generated token and reads no given text: one token is asked,
    with as many alternatives as the API gives (20); the listed answers are exact, the rest bounds."""
    proc = cli(gemini, "predict", "Where is the Louvre?", "--choice", "Paris", "--choice", "the", "--choice", "London",
               "--choice", "Paris, France", "--json")
    assert proc.returncode == 0, proc.stderr
    got = {c["choice"]: c for c in json.loads(proc.stdout)["choices"]}
    assert got["Paris"]["figure"] == "exact" and got["Paris"]["logprob"] == -0.05
    assert got["the"]["figure"] == "exact" and got["the"]["logprob"] == -1.55
    assert got["London"]["figure"] == "upper bound" and got["London"]["logprob"] == -2.55  # the least likely listed
    assert got["Paris, France"]["figure"] == "upper bound" and got["Paris, France"]["logprob"] == -0.05
    config = gemini.received[-1].body["generationConfig"]
    assert config["logprobs"] == 20 and config["maxOutputTokens"] == 1 and config["temperature"] == 0


def test_a_json_schema_goes_as_response_json_schema(gemini: GeminiServer, tmp_path: Path) -> None:
    """--json-schema on Gemini: generationConfig carries responseMimeType application/json and the
    schema as responseJsonSchema (google/genai/types.py GenerateContentConfig.response_json_schema,
    which takes JSON Schema as is); the run says its figures under the schema are not known."""
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(schema))
    proc = cli(gemini, "predict", "Where is the Louvre?", "--json-schema", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    config = gemini.received[-1].body["generationConfig"]
    assert config["responseMimeType"] == "application/json" and config["responseJsonSchema"] == schema
    run = json.loads(proc.stdout)
    assert "not known" in run["source"]["structured"] and json.loads(run["params"]["json_schema"]) == schema
    assert "structured_invalid" in run["source"]  # the fixture answers "Paris is lovely.", which is no JSON: said so
