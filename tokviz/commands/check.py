"""`tokviz check GOLDEN…`: each golden record's own request asked again, and the answer compared with
it under the noise tolerances (behaviour goldens; `render --check` is for rendering goldens)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from tokviz.commands import common
from tokviz.commands.diff import FormatOpt, JunitOpt, ReportOpt, check_reports, report
from tokviz.commands.tolerances import tolerance, tolerance_options
from tokviz.ground.errors import ProviderError, TokvizError, UsageError

if TYPE_CHECKING:
    from tokviz.measures.compare import Comparison, Tolerance
    from tokviz.pipeline.goldens import Asked
    from tokviz.run import Run, RunSet


@tolerance_options()
def check(
    goldens: Annotated[list[Path], typer.Argument(metavar="GOLDEN...", help="Golden records (.json), or folders of them.")],
    tol: dict[str, Any],
    update: Annotated[bool, typer.Option("--update", help="Rewrite the goldens that changed (and name them); the others are left as they are.")] = False,
    replay: Annotated[Optional[Path], typer.Option("--replay", metavar="FILE", help="Answer from this cassette (recorded with --record): no server, no key; the answers must then be identical.", show_default=False)] = None,
    base_url: Annotated[Optional[str], typer.Option("--base-url", metavar="URL", help="Ask this server, instead of the one each golden records.", show_default=False)] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", metavar="MODEL", help="Ask this model (a .gguf, a server's model name…) instead of the one each golden records.", show_default=False)] = None,
    provider: Annotated[Optional[str], typer.Option("--provider", "-p", metavar="NAME", help="Ask this provider instead of the one each golden records.", show_default=False)] = None,
    allow_server: Annotated[Optional[list[str]], typer.Option("--allow-server", metavar="URL", help="A server a golden may name that you trust with your key (repeatable); goldens naming any other server are refused while a key is set.", show_default=False)] = None,
    timeout: Annotated[Optional[float], typer.Option("--timeout", metavar="SECONDS", help="How long to wait for each answer from a server.", show_default=False)] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", "-j", metavar="N", help="Goldens of servers asked at once (1-64), as `tokviz batch` does.")] = 4,
    out: Annotated[Optional[Path], typer.Option("--out", metavar="FOLDER", help="Keep the new answers in this folder; a check run again with it resumes (an answer kept there is reused only for the very same request).", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparisons as JSON on stdout.")] = False,
    fmt: FormatOpt = "table",
    junit: JunitOpt = None,
    output: ReportOpt = None,
    quiet: common.QuietOpt = False,
) -> None:
    """Re-run each golden's request (prompt, model, provider or server, settings) and compare the
    answer with it: identical, within noise, or changed. Exit 1 when any changed."""
    import tempfile

    from tokviz.pipeline.goldens import Asked
    from tokviz.providers.base import check_base_url

    tolerance_ = tolerance(tol, identical=replay is not None)
    for url in [*([base_url] if base_url else []), *(allow_server or [])]:
        check_base_url(url, "--base-url" if url == base_url else "--allow-server")
    if provider:
        from tokviz.providers import registry

        registry.spec(provider)  # an unknown provider: one line naming the installed ones, before anything runs
    asked = Asked(base_url=base_url, model=model or None, provider=provider or None, allow=tuple(allow_server or ()),
                  timeout=timeout)
    files = golden_files(goldens)
    outputs = check_reports(output or [], junit, fmt)
    if not 1 <= concurrency <= 64:
        raise UsageError(f"--concurrency must be between 1 and 64, got {concurrency}")
    records = {path: common.load_record(str(path)) for path in files}
    if asked.overrides() and not quiet:
        common.stderr().print(f"tokviz: asking {_described(asked)} instead of each golden's own request", markup=False)
    with tempfile.TemporaryDirectory(prefix="tokviz-check-") as scratch:
        answers = ask_again(records, asked=asked, replay=replay, concurrency=concurrency, out=out or Path(scratch))
    comparisons = []
    for path, record in records.items():
        answer = answers.get(path) or ProviderError("no answer: the check stopped before this golden was asked")
        comparisons.append(compare(path, record, answer, tolerance_))
    if update:
        rewrite(comparisons, records, answers)
    try:
        report(comparisons, outputs, as_json=as_json, fmt=fmt, quiet=quiet)
    except TokvizError:
        if not update:
            raise


def _described(asked: Asked) -> str:
    from tokviz.ground.errors import without_credentials
    from tokviz.run.tokens import safe

    parts = [f"the {asked.provider} provider" if asked.provider else "",
             f"model {asked.model}" if asked.model else "",
             f"the server {without_credentials(asked.base_url)}" if asked.base_url else ""]
    return safe(", ".join(p for p in parts if p))


def golden_files(given: list[Path]) -> list[Path]:
    """The golden records named, and every .json record in the folders named (sorted)."""
    from tokviz.run.codec import printable

    found: list[Path] = []
    for path in given:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.json") if p.name != "index.json")
        elif path.exists() or path.is_symlink():
            found.append(path)  # not a regular file: reading it says so in one line
        else:
            raise UsageError(f"golden {printable(str(path))} does not exist")
    if not found:
        raise UsageError("no golden records found", hint="record one with `tokviz predict ... --save golden.json`")
    return list(dict.fromkeys(found))


def ask_again(records: dict[Path, Run | RunSet], *, asked: Asked, replay: Path | None, concurrency: int,
              out: Path) -> dict[Path, Run | RunSet | TokvizError]:
    """Each golden's answer now. Generations go through `tokviz batch` (its concurrency, and its
    resume when --out is kept); trees, scored texts and sets are asked one by one."""
    from tokviz.pipeline.goldens import rerun

    answers: dict[Path, Run | RunSet | TokvizError] = {}
    generations = {p: r for p, r in records.items() if _is_generation(r)}
    if generations:
        answers.update(_batch(generations, asked=asked, replay=replay, concurrency=concurrency, out=out))
    err = common.stderr()
    for path, record in records.items():
        if path in generations:
            continue
        try:
            answers[path] = rerun(record, asked=asked, replay=replay, progress=common.progress_line(err))
        except TokvizError as failure:
            answers[path] = failure
    return answers


def _is_generation(record: Run | RunSet) -> bool:
    from tokviz.run import Run, RunKind

    return isinstance(record, Run) and record.kind is RunKind.PREDICT


def _batch(goldens: dict[Path, Any], *, asked: Asked, replay: Path | None, concurrency: int,
           out: Path) -> dict[Path, Run | TokvizError]:
    import threading

    from tokviz.batch import Batch, Job
    from tokviz.ground.errors import ProviderError
    from tokviz.pipeline.goldens import plan_of, request_key
    from tokviz.run import Run

    jobs, names = [], {}
    for n, (path, run) in enumerate(goldens.items(), 1):
        try:
            p = plan_of(run, asked=asked, replay=replay)
        except TokvizError as err:
            name = f"{n:04d}-{_stem(path)}"
            names[name] = path
            jobs.append(Job(number=n, name=name, request=run_request(run), id=name, problem=err.line()))
            continue
        # The request's digest is part of the name: an answer kept in --out answers only the same
        # request (a golden re-recorded with another model, temperature or seed is asked again).
        name = f"{n:04d}-{_stem(path)}-{request_key(p)}"
        names[name] = path
        jobs.append(Job(number=n, name=name, request=p.request, id=name, provider=p.provider))
    runner = Batch(out_dir=out, formats=["json"], concurrency=concurrency, replay=replay, expected=len(jobs),
                   progress=common.progress_line(common.stderr()))
    results: dict[Path, Run | TokvizError] = {}

    def done(outcome: Any) -> None:
        path = names[outcome.job.name]
        if outcome.status != "ok":
            results[path] = ProviderError(outcome.error or "no answer")
        elif outcome.run is not None:
            results[path] = outcome.run
        else:  # answered by an earlier check with the same --out: read back
            results[path] = Run.from_json(runner.path(outcome.job, "json").read_text(encoding="utf-8"))

    _, interrupted = runner.run(jobs, done, threading.Event())
    if interrupted:
        raise KeyboardInterrupt
    if runner.disk_full:  # answers that could not be kept are not compared as if they were none
        from tokviz.ground.files import OutputError

        raise OutputError(f"--out {out}: {runner.disk_full}")
    return results


def _stem(path: Path) -> str:
    """A golden's file stem as a batch job name: any name a file system allows (not UTF-8 ones
    included) becomes one safe everywhere."""
    import re

    return re.sub(r"[^\w.-]+", "-", path.stem.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))[:80]


def run_request(run: Run) -> Any:
    from tokviz.providers.base import Request

    return Request(prompt=run.prompt, model=run.model, params=run.params)


def compare(path: Path, golden: Run | RunSet, answer: Run | RunSet | TokvizError, tolerance_: Tolerance) -> Comparison:
    """A golden against its new answer: one comparison (a set's runs folded into one)."""
    from tokviz.measures.compare import GOLDEN_SIDES, compare_records, unmatched
    from tokviz.run import Run
    from tokviz.run.codec import printable

    name = printable(str(path))  # a file name that is not UTF-8 is shown with escapes
    if isinstance(answer, TokvizError):
        return unmatched(name, f"asking again failed: {answer.line()}", tolerance_)
    try:
        parts = compare_records(golden, answer, tolerance_, name=name, sides=GOLDEN_SIDES)
    except ValueError as err:
        raise UsageError(f"{name}: {err}") from None
    return parts[0] if isinstance(golden, Run) else _one(parts, name)


def _one(parts: list[Comparison], name: str) -> Comparison:
    """A set's comparisons as one: the worst verdict, its reasons named by run."""
    from dataclasses import replace

    from tokviz.measures.compare import worst

    first = next((c for c in parts if c.verdict is worst(parts)), parts[0])
    reasons = tuple(f"{c.name}: {r}" for c in parts for r in c.reasons)
    return replace(first, name=name, verdict=worst(parts), reasons=reasons)


def rewrite(comparisons: list[Comparison], records: dict[Path, Any], answers: dict[Path, Any]) -> None:
    """--update: each golden that changed is replaced by its new answer (atomically), and named."""
    from tokviz.ground.files import write_atomic
    from tokviz.measures.compare import Verdict

    err = common.stderr()
    for c, (path, _) in zip(comparisons, records.items()):
        answer = answers[path]
        if c.verdict is Verdict.CHANGED and not isinstance(answer, TokvizError):
            write_atomic(path, answer.to_json().encode("utf-8"))
            err.print(f"tokviz: updated {path} ({c.reasons[0] if c.reasons else 'changed'})", markup=False)
