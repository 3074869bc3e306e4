"""Views of two scores of one text (`tokviz score TEXT -m A -m B`): table, aligned heatmaps, chart.

The figures come from `tokviz.measures.align` (segments both tokenizations share, Δ logprob, KL over
the top-k lists with the rest as one bucket, forks). Text from the runs is untrusted: escaped in
markup and SVG, made safe in the terminal.
"""

from __future__ import annotations

import math

from rich import box
from rich.table import Table
from rich.text import Text

from tokviz.measures import align as scorediff
from tokviz.measures import noise
from tokviz.measures.compare import Comparison, Tolerance, compare_runs
from tokviz.run import RunSet, codec
from tokviz.run import tokens as tok
from tokviz.views.colors import percent, prob_style, tint_hex


def names(s: RunSet) -> tuple[str, str]:
    """A and B as people know them: the model, with the provider where the models are equal."""
    a, b = s.runs
    if a.model != b.model:
        return f"A {a.model}", f"B {b.model}"
    return f"A {a.provider}:{a.model}", f"B {b.provider}:{b.model}"


def figures(s: RunSet) -> tuple[list[scorediff.Segment], scorediff.Summary]:
    a, b = s.runs
    segments = scorediff.align(a, b)
    return segments, scorediff.summarize(a, b, segments)


def _lead(s: RunSet, summary: scorediff.Summary) -> list[tuple[str, str]]:
    na, nb = names(s)
    rows = [(f"perplexity {na}", f"{summary.perplexity_a:.3f} over {tok.count(summary.tokens_a, 'token')}"),
            (f"perplexity {nb}", f"{summary.perplexity_b:.3f} over {tok.count(summary.tokens_b, 'token')}"),
            ("mean Δ logprob (B − A)", f"{summary.mean_delta:+.3f} nats per segment ({summary.segments} segments, "
                                       f"{summary.aligned} one token in both)"),
            ("|Δ| median · p99 · max", f"{summary.median_abs_delta:.3f} · {summary.p99_abs_delta:.3f} · "
                                      f"{summary.max_abs_delta:.3f} nats (one model on two engines: up to "
                                      f"{noise.DECODE_P99:g} p99, {noise.DECODE_MAX:g} max from arithmetic alone)"),
            ("forks (first choices differ)", f"{summary.forks}" + (
                f" of {summary.aligned} ({100 * (1 - summary.forks / summary.aligned):.1f}% same first choice)"
                if summary.aligned else ""))]
    if summary.mean_kl is not None:
        rows.append(("mean KL(A‖B), top-k + rest", f"{summary.mean_kl:.3f} nats (a lower bound: unseen mass is one bucket)"))
    c = verdict(s)
    rows.append(("verdict", c.verdict.value + (f": {c.reasons[0]}" if c.reasons else
                                               " (under the tolerances of `tokviz diff`)")))
    return rows


def verdict(s: RunSet) -> Comparison:
    """The same verdict `tokviz diff` gives the two scores (identical, within noise or changed),
    under the default tolerances (the measured noise floor with a margin)."""
    a, b = s.runs
    return compare_runs(a, b, Tolerance(), name="score")


def table(s: RunSet, *, top: int = 10) -> Table:
    segments, summary = figures(s)
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title=None)
    t.add_column("at", justify="right", style="dim")
    t.add_column("text", overflow="fold")
    t.add_column("p A", justify="right", no_wrap=True)
    t.add_column("p B", justify="right", no_wrap=True)
    t.add_column("Δ nats", justify="right", no_wrap=True)
    t.add_column("KL", justify="right", no_wrap=True)
    t.add_column("first choices A / B", overflow="fold")
    for seg in scorediff.largest(segments, top):
        pa, pb = math.exp(seg.logprob_a), math.exp(seg.logprob_b)
        choice = (Text(f"{tok.safe(seg.top_a.label)} / {tok.safe(seg.top_b.label)}", style="bold" if seg.fork else "dim")
                  if seg.top_a is not None and seg.top_b is not None else Text("—", style="dim"))
        t.add_row(str(seg.start), Text(tok.visible(seg.text)), Text(percent(pa), style=prob_style(pa)),
                  Text(percent(pb), style=prob_style(pb)), f"{seg.delta:+.2f}",
                  f"{seg.kl:.2f}" if seg.kl is not None else "—", choice)
    lead = "\n".join(f"{k}: {v}" for k, v in _lead(s, summary))
    t.caption = tok.safe(f"{lead}\nlargest disagreements first by |Δ|, in text order; bold: a fork")
    return t


def to_json(s: RunSet) -> str:
    segments, summary = figures(s)
    doc = s.to_dict()
    runs = doc.pop("runs")
    doc["summary"] = {**summary.__dict__}
    c = verdict(s)
    doc["verdict"] = c.verdict.value
    doc["reasons"] = list(c.reasons)
    doc["segments"] = [{"start": g.start, "end": g.end, "text": g.text, "logprob_a": g.logprob_a, "logprob_b": g.logprob_b,
                        "delta": g.delta, "tokens_a": g.tokens_a, "tokens_b": g.tokens_b, "kl": g.kl, "fork": g.fork}
                       for g in segments]
    doc["runs"] = runs
    return codec.dumps(doc, ensure_ascii=False, indent=1, allow_nan=False) + "\n"


