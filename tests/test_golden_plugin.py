"""The pytest plugin (`tokviz_golden`), exercised the way a project uses it: with pytester, and on
the example in examples/goldens."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

TEST = '''
def test_capital(tokviz_golden):
    tokviz_golden.check("The capital of France is", max_tokens=6, top_k=5)
'''


def test_the_plugin_writes_passes_fails_and_updates(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_g=TEST)
    missing = pytester.runpytest_subprocess()
    missing.assert_outcomes(failed=1)
    assert "--tokviz-update" in missing.stdout.str()
    written = pytester.runpytest_subprocess("--tokviz-update")
    written.assert_outcomes(passed=1, warnings=1)
    golden = pytester.path / "goldens" / "test_g" / "test_capital.json"
    assert json.loads(golden.read_text())["prompt"] == "The capital of France is"
    pytester.runpytest_subprocess().assert_outcomes(passed=1)
    data = json.loads(golden.read_text())
    data["steps"][1]["chosen"]["logprob"] -= 3.0  # the model "changed" at step 2
    golden.write_text(json.dumps(data))
    failed = pytester.runpytest_subprocess("--tokviz-report", str(pytester.path / "report"))
    failed.assert_outcomes(failed=1)
    out = failed.stdout.str()
    assert "changed" in out and "step 2" in out and "exceeds --atol" in out
    pages = list((pytester.path / "report").glob("*.html"))
    assert len(pages) == 1 and "changed" in pages[0].read_text()
    pytester.runpytest_subprocess("--tokviz-update").assert_outcomes(passed=1, warnings=1)
    assert json.loads(golden.read_text())["steps"][1]["chosen"]["logprob"] != data["steps"][1]["chosen"]["logprob"]
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_tolerances_from_pyproject_and_keywords(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_g=TEST)
    pytester.runpytest_subprocess("--tokviz-update").assert_outcomes(passed=1, warnings=1)
    golden = pytester.path / "goldens" / "test_g" / "test_capital.json"
    data = json.loads(golden.read_text())
    data["steps"][1]["chosen"]["logprob"] -= 1.2
    golden.write_text(json.dumps(data))
    pytester.runpytest_subprocess().assert_outcomes(failed=1)
    pytester.makefile(".toml", pyproject="[tool.tokviz.check]\natol = 2.0\natol-mean = 1.0\n")
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_the_example_goldens_pass_on_this_machine() -> None:
    """examples/goldens: goldens written on one machine pass on another (within the noise)."""
    root = Path(__file__).parent.parent / "examples" / "goldens"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root)],
                          capture_output=True, text=True, cwd=root, check=False, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "2 passed" in proc.stdout
