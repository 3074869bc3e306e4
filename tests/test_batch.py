"""Batch runs, golden-file checks and record/replay, as scripts and CI jobs use them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests import servers
from tests.conftest import run_cli, tokviz_cmd
from tokviz.run import Run


def index(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "index.json").read_text())


def without_timings(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    data.pop("timings")
    return data


# --- with the local model --------------------------------------------------------------------------

def test_local_batch_writes_every_result_and_resumes(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    lines = [
        {"id": "france", "prompt": "The capital of France is"},
        {"prompt": "Once upon a time", "max_tokens": 3},
        {"id": "bad", "prompt": "x", "top_k": 101},  # fails validation; must not stop the others
        {"id": "stdin-like", "prompt": "한국어 문장은", "top_k": 2},
    ]
    prompts.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n")
    out = tmp_path / "out"
    proc = run_cli("batch", str(prompts), "-o", str(out), "-f", "svg,dot", "-n", "4")
    assert proc.returncode == 1  # one prompt failed
    err = proc.stderr.decode()
    assert "1 of 4 prompts failed" in err and "prompt 3" in err and "--top-k must be between 0 and 100" in err
    idx = index(out)
    assert idx["summary"] == {"total": 4, "ok": 3, "failed": 1, "pending": 0}
    assert [i["status"] for i in idx["items"]] == ["ok", "ok", "failed", "ok"]
    france = Run.from_json((out / "france.json").read_text())
    assert france.text == " the capital of the"
    assert (out / "france.svg").read_bytes().lstrip().startswith(b"<?xml")
    second = idx["items"][1]
    assert second["name"].startswith("once-upon-a-time-") and second["tokens"] == 3
    assert set(second["files"]) == {"json", "svg", "dot"}
    assert "[svg](france.svg)" in (out / "index.md").read_text()
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()
              if p.suffix not in (".md", ".sqlite") and p.name != "index.json"}  # the state changes; results do not

    # Again, asking for one more format: nothing is generated again, only the PNGs are drawn.
    again = run_cli("batch", str(prompts), "-o", str(out), "-f", "svg,dot,png", "-n", "4")
    assert again.returncode == 1 and b"0 generated, 3 already complete" in again.stderr
    assert all((out / n).stat().st_mtime_ns == t for n, t in before.items())
    assert (out / "france.png").read_bytes()[:4] == b"\x89PNG"


def test_prompts_from_stdin_as_plain_lines(tmp_path: Path) -> None:
    proc = run_cli("batch", "-", "-o", str(tmp_path / "o"), "-f", "json", "-n", "2", "-q",
                   input=b"The capital of France is\n# a comment\n\nOnce upon a time\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"" and proc.stderr == b""  # --quiet
    assert [i["prompt"] for i in index(tmp_path / "o")["items"]] == ["The capital of France is", "Once upon a time"]


def _batch_cmd(prompts: Path, out: Path) -> list[str]:
    return [*tokviz_cmd(), "batch", str(prompts), "-o", str(out), "-f", "svg,dot,txt", "-n", "8", "-q"]


def test_interrupted_batch_resumes_to_identical_outputs(tmp_path: Path) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("".join(f"Fact number {i}: the sky is\n" for i in range(14)))
    reference = tmp_path / "reference"
    assert subprocess.run(_batch_cmd(prompts, reference), capture_output=True, check=False).returncode == 0

    out = tmp_path / "interrupted"
    # SIGINT back to default in the child: a test run started in the background inherits SIGINT
    # ignored, and Python then (rightly) installs no Ctrl-C handler, so the signal would be lost.
    proc = subprocess.Popen(_batch_cmd(prompts, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob("*.json"))) < 4:  # index.json + 3 runs
        time.sleep(0.05)
    assert proc.poll() is None, "the batch finished before the test could interrupt it"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.decode().count("\n") == 1 and "interrupted" in err.decode() and "resume" in err.decode()
    idx = index(out)
    assert 0 < idx["summary"]["ok"] < 14 and idx["summary"]["pending"] == 14 - idx["summary"]["ok"]
    for item in idx["items"]:  # everything finished is on disk and complete
        if item["status"] == "ok":
            Run.from_json((out / item["files"]["json"]).read_text())
            assert all((out / f).stat().st_size > 0 for f in item["files"].values())
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left

    resumed = subprocess.run(_batch_cmd(prompts, out), capture_output=True, check=False)
    assert resumed.returncode == 0, resumed.stderr
    names = sorted(p.name for p in reference.iterdir())
    assert sorted(p.name for p in out.iterdir()) == names
    for name in names:
        if name == "batch.sqlite":  # the state: its bytes depend on the path taken, its rows are the index
            continue
        if name.endswith(".json") and name != "index.json":
            assert without_timings(out / name) == without_timings(reference / name), name
        else:
            assert (out / name).read_bytes() == (reference / name).read_bytes(), name


# --- with API servers -------------------------------------------------------------------------------

def test_fifty_prompts_some_failing(fault: servers.FaultServer, tmp_path: Path) -> None:
    def route(body: dict[str, Any]) -> servers.Handler:
        prompt = body["messages"][-1]["content"]
        if prompt.endswith("7"):
            return servers.reply_error(500, f"cannot answer {prompt}")
        return servers.reply_stream(servers.answer(f"ok {prompt[-2:]}"))

    fault.route = route
    prompts = tmp_path / "p.txt"
    prompts.write_text("".join(f"question {i:02d}\n" for i in range(50)))
    out = tmp_path / "out"
    proc = run_cli("batch", str(prompts), "-o", str(out), "-m", "gpt-4.1-mini", "--base-url", fault.base_url,
                   "--retries", "0", "-j", "8", "-f", "dot")
    assert proc.returncode == 1
    assert b"5 of 50 prompts failed" in proc.stderr
    idx = index(out)
    assert idx["summary"] == {"total": 50, "ok": 45, "failed": 5, "pending": 0}
    for n, item in enumerate(idx["items"]):
        if n % 10 == 7:
            assert item["status"] == "failed" and f"cannot answer question {n:02d}" in item["error"]
            assert not (out / f"{item['name']}.json").exists()
        else:
            assert item["status"] == "ok" and item["text"] == f"ok {n:02d}"
            assert Run.from_json((out / item["files"]["json"]).read_text()).text == f"ok {n:02d}"
            assert (out / item["files"]["dot"]).read_text().startswith("digraph")
    assert len(fault.received) == 50


def test_a_429_pauses_every_worker(fault: servers.FaultServer, tmp_path: Path) -> None:
    ok = servers.reply_stream(servers.answer("fine"))
    fault.script = [servers.reply_error(429, "slow down", {"Retry-After": "1"}), ok]
    prompts = tmp_path / "p.txt"
    prompts.write_text("".join(f"q{i}\n" for i in range(12)))
    proc = run_cli("batch", str(prompts), "-o", str(tmp_path / "o"), "-m", "gpt-4.1-mini",
                   "--base-url", fault.base_url, "-j", "4", "-f", "json")
    assert proc.returncode == 0, proc.stderr
    first = fault.received[0].at
    # After the 429, no worker sent anything until the server's second had passed.
    during = [r.at - first for r in fault.received[1:] if 0.1 < r.at - first < 0.95]
    assert during == []
    assert len(fault.received) == 13 and max(r.at for r in fault.received) - first >= 1.0


# --- golden files -----------------------------------------------------------------------------------

def test_check_passes_on_identical_and_fails_on_changed(tmp_path: Path, small_run_file: Path) -> None:
    dot, txt, js = tmp_path / "g.dot", tmp_path / "t.txt", tmp_path / "r.json"
    args = ["render", str(small_run_file), "-o", str(dot), "-o", str(txt), "-o", str(js)]
    assert run_cli(*args).returncode == 0
    same = run_cli(*args, "--check")
    assert same.returncode == 0 and same.stdout == b"" and same.stderr == b""

    dot.write_text(dot.read_text().replace("81.2%", "81.3%"))
    changed = run_cli(*args, "--check")
    assert changed.returncode == 1
    diff = changed.stdout.decode()
    assert "--- " in diff and "+++ " in diff and '-  s0 [label="␣Paris\\n81.3%"' in diff
    assert changed.stderr.decode().count("\n") == 1 and "1 differs from the rendering (of 3 outputs)" in changed.stderr.decode()

    txt.unlink()
    missing = run_cli(*args, "--check")
    assert missing.returncode == 1 and b"t.txt: missing" in missing.stdout

    update = run_cli(*args, "--update")
    assert update.returncode == 0 and b"updated" in update.stderr
    assert run_cli(*args, "--check").returncode == 0


def test_check_needs_outputs_and_excludes_update(small_run_file: Path) -> None:
    assert run_cli("render", str(small_run_file), "--check").returncode == 2
    assert run_cli("render", str(small_run_file), "-o", "x.dot", "--check", "--update").returncode == 2


# --- record and replay ------------------------------------------------------------------------------

def test_record_then_replay_offline_without_a_key(fault: servers.FaultServer, tmp_path: Path) -> None:
    fault.script = [servers.reply_stream(servers.answer("Paris"))]
    cassette = tmp_path / "cassette.json"
    live = run_cli("predict", "The capital of France is", "-m", "gpt-4.1-mini", "--base-url", fault.base_url,
                   "--record", str(cassette), "--json", env={"OPENAI_API_KEY": "sk-live-secret-key-123456"})
    assert live.returncode == 0, live.stderr
    assert b"sk-live" not in cassette.read_bytes()
    fault.close()  # no server any more, no key, no network

    replayed = run_cli("predict", "The capital of France is", "-m", "gpt-4.1-mini", "--replay", str(cassette), "--json")
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout == live.stdout  # the very same run, byte for byte

    missing = run_cli("predict", "The capital of Spain is", "-m", "gpt-4.1-mini", "--replay", str(cassette))
    assert missing.returncode == 1 and missing.stderr.decode().count("\n") == 1
    assert b"has no recording of prompt 'The capital of Spain is'" in missing.stderr

    other_params = run_cli("predict", "The capital of France is", "-m", "gpt-4.1-mini", "-k", "3", "--replay", str(cassette))
    assert other_params.returncode == 1 and b"no recording" in other_params.stderr


def test_batch_regenerates_from_a_cassette(fault: servers.FaultServer, tmp_path: Path) -> None:
    fault.route = lambda body: servers.reply_stream(servers.answer(body["messages"][-1]["content"].upper()))
    prompts = tmp_path / "p.txt"
    prompts.write_text("alpha\nbeta\ngamma\n")
    cassette = tmp_path / "c.json"
    rec = run_cli("batch", str(prompts), "-o", str(tmp_path / "a"), "-m", "gpt-4.1-mini", "--base-url", fault.base_url,
                  "--record", str(cassette), "-f", "dot")
    assert rec.returncode == 0, rec.stderr
    rep = run_cli("batch", str(prompts), "-o", str(tmp_path / "b"), "-m", "gpt-4.1-mini", "--replay", str(cassette), "-f", "dot")
    assert rep.returncode == 0, rep.stderr
    for p in (tmp_path / "a").iterdir():
        if p.name != "batch.sqlite":  # the state, not a result
            assert (tmp_path / "b" / p.name).read_bytes() == p.read_bytes(), p.name


def test_bad_batch_input_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{not json}\n')
    proc = run_cli("batch", str(bad), "-o", str(tmp_path / "o"))
    assert proc.returncode == 2 and b"line 2 is not valid JSON" in proc.stderr
    assert run_cli("batch", str(tmp_path / "none.txt"), "-o", str(tmp_path / "o")).returncode == 2
    assert run_cli("batch", str(bad), "-o", str(tmp_path / "o"), "-f", "svg,bmp").returncode == 2
    assert not (tmp_path / "o").exists()  # nothing started
    assert os.environ.get("TOKVIZ_MODEL") is None


# --- scale: the state, streaming, shards ------------------------------------------------------------

def test_state_status_and_a_resume_that_reads_no_run_back(tmp_path: Path, monkeypatch: Any, fake: object) -> None:
    from tokviz import run as run_module

    prompts = tmp_path / "p.jsonl"
    prompts.write_text("\n".join(json.dumps({"prompt": f"prompt {i}", **({"top_k": 999} if i == 3 else {})}) for i in range(8)) + "\n")
    out = tmp_path / "out"
    assert run_cli("batch", str(prompts), "-o", str(out), "-m", "fake-1", "-f", "json,txt", "-q").returncode == 1
    status = run_cli("batch", "status", str(out), "--json")
    assert status.returncode == 0, status.stderr
    found = json.loads(status.stdout)
    assert (found["total"], found["ok"], found["failed"], found["pending"]) == (8, 7, 1, 0)
    assert found["first_failure"]["n"] == 4 and "top-k" in found["first_failure"]["error"]
    assert "7 ok, 1 failed, 0 pending of 8" in run_cli("batch", "status", str(out)).stdout.decode()

    reads = []
    real = run_module.Run.from_json
    monkeypatch.setattr(run_module.Run, "from_json", classmethod(lambda cls, *a, **k: reads.append(1) or real(*a, **k)))
    again = run_cli("batch", str(prompts), "-o", str(out), "-m", "fake-1", "-f", "json,txt")
    assert b"0 generated, 7 already complete" in again.stderr and reads == []  # the state says so: nothing read
    assert run_cli("batch", "status", str(tmp_path)).returncode == 2  # no state there


def test_a_large_batch_is_sharded_and_indexed_in_input_order(tmp_path: Path, monkeypatch: Any, fake: object) -> None:
    from tokviz.batch import index as batch_index

    monkeypatch.setattr(batch_index, "SHARD_AFTER", 10)
    prompts = tmp_path / "p.txt"
    prompts.write_text("".join(f"prompt {i}\n" for i in range(25)) + "prompt 3\n")  # a duplicate line: one job
    out = tmp_path / "out"
    assert run_cli("batch", str(prompts), "-o", str(out), "-m", "fake-1", "-f", "json,dot", "-q", "-j", "8").returncode == 0
    idx = index(out)
    assert idx["summary"] == {"total": 25, "ok": 25, "failed": 0, "pending": 0}
    assert [i["prompt"] for i in idx["items"]] == [f"prompt {i}" for i in range(25)]
    for item in idx["items"]:
        json_file, dot_file = out / item["files"]["json"], out / item["files"]["dot"]
        assert json_file.parent != out and json_file.parent == dot_file.parent and len(json_file.parent.name) == 2
        assert Run.from_json(json_file.read_text()).prompt == item["prompt"]
    assert not list(out.glob("prompt-*.json"))  # nothing left at the top
    # Resumed with the limit back up: the folder keeps the layout it started with.
    monkeypatch.setattr(batch_index, "SHARD_AFTER", 2000)
    again = run_cli("batch", str(prompts), "-o", str(out), "-m", "fake-1", "-f", "json,dot")
    assert b"0 generated, 25 already complete" in again.stderr


def test_the_input_is_streamed_not_held(tmp_path: Path) -> None:
    """Jobs are read lazily: a generator of lines is consumed only as far as the batch has run."""
    from tokviz.batch import iter_jobs
    from tokviz.run.generation import Generation

    consumed = []

    def lines() -> Any:
        for i in range(10**9):
            consumed.append(i)
            yield f"prompt {i}\n"

    jobs = iter_jobs(lines(), source="endless.txt", defaults=Generation(model="fake-1"))
    first = [next(jobs) for _ in range(3)]
    assert [j.request.prompt for j in first] == ["prompt 0", "prompt 1", "prompt 2"] and len(consumed) == 3


# --- OpenAI Batch API and vllm run-batch files -------------------------------------------------------

def _chat_completion(text_tokens: list[tuple[str, float]], model: str = "gpt-4.1-mini-2025-04-14") -> dict[str, Any]:
    """A chat completion body built with the OpenAI SDK's own types, as the Batch API returns it."""
    from openai.types.chat import ChatCompletion

    content = [{"token": t, "logprob": lp, "bytes": list(t.encode()),
                "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())},
                                 {"token": "x", "logprob": lp - 2, "bytes": [120]}]} for t, lp in text_tokens]
    return ChatCompletion.model_validate({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": {"content": content, "refusal": None},
                     "message": {"role": "assistant", "content": "".join(t for t, _ in text_tokens)}}],
        "usage": {"prompt_tokens": 9, "completion_tokens": len(text_tokens), "total_tokens": 9 + len(text_tokens)},
    }).model_dump(mode="json")


