"""`tokviz score`: how likely a given text is under the model, token by token."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tokviz.commands import common, live
from tokviz.errors import UsageError
from tokviz.files import write_atomic
from tokviz.generation import Generation
from tokviz.views import formats


@common.generation_options(exclude=("max_tokens", "temperature", "top_p", "seed", "chat", "raw", "system", "record", "replay"))
def score(
    gen: Generation,
    text: Annotated[Optional[str], typer.Argument(metavar="[TEXT]", help='The text to score; "-" reads it from standard input.', show_default=False)] = None,
    file: Annotated[Optional[Path], typer.Option("--file", metavar="FILE", help="Score the text of this file (UTF-8).", show_default=False)] = None,
    context: Annotated[str, typer.Option("--context", metavar="TEXT", help="Text the model reads first, conditioned on but not scored.")] = "",
    exact: Annotated[bool, typer.Option("--exact", help="Decode one token at a time, as predict does, so a generated text scores to exactly its recorded logprobs (slower).")] = False,
    window: Annotated[Optional[int], typer.Option("--window", metavar="TOKENS", help="Score longer texts in sliding windows of this many tokens (default: the model's context).", show_default=False)] = None,
    stride: Annotated[Optional[int], typer.Option("--stride", metavar="TOKENS", help="How far each window moves (default: half the window).", show_default=False)] = None,
    output: common.output_opt(formats.SCORE) = None,
    save: common.SaveOpt = None,
    as_json: common.JsonOpt = False,
    wrap: common.WrapOpt = common.DEFAULT_WRAP,
    view: common.ViewOpt = "table",
    quiet: common.QuietOpt = False,
) -> None:
    """Score TEXT: each token's probability, its rank in the vocabulary, what was expected instead."""
    from tokviz import pipeline
    from tokviz.providers.registry import ScoreSpec

    if (text is None) == (file is None):
        raise UsageError("give the text to score as an argument, or with --file (one of them)")
    if file is not None:
        try:
            body = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"cannot read {file}: {getattr(err, 'strerror', None) or 'not UTF-8 text'}") from None
    else:
        body = common.read_text_arg(text or "")
    common.check_view(view)
    options = common.render_options(wrap=wrap, sampling=None, stats=False)  # files: as `render` draws them
    plan = common.plan(gen, context, allow_empty=True)
    planned = common.plan_outputs(output or [], formats.SCORE)
    common.check_paths(save)
    err = common.stderr()
    with live.progress(err, err.is_terminal and not (as_json or quiet), 1, "tokens") as advance:
        run = pipeline.score(plan, body, spec=ScoreSpec(exact=exact, window=window, stride=stride), progress=common.progress_line(err), on_token=advance)  # (done, total)
    if save is not None:
        write_atomic(save, run.to_json().encode("utf-8"))
    common.write_outputs(run, planned, options)
    if not quiet:
        from dataclasses import replace

        common.print_run(run, replace(options, stats=True), as_json=as_json, view=view)  # the figures, on screen
