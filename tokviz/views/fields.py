"""The fields view of a JSON answer (`--json-schema`): each key and value, how sure the model was
of it, its weakest token, what it would have said instead, and where the grammar forced it."""

from __future__ import annotations

from rich import box
from rich.table import Table
from rich.text import Text

from tokviz.measures.fields import Fields, fields_of, label
from tokviz.run import Run
from tokviz.run import tokens as tok
from tokviz.views.colors import percent, prob_style, tint_hex


def _forced(run: Run, steps: tuple[int, ...]) -> str:
    if not steps:
        return ""
    n = steps[0]
    return f"forced: model {percent(run.steps[n].chosen.prob)}"


def table(run: Run, found: Fields | None = None) -> Table:
    found = found or fields_of(run)
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, caption_justify="left")
    for name, kw in (("field", {"overflow": "fold"}), ("value", {"overflow": "fold"}), ("p", {"justify": "right", "no_wrap": True}),
                     ("weakest token", {"overflow": "fold"}), ("instead, at its first token", {"overflow": "fold"}),
                     ("", {"overflow": "fold", "style": "dim"})):
        t.add_column(name, **kw)
    for f in found.fields:
        weakest = run.steps[f.weakest].chosen if f.weakest is not None else None
        t.add_row(Text(tok.safe(f.path), style="dim" if f.kind == "key" else ""),
                  Text(("≈" if f.lossy else "") + label(f), style=prob_style(f.prob, bold=f.kind == "value")),
                  Text(percent(f.prob), style=prob_style(f.prob)),
                  Text(f"{weakest.label} {percent(weakest.prob)}" if weakest is not None and len(f.steps) > 1 else "—",
                       style="dim" if weakest is None else prob_style(weakest.prob)),
                  Text(f"{f.instead.label} {percent(f.instead.prob)}" + (" ⊘" if f.instead.forbidden else "")
                       if f.instead is not None else "—"),
                  _forced(run, f.forced))
    notes = ["p: the product of the probabilities of the tokens that spell it",
             "⊘: forbidden by the schema's grammar; forced: the grammar took a token the model gave less than one it forbade"]
    if run.source.get("structured"):
        notes.append(run.source["structured"])
    if run.source.get("structured_invalid"):
        notes.insert(0, "NOT VALID: " + run.source["structured_invalid"])
    if not found.complete:
        notes.insert(0, f"not a whole JSON value: {found.stopped}")
    t.caption = tok.safe("\n".join([*notes, *found.notes]))
    return t


def section(run: Run) -> str:
    """The fields as an HTML section: each value coloured by its probability, its figures on hover."""
    e = tok.markup
    found = fields_of(run)
    rows = []
    for f in found.fields:
        weakest = run.steps[f.weakest].chosen if f.weakest is not None else None
        title = " · ".join(x for x in (
            f"p {percent(f.prob)}", f"weakest {weakest.label} {percent(weakest.prob)}" if weakest and len(f.steps) > 1 else "",
            f"instead {f.instead.label} {percent(f.instead.prob)}" if f.instead else "", _forced(run, f.forced)) if x)
        rows.append(f'<tr><td class="meta">{e(f.path)}</td><td><span class="tok" style="background:{tint_hex(f.prob, 0.55)}" '
                    f'title="{e(title)}">{e(label(f))}</span></td><td>{e(percent(f.prob))}</td>'
                    f'<td>{e(f.instead.label + " " + percent(f.instead.prob)) if f.instead else "—"}'
                    f'{" ⊘" if f.instead is not None and f.instead.forbidden else ""}</td>'
                    f'<td class="meta">{e(_forced(run, f.forced))}</td></tr>')
    stopped = "" if found.complete else f'<p class="meta">not a whole JSON value: {e(found.stopped or "")}</p>'
    return ('<section aria-label="fields"><h2>Fields</h2>' + stopped
            + '<table><tr><th>field</th><th>value</th><th>p</th><th>instead, at its first token</th><th></th></tr>'
            + "".join(rows) + '</table><p class="meta">p: the product of the probabilities of the tokens that spell it; '
            "⊘: forbidden by the schema's grammar; forced: the grammar took a token the model gave less than one it "
            "forbade</p></section>")
