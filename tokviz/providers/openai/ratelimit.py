"""One rate-limit gate shared by every request a provider sends, from any thread.

The SDK already retries a 429 after the server's Retry-After, but only for the request that got
it: fifteen other batch workers would keep firing until each is told off in turn. The gate sits
in the HTTP client's event hooks: any 429 closes it for the server's figure (or a second when the
server gives none), and every request from any worker waits for it to reopen before it is sent.
"""

from __future__ import annotations

import threading
import time
from typing import Any

MAX_PAUSE_S = 60.0
DEFAULT_PAUSE_S = 1.0


def parse_retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare enough that the SDK's own handling covers it
    return min(max(seconds, 0.0), MAX_PAUSE_S)


class RateGate:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open_at = 0.0
        self.closed_count = 0  # how many 429s closed the gate (for tests and reports)

    def observe(self, response: Any) -> None:
        """Response hook: a 429 closes the gate for everyone."""
        if response.status_code != 429:
            return
        pause = parse_retry_after(response.headers.get("retry-after"))
        with self._lock:
            self.closed_count += 1
            self._open_at = max(self._open_at, time.monotonic() + (DEFAULT_PAUSE_S if pause is None else pause))

    def wait(self, _request: Any = None) -> None:
        """Request hook: hold the request until the gate is open."""
        while True:
            with self._lock:
                delay = self._open_at - time.monotonic()
            if delay <= 0:
                return
            time.sleep(min(delay, 0.5))
