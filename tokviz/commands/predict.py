"""`tokviz predict`: generate from a prompt and show every token's probability and alternatives."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tokviz.commands import common
from tokviz.errors import UsageError
from tokviz.files import check_writable, write_atomic


def predict(
    prompt: Annotated[str, typer.Argument(help='The prompt; "-" reads it from standard input.')],
    model: common.ModelOpt = None,
    provider: common.ProviderOpt = None,
    top_k: common.TopKOpt = 5,
    max_tokens: common.MaxTokensOpt = 20,
    temperature: common.TemperatureOpt = 0.0,
    top_p: common.TopPOpt = 1.0,
    seed: common.SeedOpt = None,
    chat: common.ChatOpt = False,
    system: common.SystemOpt = None,
    base_url: common.BaseUrlOpt = None,
    timeout: common.TimeoutOpt = 60.0,
    retries: common.RetriesOpt = 2,
    record: common.RecordOpt = None,
    replay: common.ReplayOpt = None,
    output: common.OutputOpt = None,
    save: Annotated[Optional[Path], typer.Option("--save", help="Save the run as JSON, to re-render later with `tokviz render`.", show_default=False)] = None,
    as_json: common.JsonOpt = False,
    wrap: common.WrapOpt = common.DEFAULT_WRAP,
    stats: common.StatsOpt = False,
    show_sampling: common.SamplingOpt = None,
    view: common.ViewOpt = "table",
    quiet: common.QuietOpt = False,
) -> None:
    """Generate from PROMPT and show each token's probability and top alternatives."""
    from tokviz import pipeline

    request = common.make_request(common.read_text_arg(prompt), model=model, top_k=top_k, max_tokens=max_tokens,
                                  temperature=temperature, top_p=top_p, seed=seed, chat=chat, system=system,
                                  base_url=base_url, timeout=timeout, retries=retries)
    options = common.render_options(wrap=wrap, sampling=show_sampling, stats=stats)
    if view not in ("table", "text"):
        raise UsageError(f"--view must be 'table' or 'text', got {view!r}")
    pipeline.resolve(request, provider, replay=replay)
    planned = common.plan_outputs(output or [])
    for path in (save, record):
        if path is not None:
            check_writable(path)
    err = common.stderr()
    run = pipeline.predict(request, provider=provider, progress=lambda msg: err.print(msg, style="dim"),
                           record=record, replay=replay)
    if save is not None:
        write_atomic(save, run.to_json().encode("utf-8"))
    common.write_outputs(run, planned, options)
    if not quiet:
        common.print_run(run, options, as_json=as_json, view=view)
