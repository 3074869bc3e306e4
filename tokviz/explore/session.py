"""`tokviz explore`: one exploration, one model, and the local web app that shows them.

The `Session` owns the provider and its cursor (opened once) and the `Exploration`; every model
call runs on one worker thread, so requests to the model are serialised and the cursor's KV cache
is never touched by two at once. Continuations stream to the page token by token (NDJSON) and can
be cancelled between tokens; a page that goes away cancels its own.

The app is Starlette served by uvicorn, bound to 127.0.0.1 only. Every request must carry the
session's random token (in the URL or the X-Tokviz-Token header), a Host header naming this
address (DNS rebinding), and no cross-site Origin; the page gets a Content-Security-Policy that
allows nothing from outside this address.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from tokviz import pipeline
from tokviz.explore.exploration import Exploration
from tokviz.ground.errors import ProviderError, UsageError
from tokviz.ground.files import write_atomic
from tokviz.pipeline import Plan
from tokviz.providers.base import Continuation, ExploreCursor, Progress, Provider
from tokviz.run import Branch, Run, Step

DEPTH = 1024  # tokens a path may reach past the prompt: the local model's context is sized for it
MAX_CONTINUATION = 1000

Emit = Callable[[dict[str, Any]], None]


class Session:
    """The model, its cursor and the exploration, for one `tokviz explore`."""

    def __init__(self, plan: Plan, *, exploration: Exploration | None = None, save: Path | None = None,
                 progress: Progress | None = None) -> None:
        self.plan = plan
        self.k = plan.request.params.top_k
        self.progress = progress
        self.save_path = save
        self.lock = threading.RLock()  # the exploration's data (the page reads while the model writes)
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokviz-model")
        self.active: set[threading.Event] = set()
        self.version = 0
        self.saved_version = 0
        self.opened, self.cursor = self._open(plan)
        self.exploration = exploration or Exploration(plan.request.prompt, self.k)
        if exploration is not None and exploration.prompt != plan.request.prompt:
            raise UsageError("the exploration's prompt differs from the plan's")

    def _open(self, plan: Plan) -> tuple[Provider, ExploreCursor]:
        """The provider and a cursor that can jump to any path and generate from it."""
        return pipeline.open_explorer(plan, self.k, DEPTH, progress=self.progress)

    # --- model work (on the worker thread) -----------------------------------------------------

    def first_run(self, emit: Emit | None = None, cancel: threading.Event | None = None) -> None:
        """The opening branch: the prompt's continuation with the command's own settings."""
        p = self.plan.request.params
        how = Continuation(max_tokens=p.max_tokens, temperature=p.temperature, top_p=p.top_p, seed=p.seed)
        if self.branch(-1, how, emit=emit, cancel=cancel) < 0 and not (cancel is not None and cancel.is_set()):
            raise ProviderError("the model generated nothing for this prompt (it ended the text at once)",
                                hint="change the prompt")

    def branch(self, node: int, how: Continuation, *, emit: Emit | None = None,
               cancel: threading.Event | None = None) -> int:
        """Continue from `node` (-1: the prompt) as a new branch; its index (-1 if none was kept)."""
        emit = emit or (lambda _: None)
        if how.temperature > 0 and how.seed is None:
            how = Continuation(how.max_tokens, how.temperature, how.top_k, how.top_p, random.randrange(2**31))
        with self.lock:
            ex = self.exploration
            ex.check_node(node)
            path = ex.tokens(node) if node >= 0 else []
            known = ex.greedy_branch_through(node) if how.temperature == 0 else None
            if known is not None:
                # Already explored greedily: its tokens are what this continuation would make, so
                # show that branch, and only generate what it does not hold yet, from its tip.
                kb = ex.branches[known]
                have = ex.depth(kb.tip) - ex.depth(node)
                if kb.finish == "stop" or have >= how.max_tokens:
                    emit({"event": "branch", "branch": known, "node": node, "existing": True})
                    emit({"event": "done", "branch": known, "finish": "existing", "tokens": 0})
                    return known
                node, how = kb.tip, replace(how, max_tokens=how.max_tokens - have)
                path = ex.tokens(node)
        self.cursor.goto(path)
        with self.lock:
            b = ex.open_branch(node, Branch(tip=node, temperature=how.temperature, top_k=how.top_k,
                                            top_p=how.top_p, seed=how.seed))
            sent = len(ex.nodes)
        emit({"event": "branch", "branch": b, "node": node})

        def on_step(step: Step) -> None:
            nonlocal sent
            with self.lock:
                ex.grow(b, step)
                delta = ex.state_from(sent, b)
                sent = len(ex.nodes)
            emit({"event": "token", **delta})

        stop = cancel.is_set if cancel is not None else None
        try:
            steps, finish = self.cursor.generate(how, self.k, on_step, stop)
        finally:
            with self.lock:
                if ex.branches[b].tip == -1:  # nothing generated from the prompt: no branch to keep
                    ex.drop_branch(b)
                    b = -1
                self.version += 1
        if b >= 0:
            with self.lock:
                ex.close_branch(b, finish)
        self.autosave()
        if not steps and finish == "length":
            raise UsageError(f"this path is as long as the explorer reads ({DEPTH} tokens past the prompt)")
        emit({"event": "done", "branch": b, "finish": finish, "tokens": len(steps)})
        return b

    def restart(self, prompt: str, emit: Emit | None = None, cancel: threading.Event | None = None) -> None:
        """A new exploration of another prompt; the current one is kept (see `archive`)."""
        plan = pipeline.with_prompt(self.plan, prompt)
        self.archive()
        self.cursor.close()
        opened, cursor = self._open(plan)
        with self.lock:
            self.plan, self.opened, self.cursor = plan, opened, cursor
            self.exploration = Exploration(prompt, self.k)
            self.version += 1
            self.saved_version = self.version
        self.first_run(emit, cancel)

    def figures(self) -> str:
        """What the exploration's figures are (before or after sampling, or unknown): as the cursor
        reports it, else as the provider's spec declares — one answer for the page, the graph and
        the saved record."""
        return str(self.cursor.report().get("figures") or self.plan.spec.figures)

    def meta(self) -> str:
        """The page's one-line description of what is explored."""
        p = self.plan.request.params
        from tokviz.run import figures as said

        return f"{self.opened.name}:{self.plan.request.model} · {p.mode} · top-{self.k} alternatives · {said.say(self.figures())}"

    # --- the record ----------------------------------------------------------------------------

    def record(self) -> Run:
        with self.lock:
            report = self.cursor.report()
            run = self.exploration.to_run(provider=self.opened.name, model=report.get("model", self.plan.request.model),
                                          params=self.plan.request.params, messages=report.get("messages", ()),
                                          report=report)
        return replace(run, source={**run.source, "figures": self.figures()})

    def prune(self, branch: int) -> None:
        with self.lock:
            self.exploration.prune(branch)
            self.version += 1
        self.autosave()

    def autosave(self) -> None:
        if self.save_path is None or self.version == self.saved_version or not self.exploration.branches:
            return
        with self.lock:
            version = self.version
            data = self.record().to_json().encode("utf-8")
        write_atomic(self.save_path, data)
        self.saved_version = version

    @property
    def unsaved(self) -> bool:
        return bool(self.exploration.branches) and (self.save_path is None or self.version != self.saved_version)

    def archive(self) -> None:
        """Before a new prompt replaces it, the current exploration goes next to --save as
        NAME-1.json, NAME-2.json, …, so no exploration of this session is lost."""
        if self.save_path is None or not self.exploration.branches:
            return
        n = 1
        while (target := self.save_path.with_name(f"{self.save_path.stem}-{n}{self.save_path.suffix}")).exists():
            n += 1
        write_atomic(target, self.record().to_json().encode("utf-8"))

    # --- the worker ----------------------------------------------------------------------------

    def submit(self, job: Callable[[threading.Event], None]) -> threading.Event:
        cancel = threading.Event()
        with self.lock:
            self.active.add(cancel)

        def run() -> None:
            try:
                if not cancel.is_set():
                    job(cancel)
            finally:
                with self.lock:
                    self.active.discard(cancel)

        self.worker.submit(run)
        return cancel

    def cancel_all(self) -> int:
        with self.lock:
            for event in self.active:
                event.set()
            return len(self.active)

    def busy(self) -> bool:
        with self.lock:
            return bool(self.active)

    def close(self) -> None:
        """Stop: cancel what runs or waits, let the current token finish, free the worker."""
        self.cancel_all()
        done = threading.Event()
        self.worker.submit(done.set)
        while not done.wait(0.05):  # polled: an interrupted Thread.join could leave the model in use
            pass
        self.worker.shutdown(wait=False)
        self.cursor.close()
