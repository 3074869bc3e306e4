"""What every provider shares: the request, the spec that describes a provider, and its capabilities.

A provider is any object with `name` and `predict(request) -> Run`. What it can do beyond that is
a capability, and each capability is one runtime-checkable Protocol below: a provider has it when
its class has the methods. `require` is the one place that asks (and refuses in one line, naming
the installed providers that can); nothing outside `tokviz/providers/` probes a provider with
`hasattr` or names its class. The modes a provider speaks (chat, raw text) are not methods, so
its spec declares them.

This module and `tokviz.run` are the API a provider plugin is written against (`registry` re-exports
the names plugins written before it import from there).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from tokviz.ground.errors import UsageError, without_credentials
from tokviz.run import Params, Run, Step, Token, Tokenization

DEFAULT_MODEL = "gemma-3-270m"
# The model of a request to a server when none was named (no --model, no $TOKVIZ_MODEL): the server
# is asked which it serves (GET /models), so the run names what answered, not tokviz's own default.
SERVER_MODEL = ""
# Most sequences a provider decodes together (`--parallel`): llama.cpp refuses a context of more
# than 256, and on CPUs the throughput stops growing well before 64.
MAX_PARALLEL = 64

Progress = Callable[[str], None]
StepListener = Callable[[Step], None]  # told of each step as it arrives (live output)


def silent(_: str) -> None:
    """The progress callback that says nothing."""


class Stopped(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during work that had already made something: `record` is what was made
    (a run marked "interrupted", or the runs so far). A command saves, draws and prints it, then
    re-raises `cause` so the exit status still says it was stopped (130 or 143)."""

    def __init__(self, record: Any, cause: BaseException) -> None:
        super().__init__()
        self.record = record
        self.cause = cause


class Capability(str, enum.Enum):
    """What a provider can do beyond returning a generated run.

    The first two are modes, declared in a spec's `capabilities`; the rest are methods, each a
    Protocol below (`PROTOCOLS`), so what a provider can do is read from its class, never from a
    list that could drift from it.
    """

    CHAT = "chat"  # wrap the prompt in the model's chat format
    RAW = "raw"  # continue the prompt as raw text
    STRUCTURED = "structured"  # constrain the answer to a JSON schema (--json-schema)
    TREE = "tree"  # continue from a forced prefix: `tokviz tree` (a TreeCursor)
    SCORE = "score"  # log-probabilities of a given text
    TOKENIZE = "tokenize"  # the model's own token split, with no generation
    LIVE = "live"  # each step handed over as it arrives (text shown while it is generated)
    EXPLORE = "explore"  # a cursor that jumps to any path and generates from it (`tokviz explore`)
    PARALLEL = "parallel"  # several sequences decoded together (`--parallel`)
    DESCRIBE = "describe"  # what a server supports (`tokviz server`)
    BATCH_FILES = "batch-files"  # request files for an offline batch engine, and their answers read back
    CHOICES = "choices"  # given answers weighed after one reading of the prompt (`predict --choice`)


@dataclass(frozen=True)
class Request:
    """Everything a provider needs to produce a run."""

    prompt: str
    model: str = DEFAULT_MODEL
    params: Params = field(default_factory=Params)
    system: str | None = None
    # For providers that talk to a server; local providers ignore them.
    base_url: str | None = None
    timeout: float = 60.0
    retries: int = 2


@dataclass(frozen=True)
class TreeSpec:
    """How far `tokviz tree` grows: `branch` children per node down to `depth` tokens, children
    below `min_prob` dropped, at most `max_nodes` nodes, each leaf finished greedily by `complete`."""

    depth: int = 4
    branch: int = 3
    min_prob: float = 0.0
    max_nodes: int = 200
    complete: int = 0
    parallel: bool = False  # a node's children decoded together in one batch (a provider may ignore it)


@dataclass(frozen=True)
class ScoreSpec:
    """How `tokviz score` reads a text: `exact` decodes one token at a time as `predict` does
    (otherwise batched, several positions per decode); past `window` tokens (default: the model's
    context) the text is scored in windows that move by `stride` tokens, each conditioned on the
    `window - stride` tokens before it (the Hugging Face perplexity guide's method)."""

    exact: bool = False
    window: int | None = None
    stride: int | None = None


@dataclass(frozen=True)
class Continuation:
    """How an explored branch goes on (`tokviz explore`): up to `max_tokens` tokens, chosen greedily
    at temperature 0, else sampled with `top_k` (0: no limit), `top_p` and `seed`."""

    max_tokens: int
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None


class TreeCursor(Protocol):
    """A position in the tree of continuations, moved by the one tree algorithm in the pipeline.

    The cursor starts after the prompt (and any forced tokens). `children` reads the most likely
    next tokens at the current position, `enter` steps into one of them, `leave` steps back, and
    `complete` reads a greedy continuation from the current position without moving. A local
    model keeps its KV cache along the path; a server sends the path back as text.
    """

    def children(self, k: int) -> list[Token]: ...

    def enter(self, token: Token) -> None: ...

    def leave(self) -> None: ...

    def complete(self, n: int) -> tuple[Token, ...]: ...

    def report(self) -> dict[str, Any]:
        """Figures for the run's tree record (tokens evaluated, requests sent, approximations)."""
        ...

    def close(self) -> None:
        """Free what the cursor holds (a batch context, a pool of requests); called once, at the end."""
        ...


