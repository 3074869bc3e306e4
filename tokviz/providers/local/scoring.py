"""Scoring a given text: every token's teacher-forced log-probability, its alternatives and its rank.

Fast by default (64 positions per decode, every row reduced before the next decode, so memory does
not grow with the text); `--exact` decodes one token at a time as `predict` does; past the window
the text is scored in sliding windows (the Hugging Face perplexity guide's method).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tokviz.ground.errors import ProviderError, UsageError
from tokviz.providers.base import Progress, Request, ScoreSpec, Stopped
from tokviz.providers.local.engine import Loaded, forget_cache, last_logits, step_of, train_context
from tokviz.providers.local.models import probe, resolve_model_path, shown_name, sized
from tokviz.providers.logits import reduce_row, reduce_rows
from tokviz.providers.scoring import scored_run, windowing, windows
from tokviz.run import Run, Step

SCORE_CHUNK = 64  # positions per batched scoring decode: 64 MiB of llama.cpp's logits buffer



def teacher_force(m: Loaded, tokens: Sequence[int], rows: range, k: int, exact: bool) -> Iterator[tuple[Any, int]]:
    """(reduced row, row index) for each row in `rows` of the logits of `tokens` (row j predicts
    tokens[j + 1]), decoding from an empty cache."""
    llm = m.llm
    forget_cache(m)
    if exact:
        try:
            llm.eval(list(tokens[: rows.start + 1]))
            for j in rows:
                yield reduce_row(last_logits(m), k, tokens[j + 1]), j
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
            for j, reduced in zip(range(start, stop), reduce_rows(out, k, [tokens[j + 1] for j in range(start, stop)])):
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
    bos = m.llm.token_bos()
    steps: list[Step] = []
    stopped: BaseException | None = None
    try:
        for begin, end, first in spans:
            tokens = [bos, *seq[begin:end]]
            # Row j of the window predicts tokens[j + 1] = seq[begin + j].
            rows = range(first - begin, end - begin)
            for reduced, row in teacher_force(m, tokens, rows, params.top_k, spec.exact):
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