def test_export_requests_for_the_batch_api_split_at_its_limits(tmp_path: Path, monkeypatch: Any) -> None:
    from tokviz.batch import engines as batchfiles

    prompts = tmp_path / "p.jsonl"
    prompts.write_text("\n".join(json.dumps(x) for x in [{"prompt": f"question {i}"} for i in range(5)]
                                 + [{"prompt": "bad", "top_k": 99}, {"prompt": "question 0"}]) + "\n")
    target = tmp_path / "requests.jsonl"
    monkeypatch.setattr(batchfiles, "MAX_REQUESTS", 2)
    proc = run_cli("batch", str(prompts), "--export-requests", str(target), "-m", "gpt-4.1-mini", "-k", "5", "-n", "8")
    assert proc.returncode == 0, proc.stderr
    files = [target, tmp_path / "requests-2.jsonl", tmp_path / "requests-3.jsonl"]
    lines = [json.loads(ln) for f in files for ln in f.read_text().splitlines()]
    assert len(lines) == 5 and len({ln["custom_id"] for ln in lines}) == 5  # the duplicate once, the bad one left out
    assert [len(f.read_text().splitlines()) for f in files] == [2, 2, 1]
    first = lines[0]
    assert first["method"] == "POST" and first["url"] == "/v1/chat/completions"
    body = first["body"]
    assert body["messages"] == [{"role": "user", "content": "question 0"}] and body["logprobs"] is True
    assert body["top_logprobs"] == 5 and body["max_completion_tokens"] == 8 and "stream" not in body
    assert b"1 prompt(s) left out" in proc.stderr and b"top-k" in proc.stderr
    raw = run_cli("batch", str(prompts), "--export-requests", str(tmp_path / "raw.jsonl"), "-m", "gpt-4.1-mini", "--raw")
    assert b"vllm run-batch" in raw.stderr
    assert json.loads((tmp_path / "raw.jsonl").read_text().splitlines()[0])["url"] == "/v1/completions"
    assert run_cli("batch", str(prompts), "--export-requests", str(target), "-o", str(tmp_path / "o")).returncode == 2


