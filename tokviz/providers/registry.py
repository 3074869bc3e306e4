"""The provider protocol and the one registry of providers: Python entry points.

Providers are found the way simonw/llm finds its plugins: every distribution that declares an
entry point in the group ``tokviz.providers`` contributes a `ProviderSpec`. tokviz's own providers
are declared in its pyproject.toml through the very same group, so a third-party package and a
built-in take one path and nothing in tokviz is edited to add one.

A spec describes its provider as data (which models and URLs it claims, the secret it reads, how
many alternatives it can return, what it can do), so the rest of tokviz asks the spec instead of
testing provider names. Specs live in light modules: loading one never imports a heavy library
(llama_cpp, openai), so `tokviz providers` and model inference stay quick.
"""

from __future__ import annotations

import enum
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tokviz.ground.errors import UsageError, register_secret_env
from tokviz.run import Params, Run, Step, Token

ENTRY_POINT_GROUP = "tokviz.providers"
DEFAULT_MODEL = "gemma-3-270m"
# Most sequences a provider decodes together (`--parallel`): llama.cpp refuses a context of more
# than 256 (local.LLAMA_MAX_SEQ), and on CPUs the throughput stops growing well before 64.
MAX_PARALLEL = 64

Progress = Callable[[str], None]
StepListener = Callable[[Step], None]  # told of each step as it arrives (live output)


def silent(_: str) -> None:
    """The progress callback that says nothing."""


class Capability(str, enum.Enum):
    """What a provider can do beyond returning a generated run."""

    CHAT = "chat"  # wrap the prompt in the model's chat format
    RAW = "raw"  # continue the prompt as raw text
    TREE = "tree"  # continue from a forced prefix: `tokviz tree` (a TreeCursor)
    SCORE = "score"  # log-probabilities of a given text
    TOKENIZE = "tokenize"  # the model's own token split, with no generation


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
        """Generate from `request`, recording every chosen token and its top-k alternatives.

        A provider may also take `on_step=` (a `StepListener`), called with each step as it
        arrives, so a terminal can show the text while it is generated; it is passed only to
        providers whose `predict` accepts it."""
        ...


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
    secret_env: str | None = None  # environment variable holding its key, if any (redacted everywhere)
    concurrent: bool = False  # requests may run in parallel (a server); False: one at a time (one model in memory)
    max_top_k: int = 20
    capabilities: frozenset[Capability] = frozenset({Capability.RAW})
    default_mode: str = "raw"  # without --chat or --raw: continue raw text ("raw") or use the chat format ("chat")
    options: tuple[OptionSpec, ...] = ()
    priority: int = 100  # lower claims first when two specs claim one model
    source: str = "built-in"  # filled in from the entry point's distribution

    def claims_model(self, model: str) -> bool:
        return any(re.search(pattern, model, re.IGNORECASE) for pattern in self.models)

    def claims_env_url(self, environ: Mapping[str, str]) -> bool:
        return self.claims_base_url and bool(self.base_url_env and environ.get(self.base_url_env))

    def can(self, capability: Capability) -> bool:
        return capability in self.capabilities

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


# --- the registry -----------------------------------------------------------------------------

_lock = threading.Lock()
_specs: dict[str, ProviderSpec] | None = None
_extra: dict[str, ProviderSpec] = {}  # registered in-process (tests, notebooks)


def _load_entry_points() -> dict[str, ProviderSpec]:
    from importlib.metadata import entry_points

    found: dict[str, ProviderSpec] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found:
            continue  # the first distribution on the path wins, as Python's own imports do
        try:
            spec = ep.load()
        except Exception as err:  # a broken plugin is named in one line, never a traceback
            raise UsageError(f"the provider plugin {ep.name!r} ({ep.value}) failed to load: {type(err).__name__}: {err}",
                             hint="uninstall or fix that package") from None
        if not isinstance(spec, ProviderSpec):
            raise UsageError(f"the provider plugin {ep.name!r} ({ep.value}) is not a tokviz ProviderSpec")
        dist = getattr(ep, "dist", None)
        where = f"{dist.name} {dist.version}" if dist is not None else ep.value
        found[ep.name] = _with_source(spec, ep.name, where)
    return found


def _with_source(spec: ProviderSpec, name: str, source: str) -> ProviderSpec:
    from dataclasses import replace

    return replace(spec, name=name, source="built-in" if source.startswith("tokviz ") else source)


