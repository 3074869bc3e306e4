"""Views of weighed answers (`predict --choice`): the table with a bar per choice, the chart (SVG),
the page (HTML) and the JSON with every figure.

An upper bound is always written as one ("< 0.3%", "≤ −5.81"), never as a figure; a winner is named
only where the bounds cannot overturn it (`measures/choices.py`).
"""

from __future__ import annotations

from rich import box
from rich.table import Table
from rich.text import Text

from tokviz.measures.choices import Verdict, Weighed, verdict
from tokviz.run import RunSet, codec
from tokviz.run import tokens as tok
from tokviz.views.colors import percent, prob_hex, prob_style, tint_hex

BAR = 12  # cells of the terminal bar at 100 %
RULES = (("acc", "the largest summed logprob"), ("acc_norm", "the largest logprob per byte"))


def _p(w: Weighed) -> str:
    return percent(w.prob) if w.exact else f"< {percent(w.prob)}"


def _lp(w: Weighed) -> str:
    return f"{w.logprob:.3f}" if w.exact else f"≤ {w.logprob:.3f}"


def _tokens(s: RunSet, i: int) -> str:
    run = s.runs[i]
    if run.source.get("choice_figure", "exact") != "exact" and len(run.steps) == 1 and run.steps[0].chosen.id is None:
        return "(not read: bounded from the next token's top k)"
    return " · ".join(f"{st.chosen.label} {percent(st.chosen.prob)}" for st in run.steps)


def winners(v: Verdict) -> list[str]:
    """One line per rule: which choice wins it, or why none can be named."""
    out = []
    for rule, what in RULES:
        i = getattr(v, rule)
        out.append(f"{rule} ({what}): " + (tok.visible(v.choices[i].choice) if i is not None
                                           else "not known (an upper bound could beat the best exact figure)"))
    return out


def notes(s: RunSet, v: Verdict) -> list[str]:
    first = s.runs[0]
    lines = [f"model {first.model} ({first.provider}) · {first.figures_note}",
             ("left to every other continuation: " + ("" if v.exact else "at least ") + percent(v.rest))]
    moved = first.source.get("choice_moved")
    if moved:
        lines.append(moved)
    lines += sorted({w.how for w in v.choices if w.how})
    lines += [f"{tok.visible(w.choice)}: {r.source['lossy']}" for w, r in zip(v.choices, s.runs) if r.source.get("lossy")]
    if not v.exact:
        lines.append("< and ≤: an upper bound (the provider lists only the top k of the next token); "
                     "shares need every figure exact")
    return lines


def table(s: RunSet, width: int = 120) -> Table:
    """A row per choice; below `width` columns the tokens column is left out (the page and the
    JSON keep it), so the figures never fold."""
    v = verdict(s)
    wide = width >= 110
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, caption_justify="left")
    t.add_column("#", justify="right", style="dim")
    t.add_column("choice", no_wrap=True, max_width=40 if wide else 24)
    t.add_column("p", justify="right", no_wrap=True)
    t.add_column("share", no_wrap=True)
    t.add_column("logprob", justify="right", no_wrap=True)
    t.add_column("per byte", justify="right", no_wrap=True)
    t.add_column("greedy", justify="center", no_wrap=True)
    if wide:
        t.add_column("tokens", overflow="fold", style="dim", min_width=12, ratio=1)
    for i, w in enumerate(v.choices):
        share = v.shares[i] if v.shares is not None else None
        shown = share if share is not None else w.prob
        cells = round(BAR * shown)
        bar = Text("█" * cells, style=prob_style(shown)) + Text("·" * (BAR - cells), style="dim")
        bar += Text(f" {percent(share)}" if share is not None else " —")
        mark = {True: "yes", False: "no", None: "?"}[w.greedy]
        name = Text(tok.visible(w.choice), style="bold" if i == v.acc else "")
        row = [str(i + 1), name, Text(_p(w), style=prob_style(w.prob) if w.exact else "dim"), bar, _lp(w),
               f"{w.per_byte:.3f}" if w.exact else f"≤ {w.per_byte:.3f}", mark]
        t.add_row(*row, *([Text(tok.safe(_tokens(s, i)))] if wide else []))
    t.caption = tok.safe("\n".join([*winners(v), *notes(s, v)]))
    return t


def to_json(s: RunSet) -> str:
    """The figures (what scripts read) and the runs themselves (what `render` redraws)."""
    doc = s.to_dict()
    runs = doc.pop("runs")
    doc["prompt"] = s.runs[0].prompt
    doc.update(verdict(s).to_dict())
    doc["runs"] = runs
    return codec.dumps(doc, ensure_ascii=False, indent=1, allow_nan=False) + "\n"


