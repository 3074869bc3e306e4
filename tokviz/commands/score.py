"""`tokviz score`: how likely a given text is under the model, token by token — or under two."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from tokviz.commands import common, live
from tokviz.ground.errors import UsageError
from tokviz.run.generation import Generation
from tokviz.views import formats

if TYPE_CHECKING:
    from tokviz.run import Run, RunSet

NOT_FOR_SCORING = ("model", "provider", "max_tokens", "temperature", "top_p", "seed", "chat", "raw", "system", "record", "replay")


@common.generation_options(exclude=NOT_FOR_SCORING)
def score(
    gen: Generation,
    text: Annotated[Optional[str], typer.Argument(metavar="[TEXT]", help='The text to score; "-" reads it from standard input.', show_default=False)] = None,
    file: Annotated[Optional[Path], typer.Option("--file", metavar="FILE", help="Score the text of this file (UTF-8).", show_default=False)] = None,
    models: Annotated[Optional[list[str]], typer.Option("--model", "-m", metavar="MODEL", help="Model to score with; give two to compare them on the same text. Default: $TOKVIZ_MODEL or the embedded model.", show_default=False)] = None,
    providers: Annotated[Optional[list[str]], typer.Option("--provider", "-p", metavar="NAME", help="Provider to use (`tokviz providers`); give two to read the same text with two engines, e.g. -p local -p transformers: the quantised engine against its float32 reference (docs/score.md).", show_default=False)] = None,
    context: Annotated[str, typer.Option("--context", metavar="TEXT", help="Text the model reads first, conditioned on but not scored.")] = "",
    exact: Annotated[bool, typer.Option("--exact", help="Decode one token at a time, as predict does, so a generated text scores to exactly its recorded logprobs (slower).")] = False,
    window: Annotated[Optional[int], typer.Option("--window", metavar="TOKENS", help="Score longer texts in sliding windows of this many tokens (default: the model's context).", show_default=False)] = None,
    stride: Annotated[Optional[int], typer.Option("--stride", metavar="TOKENS", help="How far each window moves (default: half the window).", show_default=False)] = None,
    watch: common.WatchOpt = None,
    output: common.output_opt(formats.SCORE) = None,
    save: common.SaveOpt = None,
    as_json: common.JsonOpt = False,
    wrap: common.WrapOpt = common.DEFAULT_WRAP,
    view: common.ViewOpt = "table",
    quiet: common.QuietOpt = False,
) -> None:
    """Score TEXT: each token's probability, its rank in the vocabulary, what was expected instead.

    With two --model (or two --provider) options: both read the same text; the table shows where they
    disagree most, with Δ logprob, KL over their top-k lists and the forks where their first
    choices differ (files: .html two heatmaps aligned, .svg/.png a chart, .json, .txt).
    """
    from tokviz import pipeline
    from tokviz.providers.base import ScoreSpec

    if (text is None) == (file is None):
        raise UsageError("give the text to score as an argument, or with --file (one of them)")
    if file is not None:
        try:
            body = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"cannot read {file}: {getattr(err, 'strerror', None) or 'not UTF-8 text'}") from None
    else:
        body = common.read_text_arg(text or "")
    names, engines = pairs(list(models or [None]), list(providers or [None]))
    kind = formats.SCORE if len(names) == 1 else formats.SCORE_COMPARISON
    common.check_view(view)
    options = common.render_options(wrap=wrap, sampling=None, stats=False)  # files: as `render` draws them
    plans = [pipeline.watching(common.plan(replace(gen, model=name, provider=engine), context, allow_empty=True), watch or [])
             for name, engine in zip(names, engines)]
    planned = common.plan_outputs(output or [], kind)
    common.check_paths(save)
    spec = ScoreSpec(exact=exact, window=window, stride=stride)
    err = common.stderr()
    runs = []
    stopped: BaseException | None = None
    try:
        for plan in plans:
            with live.progress(err, err.is_terminal and not (as_json or quiet), 1, "tokens") as advance:
                runs.append(pipeline.score(plan, body, spec=spec, progress=common.progress_line(err), on_token=advance))
    except pipeline.Stopped as stop:  # the tokens scored before Ctrl-C or SIGTERM are kept, shown, saved
        runs, stopped = [stop.record], stop.cause
    if stopped is not None or len(runs) == 1:
        run = runs[0]
        common.write_outputs(run, planned, options, saved=save)
        if not quiet:
            common.print_run(run, replace(options, stats=True), as_json=as_json, view=view)  # the figures, on screen
        if stopped is not None:
            raise stopped
        return
    record = compared(runs[0], runs[1])
    common.write_outputs(record, planned, options, saved=save)
    if not quiet:
        print_comparison(record, as_json=as_json)


def pairs(names: list[str | None], engines: list[str | None]) -> tuple[list[str | None], list[str | None]]:
    """The (model, provider) of each reading: two models, two providers, or both, paired in order;
    one given once is used for both readings."""
    if len(names) > 2 or len(engines) > 2:
        raise UsageError(f"score compares two readings at a time, got {max(len(names), len(engines))}",
                         hint="give --model or --provider twice")
    count = max(len(names), len(engines))
    return names * (count // len(names)), engines * (count // len(engines))


def compared(a: Run, b: Run) -> RunSet:
    """Two scores of one text as a record, refused in one line when the texts differ (a server
    cannot score a text's first token without context)."""
    from tokviz.run import RunKind, RunSet

    if a.text != b.text:
        raise UsageError("the two models did not score the same text (a server gives the first token no "
                         "log-probability)", hint="give --context, so that every token of the text has one")
    return RunSet(kind=RunKind.SCORE_COMPARISON, runs=(a, b))


def print_comparison(record: RunSet, *, as_json: bool) -> None:
    from tokviz.views import score_comparison as scorediff

    if as_json:
        common.stdout().file.write(scorediff.to_json(record))
    else:
        common.stdout().print(scorediff.table(record))
