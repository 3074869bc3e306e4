"""Whose servers get a key, and where a key that comes back is cut (docs/hardening.md, "Keys"):
goldens that name a server, the explorer, partial keys, keys in batch prompt lines, URL passwords
sent as Basic auth. Each test does what the probe of issue 35 did, against a real HTTP server on
127.0.0.1 that logs the headers it receives."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import pytest

from tests import fakes, servers
from tests.conftest import run_cli
from tokviz.run import Run

SECRET = "sk-test-GOLDEN-abcdefghij1234567890"


def _golden(fault: servers.FaultServer, path: Path, *args: str) -> Path:
    """A golden recorded from the scripted server, with no key in the environment."""
    fault.script = [servers.reply_stream(servers.answer("Paris is"))]
    proc = run_cli("predict", "The capital of France is", "-m", "gpt-4.1-mini", "--base-url", fault.base_url, "-n", "8",
                   "--save", str(path), "-q", *args)
    assert proc.returncode == 0, proc.stderr
    assert Run.from_json(path.read_text()).source["server"] == fault.base_url
    return path


def test_a_golden_naming_a_server_gets_no_key(fault: servers.FaultServer, tmp_path: Path) -> None:
    """A contributed golden names a server the user never named: with a key set, `check` refuses in
    one line and the server receives nothing; allowed explicitly, it is asked."""
    golden = _golden(fault, tmp_path / "g.json")
    before = len(fault.received)
    env = {"OPENAI_API_KEY": SECRET}
    refused = run_cli("check", str(golden), env=env)
    assert refused.returncode == 1, refused.stderr
    assert len(fault.received) == before  # not one request: the key never left
    out = refused.stdout.decode() + refused.stderr.decode()
    assert "did not name" in out and "--allow-server" in out and SECRET not in out
    allowed = run_cli("check", str(golden), "--allow-server", fault.base_url, env=env)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert len(fault.received) == before + 1
    assert fault.received[-1].headers["authorization"] == f"Bearer {SECRET}"  # the user said so
    named = run_cli("check", str(golden), env={**env, "OPENAI_BASE_URL": fault.base_url})  # named by the variable
    assert named.returncode == 0 and len(fault.received) == before + 2


def test_a_golden_of_another_provider_naming_a_server_is_refused_too(fault: servers.FaultServer, tmp_path: Path) -> None:
    """A Gemini golden whose record names a server: the Gemini key is not sent there either."""
    data = json.loads(_golden(fault, tmp_path / "g.json").read_text())
    data.update(provider="gemini", model="gemini-2.0-flash")
    data["params"]["mode"] = "chat"
    golden = tmp_path / "gemini.json"
    golden.write_text(json.dumps(data))
    before = len(fault.received)
    proc = run_cli("check", str(golden), env={"GEMINI_API_KEY": "AIza-test-abcdefghijklmnop"})
    assert proc.returncode == 1 and len(fault.received) == before
    assert "did not name" in (proc.stdout + proc.stderr).decode()


def test_with_no_key_a_golden_server_is_asked(fault: servers.FaultServer, tmp_path: Path) -> None:
    """No key in force: nothing of the user's can go, so a golden recorded on a local server is
    asked again there (a CI job over llama-server needs no flag)."""
    golden = _golden(fault, tmp_path / "g.json")
    before = len(fault.received)
    assert run_cli("check", str(golden)).returncode == 0
    assert len(fault.received) == before + 1


def test_the_explorer_never_shows_or_saves_a_key_among_the_alternatives(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    """The model's alternatives include the key: the state, the streamed branch, the saved
    exploration and a reopened one hold [redacted] instead."""
    from tests.test_explore import call, events, serving
    from tokviz import pipeline
    from tokviz.explore.exploration import Exploration
    from tokviz.explore.session import Session
    from tokviz.run.generation import Generation

    monkeypatch.setattr(fakes, "WORDS", [*fakes.WORDS[:3], " " + SECRET, *fakes.WORDS[4:]])
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with fakes.registered():
        session = Session(pipeline.plan(Generation(model="fake", max_tokens=3, top_k=8, raw=True), "Once"),
                          save=tmp_path / "ex.json")
        session.first_run()
        with serving(session) as server:
            status, _, state = call(server, "GET", "/api/state")
            assert status == 200 and SECRET.encode() not in state and b"[redacted]" in state
            nodes = json.loads(state)["nodes"]
            alt = next(i for i, n in enumerate(nodes) if n["p"] == -1 and i != json.loads(state)["branches"][0]["path"][0])
            status, _, streamed = call(server, "POST", "/api/branch", {"node": alt, "n": 3})
            assert status == 200, streamed
            assert SECRET.encode() not in streamed and events(streamed)
            status, _, saved = call(server, "GET", "/exploration.json")
            assert status == 200 and SECRET.encode() not in saved and SECRET.encode().hex().encode() not in saved
    assert SECRET not in (tmp_path / "ex.json").read_text()
    # a file saved before redaction reached the explorer: reopened without the key
    leaked = Run.from_json((tmp_path / "ex.json").read_text().replace("[redacted]", SECRET))
    reopened = Exploration.from_run(leaked)
    assert all(SECRET.encode() not in n.token.raw for n in reopened.nodes)


def test_a_key_cut_short_by_max_tokens_is_still_cut(fault: servers.FaultServer, tmp_path: Path) -> None:
    """A key streamed one character per token and cut by -n leaves no 8-character piece of it
    in the run, its files or the live text."""
    secret = "sk-test-PARTIAL-abcdef"  # 22 characters; the answer stops after 18 of them, as -n 18 makes it
    chunks = servers.answer(secret[:18])
    chunks[-2]["choices"][0]["finish_reason"] = "length"
    fault.script = [servers.reply_stream(chunks)]
    saved = tmp_path / "run.json"
    proc = run_cli("predict", "x", "-m", "gpt-4.1-mini", "--base-url", fault.base_url, "-n", "18", "--save", str(saved),
                   "-o", str(tmp_path / "run.html"), "--json", env={"OPENAI_API_KEY": secret})
    assert proc.returncode == 0, proc.stderr
    run = Run.from_json(saved.read_text())
    assert "[redacted]" in run.text and "redacted" in run.source
    for data in (saved.read_text(), (tmp_path / "run.html").read_text(), proc.stdout.decode()):
        assert secret[:8] not in data


def test_a_key_in_a_batch_prompt_line_names_no_file_and_is_not_stored(fault: servers.FaultServer, tmp_path: Path) -> None:
    secret = "sk-test-PROMPTLINE-abcdefghij1234"
    fault.script = [servers.reply_stream(servers.answer("ok"))]
    prompts = tmp_path / "p.txt"
    prompts.write_text(f"line with {secret} in it\n")
    out = tmp_path / "out"
    proc = run_cli("batch", str(prompts), "-o", str(out), "-m", "gpt-4.1-mini", "--base-url", fault.base_url, "-f", "json",
                   env={"OPENAI_API_KEY": secret})
    assert proc.returncode == 0, proc.stderr
    names = [p.name for p in out.rglob("*")]
    assert names and not any(secret.lower() in n.lower() for n in names)
    stored = sqlite3.connect(out / "batch.sqlite").execute("SELECT prompt, name FROM jobs").fetchall()
    assert stored and all(secret not in p and secret.lower() not in n.lower() for p, n in stored)
    for index in ("index.json", "index.md"):
        assert secret.lower() not in (out / index).read_text().lower()


def test_a_url_password_sent_as_basic_auth_and_echoed_back_is_cut_in_every_form(fault: servers.FaultServer,
                                                                                tmp_path: Path) -> None:
    encoded = base64.b64encode(b"alice:S3cretPw").decode()
    fault.script = [servers.reply_stream(servers.answer(f"you sent Basic {encoded} and S3cretPw"))]
    url = fault.base_url.replace("http://", "http://alice:S3cretPw@")
    saved = tmp_path / "run.json"
    proc = run_cli("predict", "x", "-m", "gpt-4.1-mini", "--base-url", url, "--save", str(saved), "-n", "80", "--json",
                   "-o", str(tmp_path / "run.html"))
    assert proc.returncode == 0, proc.stderr
    assert fault.received[-1].headers["authorization"] == f"Basic {encoded}"  # what httpx sends for a URL password
    for data in (saved.read_text(), (tmp_path / "run.html").read_text(), proc.stdout.decode()):
        assert encoded not in data and "S3cretPw" not in data
    assert "[redacted]" in Run.from_json(saved.read_text()).text