def chart(s: RunSet) -> str:
    """A bar per choice (its share, else its probability; a bound drawn hatched, open-ended), the
    winner marked: byte-identical for the same record."""
    v = verdict(s)
    e = tok.markup
    w, row, left, bar_w, top = 820, 26, 230, 320, 58
    height = top + row * len(v.choices) + 24 + 16 * 3
    title = f"How likely is each answer? “{_clip(' '.join(s.runs[0].prompt.split())[-60:], 60)}”"
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" viewBox="0 0 {w} {height}" '
           'font-family="sans-serif" font-size="12">', f'<rect width="{w}" height="{height}" fill="white"/>',
           '<defs><pattern id="bound" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
           '<rect width="3" height="6" fill="#bbbbbb"/></pattern></defs>',
           f'<text x="12" y="22" font-size="14" font-weight="bold">{e(title)}</text>',
           f'<text x="{left}" y="{top - 10}" fill="#333">{"share among the choices" if v.shares else "probability"}</text>']
    for i, c in enumerate(v.choices):
        y = top + i * row
        value = v.shares[i] if v.shares is not None else c.prob
        label = f"{'★ ' if i == v.acc else ''}{_clip(tok.visible(c.choice), 28)}"
        weight = ' font-weight="bold"' if i == v.acc else ""
        out.append(f'<text x="12" y="{y + 15}"{weight}>{e(label)}</text>')
        out.append(f'<rect x="{left}" y="{y + 3}" width="{bar_w}" height="16" fill="#eeeeee"/>')
        fill = prob_hex(value) if c.exact else "url(#bound)"
        out.append(f'<rect x="{left}" y="{y + 3}" width="{bar_w * min(value, 1.0):.1f}" height="16" fill="{fill}"/>')
        figure = percent(value) if c.exact else f"< {percent(value)}"
        out.append(f'<text x="{left + bar_w + 6}" y="{y + 15}" fill="#333">{e(figure)} · p {e(_p(c))} · '
                   f'{e(_lp(c))} nats</text>')
    y = top + row * len(v.choices) + 16
    for line in [*winners(v), notes(s, v)[1]]:
        out.append(f'<text x="12" y="{y}" fill="#555">{e(line)}</text>')
        y += 16
    out.append("</svg>")
    return "\n".join(out) + "\n"


CSS = """
body{margin:0 auto;max-width:64rem;padding:1.5rem;font:16px/1.5 system-ui,sans-serif;color:#1d1d1f;background:#fff}
.meta{color:#666;font-size:.9rem}table{border-collapse:collapse}td,th{padding:.25rem .8rem .25rem 0;text-align:left;vertical-align:top}
th{color:#666;font-weight:400}.num{text-align:right;font-variant-numeric:tabular-nums}.tok{font:.9rem ui-monospace,Menlo,Consolas,monospace}
.bar{width:14rem;background:#eee;height:1rem;display:inline-block;vertical-align:middle}.bar span{display:block;height:100%}
.win{font-weight:700}.choice{font:1rem ui-monospace,Menlo,Consolas,monospace;white-space:pre}
"""


def page(s: RunSet) -> str:
    """The table as a page: each choice's tokens coloured by probability, a bar per choice, the
    rules' winners and what the figures are."""
    v = verdict(s)
    e = tok.markup
    rows = []
    for i, c in enumerate(v.choices):
        value = v.shares[i] if v.shares is not None else c.prob
        run = s.runs[i]
        if c.exact:
            toks = "".join(f'<span class="tok" style="background:{tint_hex(st.chosen.prob, 0.55)}" '
                           f'title="{e(percent(st.chosen.prob))}{e(f" · rank {st.rank}" if st.rank else "")}">'
                           f'{e(st.chosen.label)}</span>' for st in run.steps)
        else:
            toks = f'<span class="meta">{e(_tokens(s, i))}</span>'
        fill = prob_hex(value) if c.exact else "repeating-linear-gradient(45deg,#bbb 0 3px,#eee 3px 6px)"
        rows.append(f'<tr><td class="num">{i + 1}</td><td class="choice{" win" if i == v.acc else ""}">{e(tok.visible(c.choice))}</td>'
                    f'<td class="num">{e(_p(c))}</td>'
                    f'<td><span class="bar"><span style="width:{100 * min(value, 1.0):.1f}%;background:{fill}"></span></span> '
                    f'{e(percent(v.shares[i])) if v.shares is not None else "—"}</td>'
                    f'<td class="num">{e(_lp(c))}</td><td class="num">{e(f"{c.per_byte:.3f}")}</td>'
                    f'<td>{ {True: "yes", False: "no", None: "?"}[c.greedy]}</td><td>{toks}</td></tr>')
    head = "".join(f"<th>{h}</th>" for h in ("#", "choice", "p", "share", "logprob", "per byte", "greedy", "tokens"))
    lines = "".join(f"<p class=\"meta\">{e(line)}</p>" for line in [*winners(v), *notes(s, v)])
    prompt = s.runs[0].prompt
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>tokviz · choices</title><style>{CSS}</style></head><body>"
            "<h1>tokviz · how likely is each answer?</h1>"
            f"<p class=\"meta\">prompt: <span class=\"choice\">{e(prompt)}</span></p>"
            f"<table aria-label=\"choices\"><tr>{head}</tr>{''.join(rows)}</table>{lines}</body></html>\n")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
