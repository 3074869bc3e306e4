"""What a run's log-probabilities are — before sampling, after temperature, after sampling, or not
known — in the few words every view shows. Recorded with the run (source["figures"]: a server's
dialect, else the provider's spec, stamped at the provider gate: providers/redacting.py), never assumed."""

from __future__ import annotations

from collections.abc import Mapping

UNKNOWN = "unknown"

# How older runs' source["logprobs"] notes said what their figures were (before source["figures"]).
_WORDS = (("after temperature", "after temperature"), ("after sampling", "after sampling"),
          ("before sampling", "before sampling"), ("raw model", "before sampling"))


def of(source: Mapping[str, str]) -> str:
    """A run's figures from its source notes: as recorded, else read from an older run's longer
    note, else unknown."""
    recorded = source.get("figures")
    if recorded:
        return recorded
    note = source.get("logprobs", "").lower()
    return next((short for words, short in _WORDS if words in note), UNKNOWN)


def say(figures: str) -> str:
    """What the percentages are, in the words every view uses (Run.figures_note, the explorer)."""
    return "probabilities: before or after sampling not known" if figures == UNKNOWN else f"probabilities {figures}"
