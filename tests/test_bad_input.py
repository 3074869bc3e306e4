"""Bad input found by the probe of issue 35, each done the way the probe did it: one line and a
non-zero exit (or, for one bad job in a batch, that job failed and the rest done), never a
traceback, an "internal error" or a hang."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests import servers
from tests.conftest import run_cli, run_process

pytestmark = pytest.mark.usefixtures("fake")


def one_line(proc: object, code: tuple[int, ...] = (1, 2)) -> str:
    err = proc.stderr.decode("utf-8", "replace")  # type: ignore[attr-defined]
    assert proc.returncode in code, (proc.returncode, err)  # type: ignore[attr-defined]
    assert err.count("\n") == 1 and "internal error" not in err and "Traceback" not in err, err
    return err


def _saved(tmp_path: Path, name: str = "r.json", prompt: str = "The prompt") -> Path:
    path = tmp_path / name
    assert run_cli("predict", prompt, "-m", "fake", "-n", "3", "--save", str(path), "-q").returncode == 0
    return path


@pytest.mark.parametrize("where", ["model", "token", "prompt"])
@pytest.mark.parametrize("command", [["diff", "{f}", "{f}", "-o", "{o}.html"], ["diff", "{f}", "{f}", "-o", "{o}.json"],
                                     ["render", "{f}", "-o", "{o}.html"], ["check", "{f}"]])
def test_a_lone_surrogate_in_a_record_is_one_line(tmp_path: Path, where: str, command: list[str]) -> None:
    path = _saved(tmp_path)
    text = path.read_text()
    doc = json.loads(text)
    if where == "model":
        doc["model"] = "m\ud800"
    elif where == "prompt":
        doc["prompt"] = "a\udcff"
    else:
        doc["steps"][0]["chosen"]["text"] = "x\ud83d"
    path.write_text(json.dumps(doc))  # ensure_ascii: the surrogate is written as \ud800, as a hostile file would
    args = [a.replace("{f}", str(path)).replace("{o}", str(tmp_path / "out")) for a in command]
    err = one_line(run_cli(*args))
    assert "surrogate" in err


def test_a_lone_surrogate_in_one_jsonl_prompt_fails_that_job_only(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"prompt": "fine one"}\n{"prompt": "bad \\ud800 one"}\n{"prompt": "fine two"}\n')
    out = tmp_path / "out"
    proc = run_cli("batch", str(jobs), "-o", str(out), "-m", "fake", "-n", "2", "-f", "json")
    assert proc.returncode == 1, proc.stderr  # a failed job: exit 1, the others done
    index = json.loads((out / "index.json").read_text())
    assert [i["status"] for i in index["items"]] == ["ok", "failed", "ok"]
    assert "surrogate" in index["items"][1]["error"]


def test_a_golden_file_name_that_is_not_utf8(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    weird = os.fsencode(str(tmp_path)) + b"/g\xff\xfe.json"
    os.rename(path, weird)
    proc = run_cli("check", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    assert "\\udcff" in json.loads(proc.stdout)["comparisons"][0]["name"] or "\\xff" in proc.stdout.decode()


@pytest.mark.parametrize("value", ["-" + "9" * 5000, "-Infinity", "-1e309", "NaN"])
def test_a_logprob_that_is_no_finite_number_is_refused(tmp_path: Path, value: str) -> None:
    path = _saved(tmp_path)
    text = re.sub(r'"logprob": -?[0-9.e-]+', f'"logprob": {value}', path.read_text(), count=1)
    path.write_text(text)
    err = one_line(run_cli("render", str(path)))
    assert "not a tokviz record" in err or "finite" in err


@pytest.mark.parametrize("kind", ["/dev/zero link", "fifo", "folder link"])
def test_a_golden_that_is_no_regular_file_is_refused_at_once(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "gold"
    folder.mkdir()
    target = folder / "g.json"
    if kind == "/dev/zero link":
        target.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        target.symlink_to(tmp_path)
    for args in (["check", str(target)], ["check", str(folder)], ["render", str(target)]):
        proc = run_process(*args, timeout=60)  # a hang or the OOM killer would fail here
        err = one_line(proc)
        assert "regular file" in err or "folder" in err, err


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/v1\x1b[31m", "http://127.0.0.1:1/v1\n", "http://exa mple/v1"])
def test_a_server_url_with_a_control_character_is_one_line(url: str) -> None:
    err = one_line(run_cli("predict", "x", "-m", "gpt-4.1-mini", "--base-url", url))
    assert "\x1b" not in err and "control character" in err


def test_check_out_on_a_full_disk_is_one_line(tmp_path: Path, full_disk: Path | None,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """On a real nearly full 64 KiB tmpfs where this machine lets a test mount one; elsewhere the
    same failure at the same call (the answer's file cannot be written)."""
    golden = _saved(tmp_path)
    if full_disk is None:
        from tokviz.batch import runner
        from tokviz.ground.files import OutputError

        def full(path: Path, data: bytes) -> None:
            raise OutputError(f"cannot write {path}: the disk is full")

        monkeypatch.setattr(runner, "write_atomic", full)
        out = tmp_path / "o"
    else:
        filler = full_disk / "filler"
        os.truncate(filler, max(0, filler.stat().st_size - 16_000))  # nearly full: a little room, not enough
        out = full_disk / "o"
    err = one_line(run_cli("check", str(golden), "--out", str(out)))
    assert "KeyError" not in err


def test_a_hanging_golden_server_is_given_up_after_check_timeout(fault: servers.FaultServer, tmp_path: Path) -> None:
    fault.script = [servers.reply_stream(servers.answer("ok"))]
    golden = tmp_path / "g.json"
    assert run_cli("predict", "x", "-m", "gpt-4.1-mini", "--base-url", fault.base_url, "--save", str(golden),
                   "-q").returncode == 0
    fault.script = [servers.slow(30, servers.reply_stream(servers.answer("ok")))]
    proc = run_cli("check", str(golden), "--timeout", "0.5")
    assert proc.returncode == 1
    assert "no response" in (proc.stdout + proc.stderr).decode()


def test_show_sampling_when_only_the_chosen_token_has_an_id(fault: servers.FaultServer) -> None:
    """A server that gives an id on the chosen token but not on its alternatives."""
    chunks = servers.answer("ab")
    for c in chunks:
        for choice in c.get("choices", []):
            for item in (choice.get("logprobs") or {}).get("content", []):
                item["id"] = 7
    fault.script = [servers.reply_stream(chunks)]
    proc = run_cli("predict", "x", "-m", "gpt-4.1-mini", "--base-url", fault.base_url, "--show-sampling", "T=0.5")
    assert proc.returncode == 0, proc.stderr
    assert "T=0.5" in proc.stdout.decode()


CONTROLS = "esc\x1b[31m bel\x07 nul\x00 nel\x85 csi\x9b2J"


def test_control_characters_are_escaped_in_html_reports_and_json(tmp_path: Path) -> None:
    a = _saved(tmp_path, "a.json", prompt=CONTROLS)
    doc = json.loads(a.read_text())
    doc["steps"][0]["chosen"]["text"] = CONTROLS
    doc["steps"][0]["chosen"]["bytes"] = CONTROLS.encode().hex()
    doc["model"] = "m " + CONTROLS
    a.write_text(json.dumps(doc))
    b = _saved(tmp_path, "b.json", prompt="other")
    outputs = [tmp_path / n for n in ("d.html", "d.json", "r.html", "r.json")]
    run_cli("diff", str(a), str(b), "-o", str(outputs[0]), "-o", str(outputs[1]))
    assert run_cli("render", str(a), "-o", str(outputs[2]), "-o", str(outputs[3])).returncode == 0
    for path in outputs:
        data = path.read_bytes()
        for raw in (b"\x1b", b"\x07", b"\x00", "\x85".encode(), "\x9b".encode()):
            assert raw not in data, (path.name, raw)
        if path.suffix == ".json":
            json.loads(data)  # still JSON, the text unchanged once read


# --- the pytest plugin: one golden per test ---------------------------------------------------------

pytest_plugins = ["pytester"]

IDS = '''
import pytest

@pytest.mark.parametrize("v", ["x/y", "x-y", "x y", "x:y", "x?y"])
def test_ids(tokviz_golden, v):
    tokviz_golden.check("The prompt " + v, model="fake", max_tokens=2, top_k=2)

def test_long(tokviz_golden):
    tokviz_golden.check("long", name="n" * 300, model="fake", max_tokens=2, top_k=2)

def test_dash(tokviz_golden):
    tokviz_golden.check("dash", name="-", model="fake", max_tokens=2, top_k=2)

def test_shared_one(tokviz_golden):
    tokviz_golden.check("one prompt", name="shared", model="fake", max_tokens=2, top_k=2)

def test_shared_two(tokviz_golden):
    tokviz_golden.check("another prompt", name="shared", model="fake", max_tokens=2, top_k=2)
'''

CONFTEST = '''
from tests import fakes
from tokviz.providers import registry
registry.register(fakes.SPEC)
'''


def test_every_test_has_its_own_golden_and_each_failure_its_report(pytester: pytest.Pytester,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_g=IDS)
    pytester.makeconftest(CONFTEST)
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent.parent))
    first = pytester.runpytest_subprocess("--tokviz-update", "-p", "no:cacheprovider")
    first.assert_outcomes(passed=8, failed=1, warnings=8)  # the second test naming "shared" fails
    assert "already the golden of" in first.stdout.str()
    files = sorted(p.name for p in (pytester.path / "goldens" / "test_g").iterdir())
    assert len(files) == 8 and not any(n.startswith(".") or n.startswith("-") for n in files)
    assert all(len(n) < 140 for n in files)
    for f in (pytester.path / "goldens" / "test_g").iterdir():  # every golden changed: every test fails
        data = json.loads(f.read_text())
        data["steps"][0]["chosen"]["logprob"] -= 5
        f.write_text(json.dumps(data))
    again = pytester.runpytest_subprocess("--tokviz-report", str(pytester.path / "rep"), "-p", "no:cacheprovider")
    again.assert_outcomes(failed=9)
    assert len(list((pytester.path / "rep").glob("*.html"))) == 8  # shared_two fails before it compares anything
