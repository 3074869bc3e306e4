"""The comparison chart (`tokviz compare`) as SVG text, and as PNG through rsvg-convert.

Six crossing lines were hard to teach from, so the chart has two parts a reader takes in order:
bars of each run's figures (mean chosen probability, mean entropy), one row per run, then small
multiples: one small entropy-per-token panel per run, all on the same scales. Each prompt keeps
one colour across models and temperatures, so "the same question, hotter" reads at a glance.

Hand-written rather than drawn by a plotting library: it needs no new dependency and comes out
byte-identical for the same runs (golden-file material). All text is XML-escaped.
"""

from __future__ import annotations

import math

from tokviz.measures.metrics import run_stats, step_entropy
from tokviz.run import Run
from tokviz.run import tokens as tok

# One colour per prompt, none of them the probability scale's red or green (red means "unlikely" in
# every other view): blues, purples, browns, greys.
PALETTE = ("#1f77b4", "#9467bd", "#8c564b", "#17becf", "#e377c2", "#7f7f7f", "#393b79", "#bcbd22")
W = 760
ROW = 22
LABEL_W = 300
BAR_W = 180
PANEL_W, PANEL_H, PANEL_GAP, COLS = 230, 120, 20, 3


def entropy_chart(runs: list[Run], labels: list[str], *, title: str = "How sure was the model?") -> str:
    prompts: dict[str, int] = {}
    for run in runs:
        prompts.setdefault(run.prompt, len(prompts))
    colour = [PALETTE[prompts[r.prompt] % len(PALETTE)] for r in runs]
    stats = [run_stats(r) for r in runs]
    series = [[step_entropy(s) for s in r.steps if s.alternatives] for r in runs]
    top = max(1.0, math.ceil(max((max(s) for s in series if s), default=1.0)))
    steps = max((len(s) for s in series), default=1) or 1

    bars_top = 52
    bars_h = ROW * len(runs)
    panels_top = bars_top + bars_h + 40
    rows = -(-len(runs) // COLS)
    height = panels_top + rows * (PANEL_H + PANEL_GAP + 18) + 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" '
           'font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{height}" fill="white"/>',
           f'<text x="12" y="20" font-size="14" font-weight="bold">{tok.markup(title)}</text>',
           f'<text x="{LABEL_W}" y="{bars_top - 8}" fill="#333">mean chosen probability</text>',
           f'<text x="{LABEL_W + BAR_W + 40}" y="{bars_top - 8}" fill="#333">mean entropy (bits, 0 – {top:g})</text>']
    for n, (st, label, c) in enumerate(zip(stats, labels, colour)):
        y = bars_top + n * ROW
        mean = st.mean_chosen_prob or 0.0
        ent = st.mean_entropy_bits
        out.append(f'<rect x="8" y="{y + 4}" width="10" height="10" fill="{c}"/>')
        out.append(f'<text x="24" y="{y + 13}">{tok.markup(_clip(label, 46))}</text>')
        out.append(f'<rect x="{LABEL_W}" y="{y + 3}" width="{BAR_W}" height="12" fill="#eeeeee"/>')
        out.append(f'<rect x="{LABEL_W}" y="{y + 3}" width="{BAR_W * mean:.1f}" height="12" fill="{c}"/>')
        out.append(f'<text x="{LABEL_W + BAR_W + 4}" y="{y + 13}" fill="#333">{mean * 100:.0f}%</text>')
        x2 = LABEL_W + BAR_W + 40
        out.append(f'<rect x="{x2}" y="{y + 3}" width="{BAR_W}" height="12" fill="#eeeeee"/>')
        if ent is not None:
            out.append(f'<rect x="{x2}" y="{y + 3}" width="{BAR_W * min(ent / top, 1.0):.1f}" height="12" fill="{c}" '
                       'fill-opacity="0.55"/>')
        out.append(f'<text x="{x2 + BAR_W + 4}" y="{y + 13}" fill="#333">{"—" if ent is None else f"{ent:.2f}"}</text>')
    out.append(f'<text x="12" y="{panels_top - 12}" fill="#333">entropy per generated token (bits; higher: less sure)</text>')
    for n, (values, label, c) in enumerate(zip(series, labels, colour)):
        px = 12 + (n % COLS) * (PANEL_W + PANEL_GAP)
        py = panels_top + (n // COLS) * (PANEL_H + PANEL_GAP + 18)
        out.append(f'<text x="{px}" y="{py + 10}" fill="{c}">{tok.markup(_clip(label, 36))}</text>')
        top_y, plot_h = py + 16, PANEL_H - 20
        out.append(f'<rect x="{px}" y="{top_y}" width="{PANEL_W}" height="{plot_h}" fill="#fafafa" stroke="#dddddd"/>')
        for k in range(int(top) + 1):
            yy = top_y + plot_h * (1 - k / top)
            out.append(f'<line x1="{px}" y1="{yy:.1f}" x2="{px + PANEL_W}" y2="{yy:.1f}" stroke="#eeeeee"/>')
            label_y = yy + 9 if k == top else yy - 2  # inside the panel: the top one clear of the title
            out.append(f'<text x="{px + 2}" y="{label_y:.1f}" font-size="9" fill="#999">{k}</text>')  # bits
        if values:
            def xy(i: int, v: float, px: int = px, top_y: float = top_y, plot_h: int = plot_h) -> str:
                x = px + 6 + (PANEL_W - 12) * (i / (steps - 1) if steps > 1 else 0.5)
                return f"{x:.1f},{top_y + plot_h * (1 - v / top):.1f}"
            out.append(f'<polyline points="{" ".join(xy(i, v) for i, v in enumerate(values))}" fill="none" '
                       f'stroke="{c}" stroke-width="2"/>')
        else:
            out.append(f'<text x="{px + 8}" y="{top_y + 20}" fill="#777">no alternatives recorded (-k 0)</text>')
        out.append(f'<text x="{px}" y="{top_y + plot_h + 12}" fill="#777">1</text>')
        out.append(f'<text x="{px + PANEL_W}" y="{top_y + plot_h + 12}" text-anchor="end" fill="#777">{steps}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def svg_to_png(svg: str, dpi: int | None = None) -> bytes:
    """An SVG through librsvg's `rsvg-convert` (installed with Graphviz by `make install`)."""
    import shutil
    import subprocess

    from tokviz.ground.errors import RenderError

    exe = shutil.which("rsvg-convert")
    if exe is None:
        raise RenderError("`rsvg-convert` was not found on PATH, so the chart cannot be drawn as PNG",
                          hint="install librsvg: `sudo apt-get install librsvg2-bin` or `brew install librsvg`; .svg works without it")
    scale = ["--zoom", f"{dpi / 96:.3f}"] if dpi else []
    done = subprocess.run([exe, "-f", "png", *scale], input=svg.encode("utf-8"), capture_output=True,
                          start_new_session=True, check=False)
    if done.returncode != 0 or not done.stdout:
        raise RenderError(f"rsvg-convert failed to draw the chart: {done.stderr.decode('utf-8', 'replace').strip()[-200:]}")
    return done.stdout
