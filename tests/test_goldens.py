"""Goldens that never pass falsely (issue 36): `check` asks what the user asked — the server named
by --base-url, the model named by -m — and reuses a kept answer only for the same request. Each
test does what the user did, against a server on 127.0.0.1 that logs what it receives."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests import servers
from tests.conftest import run_cli
from tokviz.run import Run

pytestmark = pytest.mark.usefixtures("fake")


def _record(path: Path, *args: str) -> Path:
    proc = run_cli("predict", "The capital of France is", "-n", "4", "--save", str(path), "-q", *args)
    assert proc.returncode == 0, proc.stderr
    return path


def test_check_base_url_asks_the_named_server(fault: servers.FaultServer, tmp_path: Path) -> None:
    """Goldens recorded from an in-process model, checked against a server: the server is asked
    (its log shows each request), and the report names what was asked."""
    golden = _record(tmp_path / "g.json", "-m", "fake")
    fault.script = [servers.reply_stream(servers.answer(" Paris and", model="served-model"))]
    fault.pages = {"/v1/models": {"object": "list", "data": [{"id": "served-model", "object": "model"}]}}
    proc = run_cli("check", str(golden), "--base-url", fault.base_url, "--json")
    assert len(fault.received) == 1 and fault.received[0].body["model"] == "served-model"  # the model it serves
    assert "asking" in proc.stderr.decode() and fault.base_url in proc.stderr.decode()
    doc = json.loads(proc.stdout)["comparisons"][0]
    assert proc.returncode == 1 and doc["verdict"] == "changed"  # another engine's words: not "identical"
    assert doc["b"] != doc["a"]


def test_check_m_asks_the_named_model(tmp_path: Path) -> None:
    """`check -m NEW`: the goldens' prompts asked of the new model, which changed them."""
    golden = _record(tmp_path / "g.json", "-m", "fake")
    same = run_cli("check", str(golden), "--json")
    assert same.returncode == 0 and json.loads(same.stdout)["verdict"] == "identical"
    other = run_cli("check", str(golden), "-m", "fake-other", "--json")
    doc = json.loads(other.stdout)["comparisons"][0]
    # the fake's words do not depend on the model's name: what was asked is named, never assumed
    assert doc["a"] == "fake:fake" and doc["b"] == "fake:fake-other" and "fake-other" in other.stderr.decode()
    unknown = run_cli("check", str(golden), "-p", "no-such-provider")
    assert unknown.returncode == 2 and unknown.stderr.count(b"\n") == 1


def test_a_stale_out_never_answers_a_changed_golden(fault: servers.FaultServer, tmp_path: Path) -> None:
    fault.script = [servers.reply_stream(servers.answer(" Paris"))]
    golden = _record(tmp_path / "g.json", "-m", "gpt-4.1-mini", "--base-url", fault.base_url)
    out = tmp_path / "o"
    assert run_cli("check", str(golden), "--out", str(out)).returncode == 0
    asked = len(fault.received)
    assert run_cli("check", str(golden), "--out", str(out)).returncode == 0
    assert len(fault.received) == asked  # the same request: the kept answer is reused
    _record(golden, "-m", "gpt-4.1-mini", "--base-url", fault.base_url, "-t", "0.7", "--seed", "3")
    again = run_cli("check", str(golden), "--out", str(out), "--json")
    assert len(fault.received) == asked + 2  # re-recorded (one request), then asked again by check
    assert Run.from_json(golden.read_text()).params.seed == 3
    assert fault.received[-1].body.get("seed") == 3 and fault.received[-1].body.get("temperature") == 0.7
    assert again.returncode == 0, again.stdout


def test_two_batch_folders_of_two_models_pair_by_prompt(tmp_path: Path) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("The capital of France is\nOnce upon a time\nWater boils at\nOnce upon a time\n")
    for model, out in (("fake", "a"), ("fake-other", "b")):
        proc = run_cli("batch", str(prompts), "-o", str(tmp_path / out), "-m", model, "-n", "3", "-f", "json")
        assert proc.returncode == 0, proc.stderr
    proc = run_cli("diff", str(tmp_path / "a"), str(tmp_path / "b"), "--json")
    doc = json.loads(proc.stdout)
    assert len(doc["comparisons"]) == 3  # the repeated prompt is one job in each folder
    assert all(c["a"] == "fake:fake" and c["b"] == "fake:fake-other" for c in doc["comparisons"])
    assert all(c["agree"] == 3 for c in doc["comparisons"]) and proc.returncode == 0


def _two(tmp_path: Path) -> tuple[Path, Path]:
    """Two records of one vocabulary that part at the first step (each with all 8 alternatives)."""
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for path, prompt in ((a, "The capital of France is"), (b, "Once upon a time")):
        assert run_cli("predict", prompt, "-m", "fake", "-n", "4", "-k", "8", "--save", str(path), "-q").returncode == 0
    ra, rb = Run.from_json(a.read_text()), Run.from_json(b.read_text())
    assert ra.steps[0].chosen.text != rb.steps[0].chosen.text  # the fork is at step 1
    return a, b


