"""The environment a command runs in: its streams, its environment variables, its terminal, its palette.

As httpie's `Environment` does, `cli.main` builds one (or is handed one by a test) and every layer
reads its streams, variables and choices from it, never from `sys` or `os.environ` directly, and
nothing writes `os.environ`: the whole CLI runs in-process against in-memory streams and a given set
of variables. Worker threads (a batch's, the explorer's) see the environment of the command that
started them.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import IO, Any


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
    palette: str | None = None  # the colour scale of every view (--palette); None: $TOKVIZ_PALETTE or "traffic"

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

    @property
    def palette_name(self) -> str:
        return self.palette or self.environ.get("TOKVIZ_PALETTE") or "traffic"

    def stdout_is_terminal(self) -> bool:
        return self._isatty(self.stdout, self.stdout_isatty)

    def stderr_is_terminal(self) -> bool:
        return self._isatty(self.stderr, self.stderr_isatty)


_current: ContextVar[Environment | None] = ContextVar("tokviz_environment", default=None)
# The environment of the command running in this process, for threads it started (a context
# variable is not inherited by a thread): one command runs at a time.
_active: list[Environment] = []


def current() -> Environment:
    """The environment of the running command (the process's own outside `cli.main`)."""
    env = _current.get()
    if env is not None:
        return env
    return _active[-1] if _active else Environment()


@contextlib.contextmanager
def using(env: Environment) -> Iterator[Environment]:
    token = _current.set(env)
    _active.append(env)
    try:
        yield env
    finally:
        _active.remove(env)
        _current.reset(token)
