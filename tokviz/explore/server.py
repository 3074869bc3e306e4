"""The explorer's web server: uvicorn on a socket bound to 127.0.0.1, in a thread of its own."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from typing import Any

from tokviz.explore.app import app
from tokviz.explore.session import Session
from tokviz.ground.errors import UsageError

IDLE_S = 5  # a connection that sends nothing for this long is closed (and so is an idle keep-alive one)


def _protocol() -> type:
    """uvicorn's HTTP/1.1 protocol, with its keep-alive timer started when a connection opens, not
    only after a first response: a client that connects and sends nothing (300 half-open
    connections, tried) is closed after IDLE_S instead of being held for ever."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Guarded(H11Protocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if self.timeout_keep_alive_task is None:
                self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive,
                                                                    self.timeout_keep_alive_handler)

    return Guarded


class Server:
    """uvicorn on a socket bound to 127.0.0.1 (a free port unless one is asked for), in a thread."""

    def __init__(self, session: Session, port: int = 0) -> None:
        import logging
        import socket

        import uvicorn

        for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
            log = logging.getLogger(name)
            log.handlers, log.propagate = [logging.NullHandler()], False  # only the face prints
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.sock.bind(("127.0.0.1", port))
        except OSError as err:
            self.sock.close()
            raise UsageError(f"cannot listen on 127.0.0.1:{port}: {err.strerror}") from None
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.token = secrets.token_urlsafe(24)
        self.url = f"http://127.0.0.1:{self.port}/?token={self.token}"
        config = uvicorn.Config(app(session, self.token, self.port), log_config=None, access_log=False, http=_protocol(),
                                timeout_keep_alive=IDLE_S,
                                log_level="critical", lifespan="off", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, name="tokviz-explore-http", daemon=True)
        self.failed: BaseException | None = None

    def _serve(self) -> None:
        try:
            asyncio.run(self.server.serve(sockets=[self.sock]))
        except BaseException as err:  # reported by the face through `failed`
            self.failed = err

    def start(self) -> None:
        import time

        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self.server.started:
            raise UsageError(f"the explorer's web server did not start{': ' + str(self.failed) if self.failed else ''}")

    def stop(self) -> None:
        import time

        self.server.should_exit = True
        deadline = time.monotonic() + 5
        while self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        with contextlib.suppress(OSError):
            self.sock.close()
