"""Where requests go, and the clients that carry them: one per server and settings, shared by threads.

Building an HTTP client per request costs more CPU than a 200 ms request leaves for sixteen batch
workers, so clients are kept; a server that must see one request at a time gets a lock of its own
(`turn`); a server's dialect is detected once per URL. Every message names the server by its
scheme, host and path only: credentials in a URL never reach a line.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tokviz.ground import environment
from tokviz.ground.errors import UsageError, register_url_credentials
from tokviz.providers.base import SERVER_MODEL, Request, check_base_url
from tokviz.providers.openai import dialects
from tokviz.providers.openai.ratelimit import RateGate

if TYPE_CHECKING:
    from openai import OpenAI

OPENAI_URL = "https://api.openai.com/v1"
# Sent to servers that need no key: the SDK refuses to start without one.
PLACEHOLDER_KEY = "sk-no-key-required"


def base_url(request: Request) -> str | None:
    """The server a request goes to: --base-url, else $OPENAI_BASE_URL, else OpenAI's (None)."""
    return request.base_url or environment.current().environ.get("OPENAI_BASE_URL") or None


def api_key() -> str | None:
    return environment.current().environ.get("OPENAI_API_KEY") or None


def where(base_url: str | None) -> str:
    """The server, for messages: scheme, host and path only (credentials in a URL stay out)."""
    if base_url is None:
        return OPENAI_URL
    try:
        parts = urlsplit(base_url)
        host = parts.hostname or ""
    except ValueError:
        return base_url
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def check_key(key: str) -> None:
    """Keys pasted with a newline or typed with a look-alike character fail as 401s far away."""
    if key != key.strip():
        raise UsageError("OPENAI_API_KEY has leading or trailing whitespace (a newline from a file?)",
                         hint='strip it: export OPENAI_API_KEY="$(tr -d "[:space:]" < keyfile)"')
    if not key.isascii() or not key.isprintable():
        raise UsageError("OPENAI_API_KEY holds a non-ASCII or control character",
                         hint="copy the key again from its source; a typographic dash or quote may have crept in")


class Connection:
    """The clients, rate gate and one-at-a-time locks of one provider, shared by its threads."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str | None, str, float, int], OpenAI] = {}
        self._lock = threading.Lock()
        self.gate = RateGate()
        self._one_at_a_time: dict[str, threading.Lock] = {}
        self._models: dict[str, str] = {}  # the one model each server lists (see `model`)

    def turn(self, base_url: str | None, dialect: dialects.Dialect) -> Any:
        """A lock per server that must see one request at a time (a null context otherwise)."""
        if not dialect.one_at_a_time:
            return contextlib.nullcontext()
        with self._lock:
            return self._one_at_a_time.setdefault(base_url or "", threading.Lock())

    def client(self, request: Request) -> tuple[OpenAI, str | None]:
        from openai import DefaultHttpxClient, OpenAI

        url = base_url(request)
        if url is not None:
            check_base_url(url, "--base-url" if request.base_url else "$OPENAI_BASE_URL")
        register_url_credentials(url)  # sent as Basic auth: redacted in every form, should a server echo it
        key = api_key()
        if not key:
            if dialects.is_openai(url):
                raise UsageError(
                    "no OpenAI API key: set OPENAI_API_KEY (export OPENAI_API_KEY=sk-...)",
                    hint="or run the embedded model offline by leaving out --model, or point --base-url at a local server",
                )
            key = PLACEHOLDER_KEY
        check_key(key)
        cache_key = (url, key, request.timeout, request.retries)
        with self._lock:
            client = self._clients.get(cache_key)
            if client is None:
                http = DefaultHttpxClient(event_hooks={"request": [self.gate.wait], "response": [self.gate.observe]})
                client = self._clients[cache_key] = OpenAI(api_key=key, base_url=url, timeout=request.timeout,
                                                           max_retries=request.retries, http_client=http)
        return client, url

    @staticmethod
    def probe(client: OpenAI, request: Request) -> Callable[[str], Any]:
        """GET a URL once, quickly: probes answer at once or not at all (no retries)."""
        quick = client.with_options(max_retries=0, timeout=min(request.timeout, 5.0))
        return lambda url: quick.get(url, cast_to=object)

    @staticmethod
    def probe_post(client: OpenAI, request: Request, seconds: float = 60.0) -> Callable[[str, dict[str, Any]], Any]:
        """POST a small request once (a one-token chat or completion that asks what a server
        does): no retries, and no longer than `seconds`."""
        quick = client.with_options(max_retries=0, timeout=min(request.timeout, seconds))
        return lambda url, body: quick.post(url, body=body, cast_to=object)

    def dialect(self, client: OpenAI, base_url: str | None, request: Request) -> dialects.Dialect:
        named = request.params.options.get("dialect")
        if named:
            return dialects.DIALECTS[str(named)]
        return dialects.detect(base_url, self.probe(client, request))

    def model(self, request: Request) -> Request:
        """The request with its model named: as given, or (no --model, no $TOKVIZ_MODEL: the request
        holds SERVER_MODEL) the one model the server lists, so a run is labelled with what really
        answered, not with tokviz's own default. A server that lists none or several is asked to
        be told which."""
        if request.model != SERVER_MODEL:
            return request
        client, url = self.client(request)
        with self._lock:
            known = self._models.get(url or "")
        if known is None:
            try:
                listed = self.probe(client, request)((url or OPENAI_URL).rstrip("/") + "/models")
                data = listed.get("data") if isinstance(listed, dict) else None
                ids = [str(m["id"]) for m in data or [] if isinstance(m, dict) and isinstance(m.get("id"), str)]
            except Exception:
                ids = []
            if len(ids) != 1:
                from tokviz.run import tokens as tok

                named = ", ".join(tok.visible(i, visible_spaces=False) for i in ids[:5]) + (" …" if len(ids) > 5 else "")
                raise UsageError(f"{where(url)} serves {len(ids)} models ({named}): name one with --model" if ids else
                                 f"{where(url)} does not list its models (GET /models): name the model with --model")
            known = ids[0]
            with self._lock:
                self._models[url or ""] = known
        from dataclasses import replace

        return replace(request, model=known)
