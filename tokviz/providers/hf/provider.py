"""The transformers provider: predict, score, tokenize, trees and the explorer on any causal model
transformers can run, with the same row arithmetic as the llama.cpp engine (`tokviz.providers.logits`
for log-probabilities, top-k and ranks; `tokviz.providers.draw` for sampling)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from tokviz.ground.errors import TokvizError, UsageError
from tokviz.providers.base import MAX_PARALLEL, Progress, Request, ScoreSpec, StepListener, Stopped, Take, TreeSpec
from tokviz.providers.draw import sample
from tokviz.providers.hf import scoring, together
from tokviz.providers.hf.chat import prompt_ids, text_ids
from tokviz.providers.hf.cursor import Cursor, step_of, watch_ids
from tokviz.providers.hf.forward import new_cache, rows
from tokviz.providers.hf.models import Model, check_context, load
from tokviz.providers.hf.pieces import token_of
from tokviz.providers.logits import pool as logits_pool
from tokviz.providers.masks import forbidden_marks
from tokviz.run import Run, Step, Token, Tokenization


class TransformersProvider:
    """Runs a causal language model in this process through Hugging Face transformers."""

    name = "transformers"

    def __init__(self, *, progress: Progress) -> None:
        self.progress = progress

    def _model(self, request: Request) -> Model:
        return load(request.model, request.params.options, self.progress)

    def predict(self, request: Request, on_step: StepListener | None = None) -> Run:
        import numpy as np

        params = request.params
        if params.temperature > 0 and params.seed is None:
            params = replace(params, seed=random.randrange(2**31))  # recorded, so replayable
        t0 = time.perf_counter()
        m = self._model(request)
        ids, messages = prompt_ids(m, request)
        check_context(m, len(ids), params.max_tokens, "--max-tokens")
        load_s = time.perf_counter() - t0
        rng = np.random.default_rng(params.seed)
        watch = watch_ids(m, params.watch)
        cache = new_cache(m)
        t = time.perf_counter()
        row = rows(m, ids, cache, keep=1)[-1]
        prefill_s = time.perf_counter() - t
        steps: list[Step] = []
        finish = "length"
        first_s = 0.0
        pool = logits_pool()  # each row reduced on another thread while the next token is read
        grammar = None
        if params.json_schema is not None:
            from tokviz.providers.hf.grammar import Grammar

            grammar = Grammar(m, params.json_schema, len(row))
        for n in range(params.max_tokens):
            t_step = time.perf_counter()
            masked = grammar.mask(row) if grammar is not None else None
            chosen = sample(row if masked is None else masked, params, rng)
            if chosen in m.stop_ids:
                finish = "stop"
                break
            if grammar is not None:
                grammar.accept(chosen)
            reducing = pool.submit(step_of, m, row.copy(), chosen, params.top_k, rank=False, watch=watch)
            try:
                if n + 1 < params.max_tokens:
                    row = rows(m, [chosen], cache)[-1]
            finally:
                step = reducing.result()
                steps.append(step if masked is None else forbidden_marks(step, masked))
            if on_step is not None:
                on_step(steps[-1])
            if n == 0:
                first_s = time.perf_counter() - t_step
        decode_s = max(time.perf_counter() - t - prefill_s, 1e-9)
        source = {"engine": m.engine, "precision": m.precision, "figures": "before sampling"}
        if grammar is not None:
            source["structured"] = ("the answer was held to a JSON schema by llguidance; every figure is the model's own, "
                                    "before the grammar's mask (⊘: an alternative the grammar forbade)")
        return Run(provider=self.name, model=m.name, prompt=request.prompt, params=params, steps=tuple(steps),
                   messages=messages, finish_reason=finish,
                   usage={"prompt_tokens": len(ids), "completion_tokens": len(steps)},
                   timings={"load_s": load_s, "prefill_s": prefill_s, "ttft_s": prefill_s + first_s,
                            "decode_s": decode_s, "tokens_per_s": len(steps) / decode_s if steps else 0.0},
                   source=source)

    def predict_live(self, request: Request, on_step: StepListener) -> Run:
        return self.predict(request, on_step)

    def score(self, request: Request, text: str, progress: Callable[[int, int], None] | None = None,
              spec: ScoreSpec | None = None) -> Run:
        """See `scoring.score`."""
        return scoring.score(self._model(request), request, text, name=self.name, on_token=progress,
                             spec=spec or ScoreSpec())

    def weigh(self, request: Request, choices: Sequence[str]) -> list[Run]:
        """See `scoring.weigh`."""
        return scoring.weigh(self._model(request), request, choices, name=self.name)

    def predict_parallel(self, requests: Sequence[Request], slots: int | None = None) -> list[Run]:
        """Several requests for one model, up to `slots` in one forward pass per step (`together`)."""
        if len({r.model for r in requests}) > 1:
            raise UsageError("requests decoded together must use one model")
        size = max(1, min(slots or len(requests) or 1, MAX_PARALLEL))
        done: list[Run] = []
        try:
            for start in range(0, len(requests), size):
                group = requests[start:start + size]
                done += together.decode(self._model(group[0]), group, name=self.name)
        except KeyboardInterrupt as cause:  # the groups finished before the stop are kept
            if done and not isinstance(cause, Stopped):
                raise Stopped(done, cause) from None
            raise
        return done

    def sample_parallel(self, request: Request, seeds: Sequence[int], slots: int | None = None) -> list[Run]:
        return self.predict_parallel([replace(request, params=replace(request.params, seed=seed)) for seed in seeds],
                                     slots)

    def stream(self, take: Take, slots: int, on_run: Callable[[Any, Run | TokvizError], None],
               stop: Callable[[], bool] | None = None) -> None:
        """Requests taken in groups of up to `slots`, each group decoded together; a group's runs
        are handed over when it ends (a new request waits for the running group)."""
        slots = max(1, min(slots, MAX_PARALLEL))
        while (first := take(True)) is not None:
            group = [first]
            while len(group) < slots and (more := take(False)) is not None:
                group.append(more)
            if stop is not None and stop():
                return
            try:
                runs = together.decode(self._model(first[1]), [r for _, r in group], name=self.name)
            except TokvizError as err:
                for key, _ in group:
                    on_run(key, err)
                continue
            for (key, _), run in zip(group, runs):
                on_run(key, run)

    def tokenize(self, text: str, model: str) -> Tokenization:
        """The tokens the model reads for `text` in raw mode, the tokenizer's BOS included."""
        m = load(model, {}, self.progress)
        ids = ([m.bos] if m.bos is not None else []) + text_ids(m, text)
        return Tokenization(model=m.name, tokenizer=f"{m.name} ({type(m.tokenizer).__name__}, transformers)", text=text,
                            tokens=tuple(token_of(m, i, 0.0) for i in ids))

    def tree_cursor(self, request: Request, spec: TreeSpec, forced: tuple[Token, ...] = ()) -> Cursor:
        """A cursor over the model's KV cache after the prompt and the forced tokens (`spec.parallel`
        is not used: a node's children are read one at a time)."""
        m = self._model(request)
        ids, messages = prompt_ids(m, request)
        if any(t.id is None for t in forced):
            raise UsageError("the forced tokens have no token ids", hint="branch from a run of a local model")
        forced_ids = [int(t.id) for t in forced if t.id is not None]
        check_context(m, len(ids) + len(forced_ids), spec.depth + spec.complete, "--depth + --complete")
        return Cursor(m, ids, forced=forced_ids, model=m.name, messages=messages)

    def explore_cursor(self, request: Request, k: int, depth: int) -> Cursor:
        return self.tree_cursor(request, TreeSpec(depth=depth, branch=k))

