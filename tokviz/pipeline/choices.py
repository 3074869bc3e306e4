"""A plan and given answers → a set of choices: each answer scored after the prompt.

A provider that can read a given continuation weighs them itself (the `Weigher` capability: the
in-process engines, servers that echo prompt log-probabilities), exactly; any other provider is
asked for one generated token with its top k, and each answer gets what that step can say: its
exact figure when it is one listed token, else an upper bound (`providers/choices.py`).
"""

from __future__ import annotations

from dataclasses import replace

from tokviz.pipeline.plans import Plan, as_plan, open_provider
from tokviz.providers import registry
from tokviz.providers.base import Progress, Provider, ProviderSpec, Request, Weigher
from tokviz.providers.choices import check, from_step
from tokviz.run import Run, RunKind, RunSet


def weigh(p: Plan | Request, choices: list[str], *, progress: Progress | None = None) -> RunSet:
    """The answers `choices` to the plan's prompt, each a scored run, as one record."""
    p = as_plan(p)
    return weigh_on(open_provider(p, progress), p.request, p.spec, choices)


def weigh_on(opened: Provider, request: Request, spec: ProviderSpec, choices: list[str]) -> RunSet:
    """The same with a provider already open (a batch holds one per name for all its jobs)."""
    choices = check(list(choices))
    p = Plan(request=request, provider=spec.name)
    runs = opened.weigh(request, choices) if registry.can(opened, Weigher) else _bounded(opened, p, choices)  # type: ignore[attr-defined]
    return RunSet(kind=RunKind.CHOICES, runs=tuple(runs))


def _bounded(opened: Provider, p: Plan, choices: list[str]) -> list[Run]:
    """One token generated greedily with as many alternatives as the provider lists; each choice
    read from that step."""
    from tokviz.ground.errors import UsageError

    k = p.spec.max_top_k
    if k < 1:
        raise UsageError(f"the {p.spec.name} provider lists no alternatives, so it can neither weigh nor bound a choice",
                         hint="use a provider that scores a given text, e.g. -p local")
    request = replace(p.request, params=replace(p.request.params, max_tokens=1, temperature=0.0,
                                                top_k=max(p.request.params.top_k, k)))
    run = opened.predict(request)
    if not run.steps:
        raise UsageError(f"{p.spec.name} generated no token after the prompt, so no choice can be bounded")
    return from_step(p.request, run.steps[0], choices, provider=run.provider, model=run.model, source=dict(run.source))