class ExploreCursor(TreeCursor, Protocol):
    """A tree cursor that can also jump to any path and generate from it (`tokviz explore`).

    `goto` moves to the path (a local model keeps the KV cache of the prefix it shares with the
    current one); `generate` continues it token by token, each step with the cursor's top-k
    alternatives, moving the cursor along, and calls `on_step` as each token arrives; `stop` is
    asked between tokens (a cancelled continuation keeps what it generated). It returns the steps
    and why it ended ("stop", "length" or "cancelled").
    """

    def goto(self, path: Sequence[Token]) -> None: ...

    def generate(self, how: Continuation, k: int, on_step: Callable[[Step], None] | None = None,
                 stop: Callable[[], bool] | None = None) -> tuple[tuple[Step, ...], str]: ...


class Provider(Protocol):
    name: str

    def predict(self, request: Request) -> Run:
        """Generate from `request`, recording every chosen token and its top-k alternatives."""
        ...


# --- capabilities: one Protocol each ------------------------------------------------------------

@runtime_checkable
class Live(Protocol):
    """Generates as `predict` does, handing each step to `on_step` as it arrives."""

    def predict_live(self, request: Request, on_step: StepListener) -> Run: ...


@runtime_checkable
class Scorer(Protocol):
    """The teacher-forced log-probability of every token of a given text after the request's prompt."""

    def score(self, request: Request, text: str, progress: Callable[[int, int], None] | None,
              spec: ScoreSpec) -> Run: ...


@runtime_checkable
class Weigher(Protocol):
    """Given answers to one prompt weighed, each as a scored run (`providers/choices.py` says how
    the context and each answer are split, and what a bound is): exactly where the provider can
    read a given continuation, reading the prompt once for all of them where it can."""

    def weigh(self, request: Request, choices: Sequence[str]) -> list[Run]: ...


@runtime_checkable
class Tokenizer(Protocol):
    """The model's own token split of a text, with no generation."""

    def tokenize(self, text: str, model: str) -> Tokenization: ...


@runtime_checkable
class TreeGrower(Protocol):
    """A cursor after the prompt and forced tokens, for the one tree algorithm (`tokviz tree`)."""

    def tree_cursor(self, request: Request, spec: TreeSpec, forced: tuple[Token, ...] = ()) -> TreeCursor: ...


@runtime_checkable
class Explorer(Protocol):
    """A cursor that can jump to any path up to `depth` tokens past the prompt and generate from it."""

    def explore_cursor(self, request: Request, k: int, depth: int) -> ExploreCursor: ...


Take = Callable[[bool], "tuple[Any, Request] | None"]


@runtime_checkable
class MultiSequence(Protocol):
    """Several requests for one model decoded together (`--parallel`): a continuous stream fed by
    `take`, a list of requests, or several seeds of one request."""

    def stream(self, take: Take, slots: int, on_run: Callable[[Any, Run | Exception], None],
               stop: Callable[[], bool] | None = None) -> None: ...

    def predict_parallel(self, requests: Sequence[Request], slots: int | None = None) -> list[Run]: ...

    def sample_parallel(self, request: Request, seeds: Sequence[int], slots: int | None = None) -> list[Run]: ...


@runtime_checkable
class ServerDescriber(Protocol):
    """What the server behind a request supports, as (ok?, line) pairs (`tokviz server`)."""

    def describe(self, request: Request) -> list[tuple[bool | None, str]]: ...


@runtime_checkable
class BatchFiles(Protocol):
    """Request files for an offline batch engine (OpenAI's Batch API, `vllm run-batch`), the
    answers it writes read back into runs, and the engine itself where the provider can reach it."""

    def batch_request(self, request: Request, dialect: str | None) -> tuple[str, dict[str, Any]]: ...

    def batch_answer(self, answer: Any, request: Request, dialect: str | None, origin: str) -> Run: ...

    def submit_batches(self, request: Request, inputs: list[tuple[Path, str]], *, known: list[dict[str, str]] | None,
                       remember: Callable[[list[dict[str, str]]], None], progress: Callable[[str], None],
                       poll_s: float) -> list[bytes]: ...


PROTOCOLS: dict[Capability, type] = {
    Capability.LIVE: Live, Capability.SCORE: Scorer, Capability.TOKENIZE: Tokenizer, Capability.TREE: TreeGrower,
    Capability.EXPLORE: Explorer, Capability.PARALLEL: MultiSequence, Capability.DESCRIBE: ServerDescriber,
    Capability.BATCH_FILES: BatchFiles, Capability.CHOICES: Weigher,
}
MODES = frozenset({Capability.CHAT, Capability.RAW, Capability.STRUCTURED})


