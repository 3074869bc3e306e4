"""Options → a checked `Plan`: the request a provider will get, checked before anything is loaded
or sent, and the provider that will answer it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from tokviz.ground import environment
from tokviz.ground.errors import UsageError
from tokviz.providers import registry
from tokviz.providers.base import (
    SERVER_MODEL,
    Progress,
    Provider,
    Request,
    check_base_url,
    silent,
)
from tokviz.run import Params
from tokviz.run.generation import Generation


@dataclass(frozen=True)
class Plan:
    """A checked request and the provider that will answer it."""

    request: Request
    provider: str
    record: Path | None = None
    replay: Path | None = None

    @property
    def spec(self) -> registry.ProviderSpec:
        return registry.spec(self.provider)


def plan(gen: Generation, prompt: str, *, environ: Mapping[str, str] | None = None, allow_empty: bool = False) -> Plan:
    """Check the options and the prompt, and name the provider (nothing is loaded or sent)."""
    if gen.base_url is not None:
        check_base_url(gen.base_url)
    env = environ if environ is not None else environment.current().environ
    chosen = gen.model or env.get("TOKVIZ_MODEL")
    model = chosen or registry.default_model(environ)
    name = registry.resolve(model, gen.base_url, gen.provider, replay=gen.replay, environ=environ)
    spec = registry.spec(name)
    if not chosen and spec.claims_base_url and not spec.claims_model(model):
        model = SERVER_MODEL  # a server, and no model named: the one it serves (asked when sent)
    if gen.dialect and not any(o.name == "dialect" for o in spec.options):
        raise UsageError(f"--dialect is for servers; the {name} provider has no dialects")
    if gen.api and not any(o.name == "api" for o in spec.options):
        raise UsageError(f"--api is for OpenAI-compatible servers; the {name} provider has one way to be asked")
    params = Params(top_k=gen.top_k, max_tokens=gen.max_tokens, temperature=gen.temperature, top_p=gen.top_p,
                    seed=gen.seed, mode=gen.mode(_default_mode(model, gen, spec, environ)),
                    options=spec.parse_options(gen.options + ((f"dialect={gen.dialect}",) if gen.dialect else ())
                                               + ((f"api={gen.api}",) if gen.api else ())))
    request = Request(prompt=prompt, model=model, params=params, system=gen.system, base_url=gen.base_url,
                      timeout=gen.timeout, retries=gen.retries)
    check(request, spec, allow_empty=allow_empty)
    return Plan(request=request, provider=name, record=gen.record, replay=gen.replay)


def _default_mode(model: str, gen: Generation, spec: registry.ProviderSpec, environ: Mapping[str, str] | None) -> str:
    """A replayed request is keyed as it was recorded: with the default mode of the provider that
    would have answered it, not the cassette's."""
    if gen.replay is None:
        return spec.default_mode
    try:
        return registry.spec(registry.resolve(model, gen.base_url, gen.provider, environ=environ)).default_mode
    except UsageError:
        return spec.default_mode


def check(request: Request, spec: registry.ProviderSpec, *, allow_empty: bool = False) -> None:
    """Checks every request must pass before anything is loaded or sent."""
    if not allow_empty and not request.prompt.strip():
        raise UsageError("the prompt is empty", hint='give it as an argument, or "-" to read it from stdin')
    registry.validate(request.params, spec)
    if not (request.timeout > 0 and math.isfinite(request.timeout)):
        raise UsageError(f"--timeout must be a positive number of seconds, got {request.timeout:g}")
    if request.retries < 0:
        raise UsageError(f"--retries must be 0 or more, got {request.retries}")
    if request.params.seed is not None and not 0 <= request.params.seed < 2**63:
        raise UsageError(f"--seed must be between 0 and 2^63 - 1, got {request.params.seed}")


def plan_request(request: Request, provider: str | None = None) -> Plan:
    """A plan for a ready-made `Request` (the Python API's lower level): the provider is inferred."""
    name = registry.resolve(request.model, request.base_url, provider)
    if request.system and request.params.mode != "chat":  # a system message only exists in the chat format
        request = replace(request, params=replace(request.params, mode="chat"))
    check(request, registry.spec(name))
    return Plan(request=request, provider=name)


def as_plan(p: Plan | Request) -> Plan:
    return p if isinstance(p, Plan) else plan_request(p)


def with_prompt(p: Plan, prompt: str, **params: object) -> Plan:
    """The same plan for another prompt (and optionally other parameters), checked again."""
    request = replace(p.request, prompt=prompt, params=replace(p.request.params, **params))  # type: ignore[arg-type]
    check(request, p.spec)
    return replace(p, request=request)


def open_provider(p: Plan, progress: Progress | None = None) -> Provider:
    """A provider ready for any number of requests (a batch opens each one once)."""
    return registry.open_provider(p.provider, progress=progress or silent, record=p.record, replay=p.replay)
