"""The terminal view: one row per generated token, with its probability and the alternatives.

Token text is untrusted data (a token can be ``[bold]`` or an escape sequence), so every cell is
built as a rich `Text` from plain strings and styles; nothing here is ever parsed as markup.
Colour is added with styles only, so the same renderable prints plain when colour is off.
"""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from tokviz import tokens as tok
from tokviz.metrics import step_entropy
from tokviz.run import Run, Token
from tokviz.views.colors import percent, prob_hex


def token_text(token: Token, *, bold: bool = False) -> Text:
    """A token as Text: literal text plain, stand-ins and escaped bytes dimmed so they read as such."""
    out = Text()
    colour = prob_hex(token.prob)
    weight = " bold" if bold else ""
    if not token.raw and token.text:  # a special token such as <eos>: no bytes of its own
        out.append(tok.visible(token.text), style=f"{colour} italic{weight}")
        return out
    segs = tok.segments(token.raw) or [tok.Segment("∅", raw=True)]
    for seg in segs:
        out.append(seg.text, style=f"{colour}{weight}" + (" dim" if seg.raw else ""))
    return out


def header(run: Run) -> Text:
    """The prompt followed by the generated text, so the table's rows can be read in context."""
    out = Text()
    out.append(run.prompt, style="dim")
    out.append(run.text, style="bold")
    return out


def footer(run: Run, *, timings: bool = True) -> Text:
    """One summary line. `timings=False` leaves out speed, which changes from run to run, so that
    files meant for golden-file checks depend only on the tokens."""
    parts = [f"{len(run.steps)} tokens", f"{run.provider}:{run.model}", "entropy in bits"]
    if run.usage.get("prompt_tokens"):
        parts.insert(1, f"{run.usage['prompt_tokens']} prompt tokens")
    if run.finish_reason:
        parts.append(f"finish: {run.finish_reason}")
    rate = run.timings.get("tokens_per_s")
    if rate and timings:
        parts.append(f"{rate:.1f} tokens/s")
    return Text(" · ".join(parts), style="dim")


def table(run: Run) -> Table:
    """The per-step table: position, chosen token, its probability, alternatives, entropy."""
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=False)
    t.add_column("#", justify="right", style="dim", no_wrap=True)
    t.add_column("token", overflow="fold")
    t.add_column("prob", justify="right", no_wrap=True)
    t.add_column("alternatives", overflow="fold")
    t.add_column("entropy", justify="right", no_wrap=True)
    for i, step in enumerate(run.steps, start=1):
        chosen = step.chosen
        alts = Text()
        for n, alt in enumerate(step.others()):
            if n:
                alts.append("  ")
            alts.append_text(token_text(alt))
            alts.append(" " + percent(alt.prob), style="dim")
        t.add_row(
            str(i),
            token_text(chosen, bold=True),
            Text(percent(chosen.prob), style=prob_hex(chosen.prob)),
            alts,
            Text(f"{step_entropy(step):.2f}"),
        )
    return t


def view(run: Run, *, timings: bool = True) -> RenderableType:
    """The full terminal view: text in context, the table, and a one-line summary."""
    return Group(header(run), Text(""), table(run), footer(run, timings=timings))


def render_text(run: Run, *, width: int = 100) -> str:
    """The view as plain text at a fixed width: the same on every machine (golden-file material)."""
    from io import StringIO

    from rich.console import Console

    buf = StringIO()
    console = Console(
        file=buf, width=width, color_system=None, force_terminal=False, no_color=True,
        highlight=False, emoji=False, markup=False, legacy_windows=False, soft_wrap=False,
    )
    console.print(view(run, timings=False))
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"
