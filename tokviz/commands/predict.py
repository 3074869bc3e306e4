"""`tokviz predict`: generate from a prompt and show every token's probability and alternatives."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tokviz.commands import common
from tokviz.files import check_writable, write_atomic
from tokviz.providers.registry import Request, default_model
from tokviz.run import Params
from tokviz.views import export, table


def predict(
    prompt: Annotated[str, typer.Argument(help='The prompt; "-" reads it from standard input.')],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model name or path to a .gguf file. Default: $TOKVIZ_MODEL or the embedded gemma-3-270m.", show_default=False)] = None,
    provider: Annotated[Optional[str], typer.Option("--provider", "-p", help="Provider to use; inferred from the model when omitted.", show_default=False)] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Alternatives to record at each step (0-20).")] = 5,
    max_tokens: Annotated[int, typer.Option("--max-tokens", "-n", help="Most tokens to generate.")] = 20,
    temperature: Annotated[float, typer.Option("--temperature", "-t", help="0 is greedy (deterministic); above 0 samples.")] = 0.0,
    top_p: Annotated[float, typer.Option("--top-p", help="Nucleus sampling: sample only from the smallest set of tokens reaching this probability.")] = 1.0,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed for sampling; recorded in the run so it can be replayed.", show_default=False)] = None,
    chat: Annotated[bool, typer.Option("--chat", help="Wrap the prompt in the model's chat turn format instead of continuing it as raw text.")] = False,
    system: Annotated[Optional[str], typer.Option("--system", help="A system message (implies --chat).", show_default=False)] = None,
    base_url: Annotated[Optional[str], typer.Option("--base-url", help="An OpenAI-compatible server (vLLM, llama.cpp, Ollama, LM Studio), e.g. http://127.0.0.1:8000/v1. Default: $OPENAI_BASE_URL.", show_default=False)] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for a server's response.")] = 60.0,
    retries: Annotated[int, typer.Option("--retries", help="Retries after a rate limit (429, honouring Retry-After), a server error or a timeout.")] = 2,
    output: common.OutputOpt = None,
    save: Annotated[Optional[Path], typer.Option("--save", help="Save the run as JSON, to re-render later with `tokviz render`.", show_default=False)] = None,
    as_json: common.JsonOpt = False,
    wrap: common.WrapOpt = common.DEFAULT_WRAP,
    quiet: common.QuietOpt = False,
) -> None:
    """Generate from PROMPT and show each token's probability and top alternatives."""
    from tokviz import pipeline

    text = common.read_text_arg(prompt)
    params = Params(top_k=top_k, max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                    seed=seed, mode="chat" if (chat or system) else "raw")
    request = Request(prompt=text, model=model or default_model(), params=params, system=system,
                      base_url=base_url, timeout=timeout, retries=retries)
    pipeline.resolve(request, provider)
    planned = common.plan_outputs(output or [])
    if save is not None:
        check_writable(save)
    err = common.stderr()
    run = pipeline.predict(request, provider=provider, progress=lambda msg: err.print(msg, style="dim"))
    if save is not None:
        write_atomic(save, run.to_json().encode("utf-8"))
    common.write_outputs(run, planned, export.RenderOptions(wrap=wrap))
    if quiet:
        return
    out = common.stdout()
    if as_json:
        out.file.write(run.to_json())
    else:
        out.print(table.view(run))
