"""The terminal view: one row per generated token, with its probability and the alternatives.

Token text is untrusted data (a token can be ``[bold]`` or an escape sequence), so every cell is
built as a rich `Text` from plain strings and styles; nothing here is ever parsed as markup.
Colour is added with styles only, so the same renderable prints plain when colour is off.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from tokviz.measures.metrics import (
    NEAR_TIE_NOTE,
    TIE,
    candidates,
    entropy_bits,
    near_tie,
    near_ties,
    run_stats,
    step_entropy,
)
from tokviz.measures.reshape import NOTE, Setting, reshape
from tokviz.run import Run, RunKind, Step, Token, same_token
from tokviz.run import tokens as tok
from tokviz.views.colors import percent, prob_style

BOUNDARY = "│"  # between a scored text's context and the text


def token_text(token: Token, *, bold: bool = False) -> Text:
    """A token as Text: literal text plain, stand-ins and escaped bytes dimmed so they read as such."""
    out = Text()
    p = token.prob
    if token.lossy:  # the server's text for it, not its exact bytes
        out.append("≈", style=prob_style(p, dim=True))
    if not token.raw and token.text:  # a special token such as <eos>: no bytes of its own
        out.append(tok.visible(token.text), style=prob_style(p, italic=True, bold=bold))
        return out
    segs = tok.segments(token.raw) or [tok.Segment("∅", raw=True)]
    for seg in segs:
        out.append(seg.text, style=prob_style(p, bold=bold, dim=seg.raw))
    return out


def header(run: Run) -> Text:
    """The prompt followed by the generated text, so the table's rows can be read in context."""
    out = Text()
    if run.messages:  # a chat: the turns apart, not the question glued to its answer
        for m in run.messages:
            out.append(f"{m.role}: ", style="dim italic")
            out.append(tok.safe(m.content) + "\n", style="dim")
        out.append("model: ", style="italic")
        out.append(tok.safe(run.text), style="bold")
        return out
    out.append(tok.safe(run.prompt), style="dim")
    if run.kind is RunKind.SCORE and run.prompt:
        out.append(BOUNDARY, style="dim")  # where the context ends and the scored text begins
    out.append(tok.safe(run.text), style="bold")
    return out


def footer(run: Run, *, timings: bool = True) -> Text:
    """One summary line. `timings=False` leaves out speed, which changes from run to run, so that
    files meant for golden-file checks depend only on the tokens."""
    who = f"{run.provider}:{run.model}" + (f" ({run.source['precision']})" if run.source.get("precision") else "")
    parts = [tok.count(len(run.steps), "token"), tok.safe(who), tok.safe(run.figures_note),
             "entropy in bits"]
    if run.usage.get("prompt_tokens"):
        parts.insert(1, tok.count(run.usage["prompt_tokens"], "prompt token"))
    if run.finish_reason:
        parts.append(tok.safe(f"finish: {run.finish_reason}"))
    rate = run.timings.get("tokens_per_s")
    if rate and timings:
        parts.append(f"{rate:.1f} tokens/s")
    if run.lossy_tokens or run.source.get("lossy"):
        parts.append("≈: the server did not send this token's exact bytes")
    if near_ties(run):
        parts.append(f"{TIE} near-tie: {NEAR_TIE_NOTE}")
    if run.params.watch:
        parts.append("watched: probability and #rank in the whole vocabulary"
                     + ("; < : an upper bound (not among the top k the provider listed)"
                        if any(w.bound for s in run.steps for w in s.watched) else ""))
    if run.kind is RunKind.SCORE and run.prompt:
        parts.append(f"{BOUNDARY} the context ends here; the text after it is scored"
                     + (" (joined with one space)" if run.source.get("joined") else ""))
    return Text(" · ".join(parts), style="dim")


