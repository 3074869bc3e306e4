"""The command-line face: the Typer app, and the single funnel that turns errors into exit codes.

Every command module raises `TokvizError`s; only `main` below turns them (and click's own usage
errors, Ctrl-C and broken pipes) into one line on stderr and an exit status, so no user ever sees
a traceback unless they ask for one with --debug (or TOKVIZ_DEBUG=1).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from typing import Annotated, Any, Optional

import typer

from tokviz import __version__
from tokviz.commands.batch import batch
from tokviz.commands.check import check
from tokviz.commands.compare import compare
from tokviz.commands.diff import diff
from tokviz.commands.explore import explore
from tokviz.commands.predict import predict
from tokviz.commands.providers import providers
from tokviz.commands.render import render
from tokviz.commands.sample import sample
from tokviz.commands.score import score
from tokviz.commands.server import server
from tokviz.commands.tokenize import tokenize
from tokviz.commands.tree import tree
from tokviz.ground.environment import Environment, using
from tokviz.ground.errors import ExitStatus, Terminated, TokvizError, UsageError, redact

# The commands, in the order `tokviz --help` lists them; each one's first docstring paragraph is its line.
COMMANDS = (predict, render, tokenize, batch, sample, compare, tree, score, diff, check, explore, providers, server)


def _short_help(fn: object) -> str:
    """The first paragraph of a command's docstring as one line: Typer keeps a docstring's line
    breaks in the command list, which cut descriptions mid-sentence."""
    doc = (getattr(fn, "__doc__", None) or "").strip()
    return " ".join(doc.split("\n\n")[0].split())


class _Commands(typer.core.TyperGroup):
    """The command group, each command built on first use: `tokviz --help` lists the commands from
    their docstrings without building the options of all thirteen (13 ms of a 190 ms start;
    docs/benchmarks.md), and a command line builds only the command it runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.listing = False  # inside the group's own help: an entry per command is all it needs
        self.built: dict[str, Any] = {}
        self.commands = {fn.__name__: typer.core.TyperCommand(name=fn.__name__, help=_short_help(fn),
                                                              short_help=_short_help(fn)) for fn in COMMANDS}

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands or self.listing:
            return self.commands.get(cmd_name)
        if cmd_name not in self.built:
            from typer.models import CommandInfo

            fn = next(f for f in COMMANDS if f.__name__ == cmd_name)
            info = CommandInfo(name=cmd_name, callback=fn, short_help=_short_help(fn))
            self.built[cmd_name] = _tidy_help(typer.main.get_command_from_info(
                info, pretty_exceptions_short=app.pretty_exceptions_short, rich_markup_mode=app.rich_markup_mode))
        return self.built[cmd_name]

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False


app = typer.Typer(
    name="tokviz",
    help="See the log-probabilities of every token a language model generates, and the roads not taken.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    cls=_Commands,
)


def _version(value: bool) -> None:
    if value:
        from tokviz.ground.environment import current

        current().stdout.write(f"tokviz {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    palette: Annotated[Optional[str], typer.Option("--palette", metavar="NAME", help="Colour scale of every view: 'traffic' (red to green, the default) or 'colorblind' (vermillion to blue, safe for red-green colour blindness). Default: $TOKVIZ_PALETTE.", show_default=False)] = None,
) -> None:
    """See the log-probabilities of every token a language model generates, and the roads not taken."""
    from tokviz.ground.environment import current

    env = current()
    env.palette = palette or env.palette
    if palette or env.environ.get("TOKVIZ_PALETTE"):  # a name given is checked: a typo is one line, not traffic
        from tokviz.views import colors

        colors.check_palette(env.palette_name)


