"""The lesson notebooks (examples/): generated from one list of cells, committed without outputs,
and run top to bottom in a real kernel on the embedded model with no API key."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_process

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def maker() -> Any:
    spec = importlib.util.spec_from_file_location("make_notebooks", EXAMPLES / "make_notebooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_notebooks_are_what_the_maker_writes_with_no_outputs() -> None:
    make = maker()
    for lang in make.LANGS:
        committed = make.path(lang).read_text(encoding="utf-8")
        assert committed == make.text(lang), f"run python examples/make_notebooks.py ({lang})"
        nb = json.loads(committed)
        assert all(not c.get("outputs") and not c.get("execution_count") for c in nb["cells"] if c["cell_type"] == "code")


def test_the_korean_lesson_is_written_in_korean() -> None:
    make = maker()
    for kind, body in make.CELLS:
        if kind == "md":
            assert len(re.findall(r"[\uac00-\ud7a3]", body["ko"])) > 20, body["ko"][:60]  # Hangul, not a copy of the English


def outputs(nb: Any) -> list[dict[str, Any]]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def text_of(outs: list[dict[str, Any]]) -> str:
    parts = []
    for o in outs:
        parts.append(o.get("text", ""))
        for value in (o.get("data") or {}).values():
            parts.append(value if isinstance(value, str) else json.dumps(value))
    return "\n".join(parts)


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_lesson_runs_offline_top_to_bottom(lang: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    nb = nbformat.read(EXAMPLES / f"llm-inference.{lang}.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outs = outputs(nb)
    assert not [o for o in outs if o.get("output_type") == "error"]
    everything = text_of(outs)
    # what the text says each section shows
    assert sum("image/svg+xml" in (o.get("data") or {}) for o in outs) >= 2  # the run's graph and the tree
    table = next(o["data"]["text/html"] for o in outs if 'class="comparison"' in (o.get("data") or {}).get("text/html", ""))
    assert table.count('<tr class="row">') == 3
    assert "skipped: comparing gpt-4.1-mini needs OPENAI_API_KEY" in everything
    assert any("application/vnd.jupyter.widget-view+json" in (o.get("data") or {}) for o in outs)  # the slider
    assert "rank" in everything and "greedy" in everything and "T=0.2" in everything
    if lang == "ko":  # Korean text reaches the pictures as text (fonts: fonts-noto-cjk, installed by make install)
        svgs = [o["data"]["image/svg+xml"] for o in outs if "image/svg+xml" in (o.get("data") or {})]
        assert any(re.search(r"[\uac00-\ud7a3]", svg) for svg in svgs)


def test_the_picture_makers_import_and_name_pictures_the_docs_show() -> None:
    """examples/doc_pictures.py and explore_screenshots.py run by hand, not in CI: at least they
    import (a moved module broke one unseen) and every picture they make is one a page shows."""
    import importlib

    pictures = importlib.import_module("examples.doc_pictures")
    importlib.import_module("examples.explore_screenshots")
    pages = "".join(p.read_text(encoding="utf-8") for p in [EXAMPLES.parent / "README.md", *EXAMPLES.parent.glob("docs/*.md")])
    for _, args in pictures.COMMANDS:
        made = [a for a in args if a.endswith((".svg", ".png"))]
        assert made and any(f"images/{name}" in pages for name in made), made


def test_no_picture_or_page_names_a_path_of_the_machine_it_was_made_on() -> None:
    """Docs, README and the text pictures (SVG, HTML) name no /tmp, /root or /home path: a reader's
    machine has none of them (a picture once titled its model "/tmp/gemma-q4_0.gguf")."""
    root = Path(__file__).parent.parent
    files = [root / "README.md", *(root / "docs").rglob("*.md"), *(root / "docs" / "images").glob("*.svg"),
             *(root / "docs" / "images").glob("*.html")]
    local = re.compile(r"(?<![\w.])/(tmp|root|home)/")
    assert [f.name for f in files if local.search(f.read_text(encoding="utf-8"))] == []


def test_the_docs_name_only_commands_that_exist_and_files_a_reader_has() -> None:
    """Every `tokviz WORD` the README and docs name is a command (docs/score.md once named a
    `tokviz tolerances` that never existed), and none points at ../shared, which is not in the
    repository a reader clones."""
    from tokviz.cli import _command_names

    root = Path(__file__).parent.parent
    commands = _command_names() | {"--help", "--version", "--debug"}
    named: dict[str, str] = {}
    for f in [root / "README.md", *(root / "docs").rglob("*.md")]:
        text = f.read_text(encoding="utf-8")
        assert "../shared" not in text, f.name
        for word in re.findall(r"`tokviz ([a-z-]+)", text):
            named.setdefault(word, f.name)
    assert {w: f for w, f in named.items() if w not in commands} == {}


def test_the_readmes_sample_table_is_what_predict_prints() -> None:
    """The README shows `predict … -n 8 -k 4` as it prints today at 80 columns (the speed aside):
    the sample once lagged the table by two releases."""
    root = Path(__file__).parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    head = '`tokviz predict "The capital of France is" -n 8 -k 4` prints (in colour on a terminal):\n\n```text\n'
    shown = readme[readme.index(head) + len(head):]
    shown = shown[: shown.index("```")]
    proc = run_process("predict", "The capital of France is", "-n", "8", "-k", "4", env={"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    speed = re.compile(r"[\d,]+\.\d tokens/s")

    def words(text: str) -> str:  # the speed varies in width, so the footer may wrap elsewhere
        return " ".join(speed.sub("N tokens/s", text).split())

    table = proc.stdout.decode()
    assert table.splitlines()[:12] == shown.splitlines()[:12]  # the rows themselves, line for line
    assert words(table) == words(shown)
