"""`tokviz providers`: what is installed, where it comes from, and what each can do."""

from __future__ import annotations

from typing import Annotated

import typer

from tokviz.commands import common
from tokviz.run import codec


def providers(
    as_json: Annotated[bool, typer.Option("--json", help="Print the providers as JSON on stdout.")] = False,
) -> None:
    """List the installed providers (built-in and plugins): models they claim, capabilities, options."""
    from rich.text import Text

    from tokviz.providers import registry
    from tokviz.run import tokens as tok

    specs = list(registry.iter_specs())
    out = common.stdout()
    if as_json:
        doc = [{"name": s.name, "source": s.source, "description": s.description, "models": list(s.models),
                "claims_base_url": s.claims_base_url, "base_url_env": s.base_url_env, "secret_env": s.secret_env,
                "concurrent": s.concurrent, "max_top_k": s.max_top_k,
                "capabilities": [c.value for c in s.abilities()],
                "options": [{"name": o.name, "type": o.kind.__name__, "help": o.help} for o in s.options]}
               for s in specs]
        out.file.write(codec.dumps({"providers": doc}, ensure_ascii=False, indent=2) + "\n")
        return
    lines = Text()
    for s in specs:
        lines.append(s.name, style="bold")
        lines.append(tok.safe(f"  ({s.source})  {s.description}") + "\n")
        can = ", ".join(c.value for c in s.abilities())
        parallel = "concurrent requests" if s.concurrent else "one request at a time"
        lines.append(f"  can: {can} · top-k up to {s.max_top_k} · {parallel}\n", style="dim")
        claims = [*s.models, *(["any model at --base-url" + (f" or ${s.base_url_env}" if s.base_url_env else "")]
                               if s.claims_base_url else [])]
        if claims:
            lines.append(f"  claims: {' | '.join(claims)}\n", style="dim")
        if s.secret_env:
            lines.append(f"  key: ${s.secret_env}\n", style="dim")
        for o in s.options:
            lines.append(f"  -O {o.name}={o.kind.__name__.upper()}  {o.help}\n", style="dim")
    out.print(lines, end="")
