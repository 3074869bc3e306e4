"""Error types that carry their own exit status.

Every failure a user can cause or meet is raised as a `TokvizError`; the single handler in
`tokviz.cli` turns it into one line on stderr and the exit code below. Keeping the status on the
exception (rather than deciding it at the top) means the code that knows *why* something failed
also decides whether it was the user's input (usage, 2) or the world (failure, 1).
"""

from __future__ import annotations

import os
import re
from enum import IntEnum


class ExitStatus(IntEnum):
    """Process exit codes, following the Unix convention that 2 means "you called me wrong"."""

    OK = 0
    ERROR = 1
    USAGE = 2
    INTERRUPTED = 130  # 128 + SIGINT
    TERMINATED = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into the same graceful stop as Ctrl-C (finished results kept), exit 143."""


class TokvizError(Exception):
    """A failure with a message fit to show a user as it is: one line, naming the problem and the fix."""

    exit_status: ExitStatus = ExitStatus.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def line(self) -> str:
        """The one line shown on stderr: newlines are folded so the message stays one line."""
        text = self.message if not self.hint else f"{self.message} ({self.hint})"
        return redact(" ".join(text.split()))


class UsageError(TokvizError):
    """The command line asked for something impossible: a bad option value, a missing file."""

    exit_status = ExitStatus.USAGE


class RunFileError(TokvizError):
    """A file that should hold a tokviz run does not (corrupt, foreign, or from a newer tokviz)."""


class ProviderError(TokvizError):
    """The model or service that produces the tokens failed."""


class RateLimitedError(ProviderError):
    """A server said "too many requests" (429) and kept saying it through the retries.

    `retry_after` carries the server's figure (seconds) so a batch can pause every worker, not
    just the one that was told.
    """

    retry_after: float | None = None


class CheckFailed(TokvizError):
    """`--check` found outputs that differ from the files on disk (the diff is already printed)."""


class RenderError(TokvizError):
    """A view could not be produced (for example Graphviz's `dot` is missing or failed)."""


# Environment variables whose values are secrets: each provider declares its own (ProviderSpec.
# secret_env) and the registry adds it here; any *_API_KEY variable counts too, so a key is kept
# out of output even before the provider that reads it is loaded.
_SECRET_ENVS: set[str] = set()


def register_secret_env(name: str) -> None:
    _SECRET_ENVS.add(name)


def secrets() -> list[str]:
    """The secrets in force now (each provider's key variable, any *_API_KEY, and the credentials
    of any server URL a request was sent to, in each form they travel in), longest first."""
    return sorted(set(_secrets_in_environment()) | _SENT, key=len, reverse=True)


def keys_in_force() -> bool:
    """Whether any key variable is set: a request would carry it (the test for sending a request
    to a server the user did not name)."""
    return bool(_secrets_in_environment())


# Credentials tokviz has sent in this process other than by a key variable: a URL's user and
# password, which HTTP clients send as Basic auth (base64 of "user:password"), so a server that
# echoes the header back would otherwise put the password into a run in a form no one looks for.
_SENT: set[str] = set()


def register_url_credentials(url: str | None) -> None:
    """Remember the password of `url` (if any) as a secret, plain, as "user:password" and in
    base64, so every redaction removes each form."""
    import base64
    from urllib.parse import unquote, urlsplit

    if not url or "@" not in url:
        return
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return
    if not password:
        return
    pair = f"{unquote(user or '')}:{unquote(password)}"
    forms = {unquote(password), password, pair, base64.b64encode(pair.encode("utf-8")).decode("ascii")}
    _SENT.update(f for f in forms if len(f) >= 4)


def _secrets_in_environment() -> list[str]:
    """The secrets of the command's environment, and of the process's (redaction is a safety net:
    a key in either is kept out)."""
    from tokviz.ground.environment import current

    found: list[str] = []
    for environ in (current().environ, os.environ):
        names = _SECRET_ENVS | {k for k in environ if k.endswith("_API_KEY")}
        found += [environ[n] for n in sorted(names) if environ.get(n)]
    return found


def without_credentials(text: str) -> str:
    """`text` with the user and password of any URL in it replaced (`scheme://***@host`): a URL
    can carry a password, and no line tokviz prints may show it, even for a URL it cannot parse."""
    return _URL_CREDENTIALS.sub(r"\1***@", text)


_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@'\"]*@")

# API keys look like "sk-…" (OpenAI, and many compatible servers copy the shape); servers echo
# them, partly masked, in 401 messages ("Incorrect API key provided: sk-proj-****abcd").
_KEY_SHAPE = re.compile(r"\b(sk|rk|pk)-[A-Za-z0-9_\-*]{3,}")


def redact(text: str, *secrets: str | None, shapes: bool = True) -> str:
    """`text` with the given secrets, the keys in the environment and key-shaped words removed.

    Applied to every error line tokviz prints, so no code path can leak a key by forgetting to.
    `shapes=False` removes only the actual secrets, for data (files, stdout) where a word that
    merely looks like a key ("sk-learn") must stay as it is.
    """
    for secret in (*secrets, *_secrets_in_environment()):
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
            stripped = secret.strip()  # a key pasted with a trailing newline is still that key
            if stripped != secret and len(stripped) >= 4:
                text = text.replace(stripped, "[redacted]")
    return _KEY_SHAPE.sub("[redacted]", without_credentials(text)) if shapes else text