def _tidy_help(command: typer.core.TyperGroup) -> typer.core.TyperGroup:
    """Help that shows what a reader types: arguments as their names (`PROMPT`, `[TEXT]`), where
    Typer 0.29 writes `{PROMPT}` and a `<str>` type beside it, and no type at all beside a flag,
    where it writes `<bool>` (`--json`, `--help`), though a flag takes no value."""

    def tidy(cmd: Any) -> None:
        for param in cmd.params:
            if isinstance(param, typer.core.TyperArgument) and param.metavar:
                name = param.metavar if param.required or param.metavar.startswith("[") else f"[{param.metavar}]"
                param._usage_display_name = lambda name=name: name  # type: ignore[method-assign]
                param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
            elif getattr(param, "is_flag", False) and not getattr(param, "count", False):
                param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
        made = cmd.get_help_option  # click makes --help per call, outside `params`

        def help_option(ctx: Any, made: Any = made) -> Any:
            option = made(ctx)
            if option is not None:
                option.display_type_rich = lambda ctx: None
            return option

        cmd.get_help_option = help_option
        for sub in getattr(cmd, "commands", {}).values():
            tidy(sub)

    tidy(command)
    return command


def main(argv: list[str] | None = None, env: Environment | None = None) -> int:
    """Run the CLI and return its exit status (the console script passes it to sys.exit).

    `env` carries the streams and environment variables (tests pass in-memory ones)."""
    env = env or Environment()
    args = list(sys.argv[1:] if argv is None else argv)
    with using(env), _signals():
        return _main(args, env)


_STOPPED_BY: list[int] = []  # the signal that stopped this call, if one did


