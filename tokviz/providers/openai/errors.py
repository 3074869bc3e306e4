"""Every way a request to a server can fail, as one line that names the server and the fix.

The API key is never part of a line: each message passes through `redact` with the key in force.
"""

from __future__ import annotations

from typing import Any

from tokviz.ground.errors import ProviderError, RateLimitedError, redact
from tokviz.providers.base import Request
from tokviz.providers.openai import connection, dialects

LOGPROB_MODELS = "gpt-4.1, gpt-4.1-mini, gpt-4o, gpt-4o-mini"


def _cause(err: BaseException) -> str:
    """The underlying transport error, briefly: "connection refused", "RemoteProtocolError"…"""
    cause = err.__cause__ or err.__context__ or err
    text = str(cause).lower()
    if "refused" in text:
        return "connection refused"
    return type(cause).__name__


def _server_message(err: Any) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(getattr(err, "message", "") or err)


def translate_error(err: Exception, request: Request, base_url: str | None, *, mid_stream: bool = False) -> ProviderError:
    """One clear line for every way a request can fail; the key is never part of it."""
    import openai

    where = connection.where(base_url)
    key = connection.api_key()

    def fail(message: str, hint: str | None = None) -> ProviderError:
        return ProviderError(redact(message, key), hint=redact(hint, key) if hint else None)

    if isinstance(err, openai.APIStatusError):
        status = err.status_code
        detail = " ".join(_server_message(err).split())[:300]
        if status == 400 and "chat template" in detail.lower():
            return fail(f"{where} cannot answer chat for model {request.model!r}: the model has no chat template "
                        f"(400: {detail})", hint="use --raw, or start the server with a template (vLLM: --chat-template FILE)")
        if status in (400, 403) and "logprob" in detail.lower():
            return fail(f"model {request.model!r} does not expose log-probabilities ({status}: {detail})",
                        hint=f"reasoning models refuse them; use a model that returns them, such as {LOGPROB_MODELS}")
        if status == 401:
            return fail(f"{where} rejected the API key (401: {detail})",
                        hint="check OPENAI_API_KEY (export OPENAI_API_KEY=sk-...), or run the embedded model by leaving out --model")
        if status == 403:
            return fail(f"{where} refused the request (403: {detail})")
        if status == 404:
            if "model" not in detail.lower():  # a route that does not exist (FastAPI: {"detail": "Not Found"})
                route = err.request.url.path if getattr(err, "request", None) is not None else "this route"
                no_v1 = bool(base_url) and not str(base_url).rstrip("/").endswith("/v1")
                return fail(f"{where} has no {route} route (404: {detail})",
                            hint="check that --base-url ends in /v1, e.g. http://127.0.0.1:8000/v1" if no_v1 else
                            "check --base-url: it should be the server's OpenAI-compatible root, e.g. http://127.0.0.1:8000/v1")
            return fail(f"model {request.model!r} was not found at {where} (404: {detail})",
                        hint="check the model name; `GET /v1/models` on the server lists them")
        if status == 429:
            after = err.response.headers.get("retry-after") if err.response is not None else None
            waited = f"; the server asked to wait {after} s more" if after else ""
            return RateLimitedError(redact(f"{where} is rate limiting requests (429: {detail}); gave up after "
                                           f"{request.retries} retries{waited}", key),
                                    hint="wait and try again, or raise --retries")
        if status >= 500:
            return fail(f"{where} failed with a server error ({status}: {detail}) after {request.retries} retries",
                        hint="try again later")
        return fail(f"{where} rejected the request ({status}: {detail})")
    if isinstance(err, openai.APIError) and not isinstance(err, openai.APIConnectionError) and isinstance(
            getattr(err, "body", None), dict):
        # an error event inside a 200 stream (vLLM answers an over-large -k so): the server's own
        # word, once, never retried as a cut stream
        detail = " ".join(_server_message(err).split())[:300]
        if "logprob" in detail.lower() and ("max" in detail.lower() or "greater" in detail.lower()):
            dialect = dialects.detected(base_url)
            return fail(f"{where} refused -k {request.params.top_k}: {detail}",
                        hint=dialect.max_logprobs_hint if dialect else "ask for fewer alternatives with -k")
        return fail(f"{where} reported an error inside its answer: {detail}")
    if mid_stream and isinstance(err, openai.APIConnectionError | OSError):
        return fail(f"the response from {where} was cut off after it had started ({_cause(err)})", hint="try again")
    if isinstance(err, openai.APITimeoutError):
        return fail(f"no response from {where} within {request.timeout:g} s", hint="raise --timeout or try again")
    if isinstance(err, openai.APIConnectionError):
        return fail(f"cannot connect to {where}: {_cause(err)}",
                    hint="is the server running? check --base-url / OPENAI_BASE_URL")
    if isinstance(err, openai.APIResponseValidationError | ValueError | KeyError | TypeError | AttributeError):
        return fail(f"{where} sent a malformed response ({type(err).__name__}: {' '.join(str(err).split())[:200]})")
    # Transport errors raised while reading the stream (a dropped connection mid-response).
    return fail(f"the response from {where} was cut off ({type(err).__name__}: {' '.join(str(err).split())[:200]})",
                hint="try again")
