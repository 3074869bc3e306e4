"""The Python API: the seed notebook's code runs on tokviz, headless and in a real Jupyter kernel."""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
from pathlib import Path

import pytest

import tokviz
from tokviz.notebook import Predictions, TokenPredictor, create_token_graph, visualize_predictions
from tokviz.run import Run

SEED_NAME = Path("shared") / "seed" / "000_3c0942456afef217.txt"
# shared/ sits beside the project's checkout (here and in CI's fresh clone alike).
SEED = next((p / SEED_NAME for p in Path(__file__).resolve().parents if (p / SEED_NAME).is_file()),
            Path(__file__).resolve().parents[2] / SEED_NAME)


def seed_cells() -> list[str]:
    text = SEED.read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def adapt(cell: str) -> str:
    """The two changes the issue allows: the import line, and the model name (the embedded model).

    The seed's import cell also imports matplotlib.pyplot as `plt`, a name it then overwrites with
    what `visualize_predictions` returns; tokviz does not need matplotlib, so that line goes too.
    """
    cell = cell.replace("from visualizer import", "from tokviz.notebook import")
    cell = cell.replace("import matplotlib.pyplot as plt\n", "")
    return cell.replace('model_name = "gpt-4.1-mini"', 'model_name = "gemma-3-270m"')


def test_the_seed_notebook_runs_on_tokviz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    cells = seed_cells()
    assert len(cells) == 6
    namespace: dict[str, object] = {}
    not_python = []
    outputs = []
    for n, cell in enumerate(cells, start=1):
        source = adapt(cell)
        try:
            code = compile(source, f"<seed cell {n}>", "exec")
        except SyntaxError:
            not_python.append(n)  # a markdown list the lesson fenced as python
            continue
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(code, namespace)
        outputs.append(out.getvalue())
    assert not_python == [5]

    for name, pred_var, graph_var in (("", "predictions", "G"), ("_math", "predictions_math", "G_math"),
                                      ("_creative", "predictions_creative", "G_creative")):
        predictions = namespace[pred_var]
        assert isinstance(predictions, Predictions) and len(predictions) == 20
        assert all(isinstance(p, dict) and set(p) >= {"token", "probability", "alternatives"} for p in predictions)
        answer = "".join(p["token"] for p in predictions)
        assert answer == predictions.run.text
        g = namespace[graph_var]
        chain = [n for n, d in g.nodes(data=True) if d["kind"] == "chosen"]
        alts = [n for n, d in g.nodes(data=True) if d["kind"] == "alternative"]
        assert len(chain) == 20 and len(alts) >= 20
        assert namespace[f"plt{name}"].path.exists()  # .show() outside Jupyter wrote the picture
        assert namespace[f"plt{name}"].path.read_bytes().lstrip().startswith(b"<?xml")
    printed = outputs[1]
    assert printed.splitlines()[-1] == "".join(p["token"] for p in namespace["predictions"]).splitlines()[-1]
    assert "graph written to" in printed
    assert namespace["model_name"] == "gemma-3-270m"


def test_the_temperature_exercise() -> None:
    cold = TokenPredictor("gemma-3-270m", temperature=0.2, seed=1).predict_tokens("Once upon a time")
    hot = TokenPredictor("gemma-3-270m", temperature=1.5, seed=1).predict_tokens("Once upon a time")
    assert cold.run.params.temperature == 0.2 and hot.run.params.temperature == 1.5
    assert "".join(p["token"] for p in cold) != "".join(p["token"] for p in hot)


def test_predict_returns_a_run_and_bare_dicts_still_graph() -> None:
    run = tokviz.predict("The capital of France is", max_tokens=3)
    assert isinstance(run, Run) and run.text == " the capital of"
    bare = [{"token": " Paris", "probability": 0.8, "alternatives": [{"token": " Paris", "probability": 0.8},
                                                                      {"token": " Lyon", "probability": 0.1}]}]
    g = create_token_graph("any", bare)
    assert [d["label"] for _, d in g.nodes(data=True)] == ["", "␣Paris", "␣Lyon"]
    assert "<svg" in visualize_predictions(g)._repr_svg_()


def test_a_real_kernel_shows_inline_svg_and_html(tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("from tokviz.notebook import TokenPredictor, create_token_graph, visualize_predictions"),
        nbformat.v4.new_code_cell('p = TokenPredictor("gemma-3-270m", max_tokens=4).predict_tokens("The capital of France is")\n'
                                  'visualize_predictions(create_token_graph("gemma-3-270m", p)).show()'),
        nbformat.v4.new_code_cell('visualize_predictions(create_token_graph("gemma-3-270m", p))'),
        nbformat.v4.new_code_cell('import tokviz\ntokviz.predict("The capital of France is", max_tokens=3)'),
    ]
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown, last_expr, run_cell = nb.cells[1].outputs, nb.cells[2].outputs, nb.cells[3].outputs
    assert any("image/svg+xml" in o.get("data", {}) for o in shown)  # .show() displayed inline
    assert "<svg" in last_expr[0]["data"]["image/svg+xml"]  # the last expression displays itself
    html = run_cell[0]["data"]["text/html"]
    assert html.startswith("<iframe srcdoc=") and "tokviz-data" in html and "image/svg+xml" in run_cell[0]["data"]
