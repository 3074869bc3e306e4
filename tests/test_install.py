"""The front door: `pip install .` into a clean virtualenv gives a working `tokviz` on the embedded model.

`make install` installs tokviz editable with no extras; a user who runs `pip install .` or
`pipx install .` gets the same runtime dependencies. This builds the package as pip does (a wheel,
not the source tree), in a virtualenv of its own, and runs the main job from it. pip's cache holds
the llama-cpp-python wheel `make install` compiled, so no second compile happens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_pip_install_in_a_clean_venv_runs_the_embedded_model(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(ROOT)], capture_output=True, text=True,
                         env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}, timeout=1800, check=False)
    assert pip.returncode == 0, pip.stderr[-2000:]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TOKVIZ_"))}
    env["TOKVIZ_CACHE_DIR"] = str(tmp_path / "cache")  # the embedded model assembled afresh, as a new user's is
    proc = subprocess.run([str(venv / "bin" / "tokviz"), "predict", "The capital of France is", "-n", "4", "--json"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    run = json.loads(proc.stdout)
    assert run["provider"] == "local" and run["model"] == "gemma-3-270m" and len(run["steps"]) == 4
    # The installed package is the wheel's copy, not this checkout, and it carries no test tools.
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import tokviz, sys; print(tokviz.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert str(venv) in where
    assert subprocess.run([str(venv / "bin" / "python"), "-c", "import pytest"], capture_output=True, check=False).returncode != 0
    # python -m tokviz is the same command line
    version = subprocess.run([str(venv / "bin" / "python"), "-m", "tokviz", "--version"], capture_output=True, text=True,
                             cwd=tmp_path, check=False)
    assert version.returncode == 0 and version.stdout.startswith("tokviz ")
