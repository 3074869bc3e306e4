"""One self-contained HTML page for a run: the text coloured by confidence, alternatives on hover.

No server, no CDN, no network: styles, script and the graph (inline SVG) are all in the file.
Token text is untrusted: it enters the page only through `tokens.markup` (control characters shown as escapes, then HTML-escaped) and through a
JSON block whose `<`, `>` and `&` are escaped as \\u003c… (so `</script>` cannot close it); the
script builds the tooltips with `textContent`, never `innerHTML`.
"""

from __future__ import annotations

import json
from typing import Any

from tokviz.measures.metrics import NEAR_TIE_NOTE, near_tie, run_stats, step_entropy
from tokviz.run import Run
from tokviz.run import tokens as tok
from tokviz.views.colors import css_gradient, percent, prob_hex, tint_hex

CSS = """
:root{--bg:#fff;--fg:#1d1d1f;--muted:#666;--card:#f5f5f7;--line:#ddd;--tipbg:#fff}
@media (prefers-color-scheme:dark){:root{--bg:#16171a;--fg:#e8e8ea;--muted:#9a9aa2;--card:#222329;--line:#3a3b42;--tipbg:#26272d}}
:root[data-theme=light]{--bg:#fff;--fg:#1d1d1f;--muted:#666;--card:#f5f5f7;--line:#ddd;--tipbg:#fff}
:root[data-theme=dark]{--bg:#16171a;--fg:#e8e8ea;--muted:#9a9aa2;--card:#222329;--line:#3a3b42;--tipbg:#26272d}
body{margin:0 auto;max-width:60rem;padding:1.5rem;background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,sans-serif}
header{display:flex;justify-content:space-between;align-items:baseline;gap:1rem;flex-wrap:wrap}
h1{font-size:1.3rem;margin:0}.meta{color:var(--muted);font-size:.9rem}
#text,.text{font:1.15rem/2.1 ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap;word-break:break-word;background:var(--card);padding:1rem;border-radius:.5rem;margin:1rem 0}
.prompt{color:var(--muted)}
.tok{color:#111;border-radius:.2rem;padding:.05rem 0;cursor:help;outline-offset:2px}
.tok:focus,.tok:hover{outline:2px solid var(--fg)}
.tok.tie{text-decoration:underline dotted;text-underline-offset:.2em}
.frag{font-size:.7em;vertical-align:middle}.lossy{text-decoration:underline dotted}
#tip{position:absolute;z-index:10;min-width:20rem;max-width:26rem;background:var(--tipbg);color:var(--fg);border:1px solid var(--line);border-radius:.5rem;padding:.5rem .7rem;box-shadow:0 4px 16px rgba(0,0,0,.25);font-size:.85rem}
#tip .row{display:grid;grid-template-columns:7rem 1fr 3.5rem;gap:.4rem;align-items:center}
#tip .name{font-family:ui-monospace,Menlo,monospace;overflow:hidden;text-overflow:ellipsis;white-space:pre}
#tip .bar{display:block;height:.6rem;border-radius:.2rem}#tip .chosen .name{font-weight:700}
#tip .pct{text-align:right;font-variant-numeric:tabular-nums}
[hidden]{display:none!important}
.legend{display:flex;align-items:center;gap:.5rem;color:var(--muted);font-size:.85rem}
.legend .swatch{display:inline-block;width:1rem;height:.8rem;border-radius:.2rem;margin-left:.5rem}
.legend .scale{flex:0 0 12rem;height:.8rem;border-radius:.2rem;background:SCALE}
table{border-collapse:collapse;font-size:.9rem}td,th{padding:.15rem .8rem .15rem 0;text-align:left}th{color:var(--muted);font-weight:400}
details{margin-top:1rem}summary{cursor:pointer}.graph{overflow:auto;background:#fff;border-radius:.5rem;padding:.5rem}
button{font:inherit;background:var(--card);color:var(--fg);border:1px solid var(--line);border-radius:.4rem;padding:.2rem .6rem;cursor:pointer}
"""

