"""The explorer's web app: one guard in front of every route, and the routes themselves.

`Guard` is an ASGI middleware that runs before routing (so no request, not even a redirect of a
path with a trailing slash, is answered to a foreign Host): every request must carry a Host
naming this address (DNS rebinding), no cross-site Origin or Sec-Fetch-Site, and the session's
random token (in the URL or the X-Tokviz-Token header); every answer gets the same protective
headers. It knows nothing of models, so it is tested on its own. The routes read the session from
the app's state; continuations stream to the page as NDJSON, token by token, and a page that goes
away cancels its own.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import secrets
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from tokviz.explore.session import MAX_CONTINUATION, Emit, Session
from tokviz.ground.errors import TokvizError, UsageError, redact
from tokviz.providers.base import Continuation
from tokviz.run import codec

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY"}
OPEN_PATHS = frozenset({"/favicon.ico"})  # browsers ask for it without the token; the Host is still checked
Scope = dict[str, Any]
ASGI = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class Forbidden(Exception):
    pass


class Guard:
    """ASGI middleware: refuse (403, one line) what does not come from this session's own page."""

    def __init__(self, app: ASGI, *, token: str, port: int) -> None:
        self.app = app
        self.token = token.encode()
        self.hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
        self.origins = {f"http://{h}" for h in self.hosts}

    def check(self, scope: Scope) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if headers.get("host", "") not in self.hosts:
            raise Forbidden("this explorer answers only at its own address")
        if scope.get("path") in OPEN_PATHS:
            return
        origin = headers.get("origin")
        if origin is not None and origin not in self.origins:
            raise Forbidden("cross-site requests are refused")
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            raise Forbidden("cross-site requests are refused")
        from urllib.parse import parse_qs

        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = (query.get("token") or [""])[0] or headers.get("x-tokviz-token", "")
        if not hmac.compare_digest(given.encode("utf-8", "replace"), self.token):
            raise Forbidden("a valid session token is required (open the address tokviz printed)")

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.lower().encode(), v.encode()) for k, v in HEADERS.items() if k.lower().encode() not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            self.check(scope)
        except Forbidden as err:
            from starlette.responses import PlainTextResponse

            await PlainTextResponse(f"forbidden: {err}", status_code=403)(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


# --- requests and answers -------------------------------------------------------------------------

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


def whole(body: dict[str, Any], key: str, default: Any = None) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{key} must be a whole number")
    return value


async def body_of(request: Request) -> dict[str, Any]:
    """The request's JSON object; anything else is refused (a form post is a cross-site attempt)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise Forbidden("requests must be JSON")
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):
        raise UsageError("the request is not valid JSON") from None
    if not isinstance(body, dict):
        raise UsageError("the request must be a JSON object")
    return body


def streamed(session: Session, job: Callable[[Emit, threading.Event], None]) -> Response:
    """Run `job` on the session's model thread, its events sent to the page as NDJSON lines; the
    page going away (or the stream ending) cancels it."""
    from starlette.responses import StreamingResponse

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
                yield codec.dumps(event, ensure_ascii=False) + "\n"
        finally:
            cancel.set()

    return StreamingResponse(lines(), media_type="application/x-ndjson")


def handled(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """A route whose refusals are answers: 403 for what is forbidden, 400 with one line for bad input."""
    async def endpoint(request: Request) -> Response:
        from starlette.responses import JSONResponse, PlainTextResponse

        try:
            return await handler(request)
        except Forbidden as err:
            return PlainTextResponse(f"forbidden: {err}", status_code=403)
        except TokvizError as err:
            return JSONResponse({"error": err.line()}, status_code=400)
    return endpoint


def _session(request: Request) -> Session:
    return request.app.state.session  # type: ignore[no-any-return]


# --- the routes -----------------------------------------------------------------------------------

async def index(request: Request) -> Response:
    from starlette.responses import Response

    from tokviz.explore import page

    session = _session(request)
    nonce = secrets.token_urlsafe(16)
    csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; img-src 'self'; "
           "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    body = page.page(meta=session.meta(), nonce=nonce, save=str(session.save_path) if session.save_path else None)
    return Response(body, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": csp})


async def state(request: Request) -> Response:
    from starlette.responses import JSONResponse

    session = _session(request)
    with session.lock:
        data = {**session.exploration.state(), "version": session.version, "busy": session.busy()}
    return JSONResponse(data)


async def branch(request: Request) -> Response:
    session = _session(request)
    body = await body_of(request)
    how = continuation(body)
    node = whole(body, "node", -1)
    with session.lock:
        session.exploration.check_node(node)
    return streamed(session, lambda emit, cancel: session.branch(node, how, emit=emit, cancel=cancel))


async def restart(request: Request) -> Response:
    session = _session(request)
    prompt = (await body_of(request)).get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise UsageError("the prompt is empty")
    return streamed(session, lambda emit, cancel: session.restart(prompt, emit, cancel))


async def cancel(request: Request) -> Response:
    from starlette.responses import JSONResponse

    await body_of(request)
    return JSONResponse({"cancelled": _session(request).cancel_all()})


async def prune(request: Request) -> Response:
    session = _session(request)
    number = whole(await body_of(request), "branch")
    if session.busy():
        raise UsageError("wait for the model to finish (or cancel) before pruning")
    session.prune(number)
    return await state(request)


async def run_json(request: Request) -> Response:
    from starlette.responses import Response

    data = _session(request).record().to_json()
    return Response(redact(data), media_type="application/json",
                    headers={"Content-Disposition": 'attachment; filename="exploration.json"'})


async def graph_svg(request: Request) -> Response:
    from starlette.responses import Response

    from tokviz.views.export import render

    session = _session(request)
    record = session.record()
    which = request.query_params.get("branch")
    if which is not None and which.isdigit() and record.tree is not None and int(which) < len(record.tree.branches):
        # one branch: its path as a generated run's graph (the chosen chain, each step's alternatives), rows wrapped
        from dataclasses import replace

        from tokviz.run import RunKind
        from tokviz.views.tree import path_steps

        tip = record.tree.branches[int(which)].tip
        record = replace(record, kind=RunKind.PREDICT, steps=path_steps(record, tip), nodes=(), tree=None)
    svg = await asyncio.to_thread(render, record, "svg")
    return Response(svg, media_type="image/svg+xml",
                    headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})


async def favicon(request: Request) -> Response:
    from starlette.responses import Response

    return Response(status_code=204)


ROUTES: list[tuple[str, Callable[[Request], Awaitable[Response]], list[str]]] = [
    ("/", index, ["GET"]), ("/api/state", state, ["GET"]), ("/api/branch", branch, ["POST"]),
    ("/api/prompt", restart, ["POST"]), ("/api/cancel", cancel, ["POST"]), ("/api/prune", prune, ["POST"]),
    ("/exploration.json", run_json, ["GET"]), ("/graph.svg", graph_svg, ["GET"]), ("/favicon.ico", favicon, ["GET"]),
]


def app(session: Session, token: str, port: int) -> Any:
    """The Starlette app for `session`, behind the guard for `token` at 127.0.0.1:`port`."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def not_found(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("not found", status_code=404)

    made = Starlette(routes=[Route(path, handled(fn), methods=methods) for path, fn, methods in ROUTES],
                     middleware=[Middleware(Guard, token=token, port=port)], exception_handlers={404: not_found})
    made.state.session = session
    return made
