"""What several commands share at the edge: reading input, writing outputs, the two consoles."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from tokviz.errors import RunFileError, UsageError
from tokviz.files import check_writable, write_atomic
from tokviz.run import Run
from tokviz.views import export, graph

# Options several commands take, declared once so their names and help stay the same everywhere.
OutputOpt = Annotated[Optional[list[Path]], typer.Option("--output", "-o", help="Write a view; the extension chooses it: .svg .png .dot .json .txt. Repeatable.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the run as JSON on stdout instead of the table.")]
WrapOpt = Annotated[int, typer.Option("--wrap", help="Chosen tokens per row in graphs (0: one row).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on stdout (outputs are still written).")]
DEFAULT_WRAP = graph.DEFAULT_WRAP


def stdout() -> Console:
    """The console for results. Rich turns colour off by itself when stdout is not a terminal
    and when NO_COLOR is set, so piped output is plain text."""
    return Console(highlight=False, emoji=False, markup=False)


def stderr() -> Console:
    return Console(stderr=True, highlight=False, emoji=False, markup=False, soft_wrap=True)


def read_text_arg(value: str) -> str:
    """An argument's text, or standard input's when it is "-"."""
    if value != "-":
        return value
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UsageError(f"standard input is not UTF-8 text (byte {err.start})") from None


def plan_outputs(outputs: list[Path]) -> list[tuple[Path, str]]:
    """Each output path with its format, checked before any work is done."""
    planned = []
    for path in outputs:
        check_writable(path)
        planned.append((path, export.format_for(path)))
    return planned


def write_outputs(run: Run, planned: list[tuple[Path, str]], options: export.RenderOptions) -> None:
    for path, fmt in planned:
        write_atomic(path, export.render(run, fmt, options))


def load_run(path: str) -> Run:
    """A saved run from a file, or from standard input when `path` is "-"."""
    if path == "-":
        return Run.from_json(read_text_arg("-"), source="standard input")
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"run file {path} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"run file {path} is a folder") from None
    except UnicodeDecodeError:
        raise RunFileError(f"{path} is not a tokviz run (not UTF-8 text)") from None
    except OSError as err:
        raise UsageError(f"cannot read run file {path}: {err.strerror}") from None
    return Run.from_json(text, source=path)
