"""Every provider behind one gate: what it answers is redacted (`run.redaction`) before anything
else in tokviz sees it, runs, steps as they stream, tree and explorer tokens alike.

The registry opens every provider through `Redacting`, so no writer, view, state table or page has
to remember to: the secret is gone from the data itself. A capability the provider lacks stays
absent (the wrapper answers only the methods the provider has)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tokviz.providers.base import Continuation, Provider, Request, StepListener, Stopped
from tokviz.run import Run, Step, Token, redaction


class Redacting:
    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.name = inner.name

    def predict(self, request: Request) -> Run:
        return _guard(lambda: self.inner.predict(request))

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.inner, name)  # AttributeError: the capability is absent here too
        wrap = _WRAPS.get(name)
        return found if wrap is None or not callable(found) else wrap(found)


def _guard(call: Callable[[], Any]) -> Any:
    """A call's runs redacted, also those a stop carries."""
    try:
        return _redacted(call())
    except Stopped as stop:
        stop.record = _redacted(stop.record)
        raise


def _redacted(value: Any) -> Any:
    if isinstance(value, Run):
        return redaction.redact(value)
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def _live(method: Callable[..., Run]) -> Callable[..., Run]:
    def predict_live(request: Request, on_step: StepListener) -> Run:
        stream = redaction.Stream(on_step)
        try:
            run = _guard(lambda: method(request, stream))
        finally:
            stream.flush()
        return run
    return predict_live


def _stream(method: Callable[..., None]) -> Callable[..., None]:
    def stream(take: Any, slots: int, on_run: Callable[[Any, Any], None], stop: Any = None) -> None:
        method(take, slots, lambda key, result: on_run(key, _redacted(result)), stop)
    return stream


def _many(method: Callable[..., list[Run]]) -> Callable[..., list[Run]]:
    return lambda *args, **kwargs: _guard(lambda: method(*args, **kwargs))


def _cursor(method: Callable[..., Any]) -> Callable[..., Any]:
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


_WRAPS: dict[str, Callable[[Any], Any]] = {
    "predict_live": _live, "score": _many, "stream": _stream, "predict_parallel": _many, "sample_parallel": _many,
    "batch_answer": _many, "tree_cursor": _cursor, "explore_cursor": _cursor,
}


def wrap(provider: Provider) -> Provider:
    return provider if isinstance(provider, Redacting) else Redacting(provider)  # type: ignore[return-value]


__all__: Sequence[str] = ["Cursor", "Redacting", "wrap"]