def test_a_fork_says_why_it_is_not_noise_with_both_figures(tmp_path: Path) -> None:
    a, b = _two(tmp_path)
    proc = run_cli("diff", str(a), str(b), width=200)
    out = proc.stdout.decode()
    assert proc.returncode == 1
    reason = next(line for line in out.splitlines() if "part at step 1" in line)
    assert reason.count("%") >= 4 and "nats apart, more than --near-tie" in reason, reason
    assert "two vocabularies" not in out  # one tokenizer: the ids agree, even with no step before the fork
    assert "≠" in out and "then the fork" in out  # the step table goes on to the fork


def test_no_number_is_cut_at_80_columns(tmp_path: Path) -> None:
    a, b = _two(tmp_path)
    data = json.loads(b.read_text())
    data["prompt"] = json.loads(a.read_text())["prompt"]
    data["steps"] = json.loads(a.read_text())["steps"]
    for step in data["steps"]:
        step["chosen"]["logprob"] = round(step["chosen"]["logprob"] - 1.23456, 6)  # every step beyond --atol
    b.write_text(json.dumps(data))
    proc = run_cli("diff", str(a), str(b), width=80)
    table = proc.stdout.decode()
    assert proc.returncode == 1 and "Δ nats" in table
    assert "…" not in table, table
    assert all(len(line) <= 80 for line in table.splitlines())
    head = next(line for line in table.splitlines() if "Δ nats" in line)
    shown = [h for h in ("step", "p A", "p B", "Δ nats", "rank A/B", "overlap", "KL≥", "Δ entropy") if h in head]
    assert head.split() == " ".join(["step", "text", *shown[1:]]).split(), head  # whole headers or none
    assert re.search(r"[+-]\d+\.\d{3}\b", table)  # Δ with all three decimals


def test_the_check_report_names_golden_and_new_and_shows_the_prompt_and_steps(tmp_path: Path) -> None:
    a, _ = _two(tmp_path)
    data = json.loads(a.read_text())
    data["steps"][1]["chosen"]["logprob"] -= 3.0
    a.write_text(json.dumps(data))
    report = tmp_path / "r.html"
    proc = run_cli("check", str(a), "-o", str(report))
    assert proc.returncode == 1
    page = report.read_text()
    assert "<title>tokviz check: changed</title>" in page and "The capital of France is" in page
    assert "golden:" in page and "new:" in page and 'class="steps"' in page and "p golden" in page


def test_two_scores_are_aligned_on_bytes_after_a_split_character() -> None:
    """A's tokens split "🦒" into byte pieces (each shown "�"), B's do not: every later segment is
    still the right words, and the comparison has a verdict like `diff`'s."""
    from tokviz.measures import align
    from tokviz.run import Params, RunKind, RunSet, Step, Token
    from tokviz.views import score_comparison

    def run(pieces: list[bytes]) -> Run:
        steps = tuple(Step(chosen=Token(text=p.decode("utf-8", "replace"), raw=p, logprob=-0.5, id=n),
                           alternatives=(Token(text=p.decode("utf-8", "replace"), raw=p, logprob=-0.5, id=n),))
                      for n, p in enumerate(pieces))
        return Run(provider="fake", model="m", prompt="", params=Params(), steps=steps, kind=RunKind.SCORE)

    giraffe = "🦒".encode()
    a = run([b"\t", giraffe[:1], giraffe[1:2], giraffe[2:], b" abs", b",", b" capital", b" of"])
    b = run([b"\t", giraffe, b" abs", b",", b" capital", b" of"])
    texts = [s.text for s in align.align(a, b)]
    assert texts == ["\t", "🦒", " abs", ",", " capital", " of"]
    lines = score_comparison.to_json(RunSet(kind=RunKind.SCORE_COMPARISON, runs=(a, b)))
    doc = json.loads(lines)
    assert doc["verdict"] in ("identical", "within noise", "changed") and "reasons" in doc


def test_a_batch_job_named_by_its_id_is_asked_again_when_its_line_changes(tmp_path: Path) -> None:
    """An id names a job, not its request: the same id with another prompt or model is a new
    question, never answered from the old file; the same line again is resumed."""
    jobs, out = tmp_path / "jobs.jsonl", tmp_path / "out"

    def batch(line: dict[str, object], model: str = "fake") -> Run:
        jobs.write_text(json.dumps(line) + "\n")
        proc = run_cli("batch", str(jobs), "-o", str(out), "-m", model, "-n", "3", "-f", "json")
        assert proc.returncode == 0, proc.stderr
        return Run.from_json((out / "q1.json").read_text())

    first = batch({"id": "q1", "prompt": "The capital of France is"})
    again = run_cli("batch", str(jobs), "-o", str(out), "-m", "fake", "-n", "3", "-f", "json")
    assert b"0 generated" in again.stderr  # the same line: resumed
    assert batch({"id": "q1", "prompt": "Once upon a time"}).prompt == "Once upon a time"
    assert batch({"id": "q1", "prompt": "Once upon a time"}, model="fake-other").model == "fake-other"
    assert first.prompt == "The capital of France is"