class Pairs:
    """Token/figure pairs that wrap between pairs, never inside one ("␣Paris" on one line and
    "9.1%" on the next read as two things). A renderable, so it lays itself out in whatever width
    the table gives it: at 80 columns the pairs move to the next line whole."""

    def __init__(self, pairs: list[Text]) -> None:
        self.pairs = pairs

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        if not self.pairs:
            return Measurement(0, 0)
        widths = [p.cell_len for p in self.pairs]
        return Measurement(min(max(widths), options.max_width), sum(widths) + 2 * (len(widths) - 1))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        line, lines = Text(), []
        for pair in self.pairs:
            if line.cell_len and line.cell_len + 2 + pair.cell_len > options.max_width:
                lines.append(line)
                line = Text()
            if line.cell_len:
                line.append("  ")
            line.append_text(pair)
        lines.append(line)
        for text in lines:
            yield from console.render(text, options.update(no_wrap=False, overflow="fold"))


def _alternatives(tokens: list[tuple[Token, float | None]]) -> Pairs:
    """Tokens with a figure each; a None figure means the token was cut (shown struck through)."""
    pairs = []
    for tok_, p in tokens:
        pair = Text()
        if p is None or p <= 0.0:
            pair.append(tok_.label, style="dim strike")
            pair.append(" cut", style="dim")
        else:
            pair.append_text(token_text(tok_))
            pair.append(" " + percent(p), style="dim")
        if tok_.forbidden:  # --json-schema: the grammar forbade it (the figure is the model's)
            pair.append(" ⊘", style="dim")
        pairs.append(pair)
    return Pairs(pairs)


def _rank_style(rank: int | None) -> str:
    """GLTR's buckets: green for the model's top 10, yellow for top 100, red for top 1000, purple beyond."""
    if rank is None:
        return "dim"
    return "green" if rank <= 10 else "yellow" if rank <= 100 else "red" if rank <= 1000 else "magenta"


def watched_cell(step: Step, n: int) -> Text:
    """The n-th watched token at a step: its probability and rank, or "< p" where it is a bound."""
    if n >= len(step.watched):
        return Text("—", style="dim")
    w = step.watched[n]
    if w.bound:
        return Text(f"< {percent(w.token.prob)}", style="dim")
    out = Text(percent(w.token.prob), style=prob_style(w.token.prob))
    if w.rank is not None:
        out.append(f" #{w.rank:,}", style=_rank_style(w.rank))
    return out


def table(run: Run, sampling: Sequence[Setting] = ()) -> Table:
    """The per-step table: position, chosen token, its probability, alternatives, entropy; and
    with `sampling`, a sub-row per setting showing the step's distribution as it would reshape it."""
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=False)
    t.add_column("#", justify="right", style="dim", no_wrap=True)
    t.add_column("token", overflow="fold")
    t.add_column("prob", justify="right", no_wrap=True)
    ranked = any(s.rank is not None for s in run.steps)
    if ranked:  # a scored text: where each actual token stood among the whole vocabulary
        t.add_column("rank", justify="right", no_wrap=True)
    t.add_column("alternatives", overflow="fold")
    t.add_column("entropy", justify="right", no_wrap=True)
    for spec in run.params.watch:  # --watch: a column per watched token
        t.add_column(Text(tok.visible(spec)), justify="right", no_wrap=True)
    for i, step in enumerate(run.steps, start=1):
        chosen = step.chosen
        prob = Text(percent(chosen.prob), style=prob_style(chosen.prob))
        if near_tie(step):
            prob.append(" " + TIE, style="dim")
        cells: list[RenderableType] = [str(i), token_text(chosen, bold=True), prob]
        if ranked:
            cells.append(Text("—" if step.rank is None else f"{step.rank:,}", style=_rank_style(step.rank)))
        cells += [_alternatives([(a, a.prob) for a in step.others()]),
                  Text(f"{step_entropy(step):.2f}") if step.alternatives else Text("—", style="dim")]
        cells += [watched_cell(step, n) for n in range(len(run.params.watch))]
        t.add_row(*cells)
        if not sampling:
            continue
        cands = candidates(step)
        lps = [c.logprob for c in cands]
        for setting in sampling:
            shaped = reshape(lps, setting)
            by_token = list(zip(cands, shaped))
            # the chosen token among the candidates as `candidates` found it: by id where both
            # have one, else by bytes (a server may give ids on the chosen token only)
            mine = next(p for c, p in by_token if c is chosen or same_token(c, chosen))
            others = [(c, p) for c, p in by_token if not (c is chosen or same_token(c, chosen))]
            t.add_row("", Text(setting.label, style="dim italic"), *([""] if ranked else []),
                      Text("cut" if mine <= 0 else percent(mine), style="dim" if mine <= 0 else prob_style(mine)),
                      _alternatives(others), Text(f"{entropy_bits(shaped, with_other=False):.2f}", style="dim"),
                      *([""] * len(run.params.watch)))
    return t


