"""Several requests for one model decoded together, one forward pass per step with a batch
dimension (`sample --parallel`, `compare`, `batch --parallel`).

Prompts of different lengths are padded on the left and masked, each token given its position in
its own sequence, so every sequence reads what it would read alone; a sequence that has finished
is fed padding until the others do. Each draws from its own generator, seeded as the serial path
seeds it. Only the rounding of a batched matrix multiply differs from serial decoding (~1e-6
nats here, not llama.cpp's 8-bit batch effect): the runs say they were decoded together.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from tokviz.providers.base import Request
from tokviz.providers.draw import sample
from tokviz.providers.hf.chat import prompt_ids
from tokviz.providers.hf.cursor import step_of
from tokviz.providers.hf.forward import batch_rows, new_cache
from tokviz.providers.hf.models import check_context
from tokviz.run import Run, Step

if TYPE_CHECKING:
    from tokviz.providers.hf.models import Model

LABEL = ("decoded together with up to {n} sequences in one forward pass per step (--parallel: figures may differ "
         "from serial decoding by float rounding)")


def decode(m: Model, requests: Sequence[Request], *, name: str) -> list[Run]:
    """The runs of `requests` (one model), in their order."""
    import numpy as np
    import torch

    params = [r.params if r.params.temperature <= 0 or r.params.seed is not None
              else replace(r.params, seed=random.randrange(2**31)) for r in requests]
    prompts = [prompt_ids(m, r) for r in requests]
    for (ids, _), p in zip(prompts, params):
        check_context(m, len(ids), p.max_tokens, "--max-tokens")
    t0 = time.perf_counter()
    width = max(len(ids) for ids, _ in prompts)
    pad = m.tokenizer.pad_token_id if m.tokenizer.pad_token_id is not None else 0
    tokens = [[pad] * (width - len(ids)) + ids for ids, _ in prompts]
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids, _ in prompts], device=m.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = new_cache(m)
    rows = batch_rows(m, tokens, mask, positions, cache)
    prefill_s = time.perf_counter() - t0
    rngs = [np.random.default_rng(p.seed) for p in params]
    steps: list[list[Step]] = [[] for _ in requests]
    finish = ["length"] * len(requests)
    alive = [p.max_tokens > 0 for p in params]
    last = positions[:, -1].clone()
    while any(alive):
        fed = []
        for b, p in enumerate(params):
            chosen = pad
            if alive[b]:
                chosen = sample(rows[b], p, rngs[b])
                if chosen in m.stop_ids:
                    finish[b], alive[b], chosen = "stop", False, pad
                else:
                    steps[b].append(step_of(m, rows[b], chosen, p.top_k, rank=False))
                    alive[b] = len(steps[b]) < p.max_tokens
            fed.append(chosen)
        if not any(alive):
            break
        column = torch.tensor([[1 if a else 0] for a in alive], device=m.device)
        mask = torch.cat([mask, column], dim=1)
        last = last + 1
        rows = batch_rows(m, [[t] for t in fed], mask, last[:, None], cache)
    elapsed = time.perf_counter() - t0
    label = LABEL.format(n=len(requests))
    out = []
    for b, r in enumerate(requests):
        ids, messages = prompts[b]
        decode_s = max(elapsed - prefill_s, 1e-9)
        out.append(Run(provider=name, model=m.name, prompt=r.prompt, params=params[b], steps=tuple(steps[b]),
                       messages=messages, finish_reason=finish[b],
                       usage={"prompt_tokens": len(ids), "completion_tokens": len(steps[b])},
                       timings={"prefill_s": prefill_s, "decode_s": decode_s,
                                "tokens_per_s": len(steps[b]) / decode_s if steps[b] else 0.0},
                       source={"engine": m.engine, "precision": m.precision, "figures": "before sampling", "decoding": label}))
    return out
