"""Views of compared records (`tokviz diff`, `tokviz check`, the pytest plugin): the terminal table,
JSON, Markdown for a CI step summary, JUnit XML for a CI test report, and a side-by-side HTML page.

Each says the same things in the same order: the verdict and its reasons, where the chosen tokens
part, how many steps agree, the largest |Δ logprob|, rank changes, top-k overlap, KL over the
top-k (a lower bound, said so), entropy change. Text from the records is untrusted: made safe in
the terminal, escaped in Markdown, XML and HTML.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from tokviz.ground import environment
from tokviz.measures.compare import GOLDEN_SIDES, Comparison, Position, Verdict, worst
from tokviz.run import codec
from tokviz.run import tokens as tok
from tokviz.views.colors import percent, prob_style

_VERDICT_STYLE = {Verdict.IDENTICAL: "green", Verdict.WITHIN_NOISE: "green", Verdict.CHANGED: "bold red"}
ROWS = 12  # positions shown per comparison: the largest differences, in text order


def figures(c: Comparison) -> list[tuple[str, str]]:
    """The comparison's figures as (name, value) lines, in the order the module docstring gives."""
    side_a, side_b = c.sides
    rows: list[tuple[str, str]] = [(side_a, c.label_a), (side_b, c.label_b)]
    if c.requests:
        rows.append(("requests differ in", ", ".join(c.requests)))
    if c.kind == "choices" and "choices" in c.extra:
        return rows + _choice_rows(c)
    if c.fork is not None:
        f = c.fork
        tie = "" if f.gap_a is None or f.gap_b is None else (
            f" (the two tokens {max(abs(f.gap_a), abs(f.gap_b)):.3f} nats apart"
            + (": a near-tie)" if f.near_tie(c.tolerance.near_tie) else ")"))
        rows.append(("fork", f"step {f.step_a + 1}{tie} after {_quote(f.before, tail=True)}"))
        rows.append((f"  {side_a} goes on", _quote(f.rest_a)))
        rows.append((f"  {side_b} goes on", _quote(f.rest_b)))
    unit = "nodes" if c.kind == "tree" else "steps"
    rows.append(("agree", f"{c.agree} of {c.steps_a} {unit} ({side_b} has {c.steps_b})"))
    big = c.max_delta
    if big is not None:
        rows.append(("max |Δ logprob|", f"{abs(big.delta):.3f} nats at step {big.index + 1} ({tok.visible(big.text)})"))
        rows.append(("mean |Δ logprob|", f"{c.mean_abs_delta:.3f} nats over {tok.count(len(c.positions), 'position')}"))
    aligned = c.aligned
    if aligned:
        rows.append(("rank changes", f"{c.rank_changes} of {len(aligned)}"))
    low, high = c.min_overlap, c.max_kl
    if low is not None and low.overlap is not None:
        rows.append(("min top-k overlap", f"{low.overlap:.0%} at step {low.index + 1}"))
    if high is not None and high.kl is not None:
        rows.append(("max KL(A‖B), top-k + rest", f"{high.kl:.3f} nats at step {high.index + 1} (a lower bound)"))
    entropies = [(p.entropy_b or 0.0) - (p.entropy_a or 0.0) for p in aligned if p.entropy_a is not None and p.entropy_b is not None]
    if entropies:
        rows.append(("max entropy change", f"{max(entropies, key=abs):+.2f} bits"))
    if not c.same_vocabulary:
        rows.append(("aligned", "on the byte boundaries both tokenizations share (two vocabularies)"))
    for key in ("nodes_only_in_a", "nodes_only_in_b"):
        if c.extra.get(key):
            rows.append((key.replace("_", " "), str(c.extra[key])))
    return rows


def _choice_rows(c: Comparison) -> list[tuple[str, str]]:
    """Weighed answers: each rule's winner on both sides, and each answer's share (or probability)."""
    side_a, side_b = c.sides
    a, b = c.extra["choices"]["a"], c.extra["choices"]["b"]

    def name(x: str | None) -> str:
        return "not known" if x is None else tok.visible(x)

    rows = [(f"winner ({rule})", f"{side_a} {name(a['winner'][rule])} · {side_b} {name(b['winner'][rule])}")
            for rule in ("acc", "acc_norm")]
    for x, y in zip(a["choices"], b["choices"]):
        what = "share" if x["share"] is not None and y["share"] is not None else "p"
        shown = [f"{'< ' if z['figure'] != 'exact' else ''}{(z[what] if what == 'share' else z['prob']):.1%}" for z in (x, y)]
        rows.append((f"  {tok.visible(x['choice'])}", f"{what} {shown[0]} → {shown[1]} ({x['logprob']:.3f} → {y['logprob']:.3f} nats)"))
    return rows