def test_import_openai_and_vllm_results_as_a_live_batch_would(tmp_path: Path) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("alpha\nbeta\ngamma\ndelta\nepsilon\n")
    requests = tmp_path / "requests.jsonl"
    assert run_cli("batch", str(prompts), "--export-requests", str(requests), "-m", "gpt-4.1-mini", "-k", "2").returncode == 0
    ids = [json.loads(ln)["custom_id"] for ln in requests.read_text().splitlines()]
    body = _chat_completion([("Paris", -0.1), (".", -0.5)])
    results = [
        {"id": "batch_req_1", "custom_id": ids[0], "response": {"status_code": 200, "request_id": "r1", "body": body}, "error": None},
        {"id": "vllm-1", "custom_id": ids[1], "response": body, "error": None},  # older vLLM: the bare answer
        {"id": "batch_req_3", "custom_id": ids[2], "response": None, "error": {"code": "x", "message": "model overloaded"}},
        {"id": "batch_req_4", "custom_id": ids[3], "response": {"status_code": 400, "body": {"error": {"message": "bad request"}}}},
        # no line for ids[4]
    ]
    out_file = tmp_path / "results.jsonl"
    out_file.write_text("".join(json.dumps(r) + "\n" for r in reversed(results)))  # any order
    out = tmp_path / "out"
    proc = run_cli("batch", str(prompts), "--import", str(out_file), "-o", str(out), "-m", "gpt-4.1-mini", "-k", "2", "-f", "json,txt")
    assert proc.returncode == 1, proc.stderr
    idx = index(out)
    assert [i["status"] for i in idx["items"]] == ["ok", "ok", "failed", "failed", "failed"]
    assert "model overloaded" in idx["items"][2]["error"] and "400" in idx["items"][3]["error"]
    assert "no result" in idx["items"][4]["error"]
    run = Run.from_json((out / idx["items"][0]["files"]["json"]).read_text())
    assert run.text == "Paris." and run.steps[0].chosen.prob == pytest.approx(0.9048, abs=1e-4)
    assert run.source["imported"].startswith("results.jsonl") and run.finish_reason == "stop"
    assert (out / idx["items"][1]["files"]["txt"]).read_text().count("Paris") >= 1
    # The missing answers arrive in a second file: importing it completes the batch (resumable).
    more = tmp_path / "more.jsonl"
    more.write_text("".join(json.dumps({"custom_id": i, "response": {"status_code": 200, "body": body}, "error": None}) + "\n"
                            for i in ids[2:]))
    again = run_cli("batch", str(prompts), "--import", str(more), "-o", str(out), "-m", "gpt-4.1-mini", "-k", "2", "-f", "json,txt")
    assert again.returncode == 0, again.stderr
    assert b"3 generated, 2 already complete" in again.stderr and index(out)["summary"]["ok"] == 5


