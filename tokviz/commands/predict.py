"""`tokviz predict`: generate from a prompt and show every token's probability and alternatives."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from tokviz.commands import common, live
from tokviz.ground.errors import UsageError
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
    watch: common.WatchOpt = None,
    json_schema: Annotated[Optional[Path], typer.Option("--json-schema", metavar="FILE", help="Hold the answer to this JSON Schema (the embedded model through llama.cpp's grammar; servers through their structured-output request) and show how sure the model was of every field (docs/structured.md).", show_default=False)] = None,
    json_object: Annotated[bool, typer.Option("--json-object", help="Hold the answer to any JSON object (the schema of type object).")] = False,
    choice: Annotated[Optional[list[str]], typer.Option("--choice", metavar="TEXT", help='Weigh this answer instead of generating (repeatable; a leading space is part of it, e.g. --choice " yes" --choice " no"): each one\'s probability, share and tokens, and which wins.', show_default=False)] = None,
    choices_file: Annotated[Optional[Path], typer.Option("--choices-file", metavar="FILE", help="Weigh the answers in FILE, one per line (kept as written, leading spaces too; empty lines skipped).", show_default=False)] = None,
) -> None:
    """Generate from PROMPT and show each token's probability and top alternatives.

    With --choice (or --choices-file): weigh the given answers instead, lm-evaluation-harness's way
    (docs/choices.md): exact on the local model, transformers and servers that echo prompt
    log-probabilities; from the next token's top k elsewhere, bounds marked as bounds.
    """
    from dataclasses import replace

    from tokviz import pipeline

    plan = pipeline.watching(common.plan(gen, common.read_text_arg(prompt)), watch or [])
    plan = _schema(plan, json_schema, json_object)
    answers = _choices(choice, choices_file)
    if answers:
        if score_with or show_sampling or view != "table" or gen.record or gen.replay or watch or json_schema or json_object:
            raise UsageError("--choice weighs answers; it does not go with --score-with, --show-sampling, --view, "
                             "--watch, --json-schema, --record or --replay")
        _weigh(plan, answers, output=output or [], save=save, as_json=as_json, wrap=wrap, quiet=quiet, dpi=dpi)
        return
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


def _choices(given: list[str] | None, path: Path | None) -> list[str]:
    """The answers to weigh: those given with --choice, then the lines of --choices-file."""
    answers = list(given or [])
    if path is not None:
        from tokviz.ground.files import read_regular

        try:
            text = read_regular(path, "--choices-file").decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as err:
            raise UsageError(f"--choices-file {path} is not UTF-8 text (byte {err.start})") from None
        answers += [line.removesuffix("\r") for line in text.split("\n") if line.removesuffix("\r")]
        if not answers:
            raise UsageError(f"--choices-file {path} holds no answers (one per line)")
    return answers


def _weigh(plan: Plan, answers: list[str], *, output: list[Path], save: Path | None, as_json: bool, wrap: int,
           quiet: bool, dpi: int | None) -> None:
    from tokviz import pipeline
    from tokviz.views import choices, formats

    options = common.render_options(wrap=wrap, sampling=None, stats=False, dpi=dpi)
    planned = common.plan_outputs(output, formats.CHOICES)
    common.check_paths(save)
    record = pipeline.weigh(plan, answers, progress=common.progress_line(common.stderr()))
    common.write_outputs(record, planned, options, saved=save)
    if quiet:
        return
    if as_json:
        common.stdout().file.write(choices.to_json(record))
    else:
        out = common.stdout()
        out.print(choices.table(record, out.width))


def _schema(plan: Plan, path: Path | None, any_object: bool) -> Plan:
    """The plan held to --json-schema FILE or --json-object (checked before anything is loaded)."""
    if path is None and not any_object:
        return plan
    from tokviz.pipeline import structured

    if path is not None and any_object:
        raise UsageError("give --json-schema FILE or --json-object, not both")
    return structured.structured(plan, structured.read_schema(path) if path is not None else dict(structured.ANY_OBJECT))