def tolerance_line(c: Comparison) -> str:
    t = c.tolerance
    if c.kind == "choices":  # weighed answers: judged by their shares (bounds by --atol)
        return f"tolerances: --share-points {t.share_points:g} --atol {t.atol:g}" + (" (identity required)" if t.identical else "")
    tokens = f"prefix:{t.prefix}" if t.tokens == "prefix" else t.tokens
    return (f"tolerances: --atol {t.atol:g} --atol-mean {t.atol_mean:g} --tokens {tokens} --near-tie {t.near_tie:g} "
            f"--min-overlap {t.min_overlap:g} --max-kl {t.max_kl:g}" + (" (identity required)" if t.identical else ""))


def _quote(text: str, *, tail: bool = False, limit: int = 60) -> str:
    shown = tok.visible(text)
    if len(shown) > limit:
        shown = "…" + shown[-limit:] if tail else shown[:limit] + "…"
    return f"“{shown}”"


def shown_positions(c: Comparison, n: int = ROWS) -> list[Position]:
    biggest = sorted(c.positions, key=lambda p: -abs(p.delta))[:n]
    return sorted(biggest, key=lambda p: p.index)


# --- terminal -----------------------------------------------------------------------------------

def view(comparisons: Sequence[Comparison]) -> RenderableType:
    parts: list[RenderableType] = []
    for c in comparisons:
        head = Text()
        head.append(tok.safe(c.name) + ": ", style="bold")
        head.append(c.verdict.value, style=_VERDICT_STYLE[c.verdict])
        for reason in c.reasons:
            head.append("\n  " + tok.safe(reason), style="red")
        parts.append(head)
        if c.verdict is not Verdict.IDENTICAL:  # identical needs no figures: every one is equal
            parts.append(Text("\n".join(f"{k}: {tok.safe(v)}" for k, v in figures(c)), style="dim"))
            if c.positions or c.fork is not None:
                parts.append(_table(c))
            parts.append(Text(tolerance_line(c) + "\n", style="dim"))
    if len(comparisons) > 1:
        counts = {v: sum(1 for c in comparisons if c.verdict is v) for v in Verdict}
        parts.append(Text(f"{len(comparisons)} compared: " + ", ".join(f"{n} {v.value}" for v, n in counts.items() if n)
                          + f"; overall {worst(comparisons).value}", style=_VERDICT_STYLE[worst(comparisons)]))
    return Group(*parts)


# The step table's columns, and the order in which they are dropped when a terminal (a CI log at 80
# columns) is too narrow for all of them: numbers are never cut; the text wraps first, then the
# least telling columns go.
_COLUMNS = (("step", "right"), ("text", "left"), ("p A", "right"), ("p B", "right"), ("Δ nats", "right"),
            ("rank A/B", "right"), ("overlap", "right"), ("KL≥", "right"), ("Δ entropy", "right"))
_DROP = ("Δ entropy", "KL≥", "overlap", "rank A/B")
_TEXT_MIN = 12


@dataclass(frozen=True)
class _Row:
    """One row of the step table, as text (the terminal and the HTML page draw the same rows)."""

    cells: tuple[str, ...]
    p_a: float
    p_b: float
    over: bool = False  # |Δ| beyond --atol
    rank_changed: bool = False
    fork: bool = False


def step_rows(c: Comparison) -> list[_Row]:
    """The positions with the largest |Δ|, in text order, then the fork itself."""
    rows = []
    for p in shown_positions(c):
        pa, pb = math.exp(p.logprob_a), math.exp(p.logprob_b)
        rank = "—" if p.rank_a is None and p.rank_b is None else f"{p.rank_a or '—'}/{p.rank_b or '—'}"
        entropy = "—" if p.entropy_a is None or p.entropy_b is None else f"{p.entropy_b - p.entropy_a:+.2f}"
        rows.append(_Row((str(p.index + 1), tok.visible(p.text), percent(pa), percent(pb), f"{p.delta:+.3f}", rank,
                          "—" if p.overlap is None else f"{p.overlap:.0%}", "—" if p.kl is None else f"{p.kl:.3f}",
                          entropy), pa, pb, over=abs(p.delta) > c.tolerance.atol,
                         rank_changed=p.rank_a is not None and p.rank_b is not None and p.rank_a != p.rank_b))
    f = c.fork
    if f is not None and f.token_a is not None and f.token_b is not None:
        pa, pb = f.token_a.prob, f.token_b.prob
        rows.append(_Row((str(f.step_a + 1), f"{tok.visible(f.token_a.text)} ≠ {tok.visible(f.token_b.text)}",
                          percent(pa), percent(pb), "fork", "—", "—", "—", "—"), pa, pb, fork=True))
    return rows