def test_openai_batch_submits_once_polls_and_indexes_the_answers(tmp_path: Path, monkeypatch: Any) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("capital of France?\ncapital of Italy?\ncapital of Spain?\n")
    out = tmp_path / "out"
    server = servers.BatchAPIServer(fail=("Spain",))
    monkeypatch.setenv("TOKVIZ_BATCH_POLL_S", "0.01")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef0123")
    try:
        proc = run_cli("batch", str(prompts), "--openai-batch", "-o", str(out), "-m", "gpt-4.1-mini", "-k", "1",
                       "--base-url", server.base_url, "--dialect", "openai", "-f", "json")
        assert proc.returncode == 1, proc.stderr  # one request failed in the batch
        assert server.created == 1 and b"submitted 1 batch" in proc.stderr
        idx = index(out)
        assert [i["status"] for i in idx["items"]] == ["ok", "ok", "failed"]
        assert "overloaded" in idx["items"][2]["error"]
        assert Run.from_json((out / idx["items"][0]["files"]["json"]).read_text()).text == "Paris."
        # Again: the same batch is polled, not submitted a second time.
        run_cli("batch", str(prompts), "--openai-batch", "-o", str(out), "-m", "gpt-4.1-mini", "-k", "1",
                "--base-url", server.base_url, "--dialect", "openai", "-f", "json")
        assert server.created == 1
        refused = run_cli("batch", str(prompts), "--openai-batch", "-o", str(tmp_path / "x"))
        assert refused.returncode == 2 and b"OpenAI" in refused.stderr
    finally:
        server.close()


