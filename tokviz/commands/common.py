"""What several commands share at the edge: reading input, writing outputs, the two consoles."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console

from tokviz.errors import RunFileError, UsageError
from tokviz.files import check_writable, write_atomic
from tokviz.views import DEFAULT_WRAP as DEFAULT_WRAP  # re-exported for the commands' defaults

if TYPE_CHECKING:  # the rest is imported where used, so `tokviz --help` loads no view or provider code
    from tokviz.providers.registry import Request
    from tokviz.run import Run
    from tokviz.views import export

# Options several commands take, declared once so their names and help stay the same everywhere.
OutputOpt = Annotated[Optional[list[Path]], typer.Option("--output", "-o", help="Write a view; the extension chooses it: .svg .png .dot .json .txt. Repeatable.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the run as JSON on stdout instead of the table.")]
WrapOpt = Annotated[int, typer.Option("--wrap", help="Chosen tokens per row in graphs (0: one row).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on stdout (outputs are still written).")]
StatsOpt = Annotated[bool, typer.Option("--stats", help="Print the run's summary (perplexity, entropy, least certain steps, speed, usage, estimated cost) under the table; --json carries it too.")]
SamplingOpt = Annotated[Optional[str], typer.Option("--show-sampling", help="Show how settings would reshape each step, e.g. 'T=0.2,T=1.5,top_k=3,top_p=0.9' (over the returned alternatives).", show_default=False)]


def render_options(*, wrap: int, sampling: str | None, stats: bool) -> export.RenderOptions:
    from tokviz.sampling import parse_settings
    from tokviz.views import export

    return export.RenderOptions(wrap=wrap, sampling=parse_settings(sampling) if sampling else (), stats=stats)


ViewOpt = Annotated[str, typer.Option("--view", help="What to print: 'table' (every token and its alternatives) or 'text' (the text as a heatmap).")]


def print_run(run: Run, options: export.RenderOptions, *, as_json: bool, view: str = "table") -> None:
    """The run on stdout: JSON (with "stats" when asked), the table view, or the text heatmap."""
    out = stdout()
    if view not in ("table", "text"):
        raise UsageError(f"--view must be 'table' or 'text', got {view!r}")
    if view == "text" and not as_json and run.kind != "tree":
        from tokviz.views import heatmap

        out.print(heatmap.view(run, color=out.is_terminal and not out.no_color))
        return
    if as_json:
        from tokviz.metrics import run_stats

        out.file.write(run.to_json({"stats": run_stats(run).to_dict()} if options.stats else None))
    elif run.kind == "tree":
        from tokviz.views import tree

        out.print(tree.view(run))
    else:
        from tokviz.views import table

        out.print(table.view(run, sampling=options.sampling, stats=options.stats))

# What to generate with: shared by `predict` and `batch`.
ModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="Model name or path to a .gguf file. Default: $TOKVIZ_MODEL or the embedded gemma-3-270m.", show_default=False)]
ProviderOpt = Annotated[Optional[str], typer.Option("--provider", "-p", help="Provider to use; inferred from the model when omitted.", show_default=False)]
TopKOpt = Annotated[int, typer.Option("--top-k", "-k", help="Alternatives to record at each step (0-20).")]
MaxTokensOpt = Annotated[int, typer.Option("--max-tokens", "-n", help="Most tokens to generate.")]
TemperatureOpt = Annotated[float, typer.Option("--temperature", "-t", help="0 is greedy (deterministic); above 0 samples.")]
TopPOpt = Annotated[float, typer.Option("--top-p", help="Nucleus sampling: sample only from the smallest set of tokens reaching this probability.")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Seed for sampling; recorded in the run so it can be replayed.", show_default=False)]
ChatOpt = Annotated[bool, typer.Option("--chat", help="Wrap the prompt in the model's chat turn format instead of continuing it as raw text.")]
SystemOpt = Annotated[Optional[str], typer.Option("--system", help="A system message (implies --chat).", show_default=False)]
BaseUrlOpt = Annotated[Optional[str], typer.Option("--base-url", help="An OpenAI-compatible server (vLLM, llama.cpp, Ollama, LM Studio), e.g. http://127.0.0.1:8000/v1. Default: $OPENAI_BASE_URL.", show_default=False)]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds to wait for a server's response.")]
RetriesOpt = Annotated[int, typer.Option("--retries", help="Retries after a rate limit (429, honouring Retry-After), a server error or a timeout.")]
RecordOpt = Annotated[Optional[Path], typer.Option("--record", help="Save the run into this cassette file, keyed by the request, for --replay.", show_default=False)]
ReplayOpt = Annotated[Optional[Path], typer.Option("--replay", help="Answer from this cassette file instead of a provider: no network, no key.", show_default=False)]


def make_request(prompt: str, *, model: str | None, top_k: int, max_tokens: int, temperature: float, top_p: float,
                 seed: int | None, chat: bool, system: str | None, base_url: str | None, timeout: float,
                 retries: int) -> Request:
    from tokviz.providers.registry import Request, default_model
    from tokviz.run import Params

    params = Params(top_k=top_k, max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed,
                    mode="chat" if (chat or system) else "raw")
    return Request(prompt=prompt, model=model or default_model(), params=params, system=system,
                   base_url=base_url, timeout=timeout, retries=retries)


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
    from tokviz.views import export

    planned = []
    for path in outputs:
        check_writable(path)
        planned.append((path, export.format_for(path)))
    return planned


def write_outputs(run: Run, planned: list[tuple[Path, str]], options: export.RenderOptions) -> None:
    from tokviz.views import export

    for path, fmt in planned:
        write_atomic(path, export.render(run, fmt, options))


def check_outputs(run: Run, planned: list[tuple[Path, str]], options: export.RenderOptions, *,
                  update: bool) -> list[str]:
    """Compare each rendering with the file on disk. Returns the diffs (empty: all equal); with
    `update`, differing files are rewritten instead and their names returned."""
    from tokviz import golden
    from tokviz.views import export

    found = []
    for path, fmt in planned:
        actual = export.render(run, fmt, options)
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


def load_run(path: str) -> Run:
    """A saved run from a file, or from standard input when `path` is "-"."""
    from tokviz.run import Run

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
