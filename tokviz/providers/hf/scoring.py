"""Scoring a given text with a transformers model: every token's teacher-forced log-probability,
its alternatives and its rank among the whole vocabulary.

Fast by default: the model's body reads the text in passes of up to 512 positions (the KV cache
carried between them) and the output layer makes the logits in chunks of at most 512 MiB, so memory does not
grow with the text (a model whose logits are more than its output layer — soft-capped, scaled — is
read through its whole forward pass, 64 positions at a time); `--exact` feeds one token at a time
as `predict` does, so a generated text scores to exactly the figures predict recorded.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from tokviz.ground.errors import UsageError
from tokviz.providers.base import Request, ScoreSpec, Stopped
from tokviz.providers.hf.chat import text_ids
from tokviz.providers.hf.cursor import step_of, watch_ids
from tokviz.providers.hf.forward import head, hidden, new_cache, rows
from tokviz.providers.logits import pool as logits_pool
from tokviz.providers.scoring import scored_run, windowing, windows
from tokviz.run import Run, Step

if TYPE_CHECKING:
    from tokviz.providers.hf.models import Model

CHUNK = 64  # positions per forward pass when scoring a model whose output layer cannot be applied apart
BODY = 512  # positions the body reads per pass (hidden states only: 1.3 MB for Gemma 3 270M)
HEAD_BYTES = 512 << 20  # logits made at once: 512 rows of Gemma 3's 262,144-token vocabulary, 4,096 of a 32k one
# Measured on 400 tokens of Gemma 3 270M on 2 cores: one bare forward pass 1.71 s; chunks of 64 through the
# whole model 2.4 s; the body in one pass 0.56 s; the output layer 1.16 s over 400 rows at once, 1.31 s
# in chunks of 256, 1.52 s in chunks of 128 (a matrix multiply is faster the more rows it has).


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
    watch = watch_ids(m, params.watch)
    seq = context + ids
    spans = windows(len(seq), window - len(start), stride, max(len(context), 1 - len(start)))
    steps: list[Step] = []
    stopped: BaseException | None = None
    try:
        for begin, end, first in spans:
            tokens = [*start, *seq[begin:end]]
            offset = len(start)  # row j of the window predicts tokens[j + 1]
            # Each row is reduced on the pool while the next rows are made (numpy and torch release
            # the GIL); results are taken in order, and at most one chunk of rows waits.
            pending: deque[Future[Step]] = deque()
            for row, j in teacher_force(m, tokens, range(first - begin + offset - 1, end - begin + offset - 1),
                                        spec.exact):
                pending.append(logits_pool().submit(step_of, m, row, tokens[j + 1], params.top_k, rank=True, watch=watch))
                while pending and (pending[0].done() or len(pending) > CHUNK):
                    steps.append(pending.popleft().result())
                    if on_token is not None:
                        on_token(len(steps), len(ids))
            while pending:
                steps.append(pending.popleft().result())
                if on_token is not None:
                    on_token(len(steps), len(ids))
    except KeyboardInterrupt as cause:  # the positions scored before a stop are kept
        if not steps or isinstance(cause, Stopped):
            raise
        stopped = cause
    source = {"engine": m.engine, "precision": m.precision, "figures": "before sampling",
              "scoring": "teacher-forced, one token at a time as predict reads them (exact)" if spec.exact else
              ("teacher-forced, the text read in passes of up to "
              f"{BODY if m.plain_head else CHUNK} positions (fast; --exact reads as predict does)")}
    return scored_run(request, provider=name, model=m.name, steps=steps, text_tokens=len(ids),
                      prompt_tokens=len(context) + len(start), spans=len(spans), window=window, stride=stride,
                      conditioned=window - stride - len(start), elapsed=time.perf_counter() - t0, source=source,
                      stopped=stopped)


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
    if m.plain_head:  # the body by long passes, the output layer by bounded chunks of rows
        rows_at_once = max(CHUNK, HEAD_BYTES // (4 * len(m.tokenizer)))
        for body_start in range(0, wanted.stop, BODY):
            states = hidden(m, tokens[body_start:min(body_start + BODY, wanted.stop)], cache)
            first = max(wanted.start, body_start)
            for begin in range(first, min(body_start + BODY, wanted.stop), rows_at_once):
                end = min(begin + rows_at_once, body_start + BODY, wanted.stop)
                chunk = head(m, states[begin - body_start:end - body_start])
                for j in range(begin, end):
                    yield chunk[j - begin], j
        return
    if wanted.start:
        rows(m, tokens[: wanted.start], cache, keep=1)
    for begin in range(wanted.start, wanted.stop, CHUNK):
        end = min(begin + CHUNK, wanted.stop)
        chunk = rows(m, tokens[begin:end], cache)
        for j in range(begin, end):
            yield chunk[j - begin], j


def weigh(m: Model, request: Request, choices: Sequence[str], *, name: str) -> list[Run]:
    """Each choice teacher-forced after the prompt, which is read once: the KV cache is cut back to
    it after each choice (read again only where a sliding-window layer cannot be cut), and each
    choice is fed one token at a time, as `score --exact` of context + choice feeds it."""
    from dataclasses import replace

    from tokviz.providers.choices import EXACT, choice_run, split
    from tokviz.providers.hf.chat import prompt_ids
    from tokviz.providers.hf.forward import cut

    params = request.params
    t0 = time.perf_counter()
    context, moved = split(request)
    if params.mode == "chat":
        ids, _ = prompt_ids(m, request)
        conts = [text_ids(m, moved + c) for c in choices]
        how = "teacher-forced after the chat turn's header, one token at a time (exact)"
    else:
        own = text_ids(m, context)
        ids = ([m.bos] if m.bos is not None else []) + own
        conts = [text_ids(m, context + moved + c)[len(own):] for c in choices]
        how = "teacher-forced after the context, one token at a time (exact, as score --exact)"
        if not ids:
            raise UsageError(f"{m.name} reads no beginning-of-text token, so a choice after an empty prompt has no "
                             "probability", hint="give a prompt")
    for choice, cont in zip(choices, conts):
        if not cont:
            raise UsageError(f"the choice {choice!r} adds no token of its own after the context")
    cache = new_cache(m)
    first = rows(m, ids, cache, keep=1)[-1].copy()
    runs = []
    for choice, cont in zip(choices, conts):
        if not cut(m, cache, len(ids)):
            cache = new_cache(m)
            first = rows(m, ids, cache, keep=1)[-1].copy()
        row = first
        steps = []
        for n, token in enumerate(cont):
            steps.append(step_of(m, row, token, params.top_k, rank=True))
            if n + 1 < len(cont):
                row = rows(m, [token], cache)[-1]
        runs.append(choice_run(request, choice, steps, provider=name, model=m.name, figure=EXACT, how=how, moved=moved,
                               source={"engine": m.engine, "precision": m.precision, "figures": "before sampling"},
                               usage={"prompt_tokens": len(ids), "scored_tokens": len(steps)}))
    elapsed = time.perf_counter() - t0
    return [replace(r, timings={"total_s": elapsed}) for r in runs]
