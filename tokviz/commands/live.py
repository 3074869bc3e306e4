"""Live output on a terminal: the text while it is generated, progress with an estimate.

Only on a terminal and never with --json or --quiet: pipes, scripts and CI logs get no progress
noise. Everything is drawn on stderr and is transient (it disappears when the result is printed).
"""

from __future__ import annotations

import codecs
import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from tokviz.run import tokens as tok

if TYPE_CHECKING:
    from tokviz.run import Step


@contextlib.contextmanager
def generating(console: Console, enabled: bool) -> Iterator[Callable[[Step], None] | None]:
    """A step listener that shows the text as tokens arrive (None when not on a terminal)."""
    if not enabled:
        yield None
        return
    from rich.live import Live

    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pieces: list[str] = []
    live = Live(Text("generating…", style="dim"), console=console, transient=True, refresh_per_second=12)

    def on_step(step: Step) -> None:
        chosen = step.chosen
        pieces.append(chosen.label if chosen.lossy else decoder.decode(chosen.raw))
        tail = tok.safe("".join(pieces))[-(max(console.width, 40) * 4):]  # the last few lines
        shown = Text(f"generating… {tok.count(len(pieces), 'token')}\n", style="dim")
        shown.append(tail)
        live.update(shown)

    with live:
        yield on_step


@contextlib.contextmanager
def progress(console: Console, enabled: bool, total: int, what: str) -> Iterator[Callable[..., None]]:
    """`advance(done, total=None)` updates a bar of `total` items with rate and ETA (a no-op off a
    terminal); a caller that learns the real total as it goes passes it."""
    if not enabled:
        yield lambda _done, _total=None: None
        return
    with bar(console, what, transient=True) as shown:
        task = shown.add_task(what, total=total)
        yield lambda done, new_total=None: shown.update(task, completed=done, total=new_total or total)


def bar(console: Console, label: str, *fields: str, **options: Any) -> Any:
    """A rich progress bar on `console`: the label, the bar, done of total, any `fields` (rich
    column templates such as "{task.fields[failed]} failed"), elapsed time and ETA."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), *(TextColumn(f) for f in fields),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    return Progress(*columns, console=console, **options)
