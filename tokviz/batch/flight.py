"""The jobs in flight: at most a bounded number at once, each fetched, then written and recorded.

A job holds a slot from the moment it is admitted until its outcome is written and recorded (or it
is abandoned by a stop), so memory stays flat however long the input is. Server jobs are fetched
on a pool of workers (concurrently), local ones on one thread (one model in memory) or, with
`--parallel`, fed to the local provider's continuous scheduler; one writer thread renders, writes
and records every outcome, so a worker sends its next request as soon as an answer is in. A
finished run is never dropped: the writer's tasks are never cancelled.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from tokviz.batch.feed import LocalFeed, ModelStream
from tokviz.batch.jobs import Job, Outcome, Tally
from tokviz.ground.errors import TokvizError
from tokviz.providers import registry
from tokviz.providers.base import MultiSequence

if TYPE_CHECKING:
    from tokviz.batch.runner import Batch

IN_FLIGHT_PER_WORKER = 2  # jobs queued per worker: enough to keep them busy, never the whole input
STOP_GRACE_S = 2.0  # after a stop, how long answers already in flight may still arrive and be written


class DaemonPool:
    """Workers for server requests, as daemon threads: a request that hangs on a server that never
    answers cannot keep the process alive after a stop (a ThreadPoolExecutor's threads are joined at
    exit, so a stop would wait for the request's timeout, and its retries)."""

    def __init__(self, workers: int, name: str) -> None:
        self.jobs: queue.Queue[tuple[Callable[..., None], tuple[object, ...]] | None] = queue.Queue()
        self.threads = [threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True) for n in range(workers)]
        for thread in self.threads:
            thread.start()

    def submit(self, fn: Callable[..., None], *args: object) -> None:
        self.jobs.put((fn, args))

    def _work(self) -> None:
        while (job := self.jobs.get()) is not None:
            fn, args = job
            fn(*args)

    def shutdown(self, wait: bool = False) -> None:
        for _ in self.threads:
            self.jobs.put(None)


