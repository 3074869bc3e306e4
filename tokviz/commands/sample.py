"""`tokviz sample`: several sampled answers to one prompt, and where they part ways."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from tokviz.commands import common
from tokviz.errors import UsageError
from tokviz.files import write_atomic

SAMPLES_SCHEMA = "tokviz.samples"


def sample(
    prompt: Annotated[str, typer.Argument(help='The prompt; "-" reads it from standard input.')],
    n: Annotated[int, typer.Option("-n", "--samples", help="How many samples to draw.")] = 5,
    model: common.ModelOpt = None,
    provider: common.ProviderOpt = None,
    top_k: common.TopKOpt = 5,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Most tokens per sample.")] = 20,
    temperature: common.TemperatureOpt = 1.0,
    top_p: common.TopPOpt = 1.0,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of the first sample; sample i uses seed + i. Drawn and recorded when omitted.", show_default=False)] = None,
    chat: common.ChatOpt = False,
    system: common.SystemOpt = None,
    base_url: common.BaseUrlOpt = None,
    timeout: common.TimeoutOpt = 60.0,
    retries: common.RetriesOpt = 2,
    record: common.RecordOpt = None,
    replay: common.ReplayOpt = None,
    output: Annotated[Optional[list[Path]], typer.Option("--output", "-o", help="Write the samples' prefix tree (.svg .png .dot) or all runs (.json). Repeatable.", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print all sampled runs as JSON on stdout.")] = False,
    quiet: common.QuietOpt = False,
) -> None:
    """Draw several samples from PROMPT and show where they diverge (table, and a prefix-tree graph)."""
    from tokviz import pipeline
    from tokviz.views import graph, samples

    request = common.make_request(common.read_text_arg(prompt), model=model, top_k=top_k, max_tokens=max_tokens,
                                  temperature=temperature, top_p=top_p, seed=seed, chat=chat, system=system,
                                  base_url=base_url, timeout=timeout, retries=retries)
    planned = common.plan_outputs(output or [])
    for path, fmt in planned:
        if fmt not in ("svg", "png", "dot", "json"):
            raise UsageError(f"sample writes .svg, .png, .dot or .json, not {path.suffix}")
    err = common.stderr()
    runs = pipeline.sample(request, n, provider=provider, progress=lambda msg: err.print(msg, style="dim"),
                           record=record, replay=replay)
    doc = json.dumps({"schema": SAMPLES_SCHEMA, "schema_version": 1, "runs": [r.to_dict() for r in runs]},
                     ensure_ascii=False, indent=1) + "\n"
    dot = samples.tree_dot(samples.prefix_tree(runs))
    for path, fmt in planned:
        data = doc.encode() if fmt == "json" else dot.encode() if fmt == "dot" else graph.render(dot, fmt)
        write_atomic(path, data)
    if quiet:
        return
    out = common.stdout()
    if as_json:
        out.file.write(doc)
    else:
        out.print(samples.table(runs))
