"""How a text splits into tokens: inline (alternating backgrounds) and as a table."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from tokviz.run import Tokenization
from tokviz.run.tokens import count

# Pale backgrounds that black text reads on, cycled so neighbouring tokens differ.
_BACKGROUNDS = ("#fde2e4", "#e2ece9", "#fff1c1", "#dfe7fd", "#e8dff5")


def inline(t: Tokenization) -> Text:
    """The text as the model sees it, each token on its own background, whitespace visible."""
    out = Text()
    for n, token in enumerate(t.tokens):
        out.append(token.label, style=f"black on {_BACKGROUNDS[n % len(_BACKGROUNDS)]}")
    return out


def table(t: Tokenization) -> Table:
    tab = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    tab.add_column("#", justify="right", style="dim")
    tab.add_column("id", justify="right")
    tab.add_column("token")
    tab.add_column("bytes", style="dim")
    for n, token in enumerate(t.tokens, start=1):
        tab.add_row(str(n), "" if token.id is None else str(token.id), Text(token.label), token.raw.hex(" "))
    return tab


def view(t: Tokenization) -> RenderableType:
    summary = Text(f"{count(len(t.tokens), 'token')} · {t.model} · {t.tokenizer}", style="dim")
    return Group(inline(t), Text(""), table(t), summary)