def test_local_prompts_decoded_together_with_parallel(tmp_path: Path) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("".join(f"Fact number {i}: the sky is\n" for i in range(7)))
    out = tmp_path / "out"
    proc = run_cli("batch", str(prompts), "-o", str(out), "-f", "json", "-n", "5", "--parallel", "3", "-q")
    assert proc.returncode == 0, proc.stderr
    idx = index(out)
    assert idx["summary"] == {"total": 7, "ok": 7, "failed": 0, "pending": 0}
    for item in idx["items"]:
        run = Run.from_json((out / item["files"]["json"]).read_text())
        assert run.prompt == item["prompt"] and len(run.steps) == 5
        assert "together" in run.source["decoding"]
    again = run_cli("batch", str(prompts), "-o", str(out), "-f", "json,txt", "-n", "5", "--parallel", "3")
    assert again.returncode == 0 and b"0 generated, 7 already complete" in again.stderr  # the txt drawn from disk
    assert all((out / i["files"]["json"]).with_suffix(".txt").is_file() for i in idx["items"])
    assert run_cli("batch", str(prompts), "-o", str(out), "--parallel", "0").returncode == 2


def test_parallel_refills_across_lengths_and_models(tmp_path: Path, second_model: Path) -> None:
    """--parallel 2 over jobs of different lengths and two local models: every job is decoded (a
    finished sequence's place is taken by the next job; a job for another model starts a new
    stream), each with its own length and model."""
    lines = [{"prompt": "The sky is", "max_tokens": 2}, {"prompt": "Water is", "max_tokens": 9},
             {"prompt": "Fire is", "model": str(second_model), "max_tokens": 4}, {"prompt": "Ice is", "max_tokens": 6},
             {"prompt": "Stone is", "max_tokens": 3}]
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out"
    proc = run_cli("batch", str(prompts), "-o", str(out), "-f", "json", "--parallel", "2", "-q")
    assert proc.returncode == 0, proc.stderr
    idx = index(out)
    assert idx["summary"] == {"total": 5, "ok": 5, "failed": 0, "pending": 0}
    for item, line in zip(idx["items"], lines):
        run = Run.from_json((out / item["files"]["json"]).read_text())
        assert run.prompt == line["prompt"] and 1 <= len(run.steps) <= line["max_tokens"]
        assert (run.model.endswith("q4_0.gguf") or "q4_0" in run.model) == ("model" in line)