class Flight:
    """One batch invocation's jobs in flight (see the module docstring)."""

    def __init__(self, batch: Batch, on_done: Callable[[Outcome], None], stop: threading.Event) -> None:
        self.batch, self.on_done, self.stop = batch, on_done, stop
        self.tally = Tally()
        self._tally_lock = threading.Lock()
        self.api = DaemonPool(max(1, batch.concurrency), "tokviz-api")  # a stop never waits on a hung server
        self.serial = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokviz-local")
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokviz-writer")
        self.capacity = max(1, batch.concurrency, batch.parallel) * IN_FLIGHT_PER_WORKER + 2
        self.slots = threading.BoundedSemaphore(self.capacity)
        self.feed: queue.Queue[tuple[Job, bool] | None] = queue.Queue()  # local jobs decoded together
        self.streaming = False
        self._local_running = 0  # local jobs (or the local stream) running now

    # --- admitting ----------------------------------------------------------------------------------

    def count(self, outcome: Outcome) -> None:
        with self._tally_lock:
            self.tally.add(outcome)
        self.on_done(outcome)

    def take_slot(self) -> bool:
        """A slot for one more job in flight, or False (holding none) once the batch is stopping."""
        while not self.stop.is_set():
            if self.slots.acquire(timeout=0.2):
                if self.stop.is_set():
                    self.slots.release()
                    return False
                return True
        return False

    def launch(self, job: Job, on_disk: bool) -> None:
        """Start a job that holds a slot: on the API pool, the local thread, or the local feed."""
        batch = self.batch
        concurrent = batch.source is not None or registry.spec(job.provider or "").concurrent
        if (batch.parallel > 1 and not concurrent and not job.choices and job.request.params.json_schema is None
                and registry.can(batch.provider_for(job.provider or ""), MultiSequence)):
            if not self.streaming:
                self.streaming = True
                self._local(self.stream_local)
            self.feed.put((job, on_disk))
            return
        if concurrent:
            self.api.submit(self._task, job, on_disk)
        else:
            self._local(self._task, job, on_disk)

    def _task(self, job: Job, on_disk: bool) -> None:
        if self.stop.is_set():  # queued when the batch stopped: stays pending
            self.slots.release()
            return
        outcome = self.batch.fetch(job, job.provider or "", on_disk)
        try:
            self.writer.submit(self._finish, outcome)
        except RuntimeError:  # answered after the batch stopped waiting for it: it stays pending
            self.slots.release()

    def stream_local(self) -> None:
        """Decode the local jobs put in the feed continuously (`--parallel`): up to `parallel` at
        once, a finished job's place taken by the next one as soon as it ends, each delivered (to be
        written and recorded) on its own. Jobs found complete on disk are taken from there. `None` in
        the feed ends it; on stop, what was started is abandoned (it stays pending) and the slot of
        every job not delivered is released. One stream per run of jobs for one model."""
        batch = self.batch
        deliver = lambda outcome: self.writer.submit(self._finish, outcome)  # noqa: E731
        source = LocalFeed(self.feed, self.stop, self.slots.release, deliver, batch.resume)
        while (head := source.next_head()) is not None:
            group = ModelStream(source, head)
            try:
                provider = batch.provider_for(head[0].provider or "")
                registry.require(provider, MultiSequence, "decode jobs together").stream(
                    group.take, batch.parallel, group.on_run, self.stop.is_set)
            except TokvizError as err:
                for job in list(group.taken.values()):
                    group.on_run(job.name, err)
            except Exception as err:  # one bug must not stop the batch; it is recorded for the jobs it hit
                for job in list(group.taken.values()):
                    deliver(Outcome(job, "failed", error=f"internal error: {type(err).__name__}: {err}"))
                group.taken.clear()
            for _ in group.taken:  # abandoned when the batch stopped: pending, their slots freed
                self.slots.release()
        source.drain()

    # --- landing ------------------------------------------------------------------------------------

    def _finish(self, outcome: Outcome) -> None:
        """On the writer thread: write a fresh run's files, record the outcome, free its slot."""
        batch = self.batch
        try:
            outcome = batch.store(outcome)
            if outcome.status == "failed" and outcome.fresh and outcome.error and "disk is full" in outcome.error:
                # Nothing more can be kept: stop asking (queued prompts stay pending), and leave the
                # answer that could not be written as not done, so the index matches the disk.
                self.stop.set()
                batch.disk_full = outcome.error
                return
            try:
                batch.keep(outcome)
            except sqlite3.Error as err:
                batch.disk_full = batch.disk_full or f"cannot record the batch's state: {err}"
                self.stop.set()
            self.count(outcome)
        finally:
            self.slots.release()

    def drain(self, within: float | None = None) -> bool:
        """Wait until every job in flight is written (at most `within` seconds; False if some are
        still out then). Polled, not joined: a Ctrl-C that lands in Thread.join can leave CPython
        believing a running worker has ended (the model would then be freed under it at exit)."""
        import time

        deadline = None if within is None else time.monotonic() + within
        taken = 0
        while taken < self.capacity and (deadline is None or time.monotonic() < deadline):
            taken += self.slots.acquire(timeout=0.2)
        for _ in range(taken):
            self.slots.release()
        return taken >= self.capacity

    def _local(self, fn: Callable[..., None], *args: object) -> None:
        """Run `fn` on the local thread, counted while it runs (a stop waits for it: see `land`)."""
        def counted() -> None:
            with self._tally_lock:
                self._local_running += 1
            try:
                fn(*args)
            finally:
                with self._tally_lock:
                    self._local_running -= 1
        self.serial.submit(counted)

    def _local_busy(self) -> bool:
        with self._tally_lock:
            return self._local_running > 0

    def end_input(self) -> None:
        """The whole input is admitted: let what is in flight finish."""
        self.feed.put(None)
        self.drain()

    def land(self) -> BaseException | None:
        """Stop: queued jobs return at once (their slots freed), running ones finish and are written,
        and the local decoder abandons what it started (pending). Returns a second Ctrl-C that landed
        while waiting, if one did."""
        self.stop.set()
        self.feed.put(None)
        if not self.streaming:
            while not self.feed.empty():
                if self.feed.get_nowait() is not None:
                    self.slots.release()
        second: BaseException | None = None
        try:
            # Answers that arrive within the grace are written; requests still out after it are
            # abandoned (pending: a resume asks them again), so a stop takes seconds, not a
            # server's timeout times its retries. A local job always ends: the model is freed at
            # exit, and must not be while a worker still uses it.
            while not self.drain(within=STOP_GRACE_S) and self._local_busy():
                pass
        except KeyboardInterrupt as err:  # (a second Ctrl-C ends the process in cli._signals)
            second = err
        for pool in (self.api, self.serial, self.writer):
            pool.shutdown(wait=False)
        return second
