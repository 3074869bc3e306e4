"""`tokviz batch`: run a file of prompts, writing each one's run and graphs, resumably."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console

from tokviz.commands import common
from tokviz.ground.errors import ExitStatus, Terminated, TokvizError, UsageError
from tokviz.run import codec
from tokviz.run.generation import Generation
from tokviz.views import formats

if TYPE_CHECKING:
    from tokviz.batch import Batch, Job, Outcome, Tally


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
    prompts: Annotated[str, typer.Argument(metavar="PROMPTS", help='A .txt file (one prompt per line) or .jsonl file (objects with "prompt", optional "id", "model", "system", parameters); "-" reads standard input. `tokviz batch status FOLDER` shows how far a batch got.')],
    gen: Generation,
    folder: Annotated[Optional[Path], typer.Argument(metavar="[FOLDER]", help="With `status`: the batch's output folder.", show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", metavar="FOLDER", help="Folder for the outputs, the index and the batch's state (created if missing).", show_default=False)] = None,
    formats_: Annotated[str, typer.Option("--format", "-f", metavar="FORMATS", help=f"Comma-separated formats per prompt: {', '.join(f.name for f in formats.for_kind(formats.PREDICT))}. The run JSON is always written.")] = "svg,json",
    concurrency: Annotated[int, typer.Option("--concurrency", "-j", metavar="N", help="Requests in flight at once for providers that allow it (1-64); the local model runs one prompt at a time.")] = 4,
    force: Annotated[bool, typer.Option("--force", help="Redo prompts whose outputs already exist.")] = False,
    parallel: Annotated[int, typer.Option("--parallel", metavar="N", help="Decode up to N of the local model's prompts together, one llama.cpp batch per step (faster; figures differ slightly from serial decoding, and the runs say so).")] = 1,
    wrap: common.WrapOpt = common.DEFAULT_WRAP,
    quiet: common.QuietOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="With `status`: print the counts as JSON.")] = False,
    export_requests: Annotated[Optional[Path], typer.Option("--export-requests", metavar="FILE", help="Send nothing: write the requests as a JSONL file for OpenAI's Batch API or `vllm run-batch` (split at 50,000 requests / 200 MB).", show_default=False)] = None,
    import_results: Annotated[Optional[Path], typer.Option("--import", metavar="FILE", help="Send nothing: read the answers from an OpenAI Batch or `vllm run-batch` output file and render and index them as a live batch would.", show_default=False)] = None,
    json_schema: Annotated[Optional[Path], typer.Option("--json-schema", metavar="FILE", help='Hold every answer to this JSON Schema (a JSON line\'s own "json_schema" wins): docs/structured.md.', show_default=False)] = None,
    openai_batch: Annotated[bool, typer.Option("--openai-batch", help="Run the prompts through OpenAI's Batch API (half price, within 24 h): submit, poll with progress, then render and index the answers. Running the command again polls the same batches.")] = False,
) -> None:
    """Run every prompt in PROMPTS; write each one's run and graphs, and an index, into a folder.

    The input is read as a stream and the batch's state kept in FOLDER/batch.sqlite, so memory
    stays flat for any number of prompts; running the same command again resumes.
    """
    from tokviz import batch as workflow
    from tokviz.ground import environment
    from tokviz.views import export

    if prompts == "status" and folder is not None:
        return _status(folder, as_json=as_json)
    if folder is not None:
        raise UsageError(f"unexpected argument {str(folder)!r}", hint="the output folder is given with -o FOLDER")
    schema = None
    if json_schema is not None:
        from tokviz.pipeline.structured import read_schema

        schema = read_schema(json_schema)
        if export_requests is not None or import_results is not None or openai_batch:
            raise UsageError("--json-schema is for a batch tokviz runs itself; a line may carry its own \"json_schema\"")
    if export_requests is not None:
        if import_results is not None or output is not None:
            raise UsageError("--export-requests writes a requests file only: leave out -o and --import")
        return _export(prompts, gen, export_requests)
    output, fmts = _check_run(output, concurrency, parallel, formats_)
    lines, source = _input(prompts)
    expected = workflow.check_lines(lines(), source=source)  # every line checked before the first request
    _prepare(output)
    err = common.stderr()
    runner = workflow.Batch(out_dir=output, formats=fmts, options=export.RenderOptions(wrap=wrap),
                            concurrency=concurrency, parallel=parallel, force=force, record=gen.record, replay=gen.replay,
                            progress=common.progress_line(err), expected=expected)
    results = None
    if import_results is not None and openai_batch:
        raise UsageError("--import reads answers that are already there; --openai-batch fetches them: give one")
    if openai_batch:
        import_results = _submit(runner, gen, lines, source, output, err)
    if import_results is not None:
        from tokviz.batch.engines import Results

        results = Results(import_results, dialect_name=str(gen.dialect or "openai"))
        runner.source = results.run
    runner.open().set_meta("lines", str(expected))
    jobs = workflow.iter_jobs(lines(), source=source, defaults=gen, environ=environment.current().environ, schema=schema)
    stop = threading.Event()
    try:
        tally, interrupted = _run_with_progress(runner, jobs, stop, expected, show=not quiet and err.is_terminal, console=err)
    finally:
        if results is not None:
            results.close()
    _report(runner, tally, interrupted, output, quiet=quiet, err=err)


def _check_run(output: Path | None, concurrency: int, parallel: int, formats_: str) -> tuple[Path, list[str]]:
    """The options of a run checked, before any input is read: the folder and the formats to write."""
    if output is None:
        raise UsageError("missing the output folder: -o FOLDER")
    if not 1 <= concurrency <= 64:
        raise UsageError(f"--concurrency must be between 1 and 64, got {concurrency}")
    common.check_parallel(parallel)
    fmts = _formats(formats_)
    if output.exists() and not output.is_dir():
        raise UsageError(f"output {output} is a file, not a folder")
    return output, fmts


def _prepare(output: Path) -> None:
    """Before the first request: a batch that cannot write must not spend a single one."""
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create the output folder {output}: {err.strerror}") from None
    if not os.access(output, os.W_OK | os.X_OK):
        raise UsageError(f"output folder {output} is not writable")


def _report(runner: Batch, tally: Tally, interrupted: bool, output: Path, *, quiet: bool, err: Console) -> None:
    """How the batch ended: one line, and the exit status that says it (a full disk, a stop, failures)."""
    if runner.disk_full:
        from tokviz.ground.files import OutputError

        raise OutputError(f"stopped: {runner.disk_full}; what was finished before is on disk and in the index",
                          hint="free some space and run the same command again to resume")
    done = tally.ok + tally.failed
    if interrupted or done < tally.total:
        if isinstance(runner.stopped_by, Terminated):
            raise BatchTerminated(f"terminated: {tally.ok} of {tally.total} prompts done, written to {output}",
                                  hint="run the same command again to resume")
        raise BatchInterrupted(f"interrupted: {tally.ok} of {tally.total} prompts done, written to {output}",
                               hint="run the same command again to resume")
    if not quiet:
        err.print(f"tokviz: {tally.ok} of {tally.total} prompts done ({tally.fresh} generated, "
                  f"{tally.ok - tally.fresh} already complete); index: {output / 'index.md'}", style="dim")
    if tally.failed:
        first = tally.first_failure
        where = f" (first: prompt {first.job.number}: {first.error})" if first is not None else ""
        raise BatchFailed(f"{tally.failed} of {tally.total} prompts failed{where}", hint=f"every error is in {output / 'index.json'}")


def _submit(runner: Batch, gen: Generation, lines: Callable[[], Iterable[str]], source: str, output: Path,
            err: Console) -> Path:
    """--openai-batch: the answers of OpenAI's Batch API for these prompts (see `engines.submit`)."""
    from tokviz import batch as workflow
    from tokviz import pipeline
    from tokviz.batch import engines
    from tokviz.ground import environment

    environ = environment.current().environ
    probe = pipeline.plan(gen, "probe", environ=environ)
    jobs = lambda: workflow.iter_jobs(lines(), source=source, defaults=gen, environ=environ)  # noqa: E731
    return engines.submit(runner.open, probe.request, probe.provider, jobs, output, progress=common.progress_line(err),
                          poll_s=float(environ.get("TOKVIZ_BATCH_POLL_S") or 30))