@dataclass(frozen=True)
class OptionSpec:
    """A provider-specific setting, given as ``-O key=value`` and recorded in the run."""

    name: str
    kind: type  # int, float, str or bool
    help: str
    check: Callable[[Any], str | None] | None = None  # returns the problem, or None when the value is fine


@dataclass(frozen=True)
class ProviderSpec:
    """A provider described as data. `factory(progress=…)` builds it; nothing else is imported
    until then."""

    name: str
    description: str
    factory: Callable[..., Provider]
    models: tuple[str, ...] = ()  # regular expressions of the model names it serves
    claims_base_url: bool = False  # serves any model when a server URL is given (--base-url / base_url_env)
    base_url_env: str | None = None  # environment variable naming its server, if any
    default_base_url: str | None = None  # its own host, where a key goes without being named
    secret_env: str | None = None  # environment variable holding its key, if any (redacted everywhere)
    concurrent: bool = False  # requests may run in parallel (a server); False: one at a time (one model in memory)
    max_top_k: int = 20
    capabilities: frozenset[Capability] = frozenset({Capability.RAW})
    default_mode: str = "raw"  # without --chat or --raw: continue raw text ("raw") or use the chat format ("chat")
    options: tuple[OptionSpec, ...] = ()
    priority: int = 100  # lower claims first when two specs claim one model
    source: str = "built-in"  # filled in from the entry point's distribution
    # What its log-probabilities are, in the few words every view shows (Run.figures), for runs
    # whose provider records nothing more precise (a server's dialect does): "unknown" unless known.
    figures: str = "unknown"

    def claims_model(self, model: str) -> bool:
        return any(re.search(pattern, model, re.IGNORECASE) for pattern in self.models)

    def claims_env_url(self, environ: Mapping[str, str]) -> bool:
        return self.claims_base_url and bool(self.base_url_env and environ.get(self.base_url_env))

    def can(self, capability: Capability) -> bool:
        """A mode if the spec declares it; a method capability if the provider's class has it (a
        factory that is not a class is taken at its word: its declared capabilities)."""
        protocol = PROTOCOLS.get(capability)
        if protocol is not None and isinstance(self.factory, type):
            return issubclass(self.factory, protocol)
        return capability in self.capabilities

    def abilities(self) -> list[Capability]:
        """Everything it can do, in the enum's order (`tokviz providers` lists them)."""
        return [c for c in Capability if self.can(c)]

    def parse_options(self, pairs: tuple[str, ...]) -> dict[str, Any]:
        """`-O key=value` pairs checked against this provider's settings, as typed values."""
        known = {o.name: o for o in self.options}
        out: dict[str, Any] = {}
        for pair in pairs:
            key, sep, text = pair.partition("=")
            key = key.strip()
            if not sep or not key:
                raise UsageError(f"-O needs key=value, got {pair!r}")
            spec = known.get(key)
            if spec is None:
                names = ", ".join(sorted(known)) or "none"
                raise UsageError(f"the {self.name} provider has no option {key!r}", hint=f"its options: {names}")
            out[key] = _convert(spec, text.strip())
        return dict(sorted(out.items()))


def _convert(spec: OptionSpec, text: str) -> Any:
    try:
        if spec.kind is bool:
            if text.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(text)
            value: Any = text.lower() in ("1", "true", "yes", "on")
        else:
            value = spec.kind(text)
    except ValueError:
        raise UsageError(f"-O {spec.name} must be a{'n' if spec.kind is int else ''} {spec.kind.__name__}, got {text!r}") from None
    if isinstance(value, float) and value != value:  # NaN
        raise UsageError(f"-O {spec.name} must be a number, got {text!r}")
    problem = spec.check(value) if spec.check else None
    if problem:
        raise UsageError(f"-O {spec.name}: {problem}")
    return value




def check_base_url(url: str, what: str = "--base-url") -> None:
    """A server URL an HTTP client can use, or one clear line (not an SDK traceback) naming where
    the URL came from (`what`) and never its password."""
    shown = without_credentials(url)
    if not url.isprintable() or any(c.isspace() for c in url):
        from tokviz.run.tokens import safe

        raise UsageError(f"{what} {safe(shown)!r} holds a control character or a space, which no URL has")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as err:
        raise UsageError(f"{what} {shown!r} is not a valid URL ({without_credentials(str(err))})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        bare = re.fullmatch(r"[\w.-]+:\d+(/\S*)?", url)  # host:port, the scheme left out
        hint = f"did you mean http://{url}{'' if bare.group(1) else '/v1'}?" if bare else "e.g. http://127.0.0.1:8000/v1"
        raise UsageError(f"{what} must be an http:// or https:// URL, got {shown!r}", hint=hint)


def same_server(a: str, b: str) -> bool:
    """Whether two URLs name one server (scheme, host, port and path; credentials, case of the
    host and a trailing slash aside): the test for "a server the user named"."""
    def key(url: str) -> tuple[str, str, int | None, str] | None:
        try:
            parts = urlsplit(url.strip())
            port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
        except ValueError:
            return None
        return parts.scheme.lower(), (parts.hostname or "").lower(), port, parts.path.rstrip("/")

    ka = key(a)
    return ka is not None and ka == key(b)
