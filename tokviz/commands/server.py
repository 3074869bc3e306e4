"""`tokviz server URL`: what a server sends for log-probabilities, before trusting its figures."""

from __future__ import annotations

from typing import Annotated

import typer

from tokviz.commands import common


def server(
    url: Annotated[str, typer.Argument(metavar="URL", help="The server's base URL, e.g. http://127.0.0.1:8080/v1.")],
    timeout: Annotated[float, typer.Option("--timeout", metavar="X", help="Seconds to wait for each probe.")] = 10.0,
) -> None:
    """Probe an OpenAI-compatible server: its dialect, and what tokviz can show from it."""
    from rich.text import Text

    from tokviz.providers import registry
    from tokviz.providers.base import Request, ServerDescriber, check_base_url

    check_base_url(url, "the URL")  # named as the user gave it: positionally, not as --base-url
    opened = registry.get_provider(registry.infer_provider("", url))
    lines = registry.require(opened, ServerDescriber, "describe a server").describe(
        Request(prompt="", base_url=url, timeout=timeout))
    out = Text()
    for ok, line in lines:
        mark, style = ("✓", "green") if ok else ("✗", "red") if ok is False else ("·", "dim")
        out.append(f"{mark} ", style=style)
        out.append(line + "\n")
    common.stdout().print(out, end="", soft_wrap=True)  # one fact per line, whole, for grep