def _export(prompts: str, gen: Generation, target: Path) -> None:
    from tokviz import batch as workflow
    from tokviz.batch.engines import export
    from tokviz.ground import environment

    lines, source = _input(prompts)
    workflow.check_lines(lines(), source=source)
    jobs = workflow.iter_jobs(lines(), source=source, defaults=gen, environ=environment.current().environ)
    done = export(jobs, target, dialect_name=str(gen.dialect or "openai"))
    err = common.stderr()
    names = ", ".join(str(p) for p in done.files)
    err.print(f"tokviz: {done.requests} requests written to {names}", style="dim", markup=False)
    if done.completions:
        err.print(f"tokviz: note: {done.completions} request(s) use /v1/completions, which OpenAI's Batch API accepts but "
                  "`vllm run-batch` does not (it runs chat); use --chat for vLLM", markup=False)
    if done.skipped:
        err.print(f"tokviz: warning: {done.skipped} prompt(s) left out, their settings are invalid "
                  f"(first: {done.first_problem})", markup=False)


def _input(prompts: str) -> tuple[Callable[[], Iterable[str]], str]:
    """A way to read the prompt lines (more than once: checked, then run), and their source's name.
    A file is streamed each time; standard input is read once and kept."""
    if prompts == "-":
        text = common.read_text_arg("-")
        return (lambda: text.splitlines()), "standard input"
    path = Path(prompts)
    if not path.is_file():
        raise UsageError(f"prompts file {prompts} does not exist")

    def lines() -> Iterator[str]:
        from tokviz.batch.jobs import read_lines

        try:
            yield from read_lines(path)
        except UnicodeDecodeError:
            raise UsageError(f"prompts file {prompts} is not UTF-8 text") from None
        except OSError as err:
            raise UsageError(f"cannot read prompts file {prompts}: {err.strerror}") from None

    return lines, prompts


