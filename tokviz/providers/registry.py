"""The one registry of providers: Python entry points.

Providers are found the way simonw/llm finds its plugins: every distribution that declares an
entry point in the group ``tokviz.providers`` contributes a `ProviderSpec`. tokviz's own providers
are declared in its pyproject.toml through the very same group, so a third-party package and a
built-in take one path and nothing in tokviz is edited to add one.

A spec (`base.ProviderSpec`) describes its provider as data (which models and URLs it claims, the
secret it reads, how many alternatives it can return), and its class says what it can do (the
capability protocols in `base`), so the rest of tokviz asks the spec or `require`s a capability
instead of testing provider names. Specs live in light modules: loading one never imports a heavy
library (llama_cpp, openai), so `tokviz providers` and model inference stay quick.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from tokviz.ground import environment
from tokviz.ground.errors import UsageError, register_secret_env
from tokviz.providers.base import (
    DEFAULT_MODEL,
    MAX_PARALLEL,
    PROTOCOLS,
    Capability,
    Continuation,
    OptionSpec,
    Progress,
    Provider,
    ProviderSpec,
    Request,
    ScoreSpec,
    TreeSpec,
    silent,
)
from tokviz.run import Params

# The names plugins written before `base` existed import from here.
__all__ = [
    "DEFAULT_MODEL",
    "ENTRY_POINT_GROUP",
    "MAX_PARALLEL",
    "Capability",
    "Continuation",
    "OptionSpec",
    "Progress",
    "Provider",
    "ProviderSpec",
    "Request",
    "ScoreSpec",
    "TreeSpec",
    "able",
    "can",
    "check_can",
    "default_model",
    "get_provider",
    "infer_provider",
    "iter_specs",
    "open_provider",
    "register",
    "require",
    "resolve",
    "silent",
    "spec",
    "specs",
    "unregister",
    "validate",
]

ENTRY_POINT_GROUP = "tokviz.providers"
T = TypeVar("T")

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
    return (environ if environ is not None else environment.current().environ).get("TOKVIZ_MODEL") or DEFAULT_MODEL


def infer_provider(model: str, base_url: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Which provider serves `model` when none is named: the first spec (by priority) that claims it.

    An explicit server URL wins (a server may serve a model named like the embedded one); then a
    spec that names the model; then a spec whose server an environment variable names
    ($OPENAI_BASE_URL does not take the embedded model away from the local provider).
    """
    env = environ if environ is not None else environment.current().environ
    ordered = list(iter_specs())
    checks = ([lambda s: s.claims_base_url] if base_url else []) + [lambda s: s.claims_model(model),
                                                                    lambda s: s.claims_env_url(env)]
    for claims in checks:
        for s in ordered:
            if claims(s):
                return s.name
    if re.match(r"(anthropic/)?claude", model, re.IGNORECASE):
        raise UsageError(f"{model}: Anthropic's API returns no log-probabilities, so tokviz cannot show its tokens' "
                         "probabilities", hint=f"providers that can: {', '.join(s.name for s in ordered if s.name != REPLAY)}")
    import difflib

    close = difflib.get_close_matches(model, [DEFAULT_MODEL, "gpt-4.1-mini", "gpt-4o", "gpt-4.1"], n=1, cutoff=0.8)
    raise UsageError(
        f"unknown model {model!r}" + (f"; did you mean {close[0]}?" if close else ""),
        hint=f"use the embedded model ({DEFAULT_MODEL}), a path to a .gguf file, an OpenAI model such as "
        "gpt-4.1-mini, --base-url URL for an OpenAI-compatible server, or --provider NAME (`tokviz providers`)",
    )


def get_provider(name: str, *, progress: Progress = silent, **options: object) -> Provider:
    """The provider, behind the one gate that takes secrets out of what it answers and says what
    its runs' figures are (`redacting`)."""
    from tokviz.providers import redacting

    found = spec(name)
    return redacting.wrap(found.factory(progress=progress, **options), found.figures)


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


def able(capability: Capability) -> list[str]:
    """The installed providers that can do it."""
    return [s.name for s in iter_specs() if s.can(capability)]


def _refuse(name: str, capability: Capability, what: str) -> UsageError:
    return UsageError(f"the {name} provider cannot {what}",
                      hint=f"providers that can: {', '.join(able(capability)) or 'none installed'}")


def check_can(provider: ProviderSpec, capability: Capability, what: str) -> None:
    """Refuse, before anything is loaded or sent, what the provider cannot do: one line naming
    `what` was asked and the installed providers that can."""
    if not provider.can(capability):
        raise _refuse(provider.name, capability, what)


def require(provider: Provider, protocol: type[T], what: str) -> T:
    """`provider` as the capability `protocol` (one of base.PROTOCOLS), or the one usage line that
    says it cannot `what` and names the providers that can. The one place that asks a provider
    object what it can do."""
    if isinstance(provider, protocol):
        return provider
    capability = next(c for c, p in PROTOCOLS.items() if p is protocol)
    raise _refuse(provider.name, capability, what)


def can(provider: Provider, protocol: type) -> bool:
    """Whether `provider` has the capability `protocol`, for paths that fall back without it."""
    return isinstance(provider, protocol)


def open_provider(name: str, *, progress: Progress = silent, record: Any = None, replay: Any = None) -> Provider:
    """A provider ready for requests; --replay answers from a cassette, --record saves into one."""
    from tokviz.providers.cassette import Recorder

    opened = get_provider(name, progress=progress, cassette=replay) if name == REPLAY else get_provider(name, progress=progress)
    return Recorder(opened, record) if record is not None else opened
