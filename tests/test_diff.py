"""Behaviour goldens: `tokviz diff` and `tokviz check` tell the engines' noise from a change.

The pure comparisons run on hand-made runs (each case states its expected verdict); the real ones
use the embedded model, llama.cpp's own llama-server over the same GGUF, and a quantisation of the
same model made in the test with llama-quantize.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import make_run, run_cli, tok
from tokviz.measures import noise
from tokviz.measures.compare import Tolerance, Verdict, compare_records, compare_runs
from tokviz.measures.metrics import near_ties
from tokviz.run import Run, RunKind, Step

CAPITAL = [[(" Paris", 0.6), (" a", 0.3), (" the", 0.05)], [(".", 0.7), (",", 0.2), ("!", 0.05)],
           [(" It", 0.5), (" The", 0.3), ("\n", 0.1)], [(" is", 0.8), (" has", 0.1), (" was", 0.05)]]


def shifted(run: Run, by: dict[int, float]) -> Run:
    """The same run with the chosen tokens' logprobs moved by `by[step]` nats (and their entries
    among the alternatives with them), as another engine's arithmetic would move them."""
    steps = []
    for n, step in enumerate(run.steps):
        d = by.get(n, 0.0)
        chosen = replace(step.chosen, logprob=min(0.0, step.chosen.logprob + d))
        alts = tuple(chosen if a.id == step.chosen.id else a for a in step.alternatives)
        steps.append(Step(chosen=chosen, alternatives=alts))
    return replace(run, steps=tuple(steps))


def test_the_same_record_is_identical() -> None:
    run = make_run(CAPITAL)
    c = compare_runs(run, Run.from_json(run.to_json()), Tolerance())
    assert c.verdict is Verdict.IDENTICAL and c.reasons == () and c.agree == 4 and c.fork is None


def test_small_moves_are_noise_and_a_large_one_is_a_change_named_by_its_step() -> None:
    run = make_run(CAPITAL)
    noisy = compare_runs(run, shifted(run, {0: -0.1, 2: 0.05}), Tolerance())
    assert noisy.verdict is Verdict.WITHIN_NOISE and noisy.max_delta is not None and noisy.max_delta.index == 0
    changed = compare_runs(run, shifted(run, {1: -(noise.ATOL + 0.2)}), Tolerance())
    assert changed.verdict is Verdict.CHANGED and "step 2" in changed.reasons[0] and "--atol" in changed.reasons[0]
    # many small moves the same way: each under --atol, their mean over --atol-mean
    drift = compare_runs(run, shifted(run, dict.fromkeys(range(4), -(noise.ATOL_MEAN + 0.1))), Tolerance())
    assert drift.verdict is Verdict.CHANGED and any("--atol-mean" in r for r in drift.reasons)


def _fork_run(gap: float) -> tuple[Run, Run]:
    """Two runs that part at step 2, where A's choice and B's choice are `gap` nats apart in both."""
    p1 = 0.5
    p2 = p1 * math.exp(-gap)
    a = make_run([CAPITAL[0], [(".", p1), (",", p2), ("!", 0.01)], [(" It", 0.5), (" The", 0.3)]])
    b_steps = list(make_run([CAPITAL[0], [(",", p1), (".", p2), ("!", 0.01)], [(" and", 0.5), (" but", 0.3)]]).steps)
    # the same vocabulary: ids follow the text
    ids = {t.text: t.id for s in a.steps for t in s.alternatives}
    b_steps = [Step(chosen=replace(s.chosen, id=ids.get(s.chosen.text, 100 + n)),
                    alternatives=tuple(replace(t, id=ids.get(t.text, 200 + n * 10 + m)) for m, t in enumerate(s.alternatives)))
               for n, s in enumerate(b_steps)]
    return a, replace(a, steps=tuple(b_steps))