def _caption(c: Comparison, rows: list[_Row]) -> str:
    shown = min(ROWS, len(c.positions))
    return (f"the {shown} largest |Δ| of {tok.count(len(c.positions), 'position')}, in text order"
            + (", then the fork" if rows and rows[-1].fork else ""))


def _table(c: Comparison, width: int | None = None) -> Table:
    found = step_rows(c)
    rows: list[list[Text]] = []
    for r in found:
        styles = ["", "bold red" if r.fork else "", prob_style(r.p_a), prob_style(r.p_b), "bold red" if r.over or r.fork else "",
                  "bold" if r.rank_changed else "dim", "", "", ""]
        rows.append([Text(cell, style=style) for cell, style in zip(r.cells, styles)])
    names = [n for n, _ in _COLUMNS]
    natural = {n: max([len(n), *(r[i].cell_len for r in rows)]) for i, n in enumerate(names)}
    limit = width or environment.current().width or 80
    keep = list(names)
    for name in _DROP:
        # each gap between columns: a cell of padding on either side and SIMPLE_HEAD's blank divider
        total = sum(min(natural[n], _TEXT_MIN) if n == "text" else natural[n] for n in keep) + 3 * (len(keep) - 1)
        if total <= limit:
            break
        keep.remove(name)
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name, justify in _COLUMNS:
        if name not in keep:
            continue
        if name == "text":
            t.add_column(name, justify="left", min_width=min(natural[name], _TEXT_MIN), overflow="fold")
        else:
            t.add_column(name, justify=justify, no_wrap=True, min_width=natural[name])  # type: ignore[arg-type]
    for r in rows:
        t.add_row(*(cell for name, cell in zip(names, r) if name in keep))
    t.caption = _caption(c, found)
    return t


# --- files --------------------------------------------------------------------------------------

def to_json(comparisons: Sequence[Comparison]) -> str:
    doc = {"schema": "tokviz.diff", "schema_version": 1, "verdict": worst(comparisons).value,
           "comparisons": [c.to_dict() for c in comparisons]}
    return codec.dumps(doc, ensure_ascii=False, indent=1, allow_nan=False) + "\n"


def _md(text: str) -> str:
    """Text safe in a Markdown table cell or line: no markup, no line breaks, no pipes, no HTML."""
    import re

    return re.sub(r"([\\`*_{}\[\]<>()#+!|~])", r"\\\1", " ".join(tok.safe(text).split()))


def markdown(comparisons: Sequence[Comparison]) -> str:
    """For a CI step summary ($GITHUB_STEP_SUMMARY): one line per record, then each changed one's figures."""
    overall = worst(comparisons)
    out = [f"## tokviz: {overall.value}", "", "| record | verdict | agree | max \\|Δ\\| (nats) | reason |", "|---|---|---|---|---|"]
    for c in comparisons:
        big = c.max_delta
        mark = "❌ " if c.verdict is Verdict.CHANGED else "✅ "
        delta = f"{abs(big.delta):.3f}" if big is not None else "—"
        reason = _md(c.reasons[0]) if c.reasons else ""
        out.append(f"| {_md(c.name)} | {mark}{c.verdict.value} | {c.agree}/{c.steps_a} | {delta} | {reason} |")
    for c in comparisons:
        if c.verdict is Verdict.CHANGED:
            out += ["", f"### {_md(c.name)}", ""] + [f"- **{_md(k)}**: {_md(v)}" for k, v in figures(c)]
            out += [f"- {_md(r)}" for r in c.reasons]
    out += ["", f"_{_md(tolerance_line(comparisons[0]))}_" if comparisons else ""]
    return "\n".join(out) + "\n"


def junit(comparisons: Sequence[Comparison], *, suite: str = "tokviz") -> str:
    """JUnit XML: one test case per record, one failure per changed one (its reasons and figures)."""
    failures = sum(1 for c in comparisons if c.verdict is Verdict.CHANGED)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             f"<testsuites><testsuite name={quoteattr(suite)} tests=\"{len(comparisons)}\" failures=\"{failures}\" errors=\"0\">"]
    for c in comparisons:
        lines.append(f"<testcase classname={quoteattr(suite)} name={quoteattr(_xml(c.name))}>")
        if c.verdict is Verdict.CHANGED:
            detail = "\n".join([*c.reasons, *(f"{k}: {v}" for k, v in figures(c)), tolerance_line(c)])
            lines.append(f"<failure message={quoteattr(_xml(c.summary()))}>{escape(_xml(detail))}</failure>")
        else:
            lines.append(f"<system-out>{escape(_xml(c.summary()))}</system-out>")
        lines.append("</testcase>")
    lines.append("</testsuite></testsuites>")
    return "\n".join(lines) + "\n"


