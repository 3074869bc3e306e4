"""`tokviz batch`: run a file of prompts, writing each one's run and graphs, resumably."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from tokviz.commands import common
from tokviz.errors import ExitStatus, Terminated, TokvizError, UsageError
from tokviz.generation import Generation
from tokviz.views import formats

if TYPE_CHECKING:
    from tokviz.batch import Batch, Job, Outcome


class BatchFailed(TokvizError):
    """Some prompts failed; their errors are in the index. The others' results are on disk."""


class BatchInterrupted(TokvizError):
    exit_status = ExitStatus.INTERRUPTED


class BatchTerminated(TokvizError):
    exit_status = ExitStatus.TERMINATED


def _formats(value: str) -> list[str]:
    names = [f.strip().lower().lstrip(".") for f in value.split(",") if f.strip()]
    if not names:
        raise UsageError("--format is empty", hint=f"use a comma-separated list of {', '.join(f.name for f in formats.for_kind(formats.PREDICT))}")
    for name in names:
        formats.check(name, formats.PREDICT)
    return list(dict.fromkeys(names))


@common.generation_options()
def batch(
    prompts: Annotated[str, typer.Argument(metavar="PROMPTS", help='A .txt file (one prompt per line) or .jsonl file (objects with "prompt", optional "id", "model", "system", parameters); "-" reads standard input.')],
    gen: Generation,
    output: Annotated[Path, typer.Option("--output", "-o", metavar="FOLDER", help="Folder for the outputs and the index (created if missing).")],
    formats_: Annotated[str, typer.Option("--format", "-f", metavar="FORMATS", help=f"Comma-separated formats per prompt: {', '.join(f.name for f in formats.for_kind(formats.PREDICT))}. The run JSON is always written.")] = "svg,json",
    concurrency: Annotated[int, typer.Option("--concurrency", "-j", metavar="N", help="Requests in flight at once for providers that allow it (1-64); the local model runs one prompt at a time.")] = 4,
    force: Annotated[bool, typer.Option("--force", metavar="", help="Redo prompts whose outputs already exist.")] = False,
    wrap: common.WrapOpt = common.DEFAULT_WRAP,
    quiet: common.QuietOpt = False,
) -> None:
    """Run every prompt in PROMPTS; write each one's run and graphs, and an index, into a folder."""
    from tokviz import batch as workflow
    from tokviz.commands import environment
    from tokviz.views import export

    if not 1 <= concurrency <= 64:
        raise UsageError(f"--concurrency must be between 1 and 64, got {concurrency}")
    fmts = _formats(formats_)
    if output.exists() and not output.is_dir():
        raise UsageError(f"output {output} is a file, not a folder")
    if prompts == "-":
        text, source = common.read_text_arg("-"), "standard input"
    else:
        path = Path(prompts)
        if not path.is_file():
            raise UsageError(f"prompts file {prompts} does not exist")
        try:
            text, source = path.read_text(encoding="utf-8"), prompts
        except UnicodeDecodeError:
            raise UsageError(f"prompts file {prompts} is not UTF-8 text") from None
    jobs = workflow.parse_jobs(text, source=source, defaults=gen, environ=environment.current().environ)
    try:  # before the first request: a batch that cannot write must not spend a single one
        output.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create the output folder {output}: {err.strerror}") from None
    if not os.access(output, os.W_OK | os.X_OK):
        raise UsageError(f"output folder {output} is not writable")
    err = common.stderr()
    runner = workflow.Batch(out_dir=output, formats=fmts, options=export.RenderOptions(wrap=wrap),
                            concurrency=concurrency, force=force, record=gen.record, replay=gen.replay,
                            progress=common.progress_line(err))
    stop = threading.Event()
    outcomes, interrupted = _run_with_progress(runner, jobs, stop, show=not quiet and err.is_terminal, console=err)
    if runner.disk_full:
        from tokviz.files import OutputError

        raise OutputError(f"stopped: {runner.disk_full}; what was finished before is on disk and in the index",
                          hint="free some space and run the same command again to resume")
    failed = [o for o in outcomes if o is not None and o.status == "failed"]
    done = [o for o in outcomes if o is not None]
    if interrupted or len(done) < len(jobs):
        if isinstance(runner.stopped_by, Terminated):
            raise BatchTerminated(f"terminated: {len(done) - len(failed)} of {len(jobs)} prompts done, written to {output}",
                                  hint="run the same command again to resume")
        raise BatchInterrupted(f"interrupted: {len(done) - len(failed)} of {len(jobs)} prompts done, written to {output}",
                               hint="run the same command again to resume")
    fresh = sum(1 for o in done if o.fresh)
    if not quiet:
        err.print(f"tokviz: {len(done) - len(failed)} of {len(jobs)} prompts done ({fresh} generated, "
                  f"{len(done) - len(failed) - fresh} already complete); index: {output / 'index.md'}", style="dim")
    if failed:
        raise BatchFailed(f"{len(failed)} of {len(jobs)} prompts failed (first: prompt {failed[0].job.number}: "
                          f"{failed[0].error})", hint=f"every error is in {output / 'index.json'}")


def _run_with_progress(runner: Batch, jobs: list[Job], stop: threading.Event, *, show: bool,
                       console: Console) -> tuple[list[Outcome | None], bool]:
    """Run the batch under a progress bar on stderr (done / failed / rate / ETA) when it is a terminal."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    failed = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[failed]} failed"),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=not show) as bar:
        task = bar.add_task("prompts", total=len(jobs), failed=0, rate="")

        def on_done(outcome: Outcome) -> None:
            nonlocal failed
            failed += outcome.status == "failed"
            elapsed = bar.tasks[0].elapsed or 0.0
            done = bar.tasks[0].completed + 1
            bar.update(task, advance=1, failed=failed, rate=f"{done / elapsed:.1f}/s" if elapsed else "")

        return runner.run(jobs, on_done, stop)
