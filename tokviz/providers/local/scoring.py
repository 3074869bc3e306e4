"""Scoring a given text: every token's teacher-forced log-probability, its alternatives and its rank.

Fast by default (64 positions per decode, every row reduced before the next decode, so memory does
not grow with the text); `--exact` decodes one token at a time as `predict` does; past the window
the text is scored in sliding windows (the Hugging Face perplexity guide's method).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from tokviz.ground.errors import ProviderError, UsageError
from tokviz.providers.base import Progress, Request, ScoreSpec, Stopped
from tokviz.providers.local.engine import (
    Loaded,
    forget_cache,
    last_logits,
    read_prompt,
    step_of,
    train_context,
    watch_ids,
)
from tokviz.providers.local.models import probe, resolve_model_path, shown_name, sized
from tokviz.providers.logits import reduce_row, reduce_rows
from tokviz.providers.scoring import scored_run, windowing, windows
from tokviz.run import Run, Step

SCORE_CHUNK = 64  # positions per batched scoring decode: 64 MiB of llama.cpp's logits buffer



def teacher_force(m: Loaded, tokens: Sequence[int], rows: range, k: int, exact: bool,
                  watch: Sequence[int] = ()) -> Iterator[tuple[Any, int]]:
    """(reduced row, row index) for each row in `rows` of the logits of `tokens` (row j predicts
    tokens[j + 1]), decoding from an empty cache."""
    llm = m.llm
    forget_cache(m)
    if exact:
        try:
            llm.eval(list(tokens[: rows.start + 1]))
            for j in rows:
                yield reduce_row(last_logits(m), k, tokens[j + 1], watch=watch), j
                if j + 1 < rows.stop:
                    llm.eval([tokens[j + 1]])
        except RuntimeError as err:
            raise ProviderError(f"the model failed to read the text: {err}") from None
        return
    import llama_cpp
    import numpy as np

    batch = llama_cpp.llama_batch_init(max(SCORE_CHUNK, 512), 0, 1)
    try:
        def decode(start: int, stop: int, logits: bool) -> None:
            batch.n_tokens = stop - start
            for i, pos in enumerate(range(start, stop)):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = tokens[pos], pos, 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = logits
            code = llama_cpp.llama_decode(llm.ctx, batch)
            if code != 0:
                raise ProviderError(f"the model failed to read the text (llama_decode returned {code})")

        for start in range(0, rows.start, 512):  # the context: no logits needed
            decode(start, min(start + 512, rows.start), False)
        for start in range(rows.start, rows.stop, SCORE_CHUNK):
            stop = min(start + SCORE_CHUNK, rows.stop)
            decode(start, stop, True)
            out = np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm.ctx), shape=(stop - start, m.n_vocab))
            for j, reduced in zip(range(start, stop), reduce_rows(out, k, [tokens[j + 1] for j in range(start, stop)], watch)):
                yield reduced, j
    finally:
        llama_cpp.llama_batch_free(batch)


def score(request: Request, text: str, *, name: str, progress: Progress,
          on_token: Callable[[int, int], None] | None = None, spec: ScoreSpec | None = None) -> Run:
    """The teacher-forced log-probability of every token of `text` after `request.prompt`
    (the context, conditioned on but not scored), with the top-k alternatives at every
    position and the token's rank among the whole vocabulary.

    Fast by default: 64 positions per decode, every row reduced (k + 1 logprobs and one rank)
    before the next decode, so memory does not grow with the text. `spec.exact` decodes the
    way `predict` does (the context in one batch, then one token at a time), so scoring a text
    `predict` generated gives back exactly the logprobs it recorded; the fast path differs
    from it by llama.cpp's batch-shape rounding (measured in docs/score.md). Past the window
    (the model's context unless given), the text is scored in sliding windows.
    """
    spec = spec or ScoreSpec()
    params = request.params
    path = resolve_model_path(request.model, progress)
    threads = params.options.get("n_threads")
    t0 = time.perf_counter()
    probed = probe(path, threads)
    context = probed.llm.tokenize(request.prompt.encode("utf-8"), add_bos=False, special=False)
    ids = probed.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
    if not ids:
        raise UsageError("the text to score is empty")
    limit = train_context(probed)
    window, stride = windowing(spec, limit)
    seq = context + ids
    spans = windows(len(seq), window - 1, stride, len(context))  # one place is <bos>
    longest = max(end - begin for begin, end, _ in spans) + 1
    m = sized(probed, path, threads, longest + 1)
    watch = watch_ids(m, params.watch, shown_name(request.model))
    bos = m.llm.token_bos()
    steps: list[Step] = []
    stopped: BaseException | None = None
    try:
        for begin, end, first in spans:
            tokens = [bos, *seq[begin:end]]
            # Row j of the window predicts tokens[j + 1] = seq[begin + j].
            rows = range(first - begin, end - begin)
            for reduced, row in teacher_force(m, tokens, rows, params.top_k, spec.exact, watch):
                target = tokens[row + 1]
                steps.append(step_of(m, reduced, target))
                if on_token is not None:
                    on_token(len(steps), len(ids))
    except KeyboardInterrupt as cause:  # the positions scored before a stop are kept (Stopped, below)
        if not steps or isinstance(cause, Stopped):
            raise
        stopped = cause
    finally:
        m.llm.n_tokens = 0  # the KV cache no longer matches what the Llama object believes it holds
    source = {"scoring": "teacher-forced, one token at a time as predict decodes (exact)" if spec.exact else
              f"teacher-forced, {SCORE_CHUNK} positions per decode (fast; --exact decodes as predict does)"}
    return scored_run(request, provider=name, model=shown_name(request.model), steps=steps, text_tokens=len(ids),
                      prompt_tokens=len(context) + 1, spans=len(spans), window=window, stride=stride,
                      conditioned=window - stride - 1, elapsed=time.perf_counter() - t0, source=source,
                      stopped=stopped)


def weigh(request: Request, choices: Sequence[str], *, name: str, progress: Progress) -> list[Run]:
    """Each choice's tokens teacher-forced after the prompt, which is read once: its cache cells and
    its last row are kept (`read_prompt`), and each choice is decoded one token at a time after it,
    exactly as `score --exact` of context + choice decodes (so the two agree to the bit).

    Raw text is split as lm-evaluation-harness splits it (`providers/choices.py`); in chat mode the
    choices continue the model's turn and are tokenized on their own after its header."""
    from tokviz.providers.choices import EXACT, choice_run, split
    from tokviz.providers.local.chat import prompt_tokens

    params = request.params
    path = resolve_model_path(request.model, progress)
    threads = params.options.get("n_threads")
    t0 = time.perf_counter()
    probed = probe(path, threads)
    llm = probed.llm
    context, moved = split(request)
    if params.mode == "chat":
        ids, _ = prompt_tokens(llm, request)
        conts = [llm.tokenize((moved + c).encode("utf-8"), add_bos=False, special=False) for c in choices]
        how = "teacher-forced after the chat turn's header, one token at a time (exact)"
    else:
        own = llm.tokenize(context.encode("utf-8"), add_bos=False, special=False)
        ids = [llm.token_bos(), *own]
        conts = [llm.tokenize((context + moved + c).encode("utf-8"), add_bos=False, special=False)[len(own):]
                 for c in choices]
        how = "teacher-forced after the context, one token at a time (exact, as score --exact)"
    for choice, cont in zip(choices, conts):
        if not cont:
            raise UsageError(f"the choice {choice!r} adds no token of its own after the context",
                             hint="the context's last token already holds it; end the context earlier")
    m = sized(probed, path, threads, len(ids) + max(len(c) for c in conts) + 1)
    runs = []
    for choice, cont in zip(choices, conts):
        row = read_prompt(m, ids)  # the prompt is read once: later choices find its cells kept
        steps = []
        for n, token in enumerate(cont):
            steps.append(step_of(m, reduce_row(row, params.top_k, token), token))
            if n + 1 < len(cont):
                try:
                    m.llm.eval([token])
                except RuntimeError as err:
                    raise ProviderError(f"the model failed to read a choice: {err}") from None
                row = last_logits(m)
        runs.append(choice_run(request, choice, steps, provider=name, model=shown_name(request.model),
                               figure=EXACT, how=how, moved=moved,
                               usage={"prompt_tokens": len(ids), "scored_tokens": len(steps)}))
    elapsed = time.perf_counter() - t0
    return [replace(r, timings={"total_s": elapsed}) for r in runs]
