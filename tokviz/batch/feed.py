"""Local jobs decoded together (`batch --parallel N`): the queue they wait in, cut into one stream
per model, as the local provider's continuous scheduler takes them and hands them back."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from tokviz.batch.jobs import Job, Outcome, guarded
from tokviz.ground.errors import TokvizError
from tokviz.providers.base import Request
from tokviz.run import Run


@dataclass
class LocalFeed:
    """The queue of local jobs (`Flight.stream_local`), cut into streams of one model each: a
    stream takes jobs until one for another model comes, which is carried to the next stream."""

    feed: queue.Queue[tuple[Job, bool] | None]
    stop: threading.Event
    release: Callable[[], None]
    deliver: Callable[[Outcome], None]
    resume: Callable[[Job], Run | None]
    carry: tuple[Job, bool] | None = None
    ended: bool = False  # the feed said there are no more

    def next_head(self) -> tuple[Job, bool] | None:
        """The first job of the next stream, or None when there are no more."""
        head, self.carry = self.carry, None
        if head is None and not self.ended:
            head = self.feed.get()
        if head is None:
            self.ended = True
        return head

    def drain(self) -> None:
        """Free the slots of what is left when the batch stopped (a carried job, queued ones)."""
        if self.carry is not None:
            self.carry = None
            self.release()
        while True:
            try:
                item = self.feed.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                self.release()


class ModelStream:
    """One model's run of jobs, as `LocalProvider.stream` takes them (`take`) and hands them back
    (`on_run`); `taken` holds those started and not yet delivered."""

    def __init__(self, source: LocalFeed, head: tuple[Job, bool]) -> None:
        self.source = source
        self.model = (head[0].provider, head[0].request.model)
        self.first: tuple[Job, bool] | None = head
        self.taken: dict[str, Job] = {}

    def take(self, wait: bool) -> tuple[str, Request] | None:
        src = self.source
        while True:
            if self.first is not None:
                item, self.first = self.first, None
            elif src.ended or src.carry is not None:
                return None
            else:
                try:
                    item = src.feed.get(block=wait)
                except queue.Empty:
                    return None
            if item is None:
                src.ended = True
                return None
            job, on_disk = item
            if src.stop.is_set():
                src.release()
                continue
            if (job.provider, job.request.model) != self.model:
                src.carry = item  # another model: the next stream's first job
                return None
            if on_disk:
                found = guarded(job, lambda job=job: Outcome(job, "ok", src.resume(job)))  # type: ignore[misc]
                if found.status == "ok" and found.run is not None:
                    src.deliver(found)
                    continue
            self.taken[job.name] = job
            return job.name, job.request

    def on_run(self, name: str, result: Run | TokvizError) -> None:
        job = self.taken.pop(name)
        self.source.deliver(Outcome(job, "ok", result, fresh=True) if isinstance(result, Run)
                            else Outcome(job, "failed", error=result.line()))
