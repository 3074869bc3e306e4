"""Sliding windows over a text longer than a model's context (the Hugging Face perplexity guide's
method): one decision, shared by every provider that scores in this process."""

from __future__ import annotations

from tokviz.ground.errors import UsageError
from tokviz.providers.base import ScoreSpec


def windowing(spec: ScoreSpec, limit: int) -> tuple[int, int]:
    """The window and stride of a score, checked against the model's context."""
    window = spec.window or limit
    if not 2 <= window <= limit:
        raise UsageError(f"--window must be between 2 and the model's context of {limit} tokens, got {window}")
    stride = spec.stride or max(1, window // 2)
    if not 1 <= stride < window:
        raise UsageError(f"--stride must be between 1 and the window ({window}) minus one, got {stride}")
    return window, stride


def windows(length: int, size: int, stride: int, skip: int) -> list[tuple[int, int, int]]:
    """(begin, end, first scored) spans over a sequence of `length` tokens: windows of `size`
    tokens moved by `stride`, each scoring the tokens the previous one did not reach, the first
    `skip` tokens (the context) never scored. One window when it all fits."""
    spans = []
    prev_end = 0
    for begin in range(0, max(length, 1), stride):
        end = min(begin + size, length)
        first = max(prev_end, skip)
        if end > first:
            spans.append((begin, end, first))
        prev_end = end
        if end == length:
            break
    return spans
