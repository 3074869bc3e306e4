"""What several commands share at the edge: the generation options, reading input, writing
outputs, the two consoles."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, Optional, TypeVar

import typer
from rich.console import Console

from tokviz.ground import environment
from tokviz.ground.errors import RunFileError, UsageError, redact
from tokviz.ground.files import check_writable, write_atomic
from tokviz.run.generation import Generation
from tokviz.views import DEFAULT_WRAP as DEFAULT_WRAP  # re-exported for the commands' defaults
from tokviz.views import formats

if TYPE_CHECKING:  # the rest is imported where used, so `tokviz --help` loads no view or provider code
    from tokviz.pipeline import Plan
    from tokviz.run import Run, RunSet
    from tokviz.views import export

F = TypeVar("F", bound=Callable[..., Any])

# --- the generation options, attached to a command from their one declaration -------------------

_PY_TYPES = {"str | None": Optional[str], "int": int, "float": float, "bool": bool, "int | None": Optional[int],
             "tuple[str, ...]": Optional[list[str]], "Path | None": Optional[Path]}


# What help shows after an option: a flag takes no value, so it shows none (Typer's default is "<bool>").
_PLACEHOLDERS: dict[Any, str] = {bool: "", int: "N", float: "X"}


def generation_options(*, exclude: tuple[str, ...] = (), defaults: dict[str, Any] | None = None,
                       help: dict[str, str] | None = None,
                       flags: dict[str, tuple[str, ...]] | None = None) -> Callable[[F], F]:
    """Give a command every field of `Generation` as an option (less `exclude`), and call it with
    one `gen: Generation` argument instead of a dozen keywords.

    The options come from the dataclass's field metadata, so their names, help and defaults are
    declared once for every command; a command may change a default or a help text for itself.
    """
    defaults = defaults or {}
    help = help or {}
    flags = flags or {}

    def decorate(fn: F) -> F:
        def added() -> list[tuple[str, Any, Any]]:
            out = []
            for f in fields(Generation):
                if f.name in exclude:
                    continue
                meta = f.metadata
                py_type = _PY_TYPES[str(f.type)]
                default = defaults.get(f.name, f.default)
                metavar = meta["metavar"] or _PLACEHOLDERS.get(py_type)
                option = typer.Option(*flags.get(f.name, meta["flags"]), help=help.get(f.name, meta["help"]), metavar=metavar,
                                      show_default=default not in (None, ()))
                out.append((f.name, Annotated[py_type, option], None if default == () else default))
            return out

        def gather(given: dict[str, Any]) -> Generation:
            if given.get("options") is not None:
                given["options"] = tuple(given["options"])
            else:
                given.pop("options", None)
            return Generation(**{**{k: v for k, v in defaults.items() if k in exclude}, **given})

        return with_options(fn, "gen", added, gather)

    return decorate


def with_options(fn: F, into: str, added: Callable[[], list[tuple[str, Any, Any]]],
                 gather: Callable[[dict[str, Any]], Any]) -> F:
    """`fn` as a command that also takes the options `added()` ((name, annotation, default) each)
    and receives them gathered into one argument `into` (`gather(values by name)`). The signature
    Typer reads is made when Typer first asks for it: `tokviz --help` builds no command's options
    (evaluating every annotation of thirteen commands was a tenth of its start)."""
    return _Command(fn, into, added, gather)  # type: ignore[return-value]


class _Command:
    """A command function with extra options: called with them, it calls `fn` with them gathered."""

    def __init__(self, fn: Callable[..., Any], into: str, added: Callable[[], list[tuple[str, Any, Any]]],
                 gather: Callable[[dict[str, Any]], Any]) -> None:
        functools.update_wrapper(self, fn, assigned=("__module__", "__name__", "__qualname__", "__doc__"))
        self._fn, self._into, self._added, self._gather = fn, into, added, gather

    @functools.cached_property
    def _params(self) -> tuple[inspect.Signature, list[str]]:
        sig = inspect.signature(self._fn, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != self._into]
        extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
                 for name, annotation, default in self._added()]
        params = sorted([*own, *extra], key=lambda p: p.kind == inspect.Parameter.KEYWORD_ONLY)
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
                  else p for p in params]
        return sig.replace(parameters=params), [p.name for p in extra]

    @property
    def __signature__(self) -> inspect.Signature:
        return self._params[0]

    @property
    def __annotations__(self) -> dict[str, Any]:  # type: ignore[override]
        return {name: p.annotation for name, p in self._params[0].parameters.items()}

    def __call__(self, **kwargs: Any) -> Any:
        names = self._params[1]
        return self._fn(**{self._into: self._gather({name: kwargs.pop(name) for name in names})}, **kwargs)


def check_parallel(n: int) -> int:
    """--parallel N, the same range in every command (llama.cpp's throughput stops growing well before)."""
    from tokviz.providers.base import MAX_PARALLEL

    if not 1 <= n <= MAX_PARALLEL:
        raise UsageError(f"--parallel must be between 1 and {MAX_PARALLEL}, got {n}")
    return n


def plan(gen: Generation, prompt: str, *, allow_empty: bool = False) -> Plan:
    """The checked request for `prompt` (the same function the notebook API uses)."""
    from tokviz import pipeline

    return pipeline.plan(gen, prompt, environ=environment.current().environ, allow_empty=allow_empty)


# --- options several commands take besides the generation ones ----------------------------------

def output_opt(kind: str) -> Any:
    exts = formats.extensions(kind)
    return Annotated[Optional[list[Path]], typer.Option("--output", "-o", metavar="FILE",
                     help=f"Write a view; the extension chooses it: {exts}. Repeatable.", show_default=False)]


OutputOpt = output_opt(formats.PREDICT)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the run as JSON on stdout instead of the table.")]
WrapOpt = Annotated[int, typer.Option("--wrap", metavar="N", help="Chosen tokens per row in graphs (0: one row).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on stdout (outputs are still written).")]
StatsOpt = Annotated[bool, typer.Option("--stats", help="Print the run's summary (perplexity, entropy, least certain steps, speed, usage, estimated cost) under the table; --json carries it too.")]
SamplingOpt = Annotated[Optional[str], typer.Option("--show-sampling", metavar="SETTINGS", help="Show how settings would reshape each step, e.g. 'T=0.2,T=1.5,top_k=3,top_p=0.9' (over the returned alternatives).", show_default=False)]
ViewOpt = Annotated[str, typer.Option("--view", metavar="table|text", help="What to print: 'table' (every token and its alternatives) or 'text' (the text as a heatmap).")]
WatchOpt = Annotated[Optional[list[str]], typer.Option("--watch", metavar="TOKEN", help='Show this token\'s probability and rank at every step, even far outside the top k (repeatable; a token\'s text such as " Paris", or id:N). Exact on the local model and transformers; on a server, a bound where it is not listed.', show_default=False)]
SaveOpt = Annotated[Optional[Path], typer.Option("--save", metavar="FILE", help="Save the record as JSON, to re-render later with `tokviz render`.", show_default=False)]


DpiOpt = Annotated[Optional[int], typer.Option("--dpi", metavar="N", help="Resolution of PNG outputs (Graphviz's default 96; 192 for projectors and print).", show_default=False)]


def render_options(*, wrap: int, sampling: str | None, stats: bool, dpi: int | None = None) -> export.RenderOptions:
    from tokviz.measures.reshape import parse_settings
    from tokviz.views import export

    if dpi is not None and not 24 <= dpi <= 1200:
        raise UsageError(f"--dpi must be between 24 and 1200, got {dpi}")
    if not 0 <= wrap <= 10_000:
        raise UsageError(f"--wrap must be between 0 and 10000, got {wrap}")
    return export.RenderOptions(wrap=wrap, sampling=parse_settings(sampling) if sampling else (), stats=stats, dpi=dpi)


def check_view(view: str) -> None:
    if view not in ("table", "text"):
        raise UsageError(f"--view must be 'table' or 'text', got {view!r}")


def print_run(run: Run, options: export.RenderOptions, *, as_json: bool, view: str = "table") -> None:
    """The run on stdout: JSON (with "stats" when asked), the table view, or the text heatmap."""
    from tokviz.run import RunKind

    out = stdout()
    check_view(view)
    if view == "text" and not as_json and run.kind is not RunKind.TREE:
        from tokviz.views import heatmap

        out.print(heatmap.view(run, color=out.is_terminal and not out.no_color))
        return
    if as_json:
        from tokviz.measures.metrics import run_stats, steps_stats

        extra = {"stats": run_stats(run).to_dict(), "step_stats": steps_stats(run)} if options.stats else {}
        if run.params.json_schema is not None:  # derived, for scripts: each field's figures
            from tokviz.measures.fields import fields_of

            extra["fields"] = fields_of(run).to_dict(run)
        out.file.write(run.to_json(extra or None))
    elif run.kind is RunKind.TREE:
        from tokviz.views import tree

        out.print(tree.view(run))
    else:
        from tokviz.views import table

        out.print(table.view(run, sampling=options.sampling, stats=options.stats))
        if run.params.json_schema is not None and run.steps:
            from tokviz.views import fields

            out.print(fields.table(run))


def stdout() -> Console:
    """The console for results. Rich turns colour off by itself when stdout is not a terminal and
    when NO_COLOR is set, so piped output is plain text. What it writes passes through the key
    redaction (a server may echo a key into its answer)."""
    env = environment.current()
    return Console(file=_Redacting(env.stdout), highlight=False, emoji=False, markup=False,
                   force_terminal=env.stdout_is_terminal(), width=env.width, _environ=dict(env.environ))


def stderr() -> Console:
    """The console for progress, warnings and the error line."""
    env = environment.current()
    return Console(file=env.stderr, highlight=False, emoji=False, markup=False, soft_wrap=True,
                   force_terminal=env.stderr_is_terminal(), width=env.width, _environ=dict(env.environ))


class _Redacting:
    """A text stream that removes the secrets in the environment from everything written to it."""

    def __init__(self, inner: IO[str]) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        self.inner.write(redact(text, shapes=False))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def progress_line(console: Console) -> Callable[[str], None]:
    from tokviz.run.tokens import safe

    return lambda msg: console.print(safe(msg), style="dim")


def read_text_arg(value: str) -> str:
    """An argument's text, or standard input's when it is "-"."""
    if value != "-":
        return value
    data = environment.current().stdin.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UsageError(f"standard input is not UTF-8 text (byte {err.start})") from None
    # `echo "prompt" | tokviz predict -` must ask what `tokviz predict "prompt"` asks: one trailing
    # newline is dropped, as the shell's $(...) does (and a byte-order mark is not text).
    text = text.removeprefix("\ufeff")
    return text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text


def plan_outputs(outputs: list[Path], kind: str = formats.PREDICT) -> list[tuple[Path, str]]:
    """Each output path with its format, checked against the kind of record before any work is done."""
    planned = []
    for path in outputs:
        check_writable(path)
        planned.append((path, formats.from_path(path.name, path.suffix, kind)))
    return planned


def check_paths(*paths: Path | None) -> None:
    for path in paths:
        if path is not None:
            check_writable(path)


def write_outputs(record: Run | RunSet, planned: list[tuple[Path, str]], options: export.RenderOptions, *,
                  saved: Path | None = None) -> None:
    """Write each view asked for (and the record itself to `saved`), then say what was written, on
    a terminal (a script knows what it asked for; a person at a terminal sees it confirmed)."""
    from tokviz.views import export

    if saved is not None:
        write_atomic(saved, record.to_json().encode("utf-8"))
    for path, fmt in planned:
        write_atomic(path, export.render(record, fmt, options))
    written = [*([saved] if saved is not None else []), *(path for path, _ in planned)]
    err = stderr()
    if written and err.is_terminal:
        from tokviz.run.tokens import safe

        err.print("tokviz: wrote " + ", ".join(safe(str(p)) for p in written), style="dim", markup=False)


def check_outputs(record: Run | RunSet, planned: list[tuple[Path, str]], options: export.RenderOptions, *,
                  update: bool) -> list[str]:
    """Compare each rendering with the file on disk. Returns the diffs (empty: all equal); with
    `update`, differing files are rewritten instead and their names returned."""
    from tokviz.pipeline import goldens as golden
    from tokviz.views import export

    found = []
    for path, fmt in planned:
        actual = export.render(record, fmt, options)
        expected = path.read_bytes() if path.is_file() else None
        delta = golden.diff(str(path), expected, actual)
        if delta is None:
            continue
        if update:
            write_atomic(path, actual)
            found.append(str(path))
        else:
            found.append(delta)
    return found


def load_record(path: str) -> Run | RunSet:
    """A saved record (run, tree, samples, comparison) from a file, or standard input for "-"."""
    from tokviz.run import load_record as parse

    text, source = _read_record(path)
    return parse(text, source=source)


def _read_record(path: str) -> tuple[str, str]:
    """The text of a saved record and the name to give it in messages."""
    if path == "-":
        return read_text_arg("-"), "standard input"
    from tokviz.ground.files import read_regular
    from tokviz.run.codec import printable

    shown = printable(path)  # a file name that is not UTF-8 is named with escapes, never a crash
    try:
        text = read_regular(Path(path), "run file").decode("utf-8")
    except UnicodeDecodeError:
        raise RunFileError(f"{shown} is not a tokviz run (not UTF-8 text)") from None
    return text, shown


def load_run(path: str) -> Run:
    """One run (not a set of them) from a file or standard input."""
    from tokviz.run import Run

    text, source = _read_record(path)
    return Run.from_json(text, source=source)
