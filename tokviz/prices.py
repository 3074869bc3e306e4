"""A small, dated price table for estimating what an OpenAI run cost.

Prices change; this table says when it was taken, and `TOKVIZ_PRICES` may point at a JSON file
({"model": {"input": usd_per_1M, "output": usd_per_1M}}) that overrides or extends it. Model names
match by longest prefix, so dated snapshots (gpt-4.1-mini-2025-04-14) find their family.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

PRICES_DATE = "2025-04"
# USD per million tokens: (input, output), OpenAI's list prices for standard processing.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-3.5-turbo": (0.50, 1.50),
}


def table() -> tuple[dict[str, tuple[float, float]], str]:
    """The prices in force and where they come from (the built-in table, or an override file)."""
    override = os.environ.get("TOKVIZ_PRICES")
    if not override:
        return PRICES, f"built-in table of {PRICES_DATE}"
    try:
        data = json.loads(Path(override).read_text(encoding="utf-8"))
        extra = {str(k): (float(v["input"]), float(v["output"])) for k, v in data.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return PRICES, f"built-in table of {PRICES_DATE} ({override} unreadable)"
    return {**PRICES, **extra}, f"{override} over the built-in table of {PRICES_DATE}"


def estimate_cost(model: str, usage: dict[str, int]) -> tuple[float | None, str | None]:
    prices, source = table()
    match = max((name for name in prices if model == name or model.startswith(name + "-")), key=len, default=None)
    if match is None or "prompt_tokens" not in usage:
        return None, None
    inp, out = prices[match]
    cost = (usage.get("prompt_tokens", 0) * inp + usage.get("completion_tokens", 0) * out) / 1_000_000
    return cost, f"{match} at ${inp:g}/${out:g} per 1M tokens ({source})"
