"""`tokviz tree`: follow the roads not taken — expand the alternatives into a real tree."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from tokviz.commands import common, live
from tokviz.ground.errors import UsageError
from tokviz.run.generation import Generation
from tokviz.views import formats


@common.generation_options(exclude=("top_k", "max_tokens", "temperature", "top_p", "seed", "record", "replay", "raw"),
                           help={"chat": "Wrap the prompt in the model's chat turn format (the local model; a tree on a "
                                         "server continues raw text through /v1/completions and refuses --chat)."})
def tree(
    gen: Generation,
    prompt: Annotated[Optional[str], typer.Argument(metavar="[PROMPT]", help='The prompt; "-" reads it from standard input. Not needed with --from.', show_default=False)] = None,
    depth: Annotated[int, typer.Option("--depth", "-d", metavar="N", help="Tokens deep (1-12).")] = 4,
    branch: Annotated[int, typer.Option("--branch", "-b", metavar="N", help="Children per node: the most likely ones (1-20).")] = 3,
    min_prob: Annotated[float, typer.Option("--min-prob", metavar="X", help="Drop children less likely than this.")] = 0.0,
    max_nodes: Annotated[int, typer.Option("--max-nodes", metavar="N", help="Stop growing at this many nodes (the command says when it cut).")] = 200,
    complete: Annotated[int, typer.Option("--complete", metavar="N", help="Finish each leaf greedily with up to N tokens, so each branch reads as text.")] = 0,
    from_run: Annotated[Optional[Path], typer.Option("--from", metavar="RUN.json", help="Branch from a saved run instead of a prompt (with --step and --token).", show_default=False)] = None,
    step: Annotated[int, typer.Option("--step", metavar="N", help="With --from: the step (1-based) whose alternative to take.")] = 1,
    token: Annotated[int, typer.Option("--token", metavar="N", help="With --from: which alternative at that step (1 = most likely).")] = 1,
    parallel: Annotated[int, typer.Option("--parallel", metavar="N", help="Local model, N > 1: decode each node's children (and its waiting siblings') together in one llama.cpp batch (faster; figures differ slightly, and the tree says so). 1: one token at a time.")] = 1,
    output: common.output_opt(formats.TREE) = None,
    save: common.SaveOpt = None,
    as_json: common.JsonOpt = False,
    quiet: common.QuietOpt = False,
) -> None:
    """Expand the top alternatives at every step into a tree of possible continuations."""
    from tokviz import pipeline
    from tokviz.providers.base import TreeSpec

    forced: tuple = ()
    if from_run is not None:
        saved = common.load_run(str(from_run))
        if not 1 <= step <= len(saved.steps):
            raise UsageError(f"--step must be between 1 and {len(saved.steps)} for {from_run}")
        alts = saved.steps[step - 1].alternatives
        if not 1 <= token <= len(alts):
            raise UsageError(f"--token must be between 1 and {len(alts)} at step {step}")
        forced = (*(s.chosen for s in saved.steps[: step - 1]), alts[token - 1])
        if any(t.id is None for t in forced):
            raise UsageError(f"{from_run} has no token ids (a {saved.provider} run)", hint="branch from a run of the local model")
        text = saved.prompt
        gen = replace(gen, model=gen.model or saved.model, chat=gen.chat or saved.params.mode == "chat")
    elif prompt is None:
        raise UsageError("give a prompt, or --from RUN.json")
    else:
        text = common.read_text_arg(prompt)
    # A tree continues raw text unless the chat format is asked for, on every provider (a server's
    # default is chat, which cannot be continued from a forced prefix).
    gen = replace(gen, top_k=branch, max_tokens=depth, temperature=0.0, top_p=1.0, seed=None,
                  raw=not (gen.chat or gen.system))
    common.check_parallel(parallel)
    spec = TreeSpec(depth=depth, branch=branch, min_prob=min_prob, max_nodes=max_nodes, complete=complete, parallel=parallel > 1)
    pipeline.check_tree(spec)
    plan = common.plan(gen, text)
    planned = common.plan_outputs(output or [], formats.TREE)
    common.check_paths(save)
    err = common.stderr()
    most = min(max_nodes, sum(branch**d for d in range(1, depth + 1)))  # an upper bound: --min-prob may cut more
    stopped: BaseException | None = None
    try:
        with live.progress(err, err.is_terminal and not (as_json or quiet), most, "nodes") as advance:
            run = pipeline.tree(plan, spec, forced=forced, progress=common.progress_line(err), on_node=advance)
    except pipeline.Stopped as stop:  # Ctrl-C or SIGTERM: the tree as far as it grew is written and shown
        run, stopped = stop.record, stop.cause
    options = common.render_options(wrap=common.DEFAULT_WRAP, sampling=None, stats=False)
    common.write_outputs(run, planned, options, saved=save)
    if not quiet:
        common.print_run(run, options, as_json=as_json)
    if stopped is not None:  # the table says what was kept; the last line (and exit status) what stopped it
        raise stopped
    if run.tree is not None and run.tree.cut:
        from tokviz.views.tree import cut_note

        err.print(f"tokviz: {cut_note(run)}", style="yellow")