def _xml(text: str) -> str:
    """Characters XML 1.0 cannot hold at all (control characters) shown as escapes."""
    return "".join(ch if ch in "\t\n\r" or 0x20 <= ord(ch) < 0xD800 or 0xE000 <= ord(ch) <= 0xFFFD or ord(ch) > 0xFFFF
                   else f"\\x{ord(ch):02x}" for ch in text)


def page(comparisons: Sequence[Comparison]) -> str:
    """A side-by-side HTML page: per record, the verdict, the figures, and A's and B's text with
    each aligned position coloured by its probability in that record and the fork marked."""
    from tokviz.views.html import CSS

    body = []
    for c in comparisons:
        rows = "".join(f"<tr><th>{tok.markup(k)}</th><td>{tok.markup(v)}</td></tr>" for k, v in figures(c))
        reasons = "".join(f"<li>{tok.markup(r)}</li>" for r in c.reasons)
        prompt = f'<p class="prompt"><b>prompt</b> {_quote_html(c.prompt)}</p>' if c.prompt else ""
        body.append(f'<section class="cmp {c.verdict.name.lower()}"><h2>{tok.markup(c.name)}: '
                    f'<span class="verdict">{tok.markup(c.verdict.value)}</span></h2>{prompt}'
                    + (f"<ul class=reasons>{reasons}</ul>" if reasons else "")
                    + f'<table class="figures">{rows}</table>{_steps_html(c)}'
                    f'<div class="sides">{_side(c, "a")}{_side(c, "b")}</div>'
                    f'<p class="tol">{tok.markup(tolerance_line(c))}</p></section>')
    what = "check" if comparisons and comparisons[0].sides == GOLDEN_SIDES else "diff"
    title = f"tokviz {what}: {worst(comparisons).value}"
    style = CSS + (".sides{display:grid;grid-template-columns:1fr 1fr;gap:1em}.side{white-space:pre-wrap;"
                   "border:1px solid #ccc;padding:.5em;font-family:monospace}.fork{outline:2px solid #d73027}"
                   ".changed .verdict{color:#b2182b}.reasons{color:#b2182b}.figures th{text-align:left;padding-right:1em}"
                   ".tol{color:#666;font-size:.9em}.steps td{padding:0 .6em;text-align:right;font-family:monospace}"
                   ".steps td:nth-child(2){text-align:left}.steps .fork{color:#b2182b;font-weight:bold}"
                   ".steps .over{color:#b2182b}.prompt .ptext{white-space:pre-wrap;font-family:monospace}")
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{tok.markup(title)}</title>"
            f"<style>{style}</style></head><body><h1>{tok.markup(title)}</h1>{''.join(body)}</body></html>\n")


def _quote_html(text: str) -> str:
    shown = text if len(text) <= 400 else text[:400] + "…"
    return f'<span class="ptext">{tok.markup(shown)}</span>'


def _steps_html(c: Comparison) -> str:
    rows = step_rows(c)
    if not rows:
        return ""
    from tokviz.views.colors import prob_hex

    names = [n if n not in ("p A", "p B") else f"p {c.sides[0 if n == 'p A' else 1]}" for n, _ in _COLUMNS]
    head = "".join(f"<th>{tok.markup(n)}</th>" for n in names)
    body = []
    for r in rows:
        cells = []
        for i, cell in enumerate(r.cells):
            style = f' style="background:{prob_hex(r.p_a if i == 2 else r.p_b)}"' if i in (2, 3) else ""
            cls = ' class="fork"' if r.fork and i in (1, 4) else (' class="over"' if r.over and i == 4 else "")
            cells.append(f"<td{style}{cls}>{tok.markup(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table class="steps"><caption>{tok.markup(_caption(c, rows))}</caption><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _side(c: Comparison, which: str) -> str:
    spans = []
    for p in c.positions:
        lp = p.logprob_a if which == "a" else p.logprob_b
        prob = math.exp(lp)
        style = "" if not _colour(prob) else f' style="background:{_colour(prob)}"'
        spans.append(f'<span title="{tok.markup(percent(prob))}"{style}>{tok.markup(p.text)}</span>')
    if c.fork is not None:
        rest = c.fork.rest_a if which == "a" else c.fork.rest_b
        spans.append(f'<span class="fork" title="the fork">{tok.markup(rest)}</span>')
    label = c.label_a if which == "a" else c.label_b
    side = c.sides[0 if which == "a" else 1]
    return f'<div class="side"><b>{tok.markup(side)}: {tok.markup(label)}</b>\n{"".join(spans)}</div>'


def _colour(p: float) -> str:
    from tokviz.views.colors import tint_hex

    return tint_hex(p)


