"""`tokviz compare`: how sure is the model, across prompts, models and temperatures — in numbers."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from tokviz.commands import common, live
from tokviz.ground.errors import UsageError
from tokviz.run.generation import Generation
from tokviz.views import formats


@common.generation_options(exclude=("model", "temperature"))
def compare(
    gen: Generation,
    prompts: Annotated[Optional[list[str]], typer.Argument(metavar="[PROMPT]...", help="Prompts to compare.", show_default=False)] = None,
    file: Annotated[Optional[Path], typer.Option("--file", metavar="FILE", help="Read prompts from a file, one per line.", show_default=False)] = None,
    models: Annotated[Optional[list[str]], typer.Option("--model", "-m", metavar="MODEL", help="Model to compare; repeatable. Default: $TOKVIZ_MODEL or the embedded model.", show_default=False)] = None,
    temperatures: Annotated[Optional[list[float]], typer.Option("--temperature", "-t", metavar="X", help="Temperature to compare; repeatable (default 0).", show_default=False)] = None,
    output: common.output_opt(formats.COMPARISON) = None,
    save: common.SaveOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON on stdout.")] = False,
    quiet: common.QuietOpt = False,
    parallel: Annotated[int, typer.Option("--parallel", metavar="N", help="Decode up to N of the local model's runs together, one llama.cpp batch per step (faster; figures differ slightly from serial decoding, and the runs say so). 1: one at a time.")] = 1,
) -> None:
    """One row per prompt × model × temperature: mean chosen probability, entropy, perplexity, answer."""
    from tokviz import pipeline
    from tokviz.run import Run, RunKind, RunSet
    from tokviz.views import comparison, export

    common.check_parallel(parallel)
    texts = list(prompts or [])
    if file is not None:
        try:
            texts += [ln.strip() for ln in file.read_text(encoding="utf-8").splitlines() if ln.strip()]
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"cannot read prompts file {file}: {err}") from None
    texts = [common.read_text_arg(t) for t in texts]
    if not texts:
        raise UsageError("no prompts to compare", hint="give them as arguments or with --file")
    planned = common.plan_outputs(output or [], formats.COMPARISON)
    common.check_paths(save, gen.record)
    plans = [common.plan(replace(gen, model=model, temperature=temp), text)
             for text, model, temp in itertools.product(texts, models or [None], temperatures or [0.0])]
    err = common.stderr()
    runs: list[Run] = []
    stopped: BaseException | None = None
    try:
        with live.progress(err, err.is_terminal and not (as_json or quiet), len(plans), "runs") as advance:
            if parallel > 1:
                runs = pipeline.predict_together(plans, progress=common.progress_line(err), slots=parallel)
                advance(len(runs))
            for p in plans if parallel <= 1 else ():
                runs.append(pipeline.predict(p, progress=common.progress_line(err)))
                advance(len(runs))
    except pipeline.Stopped as stop:  # the runs made before Ctrl-C or SIGTERM are kept, shown, written
        runs, stopped = [*runs, *(stop.record if isinstance(stop.record, list) else [stop.record])], stop.cause
    except KeyboardInterrupt as cause:
        if not runs:
            raise
        stopped = cause
    record = RunSet(kind=RunKind.COMPARISON, runs=tuple(runs))
    common.write_outputs(record, planned, export.RenderOptions(), saved=save)
    if not quiet:
        if as_json:
            common.stdout().file.write(comparison.to_json(record))
        else:
            common.stdout().print(comparison.table(record))
    if stopped is not None:
        raise stopped