def specs() -> dict[str, ProviderSpec]:
    """Every installed provider by name (entry points, then in-process registrations)."""
    global _specs
    with _lock:
        if _specs is None:
            _specs = _load_entry_points()
            for spec in _specs.values():
                if spec.secret_env:
                    register_secret_env(spec.secret_env)
        return {**_specs, **_extra}


def register(spec: ProviderSpec) -> None:
    """Add a provider in this process (tests, notebooks); installed packages use the entry point."""
    with _lock:
        _extra[spec.name] = spec
    if spec.secret_env:
        register_secret_env(spec.secret_env)


def unregister(name: str) -> None:
    with _lock:
        _extra.pop(name, None)


def spec(name: str) -> ProviderSpec:
    found = specs()
    if name not in found:
        raise UsageError(f"unknown provider {name!r}", hint=f"installed providers: {', '.join(sorted(found))} "
                         "(`tokviz providers` lists them)")
    return found[name]


def default_model(environ: Mapping[str, str] | None = None) -> str:
    return (environ if environ is not None else os.environ).get("TOKVIZ_MODEL") or DEFAULT_MODEL


def infer_provider(model: str, base_url: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Which provider serves `model` when none is named: the first spec (by priority) that claims it.

    An explicit server URL wins (a server may serve a model named like the embedded one); then a
    spec that names the model; then a spec whose server an environment variable names
    ($OPENAI_BASE_URL does not take the embedded model away from the local provider).
    """
    env = environ if environ is not None else os.environ
    ordered = list(iter_specs())
    checks = ([lambda s: s.claims_base_url] if base_url else []) + [lambda s: s.claims_model(model),
                                                                    lambda s: s.claims_env_url(env)]
    for claims in checks:
        for s in ordered:
            if claims(s):
                return s.name
    raise UsageError(
        f"unknown model {model!r}",
        hint=f"use the embedded model ({DEFAULT_MODEL}), a path to a .gguf file, an OpenAI model such as "
        "gpt-4.1-mini, --base-url URL for an OpenAI-compatible server, or --provider NAME (`tokviz providers`)",
    )


def get_provider(name: str, *, progress: Progress = silent, **options: object) -> Provider:
    return spec(name).factory(progress=progress, **options)


def iter_specs() -> Iterator[ProviderSpec]:
    yield from sorted(specs().values(), key=lambda s: (s.priority, s.name))


def validate(params: Params, provider: ProviderSpec) -> None:
    """Checks that hold for every provider; done before any model is loaded or request is sent."""
    if not 0 <= params.top_k <= provider.max_top_k:
        raise UsageError(f"--top-k must be between 0 and {provider.max_top_k} for the {provider.name} provider, "
                         f"got {params.top_k}")
    if params.max_tokens < 1:
        raise UsageError(f"--max-tokens must be at least 1, got {params.max_tokens}")
    if not 0.0 <= params.temperature <= 2.0:
        raise UsageError(f"--temperature must be between 0 and 2, got {params.temperature:g}")
    if not 0.0 < params.top_p <= 1.0:
        raise UsageError(f"--top-p must be in (0, 1], got {params.top_p:g}")
    if params.mode not in ("raw", "chat"):
        raise UsageError(f"mode must be 'raw' or 'chat', got {params.mode!r}")
    if params.mode == "chat" and not provider.can(Capability.CHAT):
        raise UsageError(f"the {provider.name} provider has no chat format", hint="leave out --chat and --system")
    if params.mode == "raw" and not provider.can(Capability.RAW):
        raise UsageError(f"the {provider.name} provider cannot continue raw text", hint="leave out --raw")


REPLAY = "replay"  # the provider that answers from a cassette (--replay FILE)


def resolve(model: str, base_url: str | None, provider: str | None, *, replay: object = None,
            environ: Mapping[str, str] | None = None) -> str:
    """The provider for a request: named, implied by --replay, or claimed by a spec."""
    if replay is not None:
        return REPLAY
    if provider:
        spec(provider)  # raises "unknown provider"
        return provider
    return infer_provider(model, base_url, environ)


def open_provider(name: str, *, progress: Progress = silent, record: Any = None, replay: Any = None) -> Provider:
    """A provider ready for requests; --replay answers from a cassette, --record saves into one."""
    from tokviz.providers.replay import Recorder

    opened = get_provider(name, progress=progress, cassette=replay) if name == REPLAY else get_provider(name, progress=progress)
    return Recorder(opened, record) if record is not None else opened
