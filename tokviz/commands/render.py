"""`tokviz render`: draw a saved run again, with no provider and no network."""

from __future__ import annotations

from typing import Annotated

import typer

from tokviz.commands import common
from tokviz.errors import CheckFailed, UsageError


def render(
    run_file: Annotated[str, typer.Argument(metavar="RUN.json", help='A run saved with --save or --json; "-" reads standard input.')],
    output: common.OutputOpt = None,
    as_json: common.JsonOpt = False,
    wrap: common.WrapOpt = common.DEFAULT_WRAP,
    stats: common.StatsOpt = False,
    show_sampling: common.SamplingOpt = None,
    view: common.ViewOpt = "table",
    quiet: common.QuietOpt = False,
    check: Annotated[bool, typer.Option("--check", help="Compare with the existing -o files instead of writing them; exit 1 with a diff if any differs.")] = False,
    update: Annotated[bool, typer.Option("--update", help="Rewrite the -o files that differ (golden-file update), and name them on stderr.")] = False,
) -> None:
    """Re-render a saved run: the same bytes `predict` wrote for the same run and options."""
    if check and update:
        raise UsageError("--check and --update exclude each other")
    if (check or update) and not output:
        raise UsageError(f"--{'check' if check else 'update'} needs the files to compare: give them with -o")
    options = common.render_options(wrap=wrap, sampling=show_sampling, stats=stats)
    planned = common.plan_outputs(output or [])
    run = common.load_run(run_file)
    if check or update:
        found = common.check_outputs(run, planned, options, update=update)
        if update:
            for name in found:
                common.stderr().print(f"tokviz: updated {name}", style="dim")
            return
        if found:
            common.stdout().file.write("".join(found))
            raise CheckFailed(f"{len(found)} of {len(planned)} outputs differ from the rendering",
                              hint="review the diff; --update rewrites them")
        return
    common.write_outputs(run, planned, options)
    if quiet or (planned and not as_json):
        return
    common.print_run(run, options, as_json=as_json, view=view)
