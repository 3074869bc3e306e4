"""`tokviz predict`: generate from a prompt and show every token's probability and alternatives."""

from __future__ import annotations

from typing import Annotated

import typer

from tokviz.commands import common, live
from tokviz.files import write_atomic
from tokviz.generation import Generation


@common.generation_options()
def predict(
    prompt: Annotated[str, typer.Argument(metavar="PROMPT", help='The prompt; "-" reads it from standard input (one trailing newline dropped, as $(...) does).')],
    gen: Generation,
    output: common.OutputOpt = None,
    save: common.SaveOpt = None,
    as_json: common.JsonOpt = False,
    wrap: common.WrapOpt = common.DEFAULT_WRAP,
    stats: common.StatsOpt = False,
    show_sampling: common.SamplingOpt = None,
    view: common.ViewOpt = "table",
    dpi: common.DpiOpt = None,
    quiet: common.QuietOpt = False,
) -> None:
    """Generate from PROMPT and show each token's probability and top alternatives."""
    from tokviz import pipeline

    plan = common.plan(gen, common.read_text_arg(prompt))
    options = common.render_options(wrap=wrap, sampling=show_sampling, stats=stats, dpi=dpi)
    common.check_view(view)
    planned = common.plan_outputs(output or [])
    common.check_paths(save, gen.record)
    err = common.stderr()
    with live.generating(err, err.is_terminal and not (as_json or quiet)) as on_step:
        run = pipeline.predict(plan, progress=common.progress_line(err), on_step=on_step)
    if save is not None:
        write_atomic(save, run.to_json().encode("utf-8"))
    common.write_outputs(run, planned, options)
    if not quiet:
        common.print_run(run, options, as_json=as_json, view=view)
