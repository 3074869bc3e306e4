"""A small line chart as SVG text: entropy per step, one line per run (for `tokviz compare`).

Hand-written rather than drawn by a plotting library: it needs twenty lines, no new dependency,
and comes out byte-identical for the same runs (golden-file material). All text is XML-escaped.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape

from tokviz.metrics import step_entropy
from tokviz.run import Run

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
W, H, LEFT, RIGHT, TOP, BOTTOM = 720, 340, 56, 16, 20, 44
LEGEND_LINE = 18


def entropy_chart(runs: list[Run], labels: list[str], *, title: str = "Entropy per generated token") -> str:
    series = [[step_entropy(s) for s in run.steps] for run in runs]
    steps = max((len(s) for s in series), default=1) or 1
    top = max(1.0, math.ceil(max((max(s) for s in series if s), default=1.0)))
    height = H + LEGEND_LINE * len(runs)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (pw * i / (steps - 1) if steps > 1 else pw / 2)

    def y(v: float) -> float:
        return TOP + ph * (1 - v / top)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" '
           'font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{height}" fill="white"/>',
           f'<text x="{LEFT}" y="14" font-size="13">{escape(title)}</text>']
    for k in range(int(top) + 1):
        yy = y(k)
        out.append(f'<line x1="{LEFT}" y1="{yy:.1f}" x2="{W - RIGHT}" y2="{yy:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end" fill="#555">{k}</text>')
    for i in range(steps):
        if steps <= 20 or i % math.ceil(steps / 20) == 0:
            out.append(f'<text x="{x(i):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle" fill="#555">{i + 1}</text>')
    out.append(f'<text x="{LEFT + pw / 2:.1f}" y="{H - 8}" text-anchor="middle" fill="#333">generated token</text>')
    out.append(f'<text x="14" y="{TOP + ph / 2:.1f}" transform="rotate(-90 14 {TOP + ph / 2:.1f})" '
               'text-anchor="middle" fill="#333">entropy (bits)</text>')
    for n, (values, label) in enumerate(zip(series, labels)):
        colour = PALETTE[n % len(PALETTE)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        if points:
            out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
            out.extend(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{colour}"/>' for i, v in enumerate(values))
        ly = H + LEGEND_LINE * n + 4
        out.append(f'<rect x="{LEFT}" y="{ly - 9}" width="14" height="4" fill="{colour}"/>')
        out.append(f'<text x="{LEFT + 20}" y="{ly - 4}">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
