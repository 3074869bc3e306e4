"""What the Gemini API's errors mean, in one line each (the SDK's `APIError` carries the HTTP
status, Google's status word and message: https://ai.google.dev/gemini-api/docs/troubleshooting)."""

from __future__ import annotations

import re
from typing import Any

from tokviz.ground.errors import ProviderError, RateLimitedError, TokvizError, UsageError

# Models reported to answer with log-probabilities (several 2.5 and 3.x models answer 400).
MODELS_WITH_LOGPROBS = ("gemini-2.0-flash", "gemini-2.0-flash-lite")
_NO_LOGPROBS = re.compile(r"logprobs? (is|are) not (enabled|supported)", re.IGNORECASE)


def translated(err: Any, model: str) -> TokvizError:
    """The SDK's APIError (or a transport error) as tokviz's one line."""
    code = getattr(err, "code", None)
    message = " ".join(str(getattr(err, "message", None) or err).split())[:300]
    if code is None:  # httpx: refused, timed out, reset
        return ProviderError(f"cannot reach the Gemini API: {type(err).__name__}: {message}",
                             hint="check the network, or --base-url")
    if code == 400 and _NO_LOGPROBS.search(message):
        return UsageError(f"{model} gives no log-probabilities (the Gemini API says: {message})",
                          hint=f"models that do: {', '.join(MODELS_WITH_LOGPROBS)}")
    if code in (401, 403) or (code == 400 and "api key" in message.lower()):  # a bad key is a 400 on this API
        return UsageError(f"the Gemini API refused the key ({code}: {message})",
                          hint="set GEMINI_API_KEY to a key from https://aistudio.google.com/apikey")
    if code == 404:
        return UsageError(f"the Gemini API has no model {model!r} ({message})", hint="e.g. -m gemini-2.0-flash")
    if code == 429:
        limited = RateLimitedError(f"the Gemini API is rate-limiting this key (429: {message})",
                                   hint="wait, or lower --parallel")
        return limited
    if code == 400:
        return UsageError(f"the Gemini API refused the request (400: {message})")
    return ProviderError(f"the Gemini API failed ({code}: {message})")
