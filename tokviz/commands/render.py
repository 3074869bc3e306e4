"""`tokviz render`: draw a saved record again, with no provider and no network."""

from __future__ import annotations

from typing import Annotated

import typer

from tokviz.commands import common
from tokviz.ground.errors import CheckFailed, UsageError
from tokviz.run.tokens import count
from tokviz.views import formats


def render(
    run_file: Annotated[str, typer.Argument(metavar="RUN.json", help='A run, tree, samples or comparison saved as JSON; "-" reads standard input.')],
    output: common.OutputOpt = None,
    as_json: common.JsonOpt = False,
    wrap: common.WrapOpt = common.DEFAULT_WRAP,
    stats: common.StatsOpt = False,
    show_sampling: common.SamplingOpt = None,
    view: common.ViewOpt = "table",
    dpi: common.DpiOpt = None,
    quiet: common.QuietOpt = False,
    check: Annotated[bool, typer.Option("--check", help="Compare with the existing -o files instead of writing them; exit 1 with a diff if any differs.")] = False,
    update: Annotated[bool, typer.Option("--update", help="Rewrite the -o files that differ (golden-file update), and name them on stderr.")] = False,
) -> None:
    """Re-render a saved record: the same bytes the command that made it wrote for the same options."""
    from tokviz.run import Run, RunKind

    if check and update:
        raise UsageError("--check and --update exclude each other")
    if (check or update) and not output:
        raise UsageError(f"--{'check' if check else 'update'} needs the files to compare: give them with -o")
    options = common.render_options(wrap=wrap, sampling=show_sampling, stats=stats, dpi=dpi)
    common.check_view(view)
    for path in output or []:  # the extension is checked now; what the record can be drawn as, once it is read
        common.check_paths(path)
        formats.from_path(path.name, path.suffix)
    record = common.load_record(run_file)
    planned = common.plan_outputs(output or [], record.kind.value)
    if check or update:
        found = common.check_outputs(record, planned, options, update=update)
        if update:
            for name in found:
                common.stderr().print(f"tokviz: updated {name}", style="dim")
            return
        if found:
            common.stdout().file.write("".join(found))
            missing = sum(1 for path, _ in planned if not path.is_file())
            what = ", ".join(part for part in (f"{missing} missing" if missing else "",
                                               f"{len(found) - missing} {'differs' if len(found) - missing == 1 else 'differ'} from the rendering"
                                               if len(found) > missing else "")
                             if part)
            raise CheckFailed(f"{what} (of {count(len(planned), 'output')})",
                              hint="review the diff; --update writes them" if not missing else "--update writes them")
        return
    common.write_outputs(record, planned, options)
    if quiet or (planned and not as_json):
        return
    if isinstance(record, Run):
        common.print_run(record, options, as_json=as_json, view=view)
        return
    from tokviz.views import choices, comparison, export, samples
    from tokviz.views import score_comparison as scorediff

    out = common.stdout()
    if as_json:
        out.file.write(export.render(record, "json", options).decode("utf-8"))
    elif record.kind is RunKind.CHOICES:
        out.print(choices.table(record, out.width))
    elif record.kind is RunKind.SAMPLES:
        out.print(samples.table(list(record.runs)))
    elif record.kind is RunKind.SCORE_COMPARISON:
        out.print(scorediff.table(record))
    else:
        out.print(comparison.table(record))
