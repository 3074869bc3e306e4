"""The terminal heatmap: the generated text itself, each token on a background coloured by its
probability, with a legend — a quick look without the table (`predict --view text`)."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text

from tokviz.run import Run
from tokviz.run import tokens as tok
from tokviz.views.colors import percent, prob_style

LEGEND_STOPS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def heatmap(run: Run, *, color: bool = True) -> Text:
    """Prompt (dim) then the text, token by token. Without colour, each token is followed by its
    probability in brackets, so the figures survive a pipe or NO_COLOR."""
    out = Text()
    out.append(tok.safe(run.prompt), style="dim")
    for step, piece in zip(run.steps, tok.pieces([s.chosen.raw for s in run.steps])):
        p = step.chosen.prob
        shown = piece if piece else step.chosen.label
        if step.chosen.lossy:  # no exact bytes from the server: what it sent, marked ≈
            shown = step.chosen.label
        elif not step.chosen.raw and step.chosen.text:
            shown = tok.visible(step.chosen.text)
        shown = tok.safe(shown).replace("\n", "↵\n")
        if color:
            out.append(shown, style=prob_style(p, fg="#111111", on=p))
        else:
            out.append(shown)
            out.append(f"[{percent(p)}]", style="dim")
    return out


def legend() -> Text:
    out = Text()
    out.append("probability: ", style="dim")
    for p in LEGEND_STOPS:
        out.append(f" {p:.0%} ", style=prob_style(p, fg="#111111", on=p))  # one format for the scale: 0% 20% … 100%
    return out


def view(run: Run, *, color: bool = True) -> RenderableType:
    parts: list[RenderableType] = [heatmap(run, color=color)]
    if color:
        parts += [Text(""), legend()]
    parts.append(Text(tok.safe(run.figures_note), style="dim"))  # what the percentages are, in every view
    return Group(*parts)
