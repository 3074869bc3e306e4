"""Views of a comparison (`tokviz compare`): the table of per-run figures, the entropy chart, JSON."""

from __future__ import annotations

from rich import box
from rich.table import Table
from rich.text import Text

from tokviz.measures.metrics import run_stats
from tokviz.run import RunSet, codec
from tokviz.run import tokens as tok
from tokviz.views.colors import percent, prob_style


def short(text: str, limit: int = 40) -> str:
    text = tok.safe(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def labels(s: RunSet) -> list[str]:
    """Each run's name: its prompt, plus the model and the temperature only where they vary."""
    models = len({r.model for r in s.runs}) > 1
    temps = len({r.params.temperature for r in s.runs}) > 1
    out = []
    for n, run in enumerate(s.runs, start=1):
        extra = [*([run.model] if models else []), *([f"T={run.params.temperature:g}"] if temps else [])]
        out.append(f"{n}. {short(run.prompt, 30)}" + (f" ({', '.join(extra)})" if extra else ""))
    return out


def to_json(s: RunSet) -> str:
    """The figures of every row (what scripts read) and the runs themselves (what `render` redraws)."""
    doc = s.to_dict()
    doc["rows"] = [{"prompt": run.prompt, "model": run.model, "provider": run.provider,
                    "temperature": run.params.temperature, "text": run.text, "stats": run_stats(run).to_dict()}
                   for run in s.runs]
    runs = doc.pop("runs")
    doc["runs"] = runs
    return codec.dumps(doc, ensure_ascii=False, indent=2) + "\n"


def chart(s: RunSet) -> str:
    from tokviz.views.chart import entropy_chart

    return entropy_chart(list(s.runs), labels(s))


def table(s: RunSet) -> Table:
    """The comparison, a row per run; model and temperature get columns only when they vary."""
    rows = [(run, run_stats(run)) for run in s.runs]
    models = {run.model for run, _ in rows}
    temps = {run.params.temperature for run, _ in rows}
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    t.add_column("#", justify="right", style="dim")
    t.add_column("prompt", overflow="fold")
    if len(models) > 1:
        t.add_column("model", overflow="fold", style="dim")
    if len(temps) > 1:
        t.add_column("T", justify="right")
    for name in ("mean p", "H bits", "ppl", "alts"):
        t.add_column(name, justify="right", no_wrap=True)
    t.add_column("answer", overflow="fold")
    for n, (run, st) in enumerate(rows, start=1):
        mean = st.mean_chosen_prob or 0.0
        cells: list = [str(n), Text(short(run.prompt))]
        if len(models) > 1:
            cells.append(Text(tok.safe(run.model)))
        if len(temps) > 1:
            cells.append(f"{run.params.temperature:g}")
        cells += [Text(percent(mean), style=prob_style(mean)), f"{st.mean_entropy_bits or 0:.2f}",
                  f"{st.perplexity:.2f}" if st.perplexity is not None else "—", str(st.distinct_alternatives),
                  Text(tok.safe(" ".join(run.text.split())))]
        t.add_row(*cells)
    fixed = []
    if len(models) == 1:
        fixed.append(f"model {next(iter(models))}")
    if len(temps) == 1:
        fixed.append(f"T={next(iter(temps)):g}")
    t.caption = tok.safe(" · ".join([*fixed, "mean p: mean chosen-token probability", "H: mean entropy per token",
                            "ppl: perplexity", "alts: distinct alternatives"]))
    return t
