"""The environment a command runs in: its streams and its environment variables.

As httpie's `Environment` does, `cli.main` builds one (or is handed one by a test) and every
command reads its streams, consoles and variables from it, never from `sys` directly, so the
whole CLI runs in-process against in-memory streams with a deterministic console.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import IO, Any

from rich.console import Console


@dataclass
class Environment:
    stdin: IO[bytes] = field(default_factory=lambda: sys.stdin.buffer)
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    # None: ask the stream; tests set them to see what a terminal gets.
    stdout_isatty: bool | None = None
    stderr_isatty: bool | None = None
    width: int | None = None  # columns; None: the terminal's (or 80)

    def _isatty(self, stream: IO[Any], forced: bool | None) -> bool:
        if forced is not None:
            return forced
        try:
            return stream.isatty()
        except (AttributeError, ValueError):
            return False

    @property
    def debug(self) -> bool:
        return self.environ.get("TOKVIZ_DEBUG") == "1"

    def console(self) -> Console:
        """The console for results. Rich turns colour off by itself when stdout is not a terminal
        and when NO_COLOR is set, so piped output is plain text. What it writes passes through
        the key redaction (a server may echo a key into its answer)."""
        return Console(file=_Redacting(self.stdout), highlight=False, emoji=False, markup=False,
                       force_terminal=self._isatty(self.stdout, self.stdout_isatty), width=self.width,
                       _environ=dict(self.environ))

    def error_console(self) -> Console:
        return Console(file=self.stderr, highlight=False, emoji=False, markup=False, soft_wrap=True,
                       force_terminal=self._isatty(self.stderr, self.stderr_isatty), width=self.width,
                       _environ=dict(self.environ))


class _Redacting:
    """A text stream that removes the secrets in the environment from everything written to it."""

    def __init__(self, inner: IO[str]) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        from tokviz.ground.errors import redact

        self.inner.write(redact(text, shapes=False))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


_current: ContextVar[Environment | None] = ContextVar("tokviz_environment", default=None)


def current() -> Environment:
    """The environment of the running command (the process's own outside `cli.main`)."""
    env = _current.get()
    return env if env is not None else Environment()


@contextlib.contextmanager
def using(env: Environment) -> Iterator[Environment]:
    token = _current.set(env)
    try:
        yield env
    finally:
        _current.reset(token)