JS = """
(function(){
var data=JSON.parse(document.getElementById('tokviz-data').textContent);
var tip=document.getElementById('tip');
function pct(p){if(p>=0.9995)return p>=1?'100%':'>99.9%';if(p<0.0005)return p<=0?'0%':'<0.1%';return (p*100).toFixed(1)+'%';}
function show(el){var s=data.steps[+el.dataset.i];tip.textContent='';
 var h=document.createElement('div');h.className='meta';h.textContent='step '+(+el.dataset.i+1)+' \\u00b7 entropy '+s.entropy.toFixed(2)+' bits';tip.appendChild(h);
 var top=Math.max.apply(null,s.alts.map(function(a){return a.p;}).concat([1e-9]));
 s.alts.forEach(function(a){var r=document.createElement('div');r.className='row'+(a.chosen?' chosen':'');
  var n=document.createElement('span');n.className='name';n.textContent=a.label;
  var b=document.createElement('span');b.className='bar';b.style.width=Math.max(2,Math.round(a.p/top*100))+'%';b.style.background=a.color;
  b.title='bars are relative to the likeliest alternative here';
  var v=document.createElement('span');v.className='pct';v.textContent=pct(a.p);
  r.appendChild(n);r.appendChild(b);r.appendChild(v);tip.appendChild(r);});
 if(!s.inTopK){var o=document.createElement('div');o.className='meta';o.textContent='chosen token was outside the returned alternatives';tip.appendChild(o);}
 tip.hidden=false;var r=el.getBoundingClientRect();
 tip.style.left=Math.max(8,Math.min(window.scrollX+r.left,window.scrollX+document.documentElement.clientWidth-tip.offsetWidth-8))+'px';
 tip.style.top=(window.scrollY+r.bottom+6)+'px';}
function hide(){tip.hidden=true;}
document.querySelectorAll('.tok').forEach(function(el){
 el.addEventListener('mouseenter',function(){show(el);});el.addEventListener('focus',function(){show(el);});
 el.addEventListener('mouseleave',hide);el.addEventListener('blur',hide);});
document.addEventListener('keydown',function(e){if(e.key==='Escape')hide();});
var cb=document.getElementById('colour-by');if(cb){cb.addEventListener('click',function(){var g=cb.dataset.mode!=='rank';
 cb.dataset.mode=g?'rank':'prob';cb.textContent=g?'colour by probability':'colour by rank (GLTR)';
 document.querySelectorAll('.tok[data-gltr]').forEach(function(el){el.style.background=g?el.dataset.gltr:el.dataset.prob;});
 document.getElementById('legend-rank').hidden=!g;document.getElementById('legend-prob').hidden=g;});}
var t=document.getElementById('theme');t.addEventListener('click',function(){var r=document.documentElement;
 var dark=r.dataset.theme?r.dataset.theme==='dark':window.matchMedia('(prefers-color-scheme: dark)').matches;
 r.dataset.theme=dark?'light':'dark';});
})();
"""


def _json_for_script(data: Any) -> str:
    """JSON that is safe inside <script>: no character of it can end the element."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _svg_inline(svg: bytes) -> str:
    text = svg.decode("utf-8")
    start = text.find("<svg")
    return text[start:] if start >= 0 else ""


def _stats_rows(run: Run) -> list[tuple[str, str]]:
    st = run_stats(run)
    rows = [("tokens", str(st.tokens))]
    if st.mean_chosen_prob is not None:
        rows.append(("mean chosen probability", percent(st.mean_chosen_prob)))
    if st.perplexity is not None:
        rows.append(("perplexity", f"{st.perplexity:.3f}"))
    if st.mean_entropy_bits is not None:
        rows.append(("mean entropy", f"{st.mean_entropy_bits:.3f} bits"))
    if st.least_certain:
        rows.append(("least certain steps", ", ".join(f"#{i}" for i in st.least_certain)))
    if st.near_ties:
        rows.append(("near-ties (⚖)", ", ".join(f"#{i}" for i in st.near_ties) + f": {NEAR_TIE_NOTE}"))
    if st.cost_usd is not None:
        rows.append(("estimated cost", f"${st.cost_usd:.6f}"))
    return rows


def page(run: Run, *, graph_svg: bytes | None = None, body_html: str | None = None,
         data: dict[str, Any] | None = None) -> str:
    """The HTML page for `run`. `graph_svg` (optional) is embedded behind a toggle."""
    e = tok.markup
    params = run.params
    meta = (f"{run.provider}:{run.model} · {params.mode} · T={params.temperature:g} · top-p={params.top_p:g} · "
            f"top-k {params.top_k}" + (f" · seed {params.seed}" if params.seed is not None else "")
            + f" · {run.figures_note}")
    if body_html is None:
        body_html, data = _text_section(run)
    elif data is None:
        data = {"steps": []}
    stats = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _stats_rows(run)) if run.kind != "tree" else ""
    graph = (f'<details><summary>Show the token graph</summary><div class="graph">{_svg_inline(graph_svg)}</div></details>'
             if graph_svg else "")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>tokviz · {e(' '.join(run.prompt.split())[:60])}</title><style>{CSS.replace('SCALE', css_gradient())}</style></head><body>"
        f'<header><h1>tokviz</h1><button id="theme" type="button" aria-label="switch light and dark theme">◐ theme</button></header>'
        f'<p class="meta">{e(meta)}</p>'
        f"{body_html}"
        '<div class="legend" id="legend-prob" aria-hidden="true"><span>probability of the chosen token</span><span>0%</span>'
        '<span class="scale"></span><span>100%</span></div>'
        f"{watch_chart(run)}{_fields(run)}<table aria-label=\"statistics\">{stats}</table>{graph}"
        '<div id="tip" role="tooltip" hidden></div>'
        f'<script id="tokviz-data" type="application/json">{_json_for_script(data)}</script>'
        f"<script>{JS}</script></body></html>\n"
    )


def _fields(run: Run) -> str:
    """A JSON answer's fields (`--json-schema`), when the run was held to a schema."""
    if run.params.json_schema is None or not run.steps:
        return ""
    from tokviz.views import fields

    return fields.section(run)


