"""Scoring a given text with a transformers model: every token's teacher-forced log-probability,
its alternatives and its rank among the whole vocabulary.

Fast by default: the text is read in chunks of 64 positions (one forward pass each, the KV cache
carried between them, so memory does not grow with the text); `--exact` feeds one token at a time
as `predict` does, so a generated text scores to exactly the figures predict recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tokviz.ground.errors import UsageError
from tokviz.providers.base import Request, ScoreSpec, Stopped
from tokviz.providers.hf.chat import text_ids
from tokviz.providers.hf.cursor import step_of
from tokviz.providers.hf.forward import new_cache, rows
from tokviz.providers.windows import windowing, windows
from tokviz.run import Run, RunKind, Step

if TYPE_CHECKING:
    from tokviz.providers.hf.models import Model

CHUNK = 64  # positions per forward pass when scoring (64 rows of the vocabulary: 64 MiB for Gemma 3)


def score(m: Model, request: Request, text: str, *, name: str, on_token: Callable[[int, int], None] | None,
          spec: ScoreSpec) -> Run:
    """See the module: `request.prompt` is the context, read but not scored."""
    params = request.params
    t0 = time.perf_counter()
    context = text_ids(m, request.prompt)
    ids = text_ids(m, text)
    if not ids:
        raise UsageError("the text to score is empty")
    start = [m.bos] if m.bos is not None else []
    if not start and not context:
        raise UsageError(f"{m.name} reads no beginning-of-text token, so the first token of the text has no "
                         "probability", hint="give --context")
    window, stride = windowing(spec, m.context)
    seq = context + ids
    spans = windows(len(seq), window - len(start), stride, max(len(context), 1 - len(start)))
    steps: list[Step] = []
    stopped: BaseException | None = None
    try:
        for begin, end, first in spans:
            tokens = [*start, *seq[begin:end]]
            offset = len(start)  # row j of the window predicts tokens[j + 1]
            for row, j in teacher_force(m, tokens, range(first - begin + offset - 1, end - begin + offset - 1),
                                        spec.exact):
                steps.append(step_of(m, row, tokens[j + 1], params.top_k, rank=True))
                if on_token is not None:
                    on_token(len(steps), len(ids))
    except KeyboardInterrupt as cause:  # the positions scored before a stop are kept
        if not steps or isinstance(cause, Stopped):
            raise
        stopped = cause
    elapsed = time.perf_counter() - t0
    source = {"engine": m.engine, "figures": "before sampling",
              "scoring": "teacher-forced, one token at a time as predict reads them (exact)" if spec.exact else
              f"teacher-forced, {CHUNK} positions per forward pass (fast; --exact reads as predict does)"}
    if len(spans) > 1:
        source["window"] = (f"sliding window of {window} tokens moved by {stride}: {len(spans)} windows, "
                            f"each token conditioned on at least {window - stride - len(start)} before it")
    if stopped is not None:
        source["interrupted"] = f"stopped after {len(steps)} of {len(ids)} tokens (Ctrl-C or SIGTERM)"
    run = Run(provider=name, model=m.name, prompt=request.prompt, params=replace(params, max_tokens=len(ids)),
              steps=tuple(steps), finish_reason="interrupted" if stopped else None, kind=RunKind.SCORE,
              usage={"prompt_tokens": len(context) + len(start), "scored_tokens": len(steps)},
              timings={"total_s": elapsed, "tokens_per_s": len(steps) / elapsed if elapsed > 0 else 0.0},
              source=source)
    if stopped is not None:
        raise Stopped(run, stopped)
    return run


def teacher_force(m: Model, tokens: Sequence[int], wanted: range, exact: bool) -> Iterator[tuple[Any, int]]:
    """(logits row, j) for each j in `wanted`: row j is the model's prediction of tokens[j + 1]."""
    cache = new_cache(m)
    if exact:  # as predict: everything before the first wanted row in one pass, then one token at a time
        row = rows(m, tokens[: wanted.start + 1], cache, keep=1)[-1]
        for j in wanted:
            yield row, j
            if j + 1 < wanted.stop:
                row = rows(m, [tokens[j + 1]], cache)[-1]
        return
    if wanted.start:
        rows(m, tokens[: wanted.start], cache, keep=1)
    for begin in range(wanted.start, wanted.stop, CHUNK):
        end = min(begin + CHUNK, wanted.stop)
        chunk = rows(m, tokens[begin:end], cache)
        for j in range(begin, end):
            yield chunk[j - begin], j
