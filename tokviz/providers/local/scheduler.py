"""Continuous batching for the embedded model: several requests decoded together, as a server does.

Up to `slots` sequences share one llama.cpp batch per step. Each step the scheduler *admits*
waiting requests into free slots (a new prompt is read in the same batch as the others' next
tokens), *samples* the next token of every running sequence from its row (finishing those that
stop or reach their length, whose cells are freed at once), then *decodes* the batch. A prompt
already held by a running sequence is not read again: its cells are shared (`seq_cp`) and counted
once (`PromptCells`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from tokviz.ground.errors import TokvizError, UsageError
from tokviz.providers.base import Request, Take
from tokviz.providers.draw import sample
from tokviz.providers.local.chat import prompt_tokens
from tokviz.providers.local.engine import Batch, Loaded, step_of
from tokviz.providers.local.models import check_context, shown_name
from tokviz.providers.logits import pool_map, reduce_row
from tokviz.run import Message, Params, Run, Step

Entry = tuple[int, int, int, bool]  # (token, position, sequence, wants logits)


@dataclass
class Sequence:
    """One request being decoded in its own sequence of the batch."""

    key: Any
    request: Request
    params: Params
    ids: list[int]
    messages: tuple[Message, ...]
    rng: Any
    own: int  # cells of its own answer (its prompt's are counted once per prompt, in PromptCells)
    pos: int = 0
    t0: float = 0.0
    steps: list[Step] = field(default_factory=list)

    @property
    def prompt(self) -> tuple[int, ...]:
        return tuple(self.ids)


class PromptCells:
    """The cache cells the running sequences have been promised, out of `cells`.

    Each answer counts its own; a prompt shared by several sequences is held once in the cache, so
    it is counted once, with its first holder, and freed with its last. A copy of the logits row
    after each held prompt is kept for the sequences that share it.
    """

    def __init__(self, cells: int) -> None:
        self.cells = cells
        self.reserved = 0
        self.holders: dict[tuple[int, ...], set[int]] = {}  # a prompt → running sequences whose cells hold it
        self.rows: dict[tuple[int, ...], Any] = {}  # a prompt → a copy of the logits after it

    def fits(self, prompt: tuple[int, ...], own: int) -> bool:
        return self.reserved + self._need(prompt, own) <= self.cells

    def _need(self, prompt: tuple[int, ...], own: int) -> int:
        return own if prompt in self.holders else len(prompt) + own

    def hold(self, seq: int, prompt: tuple[int, ...], own: int) -> None:
        self.reserved += self._need(prompt, own)
        self.holders.setdefault(prompt, set()).add(seq)

    def release(self, seq: int, prompt: tuple[int, ...], own: int) -> None:
        held = self.holders[prompt]
        held.discard(seq)
        if not held:
            del self.holders[prompt]
            self.rows.pop(prompt, None)
            self.reserved -= len(prompt)
        self.reserved -= own


@dataclass
class _Step:
    """What one step's batch holds besides the running sequences' next tokens."""

    entries: list[Entry] = field(default_factory=list)
    reading: set[int] = field(default_factory=set)  # sequences whose prompt this batch reads
    sharing: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)  # to share a prompt read in it

    def empty(self) -> bool:
        return not self.entries and not self.sharing


class Scheduler:
    """One stream of requests for one model (see the module docstring and `LocalProvider.stream`)."""

    def __init__(self, m: Loaded, engine: Batch, *, provider: str, slots: int, take: Take,
                 on_run: Callable[[Any, Run | TokvizError], None], stop: Callable[[], bool] | None,
                 solo: Callable[[Request], Run], label: str) -> None:
        self.m, self.engine, self.provider = m, engine, provider
        self.take, self.on_run, self.solo, self.label = take, on_run, solo, label
        self.stopped = stop or (lambda: False)
        self.cells = PromptCells(engine.cells)
        self.active: dict[int, Sequence] = {}
        self.free = list(range(slots))[::-1]
        self.rows: dict[int, Any] = {}  # sequence → the logits row it samples from next
        self.waiting: tuple[Any, Request] | None = None
        self.model: str | None = None

    def run(self, first: tuple[Any, Request]) -> None:
        self.waiting, self.model = first, first[1].model
        while True:
            step = self.admit()
            if self.stopped() or not self.active:
                return  # stopped: what runs is abandoned (its keys get no call)
            self.sample(step)
            self.decode(step)

    # --- the steps ---------------------------------------------------------------------------------

    def admit(self) -> _Step:
        """Take waiting requests into free slots while their cells fit: each prompt read in this
        step's batch, or shared from a running sequence that holds it."""
        step = _Step()
        while self.free and not self.stopped():
            if self.waiting is None:
                self.waiting = self.take(not self.active and step.empty())
            if self.waiting is None:
                break
            key, request = self.waiting
            if request.model != self.model:
                raise UsageError("requests decoded together must use one model")
            try:
                params = request.params
                if params.temperature > 0 and params.seed is None:
                    params = replace(params, seed=random.randrange(2**31))
                ids, messages = prompt_tokens(self.m.llm, request)
                check_context(self.m, len(ids), params.max_tokens, "--max-tokens")
            except TokvizError as err:
                self.waiting = None
                self.on_run(key, err)
                continue
            own = params.max_tokens + 1  # the cells its answer fills
            if len(ids) + own > self.cells.cells or params.max_tokens <= 0:  # decoded on its own, as predict does
                self.waiting = None
                self.on_run(key, self.solo(replace(request, params=params)))
                continue
            if not self.cells.fits(tuple(ids), own):
                break  # it waits for running sequences to free their cells
            self.waiting = None
            self._start(step, key, request, params, ids, messages, own)
        return step

    def _start(self, step: _Step, key: Any, request: Request, params: Params, ids: list[int],
               messages: tuple[Message, ...], own: int) -> None:
        import numpy as np

        seq = self.free.pop()
        prompt = tuple(ids)
        ready = [h for h in self.cells.holders.get(prompt, ()) if h not in step.reading
                 and all(h != s for s, _ in step.sharing)]
        self.cells.hold(seq, prompt, own)
        self.active[seq] = Sequence(key, request, params, ids, messages, np.random.default_rng(params.seed), own,
                                    pos=len(ids), t0=time.perf_counter())
        if ready:  # a running sequence holds this prompt: share its cells and its row
            self.engine.share(ready[0], seq, len(ids))
            self.rows[seq] = self.cells.rows[prompt]
        elif len(self.cells.holders[prompt]) > 1:  # being read in this batch: shared once it is
            step.sharing.append((seq, prompt))
        else:
            step.entries += [(t, pos, seq, pos == len(ids) - 1) for pos, t in enumerate(ids)]
            step.reading.add(seq)

    def sample(self, step: _Step) -> None:
        """Each running sequence's next token, drawn and reduced before the next decode (on 2 cores,
        reducing copies during the decode measured no faster: both compete for the same cores)."""
        stop_ids = self.m.stop_ids

        def pick(seq: int) -> tuple[int, int, Any]:
            st, logits = self.active[seq], self.rows[seq]
            token = sample(logits, st.params, st.rng)
            return seq, token, (None if token in stop_ids else reduce_row(logits, st.params.top_k, token, rank=False))

        for seq, token, reduced in pool_map(pick, list(self.rows)):
            st = self.active[seq]
            if reduced is None:
                self.finish(seq, "stop")
                continue
            st.steps.append(step_of(self.m, reduced, token))
            if len(st.steps) >= st.params.max_tokens:
                self.finish(seq, "length")
                continue
            step.entries.append((token, st.pos, seq, True))
            st.pos += 1

    def decode(self, step: _Step) -> None:
        """One llama.cpp batch: the rows of every sequence that asked for one; a prompt just read
        keeps a copy of its row for the sequences that share it."""
        wanted = [seq for _, _, seq, logits in step.entries if logits]
        self.rows = dict(zip(wanted, self.engine.decode(step.entries))) if step.entries else {}
        for seq in step.reading:
            self.cells.rows[self.active[seq].prompt] = self.rows[seq].copy()
        for seq, prompt in step.sharing:
            reader = next(h for h in self.cells.holders[prompt] if h in step.reading)
            self.engine.share(reader, seq, len(prompt))
            self.rows[seq] = self.cells.rows[prompt]

    def finish(self, seq: int, reason: str) -> None:
        """Free a finished sequence's slot and cells at once, and hand its run over."""
        st = self.active.pop(seq)
        self.engine.drop(seq)
        self.cells.release(seq, st.prompt, st.own)
        self.free.append(seq)
        elapsed = time.perf_counter() - st.t0
        self.on_run(st.key, Run(provider=self.provider, model=shown_name(st.request.model), prompt=st.request.prompt,
                                params=st.params, steps=tuple(st.steps), messages=st.messages, finish_reason=reason,
                                usage={"prompt_tokens": len(st.ids), "completion_tokens": len(st.steps)},
                                timings={"total_s": elapsed, "tokens_per_s": len(st.steps) / max(elapsed, 1e-9)},
                                source={"decoding": self.label}))
