"""Hostile servers, signals, special files, huge and malformed inputs: one line, the right exit
code, nothing lost, nothing leaked, never a traceback or an "internal error"."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import servers
from tests.conftest import make_run, read_to_end, run_cli, run_process, tokviz_cmd, without_escapes
from tokviz.ground.errors import RunFileError, TokvizError
from tokviz.run import load_record

pytestmark = pytest.mark.usefixtures("fake")

ESCAPES = ["\x1b]0;pwned\x07", "\x1b]52;c;ZXZpbA==\x07", "\x1b[2J\x1b[H", "\x9b31m", "\u202eevil", "\x07bell"]


def hostile_run_file(tmp_path: Path) -> Path:
    run = make_run([[(e, 0.6), ("ok", 0.3)] for e in ESCAPES], prompt="\x1b]0;title\x07 prompt \u202e")
    data = json.loads(run.to_json())
    data["model"] = "m\x1b[31m"
    data["finish_reason"] = "stop\x1b]52;c;eA==\x07"
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(data))
    return path


def only_colour_sequences(out: bytes) -> bool:
    """True when every escape sequence in `out` is a colour/style one (CSI … m), rich's own."""
    import re

    stripped = re.sub(rb"\x1b\[[0-9;]*m", b"", out)
    return b"\x1b" not in stripped and b"\x9b" not in stripped.replace(b"\\x9b", b"") and "\u202e".encode() not in stripped


