"""Providers are plugins: found through the `tokviz.providers` entry points, built-ins included."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli, run_process
from tokviz.ground.errors import UsageError
from tokviz.providers import registry
from tokviz.run import Run

# A third-party provider as a package would ship it: one module, one entry point, nothing in tokviz edited.
PLUGIN = '''
import math
from tokviz.providers.registry import Capability, ProviderSpec
from tokviz.run import Run, Step, Token

class EchoProvider:
    name = "echo"
    def __init__(self, *, progress):
        pass
    def predict(self, request):
        words = request.prompt.split()[: request.params.max_tokens]
        steps = tuple(Step(chosen=Token(" " + w, (" " + w).encode(), math.log(0.5), n),
                           alternatives=(Token(" " + w, (" " + w).encode(), math.log(0.5), n),))
                      for n, w in enumerate(words))
        return Run(provider=self.name, model=request.model, prompt=request.prompt, params=request.params,
                   steps=steps, finish_reason="stop")

SPEC = ProviderSpec(name="echo", description="repeats the prompt", factory=EchoProvider,
                    models=(r"^echo-",), max_top_k=1, capabilities=frozenset({Capability.RAW}))
'''


def install_plugin(site: Path) -> None:
    """What `pip install tokviz-echo` would leave on the path: the module and its dist-info."""
    (site / "tokviz_echo.py").write_text(PLUGIN)
    info = site / "tokviz_echo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tokviz-echo\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[tokviz.providers]\necho = tokviz_echo:SPEC\n")


def test_a_third_party_provider_installs_through_its_entry_point(tmp_path: Path) -> None:
    install_plugin(tmp_path)
    env = {"PYTHONPATH": str(tmp_path)}
    listed = run_process("providers", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    names = {p["name"]: p for p in json.loads(listed.stdout)["providers"]}
    assert names["echo"]["source"] == "tokviz-echo 1.0"
    assert {"local", "openai", "replay"} <= set(names)  # the built-ins come through the same group
    assert all(names[n]["source"] == "built-in" for n in ("local", "openai", "replay"))
    proc = run_process("predict", "say these words back", "-m", "echo-1", "-k", "1", "-n", "3", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    run = Run.from_json(proc.stdout.decode())
    assert run.provider == "echo" and run.text == " say these words"
    too_many = run_process("predict", "x", "-m", "echo-1", "-k", "2", env=env)
    assert too_many.returncode == 2 and b"between 0 and 1 for the echo provider" in too_many.stderr


def test_builtins_are_entry_points_not_a_hardcoded_table() -> None:
    from importlib.metadata import entry_points

    declared = {ep.name: ep.value for ep in entry_points(group=registry.ENTRY_POINT_GROUP)}
    assert declared["local"] == "tokviz.providers.local:SPEC"
    assert declared["openai"] == "tokviz.providers.openai:SPEC"
    assert set(declared) <= set(registry.specs())


def test_provider_names_appear_only_under_providers() -> None:
    """Nothing outside tokviz/providers/ tests a provider's name: it asks the spec."""
    root = Path(__file__).parent.parent / "tokviz"
    offenders = []
    for path in root.rglob("*.py"):
        if "providers" in path.parts:
            continue
        text = path.read_text()
        for needle in ('== "local"', "== 'local'", '== "openai"', '"OPENAI_API_KEY"', 'provider == "'):
            if needle in text:
                offenders.append(f"{path.relative_to(root)}: {needle}")
    assert offenders == []


@pytest.mark.parametrize(("model", "base_url", "expected"), [
    ("gemma-3-270m", None, "local"), ("/x/model.GGUF", None, "local"), ("gpt-4.1-mini", None, "openai"),
    ("o3", None, "openai"), ("gemma-3-270m", "http://127.0.0.1:1/v1", "openai"), ("fake-1", None, "fake"),
])
def test_models_are_claimed_by_their_spec(model: str, base_url: str | None, expected: str, fake: object) -> None:
    assert registry.infer_provider(model, base_url, environ={}) == expected


def test_unknown_models_and_options_are_usage_errors(fake: object) -> None:
    with pytest.raises(UsageError, match="unknown model"):
        registry.infer_provider("mystery", None, environ={})
    spec = registry.spec("fake")
    assert spec.parse_options(("flavour=mint",)) == {"flavour": "mint"}
    with pytest.raises(UsageError, match="has no option 'colour'"):
        spec.parse_options(("colour=red",))
    with pytest.raises(UsageError, match="needs key=value"):
        spec.parse_options(("flavour",))
    with pytest.raises(UsageError, match="must be an int"):
        registry.spec("local").parse_options(("n_threads=many",))


def test_options_are_recorded_in_the_run_and_read_back(fake: object, tmp_path: Path) -> None:
    saved = tmp_path / "run.json"
    proc = run_cli("predict", "hello", "-m", "fake-1", "-O", "flavour=mint", "-n", "2", "--save", str(saved), "-q")
    assert proc.returncode == 0, proc.stderr
    run = Run.from_json(saved.read_text())
    assert run.params.options == {"flavour": "mint"}
    bad = run_cli("predict", "hello", "-m", "fake-1", "-O", "colour=red")
    assert bad.returncode == 2 and b"has no option 'colour'" in bad.stderr


def test_providers_command_lists_capabilities(fake: object) -> None:
    proc = run_cli("providers")
    out = proc.stdout.decode()
    assert proc.returncode == 0
    assert "local" in out and "top-k up to 100" in out and "-O n_threads=INT" in out
    assert "fake" in out and "(tests)" in out


def test_secret_env_of_a_provider_is_redacted(fake: object) -> None:
    from tokviz.ground.errors import redact

    registry.specs()  # loads the entry points, which register each provider's secret variable
    import os

    os.environ["OPENAI_API_KEY"] = "zz-secret-value-123"
    os.environ["SOMEONE_API_KEY"] = "another-secret-456"
    try:
        assert redact("key zz-secret-value-123 and another-secret-456") == "key [redacted] and [redacted]"
    finally:
        del os.environ["OPENAI_API_KEY"], os.environ["SOMEONE_API_KEY"]


def test_no_stray_top_level_folder_is_committed() -> None:
    """The repository once carried 200 files of filler in a temp-named folder; none may come back."""
    root = Path(__file__).parent.parent
    out = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout
    top = {line.split("/", 1)[0] for line in out.splitlines() if "/" in line}
    assert top <= {".ci", "bench", "docs", "examples", "tests", "tokviz"}, sorted(top)
