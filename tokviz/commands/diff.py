"""`tokviz diff A B`: two records of the same kind compared, and whether they differ beyond noise."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from tokviz.commands import common
from tokviz.commands.tolerances import tolerance, tolerance_options
from tokviz.ground.errors import CheckFailed, UsageError

if TYPE_CHECKING:
    from tokviz.measures.compare import Comparison, Tolerance

REPORT_FORMATS = {".html": "page", ".json": "to_json", ".md": "markdown", ".xml": "junit"}
FormatOpt = Annotated[str, typer.Option("--format", metavar="table|md", help="What to print: 'table' (the default) or "
                                        "'md' (Markdown, for a CI step summary).")]
JunitOpt = Annotated[Optional[Path], typer.Option("--junit", metavar="FILE", help="Also write a JUnit XML report "
                                                  "(one test case per record, a failure per changed one).",
                                                  show_default=False)]
ReportOpt = Annotated[Optional[list[Path]], typer.Option("--output", "-o", metavar="FILE", help="Write the comparison: "
                                                         ".html (side by side), .json, .md or .xml (JUnit). Repeatable.",
                                                         show_default=False)]


@tolerance_options()
def diff(
    a: Annotated[str, typer.Argument(metavar="A", help="A saved record (predict, score, tree, samples, comparison), or a batch's output folder.")],
    b: Annotated[str, typer.Argument(metavar="B", help="The record (or folder) to compare with it, of the same kind.")],
    tol: dict[str, Any],
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON on stdout.")] = False,
    fmt: FormatOpt = "table",
    junit: JunitOpt = None,
    output: ReportOpt = None,
    quiet: common.QuietOpt = False,
) -> None:
    """Compare two records: where the chosen tokens part, how far the figures moved, and whether that
    is more than the noise of the engines that made them. Exit 1 when they changed."""
    from tokviz.measures.compare import compare_records

    tolerance_ = tolerance(tol)
    outputs = check_reports(output or [], junit, fmt)
    if Path(a).is_dir() or Path(b).is_dir():
        comparisons = compare_folders(Path(a), Path(b), tolerance_)
    else:
        try:
            comparisons = compare_records(common.load_record(a), common.load_record(b), tolerance_,
                                          name=f"{Path(a).name} vs {Path(b).name}")
        except ValueError as err:
            raise UsageError(str(err)) from None
    report(comparisons, outputs, as_json=as_json, fmt=fmt, quiet=quiet)


def check_reports(output: list[Path], junit: Path | None, fmt: str) -> list[tuple[Path, str]]:
    """The report files asked for, checked before anything runs."""
    if fmt not in ("table", "md"):
        raise UsageError(f"--format must be table or md, got {fmt!r}")
    planned = []
    for path in [*output, *([junit] if junit else [])]:
        kind = "junit" if path == junit else REPORT_FORMATS.get(path.suffix.lower())
        if kind is None:
            raise UsageError(f"cannot tell the format of {path} from its extension", hint="use .html, .json, .md or .xml")
        common.check_paths(path)
        planned.append((path, kind))
    return planned


def report(comparisons: list[Comparison], outputs: list[tuple[Path, str]], *, as_json: bool, fmt: str, quiet: bool) -> None:
    """Print the comparisons, write the reports, and fail (exit 1) when any record changed."""
    from tokviz.ground.files import write_atomic
    from tokviz.measures.compare import Verdict, worst
    from tokviz.views import diff as view

    for path, kind in outputs:
        write_atomic(path, getattr(view, kind)(comparisons).encode("utf-8"))
    if not quiet:
        out = common.stdout()
        if as_json:
            out.file.write(view.to_json(comparisons))
        elif fmt == "md":
            out.file.write(view.markdown(comparisons))
        else:
            out.print(view.view(comparisons))
    changed = [c for c in comparisons if c.verdict is Verdict.CHANGED]
    if changed:
        raise CheckFailed(f"{len(changed)} of {len(comparisons)} changed: {changed[0].summary()}")
    if quiet:  # nothing on stdout: the verdict on stderr, as a changed one's line would be
        common.stderr().print(f"tokviz: {worst(comparisons).value}", style="dim")


def compare_folders(a: Path, b: Path, tolerance_: Tolerance) -> list[Comparison]:
    """Two batch folders, prompt by prompt: each job paired by its id, else by its prompt (file
    names hash the model and settings, so two models' folders share none); each pair compared;
    a prompt done in one only is a change."""
    from tokviz.measures.compare import compare_records, unmatched

    runs_a, runs_b = batch_runs(a), batch_runs(b)
    out = []
    for key in [*runs_a, *(k for k in runs_b if k not in runs_a)]:
        name = (runs_a.get(key) or runs_b[key])[0]
        if key not in runs_b or key not in runs_a:
            out.append(unmatched(name, f"done in {a if key in runs_a else b} only", tolerance_))
            continue
        try:  # a run with a run; weighed answers with weighed answers
            out += compare_records(common.load_record(runs_a[key][1]), common.load_record(runs_b[key][1]), tolerance_,
                                   name=name)
        except ValueError as err:
            raise UsageError(f"{name}: {err}") from None
    if not out:
        raise UsageError(f"{a} and {b} hold no finished runs to compare")
    return out


def batch_runs(folder: Path) -> dict[tuple[str, ...], tuple[str, str]]:
    """A batch folder's finished runs, from its index.json: (the job's id, or its prompt and how
    many times that prompt came before) → (a name to show, the run's file)."""
    import json

    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder", hint="compare a folder with a folder, a record with a record")
    index = folder / "index.json"
    try:
        items = json.loads(index.read_text(encoding="utf-8"))["items"]
        found: dict[tuple[str, ...], tuple[str, str]] = {}
        seen: dict[str, int] = {}
        for i in items:
            prompt = str(i.get("prompt", ""))
            nth = seen[prompt] = seen.get(prompt, 0) + 1
            key = ("id", str(i["id"])) if i.get("id") is not None else ("prompt", prompt, str(nth))
            if i.get("status") == "ok":
                found[key] = (str(i["id"]) if i.get("id") is not None else str(i["name"]), str(folder / i["files"]["json"]))
        return found
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UsageError(f"{folder} holds no readable batch index ({type(err).__name__})",
                         hint="give a folder that `tokviz batch -o FOLDER` wrote") from None