def run_in_pty(args: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> bytes:
    """The CLI on a real pseudo-terminal (what a user's terminal receives), colour on."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([*tokviz_cmd(), *args], stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", **(env or {})})
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=10)
    os.close(master)
    return out


@pytest.mark.parametrize("view", [["render", "{f}"], ["render", "{f}", "--view", "text"], ["render", "{f}", "--stats"],
                                  ["render", "{f}", "--show-sampling", "T=2"]])
def test_no_escape_sequence_from_a_run_reaches_the_terminal(tmp_path: Path, view: list[str]) -> None:
    path = hostile_run_file(tmp_path)
    out = run_in_pty([a.replace("{f}", str(path)) for a in view])
    assert b"\x1b[3" in out or b"\x1b[38" in out  # it really is a colour terminal
    assert only_colour_sequences(out), out[:2000]
    assert b"\\x1b" in out  # the escape is shown, as text


def test_no_escape_sequence_in_text_files_or_error_lines(tmp_path: Path) -> None:
    path = hostile_run_file(tmp_path)
    txt = tmp_path / "out.txt"
    assert run_cli("render", str(path), "-o", str(txt)).returncode == 0
    assert only_colour_sequences(txt.read_bytes())
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "tokviz.run\\u001b]0;x\\u0007"}')
    proc = run_cli("render", str(bad))
    assert proc.returncode == 1 and b"\x1b" not in proc.stderr


def test_a_prompt_with_escapes_is_shown_escaped() -> None:
    for view in ("table", "text"):
        proc = run_cli("predict", "\x1b]0;pwned\x07hello\x1b[2J", "-m", "fake-1", "-n", "2", "--view", view, terminal=True)
        assert only_colour_sequences(proc.stdout) and b"\\x1b" in proc.stdout


@pytest.mark.parametrize("target", ["/dev/null", "/dev/stdout"])
def test_special_files_are_written_not_replaced(tmp_path: Path, target: str) -> None:
    before = os.lstat(target)
    proc = run_process("predict", "x", "-m", "gemma-3-270m", "-n", "1", "--save", target, "-q")
    assert proc.returncode == 0, proc.stderr
    after = os.lstat(target)
    assert (before.st_mode, before.st_ino) == (after.st_mode, after.st_ino)  # still the device or link
    if target == "/dev/stdout":
        assert json.loads(proc.stdout)["schema"] == "tokviz.run"


def test_a_fifo_is_written_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    proc = run_cli("predict", "x", "-m", "fake-1", "-n", "1", "--save", str(fifo), "-q")
    data = reader.communicate(timeout=30)[0]
    assert proc.returncode == 0 and json.loads(data)["schema"] == "tokviz.run"
    assert fifo.is_fifo()


def test_a_full_disk_is_one_line() -> None:
    proc = run_process("render", "-", "--json", input=b"x")
    assert proc.returncode == 1
    full = run_cli("predict", "x", "-m", "fake-1", "-n", "1", "--save", "/dev/full", "-q")
    assert full.returncode == 1 and b"disk is full" in full.stderr and b"internal error" not in full.stderr


def test_stdout_on_dev_full_and_closed_stdout(tmp_path: Path) -> None:
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([*tokviz_cmd(), "--version"], stdout=full, stderr=subprocess.PIPE, check=False)
    assert proc.returncode == 1 and proc.stderr.count(b"\n") == 1 and b"Traceback" not in proc.stderr
    closed = subprocess.run([*tokviz_cmd(), "--version"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            check=False, preexec_fn=lambda: os.close(1))
    assert closed.returncode != 0 and b"standard output is closed" in closed.stderr


def test_a_key_echoed_by_a_server_is_in_no_file_and_not_on_stdout(fault: servers.FaultServer, tmp_path: Path) -> None:
    secret = "sk-test-ECHOED-abcdefghij1234567890"
    fault.script = [servers.reply_stream(servers.answer(f"key={secret}"))]
    outs = [tmp_path / f"o.{ext}" for ext in ("json", "txt", "dot", "html", "svg")]
    args = ["predict", "x", "-m", "gpt-4.1-mini", "--base-url", fault.base_url, "--record", str(tmp_path / "c.json")]
    for o in outs:
        args += ["-o", str(o)]
    proc = run_cli(*args, "--json", env={"OPENAI_API_KEY": secret})
    assert proc.returncode == 0, proc.stderr
    assert secret.encode() not in proc.stdout and secret.encode() not in proc.stderr
    for path in [*outs, tmp_path / "c.json"]:
        assert secret.encode() not in path.read_bytes(), path.name


@given(cuts=st.lists(st.integers(min_value=0, max_value=120), max_size=6))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_key_split_across_written_pieces_is_still_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             cuts: list[int]) -> None:
    """Files written piece by piece (the batch index, exported requests) are redacted whole lines
    at a time: however the writer cuts its pieces, the key never reaches the file."""
    from tokviz.ground.files import write_atomic_chunks

    key = "sk-test-abcdefghijklmnop1234"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    data = f'{{"prompt": "héllo", "echo": "{key}"}}\nsecond line {key} end\nno newline at the end {key}'.encode()
    edges = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    target = tmp_path / "index.json"
    write_atomic_chunks(target, [data[a:b] for a, b in itertools.pairwise(edges)])
    written = target.read_bytes()
    assert key.encode() not in written and written.count(b"[redacted]") == 3
    assert written == data.replace(key.encode(), b"[redacted]")


@pytest.mark.parametrize("args", [
    ["predict", "x", "-m", "fake-1", "--seed", "-1"],
    ["predict", "x", "-m", "fake-1", "-o", "out/new.svg/"],
    ["predict", "x", "-m", "fake-1", "-o", "/proc/version.txt"],
    ["predict", "x", "-m", "fake-1", "--timeout", "nan"],
    ["tree", "x", "-m", "fake-1", "--complete", "100000000000"],
    ["predict", "x", "-m", "fake-1", "-O", "flavour"],
])
def test_bad_values_are_one_line(args: list[str], tmp_path: Path) -> None:
    proc = run_cli(*args, cwd=tmp_path)
    err = proc.stderr.decode()
    assert proc.returncode in (1, 2) and err.count("\n") == 1 and "internal error" not in err, err


def test_invalid_utf8_arguments_are_a_usage_error() -> None:
    proc = subprocess.run([*tokviz_cmd(), "predict", b"\xff\xfe".decode("utf-8", "surrogateescape")],
                          capture_output=True, check=False)
    assert proc.returncode == 2 and b"not valid UTF-8" in proc.stderr


@pytest.mark.parametrize("doc", [
    {"logprob": 1e308}, {"logprob": float("nan")}, {"logprob": float("inf")}, {"schema_version": True},
    {"params": [1]}, {"timings": {"total_s": float("nan")}}, {"steps": "x"},
])
def test_wrong_values_in_a_saved_run_are_refused_when_read(small_run_file: Path, doc: dict[str, object]) -> None:
    data = json.loads(small_run_file.read_text())
    for key, value in doc.items():
        if key == "logprob":
            data["steps"][0]["chosen"]["logprob"] = value
        else:
            data[key] = value
    with pytest.raises(RunFileError):
        load_record(json.dumps(data))


def test_a_tree_node_with_a_bad_parent_is_refused() -> None:
    proc = run_cli("tree", "x", "-m", "fake-1", "--depth", "2", "--json")
    data = json.loads(proc.stdout)
    data["nodes"][0]["parent"] = 5
    with pytest.raises(RunFileError, match="parent"):
        load_record(json.dumps(data))


def test_deeply_nested_json_is_a_failure_not_a_crash(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    proc = run_cli("render", str(deep))
    assert proc.returncode == 1 and b"internal error" not in proc.stderr


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=20)


def run_like() -> st.SearchStrategy[object]:
    """Arbitrary JSON, and arbitrary JSON grafted into the fields of a real run."""
    base = json.loads(make_run([[("a", 0.5), ("b", 0.25)]]).to_json())
    keys = sorted(base)
    return st.one_of(json_values, st.builds(lambda k, v: {**base, k: v}, st.sampled_from(keys), json_values))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run_like())
def test_any_json_is_a_run_or_one_clear_refusal(doc: object) -> None:
    try:
        text = json.dumps(doc)
    except (ValueError, RecursionError):
        return
    try:
        record = load_record(text)
    except TokvizError as err:
        assert "internal" not in err.line()
        return
    from tokviz.views import export

    for fmt in ("json", "txt", "dot"):  # what was read can be drawn
        export.render(record, fmt)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(json_values, max_size=4))
def test_any_cassette_is_read_or_refused(entries: list[object]) -> None:
    import tempfile

    from tokviz.providers.replay import Cassette

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.json"
        path.write_text(json.dumps({"schema": "tokviz.cassette", "schema_version": 1, "entries": entries}))
        try:
            Cassette.load(path, must_exist=True)
        except TokvizError as err:
            assert "internal" not in err.line()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(st.sampled_from(["prompt", "id", "params", "seed", "top_k", "temperature", "mode",
                                                  "model", "system", "provider", "max_tokens"]), json_values, max_size=5),
                min_size=1, max_size=3))
def test_any_jsonl_job_is_a_job_a_failed_job_or_one_clear_refusal(lines: list[dict[str, object]]) -> None:
    from tokviz.batch import parse_jobs
    from tokviz.run.generation import Generation

    try:
        text = "\n".join(json.dumps(x) for x in lines)
    except ValueError:
        return
    try:
        jobs = parse_jobs(text, source="jobs.jsonl", defaults=Generation(model="fake-1"), environ={})
    except TokvizError as err:
        assert "internal" not in err.line()
        return
    for job in jobs:
        assert job.problem is None or "internal" not in job.problem


ARG_WORDS = ["predict", "render", "tree", "sample", "compare", "batch", "tokenize", "providers", "server",
             "-m", "fake-1", "-k", "-n", "-t", "--top-p", "--seed", "-O", "flavour=x", "--chat", "--raw", "--json",
             "-o", "x.svg", "x.bmp", "--depth", "-1", "0", "1e400", "nan", "", "-", "--wrap", "--view", "text",
             "--max-nodes", "--from", "none.json", "--base-url", "http://[::1", "--timeout", "\x00", "é"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(ARG_WORDS) | st.text(max_size=6), min_size=1, max_size=7))
def test_any_argument_list_gives_an_exit_code_never_a_traceback(tmp_path: Path, argv: list[str]) -> None:
    if argv[0] in ("batch",):  # batch writes folders; covered by its own tests
        return
    proc = run_cli(*argv, cwd=tmp_path)
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode in (0, 1, 2), (argv, err)
    assert "internal error" not in err and "Traceback" not in err, (argv, err)
    if proc.returncode:
        assert err.count("\n") >= 1


def signal_batch(tmp_path: Path, fault: servers.FaultServer, sig: int, twice: bool = False,
                 count: int = 40) -> tuple[int, bytes, Path]:
    fault.script = [servers.slow(0.4, servers.reply_stream(servers.answer("ok")))]
    prompts = tmp_path / "p.txt"
    prompts.write_text("\n".join(f"prompt {i}" for i in range(count)) + "\n")
    out = tmp_path / "out"
    proc = subprocess.Popen([*tokviz_cmd(), "batch", str(prompts), "-o", str(out), "-m", "gpt-4.1-mini", "--base-url",
                             fault.base_url, "-f", "json", "-j", "4"],
                            stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(out.glob("*.json"))) < 5:
        time.sleep(0.05)
    t0 = time.monotonic()
    os.killpg(proc.pid, sig)  # the whole process group, as a terminal's Ctrl-C does
    if twice:
        time.sleep(0.05)
        os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - t0 < 3, "stopping took too long"
    return proc.returncode, err, out


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_batch_keeping_every_finished_answer(tmp_path: Path, fault: servers.FaultServer,
                                                                  sig: int, code: int) -> None:
    returncode, err, out = signal_batch(tmp_path, fault, sig, count=300)  # more than one chunk of input (256)
    assert returncode == code, err
    assert b"Traceback" not in err
    index = json.loads((out / "index.json").read_text())
    on_disk = {p.stem for p in out.glob("*.json") if p.name != "index.json"}
    done = {i["name"] for i in index["items"] if i["status"] == "ok"}
    assert done == on_disk and 0 < len(done) < 40  # the index matches the disk; queued ones stay pending
    # Every prompt listed once, numbered 1..300 (the rest of the input was numbered after the part
    # already numbered, not after the last prompt started), and the line says so.
    assert sorted(i["n"] for i in index["items"]) == list(range(1, 301))
    assert b"of 300 prompts done" in err, err


def test_a_second_ctrl_c_exits_quietly(tmp_path: Path, fault: servers.FaultServer) -> None:
    returncode, err, _ = signal_batch(tmp_path, fault, signal.SIGINT, twice=True)
    assert returncode == 130 and b"Traceback" not in err and err.count(b"\n") <= 2



def test_a_batch_that_cannot_write_sends_nothing(fault: servers.FaultServer, tmp_path: Path) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("a\nb\n")
    # a folder below a file cannot be created, even by root (who writes through permissions)
    proc = run_process("batch", str(prompts), "-o", str(prompts / "out"), "-m", "gpt-4.1-mini", "--base-url", fault.base_url)
    assert proc.returncode == 2 and b"cannot create the output folder" in proc.stderr
    assert fault.received == []


def test_a_job_id_cannot_overwrite_the_index(tmp_path: Path) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "index", "prompt": "a"}\n{"id": "b", "prompt": "b"}\n')
    out = tmp_path / "out"
    assert run_cli("batch", str(prompts), "-o", str(out), "-m", "fake-1", "-f", "json", "-q").returncode == 0
    index = json.loads((out / "index.json").read_text())
    assert index["schema"] == "tokviz.batch-index" and index["items"][0]["name"] == "index-job"


def test_a_full_disk_stops_the_batch_and_the_index_matches_the_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills after three runs: the batch stops with one line, and what is on disk is what
    the index says is done (a real full disk needs a mount; the write that fails is the real code's)."""
    from tokviz.batch import runner as batch
    from tokviz.ground import files

    written = {"runs": 0}
    real = files.write_atomic

    def filling(path: Path, data: bytes) -> None:
        if path.suffix == ".json" and path.name != "index.json":
            if written["runs"] >= 3:
                raise files.OutputError(f"cannot write {path}: the disk is full")
            written["runs"] += 1
        real(path, data)

    monkeypatch.setattr(batch, "write_atomic", filling)
    prompts = tmp_path / "p.txt"
    prompts.write_text("\n".join(f"prompt {i}" for i in range(30)) + "\n")
    out = tmp_path / "out"
    proc = run_cli("batch", str(prompts), "-o", str(out), "-m", "fake-1", "-f", "json", "-j", "1")
    err = proc.stderr.decode()
    assert proc.returncode == 1 and err.count("\n") == 1 and "disk is full" in err and "internal" not in err
    index = json.loads((out / "index.json").read_text())
    on_disk = {p.stem for p in out.glob("*.json") if p.name != "index.json"}
    assert {i["name"] for i in index["items"] if i["status"] == "ok"} == on_disk and len(on_disk) == 3
    for item in index["items"]:  # the rest: not attempted, or arrived and could not be written
        assert item["status"] in ("ok", "pending") or "disk is full" in item.get("error", "")


def test_live_text_on_a_terminal_and_none_in_a_pipe() -> None:
    """On a terminal the text appears while it is generated (then the table); piped, nothing extra."""
    out = run_in_pty(["predict", "The capital of France is", "-n", "6"])
    assert b"generating" in out and b"capital" in out
    assert out.index(b"generating") < out.index(b"entropy")  # live text first, the table after
    piped = run_process("predict", "The capital of France is", "-n", "6")
    assert b"generating" not in piped.stderr + piped.stdout
    tree = run_in_pty(["tree", "The capital of France is", "--depth", "2", "--branch", "2"])
    assert b"nodes" in tree and b"ETA" in tree


# --- round two (issue 30): promises tried from the outside ---------------------------------------------

def test_a_closed_stdout_is_a_failure_not_a_usage_error() -> None:
    proc = subprocess.run(["sh", "-c", f"{' '.join(tokviz_cmd())} --version >&-"], capture_output=True, check=False)
    assert proc.returncode == 1 and b"standard output is closed" in proc.stderr


def test_too_many_threads_is_one_line_not_a_native_abort() -> None:
    proc = run_cli("predict", "x", "-O", "n_threads=100000")
    assert proc.returncode == 2 and proc.stderr.count(b"\n") == 1 and b"between 1 and 512" in proc.stderr


@pytest.mark.parametrize("url", ["http://user:s3cret@[::1", "http://user:s3cret@127.0.0.1:99999/v1",
                                 "ftp://user:s3cret@example.com/v1"])
def test_the_password_of_a_malformed_url_is_never_printed(url: str) -> None:
    given = run_cli("predict", "x", "--base-url", url)
    assert given.returncode == 2 and b"s3cret" not in given.stderr and b"--base-url" in given.stderr
    from_env = run_cli("predict", "x", "-m", "gpt-4.1-mini", env={"OPENAI_BASE_URL": url, "OPENAI_API_KEY": "sk-test-abcdef0123"})
    assert from_env.returncode == 2 and b"s3cret" not in from_env.stderr and b"OPENAI_BASE_URL" in from_env.stderr


def test_outputs_that_cannot_be_files_are_refused_before_any_work(tmp_path: Path, fake: object) -> None:
    import socket

    proc = run_cli("predict", "x", "-m", "fake-1", "--save", "t.json/", cwd=tmp_path)
    assert proc.returncode == 2 and b"ends with a slash" in proc.stderr and not (tmp_path / "t.json").exists()
    sock_path = tmp_path / "s.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    try:
        assert run_cli("predict", "x", "-m", "fake-1", "-o", str(sock_path) + ".svg").returncode == 0  # a file beside it: fine
        proc = run_cli("predict", "x", "-m", "fake-1", "--save", str(sock_path))
        assert proc.returncode == 2 and b"socket" in proc.stderr
    finally:
        sock.close()
    loop = tmp_path / "loop.json"
    loop.symlink_to(loop)
    proc = run_cli("predict", "x", "-m", "fake-1", "--save", str(loop))
    assert proc.returncode == 2 and loop.is_symlink() and os.readlink(loop) == str(loop)
    assert run_cli("predict", "x", "-m", "fake-1", "--save", "/proc/version").returncode == 2


def test_a_private_file_stays_private_when_replaced(tmp_path: Path, fake: object) -> None:
    saved = tmp_path / "run.json"
    saved.write_text("{}")
    saved.chmod(0o600)
    assert run_cli("predict", "x", "-m", "fake-1", "--save", str(saved)).returncode == 0
    assert (saved.stat().st_mode & 0o777) == 0o600 and Path(saved).read_text().startswith("{\n")


def test_model_text_and_errors_in_the_batch_index_cannot_act_on_a_terminal(tmp_path: Path, fake: object) -> None:
    hostile = "reset\x1bc bell\x07 osc\x1b]0;owned\x07 bidi\u202e c1\u009b2J"
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": hostile}) + "\n" + json.dumps({"prompt": hostile + " 2", "top_k": 99}) + "\n")
    out = tmp_path / "out"
    run_cli("batch", str(prompts), "-o", str(out), "-m", "fake-1", "-f", "json", "-q")
    md = (out / "index.md").read_text()
    assert not any(ch in md for ch in ("\x1b", "\x07", "\u202e", "\u009b")) and "\\x1b" in md
    status = run_cli("batch", "status", str(out), terminal=True)
    assert status.returncode == 0 and not any(ch in status.stdout.decode() for ch in ("\x1b]", "\x07", "\u202e", "\u009b"))


@pytest.mark.parametrize(("where", "value", "said"), [
    (("params", "mode"), "evil", "mode"), (("usage", "completion_tokens"), -5, "≥ 0"), (("timings", "tokens_per_s"), -1.0, "≥ 0"),
    (("params", "options"), {"x": float("nan")}, "finite"), (("content",), 5, "string"),
])
def test_impossible_values_in_a_saved_run_are_refused(small_run_file: Path, where: tuple[str, ...], value: object,
                                                      said: str) -> None:
    data = json.loads(small_run_file.read_text())
    target = data
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    with pytest.raises(RunFileError, match=said):
        load_record(json.dumps(data))


def test_jsonl_parameters_are_read_as_strictly_as_a_saved_run(tmp_path: Path, fake: object) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("\n".join(json.dumps(x) for x in [{"prompt": "a", "max_tokens": True}, {"prompt": "b", "max_tokens": 1e30},
                                                        {"prompt": "c", "mode": "evil"}, {"prompt": "d"}]) + "\n")
    out = tmp_path / "out"
    proc = run_cli("batch", str(prompts), "-o", str(out), "-m", "fake-1", "-f", "json")
    items = json.loads((out / "index.json").read_text())["items"]
    assert proc.returncode == 1 and [i["status"] for i in items] == ["failed", "failed", "failed", "ok"]
    assert all("bad parameters" in i["error"] for i in items[:3])


EDGES = ["1e400", "-1e400", "1e308", "-1e308", "4.9e-324", "-0.0", "9223372036854775807", "-9223372036854775808",
         "18446744073709551616", "1e-320", "NaN", "Infinity", "0", "-1", "true", "null", "\"1\""]
NUMERIC = [("steps", 0, "chosen", "logprob"), ("steps", 0, "alternatives", 0, "logprob"), ("steps", 0, "chosen", "id"),
           ("params", "top_k"), ("params", "max_tokens"), ("params", "temperature"), ("params", "top_p"), ("params", "seed"),
           ("usage", "prompt_tokens"), ("timings", "ttft_s")]


@settings(max_examples=120, deadline=None)
@given(path=st.sampled_from(NUMERIC), edge=st.sampled_from(EDGES))
def test_numbers_at_the_edges_of_float_and_int_are_a_run_or_one_refusal(path: tuple[object, ...], edge: str) -> None:
    """A fuzz of the run reader: every numeric field given a number at the edge of what JSON, float
    and int hold. The record is read and drawn, or refused as a damaged run; nothing else."""
    from tokviz.views import export

    base = json.loads(make_run([[("a", 0.5), ("b", 0.25)], [("c", 0.9)]]).to_json())
    base["timings"] = {"ttft_s": 0.1}
    marker = "\"__EDGE__\""
    target = base
    for key in path[:-1]:
        target = target[key]  # type: ignore[index]
    target[path[-1]] = "__EDGE__"  # type: ignore[index]
    text = json.dumps(base).replace(marker, edge)
    try:
        record = load_record(text)
    except RunFileError:
        return
    for fmt in ("json", "txt", "dot", "html"):
        with contextlib.suppress(TokvizError):  # a view may refuse in one line; any other exception fails here
            export.render(record, fmt)


@pytest.mark.parametrize("secret", ["sk-test-ECHOED-abcdefghij1234567890", 'sk-test-&<"\\x-SECRET-0987654321'])
def test_a_key_split_across_tokens_is_redacted_in_the_run_itself(fault: servers.FaultServer, tmp_path: Path,
                                                                   secret: str) -> None:
    """The server answers the key one character per token: it is gone from the run (text, every
    token's bytes, alternatives), so from every file, view, cassette, batch state and terminal."""
    import html as html_lib
    import re
    import sqlite3

    from tokviz.run import Run

    fault.script = [servers.reply_stream(servers.answer(f"the key is {secret} ok"))]
    env = {"OPENAI_API_KEY": secret}
    saved = tmp_path / "run.json"
    proc = run_cli("predict", "x", "-m", "gpt-4.1-mini", "--base-url", fault.base_url, "--save", str(saved),
                   "--record", str(tmp_path / "c.json"), "-o", str(tmp_path / "o.html"), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    run = Run.from_json(saved.read_text())
    chosen = b"".join(s.chosen.raw for s in run.steps)
    assert secret.encode() not in chosen and "[redacted]" in run.text and "redacted" in run.source
    for n in range(len(run.steps)):  # the key rebuilt from each step's alternatives: gone as well
        first_alts = b"".join((s.alternatives[0].raw if s.alternatives else b"") for s in run.steps[n:])
        assert secret.encode() not in first_alts
    for path in (saved, tmp_path / "c.json", tmp_path / "o.html"):
        data = path.read_text()
        assert secret not in data and secret not in html_lib.unescape(data) and json.dumps(secret)[1:-1] not in data
    shown = run_cli("render", str(saved), "--view", "text", terminal=True, env=env)
    assert secret not in re.sub(r"\x1b\[[0-9;]*m", "", shown.stdout.decode())
    prompts = tmp_path / "p.txt"
    prompts.write_text("x\n")
    out = tmp_path / "out"
    fault.script = [servers.reply_stream(servers.answer(f"again {secret}"))]
    assert run_cli("batch", str(prompts), "-o", str(out), "-m", "gpt-4.1-mini", "--base-url", fault.base_url, "-f", "json",
                   env=env).returncode == 0
    texts = [row[0] for row in sqlite3.connect(out / "batch.sqlite").execute("SELECT text FROM jobs")]
    assert texts and all(secret not in t and "[redacted]" in t for t in texts)


def test_the_live_text_never_shows_an_echoed_key(fault: servers.FaultServer, tmp_path: Path) -> None:
    """On a terminal the text is shown as it streams: a key arriving token by token is held back
    until it is whole, and shown as [redacted]."""

    secret = "sk-test-LIVE-abcdefghij1234567890"
    fault.script = [servers.slow(0.0, servers.reply_stream(servers.answer(f"key {secret} end" + " pad" * 40)))]
    master, slave = pty.openpty()
    proc = subprocess.Popen([*tokviz_cmd(), "predict", "x", "-m", "gpt-4.1-mini", "--base-url", fault.base_url],
                            stdin=slave, stdout=slave, stderr=slave, env={**os.environ, "OPENAI_API_KEY": secret,
                                                                         "COLUMNS": "100", "TERM": "xterm-256color"})
    os.close(slave)
    seen = read_to_end(master)
    assert proc.wait(timeout=60) == 0
    os.close(master)
    plain = without_escapes(seen).replace(b"\r", b"").replace(b"\n", b"")
    assert secret.encode() not in plain and b"[redacted]" in plain