def _status(folder: Path, *, as_json: bool) -> None:
    import sqlite3

    from tokviz.batch.state import FILE, read_status
    from tokviz.run.tokens import safe

    if not (folder / FILE).is_file():
        raise UsageError(f"{folder} holds no batch state ({FILE})", hint="give the folder a batch wrote with -o")
    try:
        found = read_status(folder)
    except (sqlite3.Error, TypeError, ValueError) as err:
        raise UsageError(f"cannot read the batch state in {folder}: {err}") from None
    if as_json:
        common.stdout().file.write(codec.dumps(found, ensure_ascii=False) + "\n")
        return
    first = found["first_failure"]
    common.stdout().print(f"{found['ok']} ok, {found['failed']} failed, {found['pending']} pending of {found['total']} prompts"
                          + (f"; first failure: prompt {first['n']}: {safe(str(first['error']))}" if first else ""),
                          markup=False)


def _run_with_progress(runner: Batch, jobs: Iterable[Job], stop: threading.Event, expected: int, *, show: bool,
                       console: Console) -> tuple[Tally, bool]:
    """Run the batch under a progress bar on stderr (done / failed / rate / ETA) when it is a terminal."""
    from tokviz.commands import live

    failed = 0
    with live.bar(console, "{task.description}", "{task.fields[failed]} failed", "{task.fields[rate]}",
                  disable=not show) as bar:
        task = bar.add_task("prompts", total=expected, failed=0, rate="")

        def on_done(outcome: Outcome) -> None:
            nonlocal failed
            failed += outcome.status == "failed"
            elapsed = bar.tasks[0].elapsed or 0.0
            done = bar.tasks[0].completed + 1
            bar.update(task, advance=1, failed=failed, rate=f"{done / elapsed:.1f}/s" if elapsed else "")

        return runner.run(jobs, on_done, stop)
