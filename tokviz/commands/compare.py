"""`tokviz compare`: how sure is the model, across prompts, models and temperatures — in numbers."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from tokviz.commands import common
from tokviz.errors import UsageError
from tokviz.files import write_atomic


def compare(
    prompts: Annotated[Optional[list[str]], typer.Argument(help="Prompts to compare.", show_default=False)] = None,
    file: Annotated[Optional[Path], typer.Option("--file", help="Read prompts from a file, one per line.", show_default=False)] = None,
    models: Annotated[Optional[list[str]], typer.Option("--model", "-m", help="Model to compare; repeatable. Default: $TOKVIZ_MODEL or the embedded model.", show_default=False)] = None,
    temperatures: Annotated[Optional[list[float]], typer.Option("--temperature", "-t", help="Temperature to compare; repeatable (default 0).", show_default=False)] = None,
    provider: common.ProviderOpt = None,
    top_k: common.TopKOpt = 5,
    max_tokens: common.MaxTokensOpt = 20,
    top_p: common.TopPOpt = 1.0,
    seed: common.SeedOpt = None,
    chat: common.ChatOpt = False,
    system: common.SystemOpt = None,
    base_url: common.BaseUrlOpt = None,
    timeout: common.TimeoutOpt = 60.0,
    retries: common.RetriesOpt = 2,
    record: common.RecordOpt = None,
    replay: common.ReplayOpt = None,
    output: Annotated[Optional[list[Path]], typer.Option("--output", "-o", help="Write the entropy chart (.svg) or the comparison (.json, .txt). Repeatable.", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON on stdout.")] = False,
) -> None:
    """One row per prompt × model × temperature: mean chosen probability, entropy, perplexity, answer."""
    from tokviz import pipeline
    from tokviz.metrics import run_stats
    from tokviz.views.chart import entropy_chart

    texts = list(prompts or [])
    if file is not None:
        try:
            texts += [ln.strip() for ln in file.read_text(encoding="utf-8").splitlines() if ln.strip()]
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"cannot read prompts file {file}: {err}") from None
    texts = [common.read_text_arg(t) for t in texts]
    if not texts:
        raise UsageError("no prompts to compare", hint="give them as arguments or with --file")
    planned = common.plan_outputs(output or [])
    for path, fmt in planned:
        if fmt not in ("svg", "json", "txt"):
            raise UsageError(f"compare writes .svg (the chart), .json or .txt, not {path.suffix}")
    err = common.stderr()
    rows = []
    for text, model, temp in itertools.product(texts, models or [None], temperatures or [0.0]):
        request = common.make_request(text, model=model, top_k=top_k, max_tokens=max_tokens, temperature=temp,
                                      top_p=top_p, seed=seed, chat=chat, system=system, base_url=base_url,
                                      timeout=timeout, retries=retries)
        run = pipeline.predict(request, provider=provider, progress=lambda msg: err.print(msg, style="dim"),
                               record=record, replay=replay)
        rows.append((run, run_stats(run)))
    labels = [f"{n}. {_short(run.prompt)} ({run.model}, T={run.params.temperature:g})" for n, (run, _) in enumerate(rows, start=1)]
    data = json.dumps({"schema": "tokviz.comparison", "schema_version": 1, "rows": [
        {"prompt": run.prompt, "model": run.model, "provider": run.provider, "temperature": run.params.temperature,
         "text": run.text, "stats": st.to_dict()} for run, st in rows]}, ensure_ascii=False, indent=2) + "\n"
    view = _table(rows)
    for path, fmt in planned:
        if fmt == "svg":
            write_atomic(path, entropy_chart([r for r, _ in rows], labels).encode())
        elif fmt == "json":
            write_atomic(path, data.encode())
        else:
            write_atomic(path, _plain(view).encode())
    if as_json:
        common.stdout().file.write(data)
    else:
        common.stdout().print(view)


def _short(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _table(rows: list) -> Table:
    """The comparison, a row per run; model and temperature get columns only when they vary."""
    from tokviz.views.colors import percent, prob_hex

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
        cells: list = [str(n), Text(_short(run.prompt))]
        if len(models) > 1:
            cells.append(Text(run.model))
        if len(temps) > 1:
            cells.append(f"{run.params.temperature:g}")
        cells += [Text(percent(mean), style=prob_hex(mean)), f"{st.mean_entropy_bits or 0:.2f}",
                  f"{st.perplexity:.2f}" if st.perplexity is not None else "—", str(st.distinct_alternatives),
                  Text(" ".join(run.text.split()))]
        t.add_row(*cells)
    fixed = []
    if len(models) == 1:
        fixed.append(f"model {next(iter(models))}")
    if len(temps) == 1:
        fixed.append(f"T={next(iter(temps)):g}")
    t.caption = " · ".join([*fixed, "mean p: mean chosen-token probability", "H: mean entropy per token",
                            "ppl: perplexity", "alts: distinct alternatives"])
    return t


def _plain(view: Table) -> str:
    from tokviz.views.table import plain_text

    return plain_text(view, width=120)
