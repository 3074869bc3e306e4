"""`tokviz explore`: a local web app to click any alternative and see where it leads."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from tokviz.commands import common
from tokviz.ground.errors import Terminated, UsageError
from tokviz.run.generation import Generation

if TYPE_CHECKING:
    from rich.console import Console

    from tokviz.explore.server import Server
    from tokviz.explore.session import Session


@common.generation_options(exclude=("record", "replay", "raw"))
def explore(
    gen: Generation,
    prompt: Annotated[Optional[str], typer.Argument(metavar="[PROMPT]", help='The prompt; "-" reads it from standard input. Not needed with --from.', show_default=False)] = None,
    from_run: Annotated[Optional[Path], typer.Option("--from", metavar="RUN.json", help="Reopen a saved exploration (or explore a saved predict or tree run).", show_default=False)] = None,
    save: Annotated[Optional[Path], typer.Option("--save", metavar="FILE", help="Save the exploration as a tree run after every change (`tokviz render` draws it, `--from` reopens it).", show_default=False)] = None,
    port: Annotated[int, typer.Option("--port", metavar="N", help="The port on 127.0.0.1 (0: a free one).")] = 0,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Print the address instead of opening a browser.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the address as JSON on stdout once serving ({\"url\", \"port\"}).")] = False,
) -> None:
    """Explore in the browser: click any alternative token and see where the model goes from there."""
    from tokviz.explore.exploration import Exploration
    from tokviz.explore.server import Server
    from tokviz.explore.session import Session

    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {port}")
    exploration = None
    if from_run is not None:
        if prompt is not None:
            raise UsageError("give a prompt or --from, not both")
        saved = common.load_run(str(from_run))
        exploration = Exploration.from_run(saved)
        text = saved.prompt
        gen = replace(gen, model=gen.model or saved.model, chat=gen.chat or saved.params.mode == "chat",
                      top_k=saved.params.top_k)
    elif prompt is None:
        raise UsageError("give a prompt, or --from RUN.json")
    else:
        text = common.read_text_arg(prompt)
    # An exploration continues raw text unless the chat format is asked for (as a tree does).
    gen = replace(gen, raw=not (gen.chat or gen.system))
    plan = common.plan(gen, text)
    common.check_paths(save)
    err = common.stderr()
    session = Session(plan, exploration=exploration, save=save, progress=common.progress_line(err))
    server = None
    stopped = False
    try:
        if exploration is None:
            session.first_run()
        else:
            session.autosave()
        server = Server(session, port)
        server.start()
        out = common.environment.current().stdout
        if as_json:
            out.write(json.dumps({"url": server.url, "port": server.port}) + "\n")
        else:
            out.write(f"tokviz explore: {server.url}\n")
        out.flush()
        if not no_browser:
            import webbrowser

            if not webbrowser.open(server.url):
                err.print("tokviz: no browser could be opened; open the address above", style="yellow")
        if err.is_terminal:
            err.print("Ctrl-C stops the explorer.", style="dim")
        try:
            _wait(server)
        except KeyboardInterrupt as stop:  # Ctrl-C is how the explorer is stopped: a normal end, exit 0
            if isinstance(stop, Terminated):
                raise
            stopped = True
    finally:
        if server is not None:
            server.stop()
        session.close()
        _keep(session, err)
    if stopped:
        err.print("tokviz: the explorer stopped", style="dim")


def _wait(server: Server) -> None:
    import time

    while server.thread.is_alive():
        time.sleep(0.2)
    raise UsageError(f"the explorer's web server stopped: {server.failed}")


def _keep(s: Session, err: Console) -> None:
    """At exit, no exploration is lost: saved to --save, else kept in tokviz's state folder."""
    import time

    from tokviz.ground.dirs import state_dir
    from tokviz.ground.errors import TokvizError
    from tokviz.ground.files import write_atomic
    from tokviz.run.tokens import safe

    try:
        if s.save_path is not None:
            try:
                s.autosave()
                return
            except TokvizError as failed:  # --save's disk is full or gone: the state folder keeps it instead
                err.print(f"tokviz: {safe(failed.line())}", style="yellow")
        if not s.unsaved:
            return
        target = state_dir() / "explorations" / time.strftime("explore-%Y%m%d-%H%M%S.json")
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, s.record().to_json().encode("utf-8"))
        err.print(f"tokviz: the exploration is kept in {safe(str(target))} (reopen it with --from)", style="dim")
    except OSError as error:
        err.print(f"tokviz: the exploration could not be kept: {safe(str(error))}", style="yellow")