CSS = """
body{margin:0 auto;max-width:64rem;padding:1.5rem;font:16px/1.5 system-ui,sans-serif;color:#1d1d1f;background:#fff}
.meta{color:#666;font-size:.9rem}.cells{display:flex;flex-wrap:wrap;gap:2px 0;background:#f5f5f7;padding:1rem;border-radius:.5rem}
.seg{display:inline-flex;flex-direction:column;font:1rem/1.6 ui-monospace,Menlo,Consolas,monospace;white-space:pre}
.seg span{padding:0 .05rem;color:#111}.seg .d{height:.35rem;padding:0}.fork .a,.fork .b{text-decoration:underline wavy #c00}
.rowlabels{display:flex;gap:1rem;font-size:.85rem;color:#666;margin:.5rem 0}
table{border-collapse:collapse;font-size:.9rem}td,th{padding:.15rem .8rem .15rem 0;text-align:left}th{color:#666;font-weight:400}
"""


def _delta_hex(delta: float) -> str:
    """Blue where B finds the segment likelier, red where A does; white at zero (±3 nats full)."""
    x = max(-1.0, min(1.0, delta / 3.0))
    if x >= 0:
        r, g, b = (int(255 - 200 * x), int(255 - 120 * x), 255)
    else:
        r, g, b = (255, int(255 + 170 * x), int(255 + 170 * x))
    return f"#{r:02x}{g:02x}{b:02x}"


def page(s: RunSet) -> str:
    """The two heatmaps aligned segment by segment: A's colour above B's, the difference below."""
    e = tok.markup
    segments, summary = figures(s)
    na, nb = names(s)
    cells = []
    for g in segments:
        pa, pb = math.exp(g.logprob_a), math.exp(g.logprob_b)
        shown = e(g.text.replace("\n", "↵\n"))
        title = (f"{na}: {percent(pa)} · {nb}: {percent(pb)} · Δ {g.delta:+.2f} nats"
                 + (f" · KL {g.kl:.2f}" if g.kl is not None else "")
                 + (f" · first choices {g.top_a.label!r} / {g.top_b.label!r}" if g.fork and g.top_a and g.top_b else ""))
        cells.append(f'<span class="seg{" fork" if g.fork else ""}" title="{e(title)}" tabindex="0">'
                     f'<span class="a" style="background:{tint_hex(pa, 0.25)}">{shown}</span>'
                     f'<span class="b" style="background:{tint_hex(pb, 0.25)}">{shown}</span>'
                     f'<span class="d" style="background:{_delta_hex(g.delta)}"></span></span>')
    stats = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _lead(s, summary))
    context = s.runs[0].prompt
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>tokviz · {e(na)} vs {e(nb)}</title><style>{CSS}</style></head><body>"
            f"<h1>tokviz · the same text, two models</h1><p class=\"meta\">each segment: {e(na)} (top row) and "
            f"{e(nb)} (bottom row) coloured by probability; the strip below is Δ (blue: B likelier, red: A likelier); "
            f"wavy underline: the first choices differ</p>"
            + (f"<p class=\"meta\">context: {e(context)}</p>" if context else "")
            + f"<section class=\"cells\" aria-label=\"aligned heatmaps\">{''.join(cells)}</section>"
            f"<table aria-label=\"figures\">{stats}</table></body></html>\n")


def chart(s: RunSet) -> str:
    """Δ logprob per segment as bars around zero, forks marked; byte-identical for the same runs."""
    segments, summary = figures(s)
    na, nb = names(s)
    w, h, top, left = 760, 260, 50, 50
    plot_w, mid = w - left - 20, top + (h - top - 40) / 2
    half = (h - top - 40) / 2
    scale = max(1.0, max((abs(g.delta) for g in segments), default=1.0))
    bw = plot_w / max(1, len(segments))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           'font-family="sans-serif" font-size="11">', f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="12" y="20" font-size="14" font-weight="bold">Δ log-probability per segment: {tok.markup(nb)} − {tok.markup(na)}</text>',
           f'<text x="12" y="36" fill="#333">above zero: B finds the text likelier · ▲ fork: first choices differ · '
           f'{summary.forks} forks, mean Δ {summary.mean_delta:+.2f} nats</text>',
           f'<line x1="{left}" y1="{mid:.1f}" x2="{left + plot_w}" y2="{mid:.1f}" stroke="#999"/>',
           f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">+{scale:.1f}</text>',
           f'<text x="{left - 6}" y="{mid + 4:.1f}" text-anchor="end">0</text>',
           f'<text x="{left - 6}" y="{top + 2 * half + 4:.1f}" text-anchor="end">−{scale:.1f}</text>']
    for n, g in enumerate(segments):
        x = left + n * bw
        size = abs(g.delta) / scale * half
        y = mid - size if g.delta >= 0 else mid
        out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bw - 1, 0.5):.1f}" height="{size:.1f}" '
                   f'fill="{"#1f77b4" if g.delta >= 0 else "#d62728"}"><title>{tok.markup(g.text)}: {g.delta:+.2f}</title></rect>')
        if g.fork:
            out.append(f'<text x="{x + bw / 2:.1f}" y="{h - 24}" text-anchor="middle" fill="#c00">▲</text>')
        if bw >= 12:  # room for the segment's own text under its bar
            label = tok.visible(g.text)
            label = label if len(label) <= max(2, int(bw // 6)) else label[: max(1, int(bw // 6) - 1)] + "…"
            out.append(f'<text x="{x + bw / 2:.1f}" y="{h - 32}" text-anchor="middle" font-size="9" fill="#555">{tok.markup(label)}</text>')
    out.append(f'<text x="{left}" y="{h - 8}" fill="#333">segments of the text, in order ({summary.segments})</text>')
    out.append("</svg>\n")
    return "\n".join(out)
