"""`tokviz render`: draw a saved run again, with no provider and no network."""

from __future__ import annotations

from typing import Annotated

import typer

from tokviz.commands import common
from tokviz.views import export, table


def render(
    run_file: Annotated[str, typer.Argument(metavar="RUN.json", help='A run saved with --save or --json; "-" reads standard input.')],
    output: common.OutputOpt = None,
    as_json: common.JsonOpt = False,
    wrap: common.WrapOpt = common.DEFAULT_WRAP,
    quiet: common.QuietOpt = False,
) -> None:
    """Re-render a saved run: the same bytes `predict` wrote for the same run and options."""
    planned = common.plan_outputs(output or [])
    run = common.load_run(run_file)
    common.write_outputs(run, planned, export.RenderOptions(wrap=wrap))
    if quiet or (planned and not as_json):
        return
    out = common.stdout()
    if as_json:
        out.file.write(run.to_json())
    else:
        out.print(table.view(run))