WATCH_COLOURS = ("#1f77b4", "#9467bd", "#8c564b", "#17becf", "#e377c2", "#7f7f7f")


def watch_chart(run: Run) -> str:
    """--watch: a line per watched token, its probability at every step (a log scale, 100% to
    0.001%), figures as filled dots and upper bounds as hollow ones; empty when nothing is watched."""
    import math

    specs = run.params.watch
    if not specs or not run.steps:
        return ""
    e = tok.markup
    w, h, left, top, bottom = 720, 200, 56, 14, 26
    plot_w, plot_h, floor = w - left - 12, h - top - bottom, -5.0  # log10 of the lowest probability drawn

    def xy(i: int, p: float) -> tuple[float, float]:
        x = left + (plot_w * i / (len(run.steps) - 1) if len(run.steps) > 1 else plot_w / 2)
        y = top + plot_h * min(1.0, -max(math.log10(max(p, 1e-12)), floor) / -floor)
        return x, y

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           'font-family="sans-serif" font-size="11" role="img" aria-label="watched tokens per step">']
    for k in range(0, 6):
        y = top + plot_h * k / 5
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#ddd"/>'
                   f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#777">{10 ** (2 - k):g}%</text>')
    legend = []
    for n, spec in enumerate(specs):
        colour = WATCH_COLOURS[n % len(WATCH_COLOURS)]
        points = [(i, st.watched[n]) for i, st in enumerate(run.steps) if n < len(st.watched)]
        line = " ".join("{:.1f},{:.1f}".format(*xy(i, wt.token.prob)) for i, wt in points)
        out.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        for i, wt in points:
            x, y = xy(i, wt.token.prob)
            what = (f"step {i + 1}: {'< ' if wt.bound else ''}{percent(wt.token.prob)}"
                    + (f", rank {wt.rank:,}" if wt.rank else ""))
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{"white" if wt.bound else colour}" '
                       f'stroke="{colour}"><title>{e(tok.visible(spec))}: {e(what)}</title></circle>')
        legend.append(f'<span style="color:{colour}">━ {e(tok.visible(spec))}</span>')
    out.append(f'<text x="{left}" y="{h - 6}" fill="#777">step 1</text>'
               f'<text x="{left + plot_w}" y="{h - 6}" text-anchor="end" fill="#777">step {len(run.steps)}</text></svg>')
    bound = any(wt.bound for st in run.steps for wt in st.watched)
    note = " · hollow: an upper bound (not among the top k the provider listed)" if bound else ""
    return (f'<section aria-label="watched tokens"><p class="meta">watched: probability at every step (log scale){note}'
            f'</p><p class="meta">{" ".join(legend)}</p>{"".join(out)}</section>')


def _text_section(run: Run, offset: int = 0, *, section_id: str = "text") -> tuple[str, dict[str, Any]]:
    """The prompt and the coloured tokens; `offset` numbers the tokens after those of earlier
    sections of the same page (samples), whose tooltip data share one list."""
    e = tok.markup
    pieces = tok.pieces([s.chosen.raw for s in run.steps])
    spans = []
    steps = []
    for i, (step, piece) in enumerate(zip(run.steps, pieces)):
        p = step.chosen.prob
        label = step.chosen.label
        lead = ""
        if step.chosen.lossy:  # the server did not send this token's bytes: show what it sent, marked
            shown, cls = e(label), "tok lossy"
        elif not step.chosen.raw and step.chosen.text:
            shown, cls = e(tok.visible(step.chosen.text)), "tok"
        elif piece == "":
            shown, cls = "·", "tok frag"  # a byte of a character completed by a later token
        else:
            # A leading space stays outside the token's box: a line that wraps there then breaks
            # before the word, instead of drawing the token as a lone space box and a word box.
            bare = piece.lstrip(" ")
            lead, piece = (piece[: len(piece) - len(bare)], bare) if bare else ("", piece)
            shown = e(piece.replace("\n", "↵\n").replace("\t", "⇥\t"))
            cls = "tok"
        tie = near_tie(step)
        if tie:
            cls += " tie"
        rank = (f' data-prob="{tint_hex(p, 0.25)}" data-gltr="{gltr_hex(step.rank)}"' if step.rank is not None else "")
        spans.append(lead)  # outside the box, near-tie or not: the text reads as the model wrote it
        spans.append(f'<span class="{cls}" tabindex="0" data-i="{offset + i}"{rank} style="background:{tint_hex(p, 0.25)}" '
                     f'aria-label="{e(label)}, {percent(p)}{", a near-tie" if tie else ""}">{shown}</span>')
        alts = [{"label": a.label, "p": a.prob, "color": prob_hex(a.prob), "chosen": a == step.chosen}
                for a in step.alternatives]
        in_top = any(a["chosen"] for a in alts)
        if not in_top:
            alts.append({"label": label, "p": p, "color": prob_hex(p), "chosen": True})
        steps.append({"entropy": step_entropy(step), "alts": alts, "inTopK": in_top})
    body = (f'<section id="{section_id}" class="text" aria-label="prompt and generated text"><span class="prompt">{e(run.prompt)}</span>'
            + "".join(spans) + "</section>")
    if offset == 0 and any(st.rank is not None for st in run.steps):
        legend = "".join(f'<span class="swatch" style="background:{c}"></span><span>{e(name)}</span>' for name, c in GLTR)
        body = ('<div class="legend"><button id="colour-by" type="button" data-mode="prob">colour by rank (GLTR)</button>'
                f'<span id="legend-rank" hidden>{legend}</span></div>' + body)
    return body, {"steps": steps}


