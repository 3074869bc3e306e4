"""Every provider behind one gate: what it answers is redacted (`run.redaction`) before anything
else in tokviz sees it, runs, steps as they stream, tree and explorer tokens alike; and every run
leaves it saying what its figures are (source["figures"]: as the provider recorded it, else as
its spec declares), whichever command or workflow asked (predict, sample, batch, the explorer).

The registry opens every provider through `Redacting`, so no writer, view, state table or page has
to remember to: the secret is gone from the data itself. A capability the provider lacks stays
absent (the wrapper answers only the methods the provider has)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from tokviz.providers.base import Continuation, Provider, Request, StepListener, Stopped
from tokviz.run import Run, Step, Token, redaction


class Redacting:
    def __init__(self, inner: Provider, figures: str = "unknown") -> None:
        self.inner = inner
        self.name = inner.name
        self.figures = figures  # what its runs' figures are when a run does not say (its spec's word)

    def predict(self, request: Request) -> Run:
        return _guard(lambda: self.inner.predict(request), self.figures)

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.inner, name)  # AttributeError: the capability is absent here too
        wrap = _WRAPS.get(name)
        return found if wrap is None or not callable(found) else wrap(found, self.figures)


def _guard(call: Callable[[], Any], figures: str) -> Any:
    """A call's runs redacted and stamped, also those a stop carries."""
    try:
        return _redacted(call(), figures)
    except Stopped as stop:
        stop.record = _redacted(stop.record, figures)
        raise


def _redacted(value: Any, figures: str) -> Any:
    if isinstance(value, Run):
        run = redaction.redact(value)
        return run if run.source.get("figures") else replace(run, source={**run.source, "figures": figures})
    if isinstance(value, list):
        return [_redacted(v, figures) for v in value]
    return value


def _live(method: Callable[..., Run], figures: str) -> Callable[..., Run]:
    def predict_live(request: Request, on_step: StepListener) -> Run:
        stream = redaction.Stream(on_step)
        try:
            run = _guard(lambda: method(request, stream), figures)
        finally:
            stream.flush()
        return run
    return predict_live


def _stream(method: Callable[..., None], figures: str) -> Callable[..., None]:
    def stream(take: Any, slots: int, on_run: Callable[[Any, Any], None], stop: Any = None) -> None:
        method(take, slots, lambda key, result: on_run(key, _redacted(result, figures)), stop)
    return stream


def _many(method: Callable[..., list[Run]], figures: str) -> Callable[..., list[Run]]:
    return lambda *args, **kwargs: _guard(lambda: method(*args, **kwargs), figures)


def _cursor(method: Callable[..., Any], _figures: str) -> Callable[..., Any]:
    return lambda *args, **kwargs: Cursor(method(*args, **kwargs))


class Cursor:
    """A tree or explorer cursor whose tokens and steps come out redacted."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def children(self, k: int) -> list[Token]:
        return [redaction.node_token(t) for t in self.inner.children(k)]

    def complete(self, n: int) -> tuple[Token, ...]:
        return tuple(redaction.node_token(t) for t in self.inner.complete(n))

    def generate(self, how: Continuation, k: int, on_step: Callable[[Step], None] | None = None,
                 stop: Callable[[], bool] | None = None) -> tuple[tuple[Step, ...], str]:
        stream = redaction.Stream(on_step or (lambda _: None))
        try:
            steps, finish = self.inner.generate(how, k, stream, stop)
        finally:
            stream.flush()
        return tuple(redaction.steps(steps)), finish

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


_WRAPS: dict[str, Callable[[Any, str], Any]] = {
    "predict_live": _live, "score": _many, "weigh": _many, "stream": _stream, "predict_parallel": _many, "sample_parallel": _many,
    "batch_answer": _many, "tree_cursor": _cursor, "explore_cursor": _cursor,
}


def wrap(provider: Provider, figures: str = "unknown") -> Provider:
    return provider if isinstance(provider, Redacting) else Redacting(provider, figures)  # type: ignore[return-value]


__all__: Sequence[str] = ["Cursor", "Redacting", "wrap"]