def test_one_folder_one_batch_and_a_crashed_holder_keeps_nothing_locked(tmp_path: Path, fake: object) -> None:
    """A second process holding the folder (as a running batch does): the batch is refused in one
    line before asking anything; once the holder is killed (SIGKILL, no cleanup) the folder is free."""
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from tokviz.batch.state import State; State(Path(sys.argv[1])); print('held', flush=True); "
                               "time.sleep(600)", str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        prompts = tmp_path / "p.txt"
        prompts.write_text("alpha\nbeta\n")
        refused = run_cli("batch", str(prompts), "-o", str(out), "-m", "fake-1", "-f", "json")
        err = refused.stderr.decode()
        assert refused.returncode == 1 and err.count("\n") == 1 and "another tokviz batch" in err
        assert not list(out.glob("*.json"))  # nothing asked, nothing written
        holder.kill()
        holder.wait(timeout=10)
        time.sleep(0.1)
        done = run_cli("batch", str(prompts), "-o", str(out), "-m", "fake-1", "-f", "json")
        assert done.returncode == 0 and index(out)["summary"]["ok"] == 2
    finally:
        holder.kill()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_does_not_wait_for_requests_that_hang(tmp_path: Path, fault: servers.FaultServer, sig: int, code: int) -> None:
    """Four requests to a server that never answers, --timeout 10 with retries: a stop ends the
    batch in seconds (answers in flight get a short grace), not after the timeout times the retries;
    the hung prompts stay pending and the index is written."""
    fault.script = [servers.slow(60.0, servers.reply_error(500, "late"))]
    prompts = tmp_path / "p.txt"
    prompts.write_text("".join(f"prompt {i}\n" for i in range(6)))
    out = tmp_path / "out"
    proc = subprocess.Popen([*tokviz_cmd(), "batch", str(prompts), "-o", str(out), "-m", "gpt-4.1-mini", "--base-url",
                             fault.base_url, "-j", "4", "--timeout", "10", "-f", "json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(fault.received) < 4:
        time.sleep(0.05)
    assert len(fault.received) >= 4
    t = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code and time.monotonic() - t < 6, (time.monotonic() - t, err)
    idx = index(out)
    assert idx["summary"]["ok"] == 0 and idx["summary"]["pending"] == 6


def test_a_line_too_long_to_be_a_prompt_fails_alone_and_is_never_held_whole(tmp_path: Path, fake: object) -> None:
    from tokviz.batch import jobs

    prompts = tmp_path / "p.txt"
    with prompts.open("w") as fh:
        fh.write("first\n" + "x" * (3 * jobs.MAX_LINE + 17) + "\nlast\n")
    read = list(jobs.read_lines(prompts))
    assert [type(line).__name__ for line in read] == ["str", "LongLine", "str"] and max(map(len, read)) < 10
    out = tmp_path / "out"
    proc = run_cli("batch", str(prompts), "-o", str(out), "-m", "fake-1", "-f", "json")
    items = index(out)["items"]
    assert proc.returncode == 1 and [i["status"] for i in items] == ["ok", "failed", "ok"]
    assert "longer than 1,000,000 characters" in items[1]["error"]


@pytest.mark.parametrize("parallel", ["1", "2"])
def test_a_batch_run_says_what_its_figures_are(tmp_path: Path, parallel: str) -> None:
    """Batch runs leave the provider through the same gate as predict's: each records what its
    figures are (they once said "not known" for the embedded model, whose are before sampling)."""
    prompts = tmp_path / "p.txt"
    prompts.write_text("One\nTwo\n", encoding="utf-8")
    proc = run_cli("batch", str(prompts), "-n", "2", "-o", str(tmp_path / "out"), "-f", "json", "--parallel", parallel)
    assert proc.returncode == 0, proc.stderr
    runs = [Run.from_json(p.read_text()) for p in (tmp_path / "out").glob("*.json") if p.name != "index.json"]
    assert len(runs) == 2 and {r.figures for r in runs} == {"before sampling"}
