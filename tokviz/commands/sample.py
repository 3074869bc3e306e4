"""`tokviz sample`: several sampled answers to one prompt, and where they part ways."""

from __future__ import annotations

from typing import Annotated

import typer

from tokviz.commands import common, live
from tokviz.run.generation import Generation
from tokviz.views import formats


@common.generation_options(
    defaults={"temperature": 1.0},
    help={"seed": "Seed of the first sample; sample i uses seed + i. Drawn and recorded when omitted.",
          "max_tokens": "Most tokens per sample."},
    flags={"max_tokens": ("--max-tokens", "-n")},
)
def sample(
    prompt: Annotated[str, typer.Argument(metavar="PROMPT", help='The prompt; "-" reads it from standard input (one trailing newline dropped, as $(...) does).')],
    gen: Generation,
    n: Annotated[int, typer.Option("--samples", "-s", metavar="N", help="How many samples to draw.")] = 5,
    output: common.output_opt(formats.SAMPLES) = None,
    save: common.SaveOpt = None,
    wrap: common.WrapOpt = common.DEFAULT_WRAP,
    dpi: common.DpiOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print all sampled runs as JSON on stdout.")] = False,
    quiet: common.QuietOpt = False,
    parallel: Annotated[int, typer.Option("--parallel", metavar="N", help="Decode up to N samples together, one llama.cpp batch per step (local model; 2-3x faster on two cores, more with a long prompt; figures differ slightly from serial decoding, and the runs say so). 1: one at a time.")] = 1,
) -> None:
    """Draw several samples from PROMPT and show where they diverge (table, and a prefix-tree graph)."""
    from tokviz import pipeline
    from tokviz.run import RunKind, RunSet
    from tokviz.views import samples

    common.check_parallel(parallel)
    plan = common.plan(gen, common.read_text_arg(prompt))
    planned = common.plan_outputs(output or [], formats.SAMPLES)
    common.check_paths(save, gen.record)
    err = common.stderr()
    stopped: BaseException | None = None
    try:
        with live.progress(err, err.is_terminal and not (as_json or quiet), n, "samples") as advance:
            runs = pipeline.sample(plan, n, progress=common.progress_line(err), on_done=advance, parallel=parallel)
    except pipeline.Stopped as stop:  # the samples drawn before Ctrl-C or SIGTERM are kept, shown, saved
        runs, stopped = stop.record, stop.cause
    record = RunSet(kind=RunKind.SAMPLES, runs=tuple(runs))
    common.write_outputs(record, planned, common.render_options(wrap=wrap, sampling=None, stats=False, dpi=dpi), saved=save)
    if not quiet:
        out = common.stdout()
        if as_json:
            out.file.write(record.to_json())
        else:
            out.print(samples.table(runs))
    if stopped is not None:
        raise stopped