def test_a_fork_at_a_near_tie_is_noise_unless_exact_tokens_are_asked_for() -> None:
    a, b = _fork_run(0.05)
    tie = compare_runs(a, b, Tolerance())
    assert tie.fork is not None and tie.fork.step_a == 1 and tie.fork.near_tie(noise.NEAR_TIE)
    assert tie.verdict is Verdict.WITHIN_NOISE and tie.agree == 1 and tie.fork.before == " Paris"
    assert tie.fork.rest_a.startswith(".") and tie.fork.rest_b.startswith(",")
    exact = compare_runs(a, b, Tolerance(tokens="exact"))
    assert exact.verdict is Verdict.CHANGED and "part at step 2" in exact.reasons[0]
    assert compare_runs(a, b, Tolerance(tokens="prefix", prefix=1)).verdict is Verdict.WITHIN_NOISE
    assert compare_runs(a, b, Tolerance(tokens="prefix", prefix=2)).verdict is Verdict.CHANGED
    wide = compare_runs(*_fork_run(1.5), Tolerance())
    assert wide.verdict is Verdict.CHANGED and "more than --near-tie" in wide.reasons[0]


def test_records_of_two_tokenizers_are_aligned_on_shared_byte_boundaries() -> None:
    a = Run(provider="x", model="m1", prompt="p", params=make_run(CAPITAL).params, steps=(
        Step(chosen=tok(" Par", 0.5, 1), alternatives=(tok(" Par", 0.5, 1),)),
        Step(chosen=tok("is", 0.9, 2), alternatives=(tok("is", 0.9, 2),)),
        Step(chosen=tok(".", 0.7, 3), alternatives=(tok(".", 0.7, 3), tok(",", 0.2, 4)))))
    b = replace(a, model="m2", steps=(
        Step(chosen=tok(" Paris", 0.4, 7), alternatives=(tok(" Paris", 0.4, 7),)),
        Step(chosen=tok(".", 0.6, 9), alternatives=(tok(".", 0.6, 9), tok(",", 0.3, 8)))))
    c = compare_runs(a, b, Tolerance())
    assert not c.same_vocabulary and c.fork is None and [p.text for p in c.positions] == [" Paris", "."]
    first, last = c.positions
    assert (first.tokens_a, first.tokens_b) == (2, 1) and first.delta == pytest.approx(math.log(0.4) - math.log(0.45), abs=1e-5)
    assert last.overlap == 1.0 and last.kl is not None and last.kl > 0  # compared by bytes, not by their unrelated ids


def test_trees_compare_the_paths_they_share(fake: object) -> None:
    out = run_cli("tree", "hello", "-m", "fake-1", "--depth", "2", "--branch", "2", "--json")
    tree = Run.from_json(out.stdout.decode()) if out.returncode == 0 else None
    if tree is None:
        pytest.fail(out.stderr.decode())
    same = compare_records(tree, tree, Tolerance())[0]
    assert same.verdict is Verdict.IDENTICAL and same.kind == "tree" and same.agree == len(tree.nodes)
    moved = replace(tree, nodes=tuple(replace(n, token=replace(n.token, logprob=n.token.logprob - 2.0)) if i == 0 else n
                                      for i, n in enumerate(tree.nodes)))
    changed = compare_records(tree, moved, Tolerance())[0]
    assert changed.verdict is Verdict.CHANGED and "--atol" in changed.reasons[0]


def test_records_of_different_kinds_are_refused(tmp_path: Path, small_run_file: Path) -> None:
    other = tmp_path / "score.json"
    other.write_text(replace(Run.from_json(small_run_file.read_text()), kind=RunKind.SCORE).to_json())
    proc = run_cli("diff", str(small_run_file), str(other))
    assert proc.returncode == 2 and b"cannot be compared" in proc.stderr and proc.stderr.count(b"\n") == 1


def test_near_ties_are_the_steps_another_engine_may_decide_otherwise() -> None:
    run = make_run([[(" a", 0.40), (" b", 0.38)], [(" c", 0.9), (" d", 0.05)]])
    assert near_ties(run) == (1,)


