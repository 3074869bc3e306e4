"""`tokviz tokenize`: how a model splits a text into tokens, with no generation."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from tokviz.commands import common


def tokenize(
    text: Annotated[str, typer.Argument(metavar="TEXT", help='The text; "-" reads it from standard input.')],
    model: Annotated[Optional[str], typer.Option("--model", "-m", metavar="MODEL", help="Model whose tokenizer to use (OpenAI names use tiktoken, offline). Default: $TOKVIZ_MODEL or the embedded gemma-3-270m.", show_default=False)] = None,
    provider: Annotated[Optional[str], typer.Option("--provider", "-p", metavar="NAME", help="Provider; inferred from the model when omitted.", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the tokens as JSON on stdout.")] = False,
) -> None:
    """Show the token ids and pieces a model's tokenizer makes of TEXT."""
    from tokviz import pipeline
    from tokviz.providers.registry import default_model
    from tokviz.views import tokenization

    err = common.stderr()
    result = pipeline.tokenize(common.read_text_arg(text), model or default_model(), provider=provider,
                               progress=lambda msg: err.print(msg, style="dim"))
    out = common.stdout()
    if as_json:
        out.file.write(result.to_json())
    else:
        out.print(tokenization.view(result))
