"""The Python API, for notebooks: the seed lesson's `TokenPredictor` and friends, and `predict()`.

The lesson this project grew from used a small module:

    predictor = TokenPredictor(model_name)
    predictions = predictor.predict_tokens(message)      # a list of plain dicts
    G = create_token_graph(model_name, predictions)      # a networkx graph
    plt = visualize_predictions(G); plt.show()

The same code runs on tokviz with only its import line changed, on any provider: the embedded model
with no key, OpenAI models with one. Everything is built from a `Run`, so the graph is the one the
CLI renders and the figures are the ones the CLI prints.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokviz import pipeline
from tokviz.ground.errors import UsageError
from tokviz.providers.registry import default_model
from tokviz.run import Params, Run, RunSet, Step, Token
from tokviz.run import tokens as tok
from tokviz.run.generation import FIELDS, Generation

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["Choices", "Predictions", "TokenPredictor", "choices", "create_token_graph", "predict", "visualize_predictions"]


def predict(prompt: str, model: str | None = None, **options: Any) -> Run:
    """Generate from `prompt` and return the `Run`. `options` are those of `tokviz predict`, by
    their Python names (top_k, max_tokens, temperature, top_p, seed, chat, system, base_url,
    provider, timeout, retries; see `tokviz.run.generation.Generation`), with the same defaults;
    `watch=[" Paris", "id:5"]` records those tokens' figures at every step (`--watch`);
    `json_schema=` (a dict, or a file's path) holds the answer to it (`--json-schema`).

    In Jupyter, a Run shown as a cell's value renders itself: the heatmap and the graph.
    """
    from tokviz.pipeline import structured

    watch = options.pop("watch", ())
    if isinstance(watch, str):
        watch = [watch]
    schema = options.pop("json_schema", None)
    if isinstance(schema, (str, Path)):
        schema = structured.read_schema(Path(schema))
    elif schema is not None:
        schema = structured.check(schema)
    plan = pipeline.watching(pipeline.plan(_generation(model, options), prompt), list(watch))
    return pipeline.predict(structured.structured(plan, schema))


def _generation(model: str | None, options: dict[str, Any]) -> Generation:
    try:
        return Generation(model=model, **options)
    except TypeError:
        unknown = sorted(set(options) - set(FIELDS))
        raise UsageError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}",
                         hint=f"options: {', '.join(FIELDS)}") from None


def choices(prompt: str, answers: list[str], model: str | None = None, **options: Any) -> Choices:
    """Weigh `answers` after `prompt` (`tokviz predict --choice`): each one's probability, share
    and tokens, and which wins (docs/choices.md). `options` as for `predict` (chat=True: the
    answers continue the assistant's turn). Shown in a notebook as the choices page."""
    if isinstance(answers, str):
        raise UsageError("give the answers as a list of strings, e.g. [' yes', ' no']")
    return Choices(pipeline.weigh(pipeline.plan(_generation(model, options), prompt), list(answers)))


class Choices:
    """Weighed answers: `record` (the saved form, `save(path)`), and the figures by choice."""

    def __init__(self, record: RunSet) -> None:
        from tokviz.measures.choices import verdict

        self.record = record
        self.verdict = verdict(record)

    @property
    def probs(self) -> dict[str, float]:
        """Each choice's probability (an upper bound where `exact` says False)."""
        return {w.choice: w.prob for w in self.verdict.choices}

    @property
    def shares(self) -> dict[str, float] | None:
        """Each choice's share of what the choices hold together; None when a figure is a bound."""
        shares = self.verdict.shares
        return None if shares is None else {w.choice: s for w, s in zip(self.verdict.choices, shares)}

    @property
    def exact(self) -> dict[str, bool]:
        return {w.choice: w.exact for w in self.verdict.choices}

    @property
    def winner(self) -> str | None:
        """The choice with the largest summed logprob (lm-eval's acc); None when bounds leave it open."""
        i = self.verdict.acc
        return None if i is None else self.verdict.choices[i].choice

    def to_dict(self) -> dict[str, Any]:
        return self.verdict.to_dict()

    def save(self, path: str | Path) -> None:
        from tokviz.ground.files import write_atomic

        write_atomic(Path(path), self.record.to_json().encode("utf-8"))

    def __repr__(self) -> str:
        shown = ", ".join(f"{c!r}: {p:.1%}{'' if self.exact[c] else ' (bound)'}" for c, p in self.probs.items())
        return f"Choices({shown}; winner {self.winner!r})"

    def _repr_html_(self) -> str:
        import html

        from tokviz.views import export

        page = export.render(self.record, "html").decode("utf-8")
        return (f'<iframe srcdoc="{html.escape(page, quote=True)}" style="width:100%;height:24rem;border:0" '
                'sandbox=""></iframe>')


class Predictions(list):  # type: ignore[type-arg]
    """The seed's list of plain dicts, one per generated token, remembering the Run it came from.

    Each dict: "token" (the text this token completes, so "".join(p["token"] ...) is the answer
    with no broken characters), "probability", "alternatives" (dicts of "token" and "probability",
    best first), plus "bytes" (exact) and "label" (as the table shows it).
    """

    run: Run

    def __init__(self, run: Run) -> None:
        super().__init__(_prediction_dicts(run))
        self.run = run


def _prediction_dicts(run: Run) -> list[dict[str, Any]]:
    pieces = tok.pieces([s.chosen.raw for s in run.steps])
    return [{
        "token": piece,
        "probability": step.chosen.prob,
        "logprob": step.chosen.logprob,
        "bytes": step.chosen.raw,
        "label": step.chosen.label,
        "alternatives": [{"token": a.raw.decode("utf-8", "replace") if a.raw else a.text, "probability": a.prob,
                          "label": a.label} for a in step.alternatives],
    } for step, piece in zip(run.steps, pieces)]


class TokenPredictor:
    """`TokenPredictor(model_name, temperature=0.2).predict_tokens(message)`, as in the lesson."""

    def __init__(self, model_name: str | None = None, temperature: float | None = None, **options: Any) -> None:
        self.model_name = model_name or default_model()
        self.options = {**({"temperature": temperature} if temperature is not None else {}), **options}
        self.last_run: Run | None = None

    def predict_tokens(self, message: str) -> Predictions:
        self.last_run = predict(message, self.model_name, **self.options)
        return Predictions(self.last_run)


def _run_from_dicts(model_name: str, predictions: list[dict[str, Any]]) -> Run:
    """A Run rebuilt from bare prediction dicts (when they did not come from a TokenPredictor)."""
    import math

    def token(d: dict[str, Any]) -> Token:
        raw = d.get("bytes") if isinstance(d.get("bytes"), bytes) else str(d["token"]).encode("utf-8")
        return Token(text=str(d["token"]), raw=raw, logprob=math.log(max(float(d["probability"]), 1e-300)))

    steps = tuple(Step(chosen=token(p), alternatives=tuple(token(a) for a in p.get("alternatives", []))) for p in predictions)
    return Run(provider="notebook", model=model_name, prompt="", params=Params(), steps=steps)


def create_token_graph(model_name: str, predictions: list[dict[str, Any]]) -> nx.DiGraph:
    """The networkx graph the CLI renders: start node, chosen chain, alternatives, edge probabilities."""
    from tokviz.views import graph

    run = predictions.run if isinstance(predictions, Predictions) else _run_from_dicts(model_name, predictions)
    g = graph.build(run)
    g.graph["run"] = run
    return g


class GraphView:
    """What `visualize_predictions` returns: shows itself inline in Jupyter (SVG), and outside it
    `.show()` writes an SVG file and says where."""

    def __init__(self, g: nx.DiGraph, wrap: int | None = None) -> None:
        from tokviz.views import graph

        self.graph = g
        self.dot = graph.to_dot(g, graph.GraphOptions(wrap=wrap if wrap is not None else graph.DEFAULT_WRAP))
        self._svg: bytes | None = None
        self.path: Path | None = None

    def svg(self) -> str:
        from tokviz.views import graph

        if self._svg is None:
            self._svg = graph.render(self.dot, "svg")
        return self._svg.decode("utf-8")

    def _repr_svg_(self) -> str:
        return self.svg()

    def save(self, path: str | Path) -> Path:
        from tokviz.ground.files import write_atomic
        from tokviz.views import export, graph

        target = Path(path)
        fmt = export.format_for(target)
        data = self.dot.encode() if fmt == "dot" else graph.render(self.dot, fmt) if fmt in ("svg", "png") else None
        if data is None:
            raise UsageError(f"a graph saves as .svg, .png or .dot, not {target.suffix}")
        write_atomic(target, data)
        return target

    def show(self) -> Path | None:
        """Display inline in Jupyter; elsewhere write `tokviz-graph-….svg` to the temp folder and print where."""
        if _in_notebook():
            from IPython.display import SVG, display

            display(SVG(self.svg()))
            return None
        name = f"tokviz-graph-{hashlib.sha1(self.dot.encode()).hexdigest()[:10]}.svg"
        self.path = self.save(Path(tempfile.gettempdir()) / name)
        print(f"tokviz: graph written to {self.path}")
        return self.path


def visualize_predictions(g: nx.DiGraph, wrap: int | None = None) -> GraphView:
    return GraphView(g, wrap)


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _run_html(run: Run) -> str:
    """A Run in a notebook: the HTML view (heatmap, hover alternatives, graph) in an isolated frame."""
    import html

    from tokviz.views import export

    page = export.render(run, "html").decode("utf-8")
    return (f'<iframe srcdoc="{html.escape(page, quote=True)}" style="width:100%;height:32rem;border:0" '
            'sandbox="allow-scripts"></iframe>')


def _run_svg(run: Run) -> str:
    from tokviz.views import export

    return export.render(run, "svg").decode("utf-8")


def _register_formatters() -> None:
    """Teach IPython to show Runs (kept here, not on Run itself, so the data model imports no views)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    formatters = shell.display_formatter.formatters
    formatters["text/html"].for_type(Run, _run_html)
    formatters["image/svg+xml"].for_type(Run, _run_svg)


_register_formatters()