def test_diff_prints_the_table_and_its_exit_code_follows_the_verdict(tmp_path: Path, small_run_file: Path) -> None:
    run = Run.from_json(small_run_file.read_text())
    same = run_cli("diff", str(small_run_file), str(small_run_file))
    assert same.returncode == 0 and b"identical" in same.stdout
    changed_file = tmp_path / "changed.json"
    changed_file.write_text(shifted(run, {0: -1.5}).to_json())
    proc = run_cli("diff", str(small_run_file), str(changed_file), "--junit", str(tmp_path / "j.xml"),
                   "-o", str(tmp_path / "d.html"), "-o", str(tmp_path / "d.md"))
    out = proc.stdout.decode()
    assert proc.returncode == 1 and "changed" in out and "step 1" in out and "tolerances: --atol" in out
    assert proc.stderr.decode().count("\n") == 1 and "1 of 1 changed" in proc.stderr.decode()
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1" and suite.find("testcase/failure") is not None
    page = (tmp_path / "d.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "changed" in page and "<script" not in page
    assert (tmp_path / "d.md").read_text().startswith("## tokviz: changed")
    loose = run_cli("diff", str(small_run_file), str(changed_file), "--atol", "2", "--atol-mean", "1", "--max-kl", "2",
                    "--json")
    doc = json.loads(loose.stdout)
    assert loose.returncode == 0 and doc["verdict"] == "within noise" and doc["comparisons"][0]["tolerance"]["atol"] == 2
    md = run_cli("diff", str(small_run_file), str(changed_file), "--format", "md")
    assert md.stdout.startswith(b"## tokviz: changed") and md.returncode == 1


def test_tolerances_come_from_pyproject_and_bad_ones_are_one_line(tmp_path: Path, small_run_file: Path) -> None:
    run = Run.from_json(small_run_file.read_text())
    changed_file = tmp_path / "changed.json"
    changed_file.write_text(shifted(run, {0: -1.5}).to_json())
    (tmp_path / "pyproject.toml").write_text("[tool.tokviz.check]\natol = 2.0\natol-mean = 1.0\nmax-kl = 2.0\n")
    assert run_cli("diff", str(small_run_file), str(changed_file), cwd=tmp_path).returncode == 0
    assert run_cli("diff", str(small_run_file), str(changed_file), "--atol", "0.5", cwd=tmp_path).returncode == 1
    (tmp_path / "pyproject.toml").write_text("[tool.tokviz.check]\natoll = 2.0\n")
    typo = run_cli("diff", str(small_run_file), str(changed_file), cwd=tmp_path)
    assert typo.returncode == 2 and b"atoll" in typo.stderr and typo.stderr.count(b"\n") == 1
    for bad in (["--tokens", "prefix"], ["--tokens", "loose"], ["--min-overlap", "2"], ["--atol", "nan"]):
        proc = run_cli("diff", str(small_run_file), str(small_run_file), *bad)
        assert proc.returncode == 2 and proc.stderr.count(b"\n") == 1, (bad, proc.stderr)


def test_two_batch_folders_are_compared_prompt_by_prompt(tmp_path: Path, fake: object) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("alpha\nbeta\n")
    assert run_cli("batch", str(prompts), "-o", str(tmp_path / "a"), "-m", "fake-1", "-f", "json", "-q").returncode == 0
    assert run_cli("batch", str(prompts), "-o", str(tmp_path / "b"), "-m", "fake-1", "-f", "json", "-q").returncode == 0
    same = run_cli("diff", str(tmp_path / "a"), str(tmp_path / "b"), "--json")
    assert same.returncode == 0 and [c["verdict"] for c in json.loads(same.stdout)["comparisons"]] == ["identical"] * 2
    prompts.write_text("alpha\nbeta\ngamma\n")
    run_cli("batch", str(prompts), "-o", str(tmp_path / "b"), "-m", "fake-1", "-f", "json", "-q")
    more = run_cli("diff", str(tmp_path / "a"), str(tmp_path / "b"), "--json")
    assert more.returncode == 1 and "only" in json.loads(more.stdout)["comparisons"][-1]["reasons"][0]


def test_hostile_text_stays_data_in_every_report(tmp_path: Path, hostile_run: Run) -> None:
    a = tmp_path / "a.json"
    a.write_text(hostile_run.to_json())
    b = tmp_path / "b.json"
    b.write_text(shifted(hostile_run, {3: -2.0}).to_json())
    proc = run_cli("diff", str(a), str(b), "-o", str(tmp_path / "d.html"), "--junit", str(tmp_path / "j.xml"), "--format", "md")
    assert proc.returncode == 1
    assert "<script>alert" not in (tmp_path / "d.html").read_text()
    ET.parse(tmp_path / "j.xml")  # parses: control characters and markup escaped
    assert b"\x1b" not in proc.stdout and b"<script>" not in proc.stdout


def test_score_records_are_compared_token_by_token(tmp_path: Path) -> None:
    a = run_cli("score", "The capital of France is Paris.", "--json")
    b = run_cli("score", "The capital of France is Paris.", "--exact", "--json")
    assert json.loads(a.stdout)["provider"] == "local" and json.loads(a.stdout)["model"] == "gemma-3-270m"
    (tmp_path / "a.json").write_bytes(a.stdout)
    (tmp_path / "b.json").write_bytes(b.stdout)
    proc = run_cli("diff", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--json")
    doc = json.loads(proc.stdout)["comparisons"][0]
    assert proc.returncode == 0 and doc["kind"] == "score" and doc["fork"] is None and doc["verdict"] != "changed"
    assert doc["agree"] == doc["steps_a"] and doc["max_abs_delta"]["value"] <= noise.DECODE_MAX


# --- real parts: the embedded model, llama.cpp's own server, another quantisation ---------------------

PROMPTS = ["The capital of France is", "Once upon a time", "Water boils at"]


def _predict(path: Path, prompt: str, *args: str) -> Path:
    proc = run_cli("predict", prompt, "-n", "12", "-k", "10", "--save", str(path), "-q", *args)
    assert proc.returncode == 0, proc.stderr
    return path


def test_the_embedded_model_and_llama_server_agree_within_noise(tmp_path: Path, llama_cpp_server: str) -> None:
    """The same GGUF through two builds of llama.cpp: every figure differs, the behaviour does not."""
    for n, prompt in enumerate(PROMPTS):
        local = _predict(tmp_path / f"local{n}.json", prompt)
        served = _predict(tmp_path / f"served{n}.json", prompt, "--base-url", llama_cpp_server, "--raw", "-m", "gemma-3-270m")
        assert local.read_bytes() != served.read_bytes()  # a byte-equal golden would fail here
        proc = run_cli("diff", str(local), str(served), "--json")
        doc = json.loads(proc.stdout)["comparisons"][0]
        assert proc.returncode == 0 and doc["verdict"] == "within noise", (prompt, doc["reasons"])
        assert doc["max_abs_delta"]["value"] > 0


def test_another_quantisation_of_the_model_is_a_change(tmp_path: Path, second_model: Path) -> None:
    """The same weights requantized (Q4_K_M → Q4_0, made by llama-quantize in the fixture): changed,
    and the reason names the fork or the largest Δ."""
    changed = 0
    for n, prompt in enumerate(PROMPTS):
        a = _predict(tmp_path / f"a{n}.json", prompt)
        b = _predict(tmp_path / f"b{n}.json", prompt, "-m", str(second_model))
        proc = run_cli("diff", str(a), str(b))
        if proc.returncode == 1:
            changed += 1
            out = proc.stdout.decode()
            assert "changed" in out and ("part at step" in out or "exceeds --atol" in out), out
    assert changed == len(PROMPTS)


def test_an_edited_prompt_is_a_change(tmp_path: Path) -> None:
    a = _predict(tmp_path / "a.json", "The capital of France is")
    b = _predict(tmp_path / "b.json", "The capital of Spain is")
    proc = run_cli("diff", str(a), str(b), "--json")
    doc = json.loads(proc.stdout)["comparisons"][0]
    assert proc.returncode == 1 and doc["verdict"] == "changed" and doc["requests_differ"] == ["prompt"]
    assert doc["fork"] is not None or doc["max_abs_delta"]["value"] > noise.ATOL


def test_check_reruns_goldens_and_update_rewrites_only_what_changed(tmp_path: Path) -> None:
    goldens = tmp_path / "goldens"
    goldens.mkdir()
    paths = [_predict(goldens / f"g{n}.json", prompt) for n, prompt in enumerate(PROMPTS)]
    tampered = shifted(Run.from_json(paths[1].read_text()), {2: -2.0})
    paths[1].write_text(tampered.to_json())
    before = {p: p.read_bytes() for p in paths}
    proc = run_cli("check", str(goldens), "--junit", str(tmp_path / "j.xml"))
    assert proc.returncode == 1, proc.stderr
    assert "g1.json" in proc.stderr.decode() and "1 of 3 changed" in proc.stderr.decode()
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "3" and suite.get("failures") == "1"
    failed = [c.get("name") for c in suite.findall("testcase") if c.find("failure") is not None]
    assert len(failed) == 1 and failed[0].endswith("g1.json")
    updated = run_cli("check", str(goldens), "--update")
    assert updated.returncode == 0, updated.stderr
    assert b"updated" in updated.stderr and str(paths[1]).encode() in updated.stderr
    assert paths[1].read_bytes() != before[paths[1]]
    assert all(p.read_bytes() == before[p] for p in (paths[0], paths[2]))  # within noise: left as they were
    assert run_cli("check", str(goldens)).returncode == 0


def test_check_m_names_a_requantised_model_and_reports_it_changed(tmp_path: Path, second_model: Path) -> None:
    """Goldens of the embedded model checked against another quantisation named on the command
    line (`check -m`): changed, and the report names the model that was asked."""
    goldens = tmp_path / "goldens"
    goldens.mkdir()
    for n, prompt in enumerate(PROMPTS):
        _predict(goldens / f"g{n}.json", prompt)
    assert run_cli("check", str(goldens)).returncode == 0
    proc = run_cli("check", str(goldens), "-m", str(second_model), "--json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1 and doc["verdict"] == "changed", doc
    assert all(c["b"].endswith(second_model.name) for c in doc["comparisons"])
    assert second_model.name in proc.stderr.decode()  # "asking model …": what was asked, said before the verdict


def test_check_against_a_real_server_and_offline_through_its_cassette(tmp_path: Path, llama_cpp_server: str) -> None:
    golden = _predict(tmp_path / "served.json", "The capital of France is", "--base-url", llama_cpp_server, "--raw",
                      "-m", "gemma-3-270m", "--record", str(tmp_path / "cassette.json"))
    assert Run.from_json(golden.read_text()).source["server"] == llama_cpp_server  # asked again there
    live = run_cli("check", str(golden), "--json")
    assert live.returncode == 0, live.stderr
    assert json.loads(live.stdout)["comparisons"][0]["verdict"] in ("identical", "within noise")
    offline = run_cli("check", str(golden), "--replay", str(tmp_path / "cassette.json"), "--json")
    assert offline.returncode == 0 and json.loads(offline.stdout)["verdict"] == "identical"
    golden.write_text(shifted(Run.from_json(golden.read_text()), {0: -0.01}).to_json())  # within noise, but not identical
    strict = run_cli("check", str(golden), "--replay", str(tmp_path / "cassette.json"))
    assert strict.returncode == 1 and b"must be identical" in strict.stdout


def test_check_refuses_what_it_cannot_read_in_one_line(tmp_path: Path) -> None:
    assert run_cli("check", str(tmp_path / "none.json")).returncode == 2
    (tmp_path / "bad.json").write_text("{}")
    proc = run_cli("check", str(tmp_path / "bad.json"))
    assert proc.returncode == 1 and proc.stderr.count(b"\n") == 1 and b"not a tokviz run" in proc.stderr