@contextlib.contextmanager
def _signals() -> Iterator[None]:
    """SIGTERM stops like Ctrl-C (finished work kept, exit 143); a second Ctrl-C or SIGTERM while
    tokviz is stopping ends the process at once and quietly (no traceback from exit hooks)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def second(signum: int, _frame: object) -> None:
        os._exit(ExitStatus.TERMINATED if signum == signal.SIGTERM else ExitStatus.INTERRUPTED)

    def first(signum: int, _frame: object) -> None:
        _STOPPED_BY.append(signum)
        signal.signal(signal.SIGINT, second)
        signal.signal(signal.SIGTERM, second)
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    _STOPPED_BY.clear()
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s, handler in before.items():
        # a shell that started us with SIGINT ignored (a background job) keeps it ignored
        if handler is not signal.SIG_IGN:
            signal.signal(s, first)
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def _main(args: list[str], env: Environment) -> int:
    def _say(line: str) -> None:
        from tokviz.run.tokens import safe

        # one line, made terminal-safe: an error can quote a server's message or a file's content
        env.stderr.write(f"tokviz: {safe(redact(' '.join(line.split())))}\n")
        env.stderr.flush()

    def _traceback() -> None:
        """--debug: the traceback, through the same redaction as every other line (keys stay out)."""
        import traceback

        env.stderr.write(redact(traceback.format_exc()))

    debug = "--debug" in args or env.debug
    if "--debug" in args:  # accepted anywhere on the line, not only before the command
        args = [a for a in args if a != "--debug"]
    args, notes = old_spellings(args)
    for note in notes:
        env.stderr.write(f"tokviz: note: {note}\n")
    command = _tidy_help(typer.main.get_command(app))
    try:
        for n, arg in enumerate(args, start=1):
            try:
                arg.encode("utf-8")
            except UnicodeEncodeError:  # bytes that were not UTF-8 reach Python as lone surrogates
                raise UsageError(f"argument {n} is not valid UTF-8 text") from None
        _refuse_folder_names(args)
        if env.stdout is None:
            raise TokvizError("standard output is closed", hint="redirect it, e.g. > /dev/null")  # the world, not the command line: 1
        # Click and Typer write help and their messages to sys.stdout: the environment's stream
        # instead, so `main(env=...)` (tests, notebooks) gets all of its output
        with contextlib.redirect_stdout(env.stdout):
            result = command.main(args=args, prog_name="tokviz", standalone_mode=False)
        if _STOPPED_BY and result == ExitStatus.INTERRUPTED:  # Typer returns Ctrl-C and SIGTERM as a bare 130
            raise Terminated() if _STOPPED_BY[-1] == signal.SIGTERM else KeyboardInterrupt()
        env.stdout.flush()  # a full or closed stdout fails here, as one line, not at interpreter exit
        return int(result) if isinstance(result, int) else ExitStatus.OK
    except TokvizError as err:
        if debug:
            _traceback()
        _say(err.line())
        return err.exit_status
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as err:  # Typer's own usage errors (bad option, missing argument)
        message = " ".join(err.format_message().split())
        if not message:  # bare `tokviz`: the help is already printed, and that is all it asked for
            return ExitStatus.OK
        if err.exit_code == ExitStatus.USAGE:
            ctx = getattr(err, "ctx", None)
            message += f" (see '{ctx.command_path if ctx else 'tokviz'} --help')"
        _say(message)
        return err.exit_code
    except Terminated:
        _say("terminated")
        return ExitStatus.TERMINATED
    except (KeyboardInterrupt, typer.Abort):
        _say("interrupted")
        return ExitStatus.INTERRUPTED
    except RecursionError:
        _say("the input is nested too deeply to read")
        return ExitStatus.ERROR
    except BrokenPipeError:
        # The reader went away (`tokviz ... | head`): not an error worth a message.
        # Point stdout at /dev/null so Python's flush at exit does not raise a second time.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), env.stdout.fileno())
        return ExitStatus.ERROR
    except OSError as err:  # writing stdout or stderr: a full disk (/dev/full), a closed descriptor
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), env.stdout.fileno())
        _say(f"{err.filename}: " * bool(err.filename) + f"{err.strerror or type(err).__name__}")
        return ExitStatus.ERROR
    except Exception as err:  # the last line of defence: still one line, never a traceback
        if debug:
            _traceback()
        _say(f"internal error: {type(err).__name__}: {err} (run again with --debug for details, and please report it)")
        return ExitStatus.ERROR


# Spellings of an earlier release, still read with a note: `--parallel` takes how many sequences are
# decoded together (sample, compare and tree took it as a switch). (`sample -n` counted samples
# for one release; it is now tokens per sample, as in every command and as `--help` says.)
SWITCH_PARALLEL = {"sample": "64", "compare": "64", "tree": "2"}


def old_spellings(args: list[str]) -> tuple[list[str], list[str]]:
    """The command line with last release's spellings read as they were meant, and a note for each."""
    commands = {"sample", "compare", "tree"}
    at = next((i for i, a in enumerate(args) if a in _command_names()), None)
    if at is None or args[at] not in commands:
        return args, []
    name, rest, notes = args[at], list(args[at + 1:]), []
    if "--parallel" in rest:
        i = rest.index("--parallel")
        if i + 1 >= len(rest) or not rest[i + 1].isdigit():
            rest.insert(i + 1, SWITCH_PARALLEL[name])
            notes.append(f"`{name} --parallel` now takes how many sequences to decode together, as `tokviz batch` "
                         f"does; read as --parallel {SWITCH_PARALLEL[name]}")
    return [*args[: at + 1], *rest], notes


def _command_names() -> set[str]:
    return {fn.__name__ for fn in COMMANDS}


FILE_OPTIONS = ("--save", "--record", "--junit", "-o", "--output")
FOLDER_OUTPUTS = {"batch"}  # where -o names a folder


def _refuse_folder_names(args: list[str]) -> None:
    """A file option given a name ending with a slash (`--save t.json/`) is refused in one line: the
    path type would quietly drop the slash and write `t.json`."""
    command = next((a for a in args if a in _command_names()), None)
    for i, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if not eq:
            name, value = arg, args[i + 1] if i + 1 < len(args) else ""
        folder = command in FOLDER_OUTPUTS and name in ("-o", "--output")
        if name in FILE_OPTIONS and not folder and value.endswith(("/", os.sep)) and len(value) > 1:
            raise UsageError(f"output {value} ends with a slash: give a file name, not a folder")


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