# GLTR's colours (Gehrmann, Strobelt and Rush, 2019): where the actual token stood in the model's ranking.
GLTR = (("top 10", "#b6f0b6"), ("top 100", "#fff2a8"), ("top 1000", "#ffb3b3"), ("beyond", "#d9c2f0"))


def gltr_hex(rank: int | None) -> str:
    if rank is None:
        return "#ffffff"
    for (_, colour), limit in zip(GLTR, (10, 100, 1000)):
        if rank <= limit:
            return colour
    return GLTR[-1][1]


def samples_page(runs: list[Run], graph_svg: bytes | None) -> str:
    """Several samples of one prompt on one page: each sample's text coloured by confidence, with
    its alternatives on hover or focus, and the prefix tree of where they part."""
    e = tok.markup
    sections, steps = [], []
    for n, run in enumerate(runs, start=1):
        body, data = _text_section(run, offset=len(steps), section_id=f"sample-{n}")
        sections.append(f"<h2>Sample {n} <span class=\"meta\">seed {e(str(run.params.seed))}</span></h2>{body}")
        steps += data["steps"]
    return page(runs[0], graph_svg=graph_svg, body_html="".join(sections), data={"steps": steps})


def tree_page(run: Run, graph_svg: bytes | None) -> str:
    """A tree run's page. An exploration (`tokviz explore`) shows each branch it explored as
    coloured text, where it forked and how it went on; a grown tree its most likely paths the
    same way. Every token carries its alternatives (its siblings in the tree) on hover or focus."""
    from dataclasses import replace

    from tokviz.run import RunKind
    from tokviz.views import tree

    e = tok.markup
    sections, steps = [], []
    info = run.tree
    if info is not None and info.branches:
        items = [(b.tip, _branch_title(run, n, b)) for n, b in enumerate(info.branches, start=1)]
        heading = f"{len(items)} explored branches"
    else:
        leaves = tree.leaves(run)[:20]
        items = [(leaf, f"Path {n} <span class=\"meta\">{percent(run.nodes[leaf].cum_prob)}</span>")
                 for n, leaf in enumerate(leaves, start=1)]
        heading = f"The {len(items)} most likely paths" if len(items) > 1 else "The path"
    for n, (tip, title) in enumerate(items, start=1):
        path_run = replace(run, kind=RunKind.PREDICT, steps=tree.path_steps(run, tip), nodes=(), tree=None)
        body, data = _text_section(path_run, offset=len(steps), section_id=f"path-{n}")
        sections.append(f"<h3>{title}</h3>{body}")
        steps += data["steps"]
    body_html = f"<h2>{e(heading)}</h2>" + "".join(sections)
    return page(run, graph_svg=graph_svg, body_html=body_html, data={"steps": steps})


def _branch_title(run: Run, n: int, b: Any) -> str:
    e = tok.markup
    fork = "from the prompt" if b.fork < 0 else f"from “{e(run.nodes[b.fork].token.label)}”"
    how = "greedy" if b.temperature == 0 else f"T={b.temperature:g}" + (f" top-k {b.top_k}" if b.top_k else "") + (
        f" top-p {b.top_p:g}" if b.top_p < 1 else "") + f" seed {b.seed}"
    end = {"stop": ", the model ended the text", "cancelled": ", cancelled"}.get(b.finish or "", "")
    return f"Branch {n} <span class=\"meta\">{fork} · {e(how)}{end}</span>"
