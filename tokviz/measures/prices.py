"""A small, dated price table for estimating what an OpenAI run cost.

Prices change; this table says when it was taken, and `TOKVIZ_PRICES` may point at a JSON file
({"provider": {"model": {"input": usd_per_1M, "output": usd_per_1M}}}) that overrides or extends it.
Prices are keyed by (provider, model): the same model name served by a local server or by another
provider costs something else, or nothing. Model names match by longest prefix, so dated snapshots
(gpt-4.1-mini-2025-04-14) find their family.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokviz.ground import environment

PRICES_DATE = "2025-04"
# USD per million tokens: (input, output), OpenAI's list prices for standard processing.
Prices = dict[tuple[str, str], tuple[float, float]]
PRICES: Prices = {
    ("openai", "gpt-4.1"): (2.00, 8.00),
    ("openai", "gpt-4.1-mini"): (0.40, 1.60),
    ("openai", "gpt-4.1-nano"): (0.10, 0.40),
    ("openai", "gpt-4o"): (2.50, 10.00),
    ("openai", "gpt-4o-mini"): (0.15, 0.60),
    ("openai", "gpt-4-turbo"): (10.00, 30.00),
    ("openai", "gpt-3.5-turbo"): (0.50, 1.50),
}


def table() -> tuple[Prices, str]:
    """The prices in force and where they come from (the built-in table, or an override file)."""
    override = environment.current().environ.get("TOKVIZ_PRICES")
    if not override:
        return PRICES, f"built-in table of {PRICES_DATE}"
    try:
        data = json.loads(Path(override).read_text(encoding="utf-8"))
        extra = {(str(p), str(m)): (float(v["input"]), float(v["output"]))
                 for p, models in data.items() for m, v in models.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return PRICES, f"built-in table of {PRICES_DATE} ({override} unreadable)"
    return {**PRICES, **extra}, f"{override} over the built-in table of {PRICES_DATE}"


def estimate_cost(provider: str, model: str, usage: dict[str, int]) -> tuple[float | None, str | None]:
    """The run's cost at list prices, and where the price comes from; (None, None) when unknown."""
    prices, source = table()
    names = [m for (p, m) in prices if p == provider and (model == m or model.startswith(m + "-"))]
    match = max(names, key=len, default=None)
    if match is None or "prompt_tokens" not in usage:
        return None, None
    inp, out = prices[(provider, match)]
    cost = (usage.get("prompt_tokens", 0) * inp + usage.get("completion_tokens", 0) * out) / 1_000_000
    return cost, f"{match} at ${inp:g}/${out:g} per 1M tokens ({source})"
