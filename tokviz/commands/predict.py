"""`tokviz predict`: generate from a prompt and show every token's probability and alternatives."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from tokviz.commands import common, live
from tokviz.run.generation import Generation

if TYPE_CHECKING:
    from tokviz.pipeline import Plan
    from tokviz.run import Run


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
    score_with: Annotated[Optional[str], typer.Option("--score-with", metavar="MODEL", help="Then score the generated text under MODEL and show where the two models disagree (as `score -m A -m B`).", show_default=False)] = None,
) -> None:
    """Generate from PROMPT and show each token's probability and top alternatives."""
    from dataclasses import replace

    from tokviz import pipeline

    plan = common.plan(gen, common.read_text_arg(prompt))
    judge = common.plan(replace(gen, model=score_with, raw=True, chat=False), plan.request.prompt) if score_with else None
    options = common.render_options(wrap=wrap, sampling=show_sampling, stats=stats, dpi=dpi)
    common.check_view(view)
    planned = common.plan_outputs(output or [])
    common.check_paths(save, gen.record)
    err = common.stderr()
    stopped: BaseException | None = None
    try:
        with live.generating(err, err.is_terminal and not (as_json or quiet)) as on_step:
            run = pipeline.predict(plan, progress=common.progress_line(err), on_step=on_step)
    except pipeline.Stopped as stop:  # Ctrl-C or SIGTERM: what was generated is kept, drawn and shown
        run, stopped, judge = stop.record, stop.cause, None  # type: ignore[assignment]
    common.write_outputs(run, planned, options, saved=save)
    if not quiet and (judge is None or not as_json):  # one JSON document: the comparison holds the run
        common.print_run(run, options, as_json=as_json, view=view)
    if judge is not None:
        _score_with(run, judge, as_json=as_json, quiet=quiet)
    if stopped is not None:
        raise stopped


def _score_with(run: Run, judge: Plan, *, as_json: bool, quiet: bool) -> None:
    """The generated text scored under another model, after the same prompt, against the
    logprobs recorded while generating: a score comparison (A generated it, B judges it)."""
    from dataclasses import replace

    from tokviz import pipeline
    from tokviz.commands import score
    from tokviz.ground.errors import ProviderError
    from tokviz.run import RunKind

    if not run.text:
        raise ProviderError("the model generated no text to score", hint="raise --max-tokens")
    scored = pipeline.score(judge, run.text, progress=common.progress_line(common.stderr()))
    record = score.compared(replace(run, kind=RunKind.SCORE), scored)
    if not quiet:
        score.print_comparison(record, as_json=as_json)