def stats_table(run: Run) -> Table:
    """The run's summary figures, one per line (what `predict --stats` prints under the table)."""
    st = run_stats(run)
    t = Table.grid(padding=(0, 2))
    t.add_column(style="dim")
    t.add_column()

    def row(name: str, value: str | None) -> None:
        if value is not None:
            t.add_row(name, value)

    def fmt(v: float | None, spec: str) -> str | None:
        return None if v is None else format(v, spec)

    row("tokens", str(st.tokens))
    row("mean chosen probability", None if st.mean_chosen_prob is None else percent(st.mean_chosen_prob))
    row("perplexity", fmt(st.perplexity, ".3f"))
    row("mean entropy", None if st.mean_entropy_bits is None else f"{st.mean_entropy_bits:.3f} bits")
    row("least certain steps", ", ".join(f"#{i}" for i in st.least_certain) or None)
    row("near-ties", (", ".join(f"#{i}" for i in st.near_ties) + f" ({NEAR_TIE_NOTE})") if st.near_ties else None)
    row("distinct alternatives", str(st.distinct_alternatives))
    row("time to first token", None if st.ttft_s is None else f"{st.ttft_s * 1000:.0f} ms")
    row("tokens/s", fmt(st.tokens_per_s, ".1f"))
    if st.top1_share is not None:
        shares = "  ".join(f"top {k}: {percent(v)}" for k, v in (("1", st.top1_share), ("10", st.top10_share),
                                                                  ("100", st.top100_share), ("1000", st.top1000_share))
                           if v is not None)
        row("tokens by rank", shares)
        row("mean surprisal", fmt(st.mean_surprisal_bits, ".3f") and f"{st.mean_surprisal_bits:.3f} bits")
    if run.kind is RunKind.SCORE and "scored_tokens" in run.usage:
        row("token usage", f"{st.prompt_tokens or 0} context (<bos> included) + {run.usage['scored_tokens']} scored")
    elif st.prompt_tokens is not None or st.completion_tokens is not None:
        row("token usage", f"{st.prompt_tokens or 0} prompt + {st.completion_tokens or 0} completion")
    if st.cost_usd is not None:
        row("estimated cost", f"${st.cost_usd:.6f} ({st.price_source})")
    return t


def view(run: Run, *, timings: bool = True, sampling: Sequence[Setting] = (), stats: bool = False) -> RenderableType:
    """The full terminal view: text in context, the table, a one-line summary, and optionally the
    statistics and a note on what the sampling rows are computed over."""
    parts: list[RenderableType] = [header(run), Text(""), table(run, sampling), footer(run, timings=timings)]
    if sampling:
        parts.append(Text(f"sampling rows: {NOTE}; some servers return logprobs from before their own sampling", style="dim"))
    if stats:
        parts += [Text(""), stats_table(run) if timings else stats_table(_without_timings(run))]
    return Group(*parts)


def _without_timings(run: Run) -> Run:
    from dataclasses import replace

    return replace(run, timings={})


def render_text(run: Run, *, width: int = 100, sampling: Sequence[Setting] = (), stats: bool = False) -> str:
    """The view as plain text at a fixed width: the same on every machine (golden-file material)."""
    return plain_text(view(run, timings=False, sampling=sampling, stats=stats), width=width)


def plain_text(renderable: RenderableType, *, width: int = 100) -> str:
    """Any renderable as colourless fixed-width text, trailing spaces stripped."""
    from io import StringIO

    from rich.console import Console

    buf = StringIO()
    console = Console(
        file=buf, width=width, color_system=None, force_terminal=False, no_color=True,
        highlight=False, emoji=False, markup=False, legacy_windows=False, soft_wrap=False,
    )
    console.print(renderable)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"
