"""What every provider that scores a text in this process shares: the sliding windows over a text
longer than the model's context (the Hugging Face perplexity guide's method) and the scored run
with its notes, so llama.cpp's and transformers' scores read alike."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from tokviz.ground.errors import UsageError
from tokviz.providers.base import Request, ScoreSpec, Stopped
from tokviz.run import Run, RunKind, Step


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


def scored_run(request: Request, *, provider: str, model: str, steps: Sequence[Step], text_tokens: int,
               prompt_tokens: int, spans: int, window: int, stride: int, conditioned: int, elapsed: float,
               source: Mapping[str, str], stopped: BaseException | None) -> Run:
    """The run of a score: `steps` of the `text_tokens` the text has, read after `prompt_tokens`
    (the context and any <bos>), in `spans` windows each conditioning a token on at least
    `conditioned` before it. A score stopped by Ctrl-C or SIGTERM is raised as `Stopped` carrying
    what was scored."""
    notes = dict(source)
    if spans > 1:
        notes["window"] = (f"sliding window of {window} tokens moved by {stride}: {spans} windows, "
                           f"each token conditioned on at least {conditioned} before it")
    if stopped is not None:
        notes["interrupted"] = f"stopped after {len(steps)} of {text_tokens} tokens (Ctrl-C or SIGTERM)"
    run = Run(provider=provider, model=model, prompt=request.prompt,
              params=replace(request.params, max_tokens=text_tokens), steps=tuple(steps),
              finish_reason="interrupted" if stopped else None, kind=RunKind.SCORE,
              usage={"prompt_tokens": prompt_tokens, "scored_tokens": len(steps)},
              timings={"total_s": elapsed, "tokens_per_s": len(steps) / elapsed if elapsed > 0 else 0.0},
              source=notes)
    if stopped is not None:
        raise Stopped(run, stopped)
    return run
