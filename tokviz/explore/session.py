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

import asyncio
import contextlib
import hmac
import json
import math
import random
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tokviz import pipeline
from tokviz.explore.exploration import Exploration
from tokviz.ground.errors import ProviderError, TokvizError, UsageError, redact
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

    # --- the record ----------------------------------------------------------------------------

    def record(self) -> Run:
        with self.lock:
            report = self.cursor.report()
            return self.exploration.to_run(provider=self.opened.name, model=report.get("model", self.plan.request.model),
                                           params=self.plan.request.params, messages=report.get("messages", ()),
                                           report=report)

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


# --- the web app ------------------------------------------------------------------------------

class Forbidden(Exception):
    pass


def _number(body: dict[str, Any], key: str, default: float, low: float, high: float, *, whole: bool = False) -> Any:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"{key} must be a number")
    if whole and value != int(value):
        raise UsageError(f"{key} must be a whole number")
    if not low <= value <= high:
        raise UsageError(f"{key} must be between {low:g} and {high:g}")
    return int(value) if whole else float(value)


def continuation(body: dict[str, Any]) -> Continuation:
    """The page's settings for a continuation, checked (a bad value is one line back, never run)."""
    top_p = _number(body, "top_p", 1.0, 0.0, 1.0)
    if top_p <= 0:
        raise UsageError("top_p must be above 0")
    seed = body.get("seed")
    return Continuation(max_tokens=_number(body, "n", 20, 1, MAX_CONTINUATION, whole=True),
                        temperature=_number(body, "temperature", 0.0, 0.0, 5.0),
                        top_k=_number(body, "top_k", 0, 0, 1000, whole=True), top_p=top_p,
                        seed=None if seed is None else _number(body, "seed", 0, 0, 2**63 - 1, whole=True))


def app(session: Session, token: str, port: int) -> Any:
    """The Starlette app for `session`, answering only requests that carry `token`."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
    from starlette.routing import Route

    from tokviz.explore import page

    hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
    origins = {f"http://{h}" for h in hosts}

    def check_host(request: Request) -> None:
        if request.headers.get("host", "") not in hosts:
            raise Forbidden("this explorer answers only at its own address")

    def check(request: Request) -> None:
        check_host(request)
        origin = request.headers.get("origin")
        if origin is not None and origin not in origins:
            raise Forbidden("cross-site requests are refused")
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            raise Forbidden("cross-site requests are refused")
        given = request.query_params.get("token") or request.headers.get("x-tokviz-token") or ""
        if not hmac.compare_digest(given.encode("utf-8", "replace"), token.encode()):
            raise Forbidden("a valid session token is required (open the address tokviz printed)")

    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
               "X-Frame-Options": "DENY"}

    def guarded(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                check(request)
                response = await handler(request)
            except Forbidden as err:
                response = PlainTextResponse(f"forbidden: {err}", status_code=403)
            except TokvizError as err:
                response = JSONResponse({"error": err.line()}, status_code=400)
            response.headers.update(headers)
            return response
        return endpoint

    async def body_of(request: Request) -> dict[str, Any]:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise Forbidden("requests must be JSON")
        try:
            body = json.loads(await request.body())
        except (ValueError, RecursionError):
            raise UsageError("the request is not valid JSON") from None
        if not isinstance(body, dict):
            raise UsageError("the request must be a JSON object")
        return body

    def stream(job: Callable[[Emit, threading.Event], None]) -> StreamingResponse:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

        def emit(event: dict[str, Any] | None) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, event)

        def run(cancel: threading.Event) -> None:
            try:
                job(emit, cancel)
            except TokvizError as err:
                emit({"event": "error", "message": err.line()})
            except Exception as err:  # the page gets one line; the session goes on
                emit({"event": "error", "message": redact(f"the model failed: {type(err).__name__}: {err}")})
            finally:
                emit({"event": "state", "version": session.version})
                emit(None)

        cancel = session.submit(run)

        async def lines() -> Any:
            try:
                while (event := await queue.get()) is not None:
                    yield json.dumps(event, ensure_ascii=False) + "\n"
            finally:
                cancel.set()  # the page went away (or the stream ended): stop generating for it

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    async def index(request: Request) -> Response:
        nonce = secrets.token_urlsafe(16)
        csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; img-src 'self'; "
               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
        body = page.page(meta=_meta(session), nonce=nonce, save=str(session.save_path) if session.save_path else None)
        return Response(body, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": csp})

    async def state(request: Request) -> Response:
        with session.lock:
            data = {**session.exploration.state(), "version": session.version, "busy": session.busy()}
        return JSONResponse(data)

    async def branch(request: Request) -> Response:
        body = await body_of(request)
        how = continuation(body)
        node = body.get("node", -1)
        if isinstance(node, bool) or not isinstance(node, int):
            raise UsageError("node must be a whole number")
        with session.lock:
            session.exploration.check_node(node)
        return stream(lambda emit, cancel: session.branch(node, how, emit=emit, cancel=cancel))

    async def restart(request: Request) -> Response:
        body = await body_of(request)
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise UsageError("the prompt is empty")
        return stream(lambda emit, cancel: session.restart(prompt, emit, cancel))

    async def cancel(request: Request) -> Response:
        await body_of(request)
        return JSONResponse({"cancelled": session.cancel_all()})

    async def prune(request: Request) -> Response:
        body = await body_of(request)
        branch = body.get("branch")
        if isinstance(branch, bool) or not isinstance(branch, int):
            raise UsageError("branch must be a whole number")
        if session.busy():
            raise UsageError("wait for the model to finish (or cancel) before pruning")
        session.prune(branch)
        return await state(request)

    async def run_json(request: Request) -> Response:
        data = session.record().to_json()
        return Response(redact(data), media_type="application/json",
                        headers={"Content-Disposition": 'attachment; filename="exploration.json"'})

    async def graph_svg(request: Request) -> Response:
        from tokviz.views.export import render

        svg = await asyncio.to_thread(render, session.record(), "svg")
        return Response(svg, media_type="image/svg+xml",
                        headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})

    async def favicon(request: Request) -> Response:  # browsers ask for it; no token is sent with that
        try:
            check_host(request)
        except Forbidden as err:
            return PlainTextResponse(f"forbidden: {err}", status_code=403)
        return Response(status_code=204, headers=headers)

    routes = [Route("/", guarded(index)), Route("/api/state", guarded(state)),
              Route("/api/branch", guarded(branch), methods=["POST"]),
              Route("/api/prompt", guarded(restart), methods=["POST"]),
              Route("/api/cancel", guarded(cancel), methods=["POST"]),
              Route("/api/prune", guarded(prune), methods=["POST"]),
              Route("/exploration.json", guarded(run_json)), Route("/graph.svg", guarded(graph_svg)),
              Route("/favicon.ico", favicon)]

    async def refuse_unknown(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("not found", status_code=404, headers=headers)

    return Starlette(routes=routes, exception_handlers={404: refuse_unknown})


def _meta(session: Session) -> str:
    p = session.plan.request.params
    return f"{session.opened.name}:{session.plan.request.model} · {p.mode} · top-{session.k} alternatives"


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
        config = uvicorn.Config(app(session, self.token, self.port), log_config=None, access_log=False,
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
