"""A plan → a record: predict, sample, score and tokenize, each through the provider's capability."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from tokviz.ground.errors import UsageError
from tokviz.pipeline.plans import Plan, as_plan, open_provider
from tokviz.providers import registry
from tokviz.providers.base import (
    Capability,
    Live,
    MultiSequence,
    Progress,
    Request,
    Scorer,
    ScoreSpec,
    StepListener,
    Tokenizer,
    silent,
)
from tokviz.run import Run, Tokenization


def predict(p: Plan | Request, *, progress: Progress | None = None, on_step: StepListener | None = None) -> Run:
    p = as_plan(p)
    opened = open_provider(p, progress)
    if on_step is not None and registry.can(opened, Live):
        return opened.predict_live(p.request, on_step)
    return opened.predict(p.request)


def predict_together(plans: list[Plan], *, progress: Progress | None = None) -> list[Run]:
    """The runs of several plans, those for one model of a provider that can decode sequences
    together (the local model) in one batch per step; the rest one by one. In the plans' order."""
    runs: list[Run | None] = [None] * len(plans)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, p in enumerate(plans):
        groups.setdefault((p.provider, p.request.model), []).append(i)
    for (_provider, _model), members in groups.items():
        opened = open_provider(plans[members[0]], progress)
        if isinstance(opened, MultiSequence) and len(members) > 1:
            for i, run in zip(members, opened.predict_parallel([plans[i].request for i in members])):
                runs[i] = run
        else:
            for i in members:
                runs[i] = opened.predict(plans[i].request)
    return [r for r in runs if r is not None]


def tokenize(text: str, model: str, *, provider: str | None = None, progress: Progress | None = None) -> Tokenization:
    if not text:
        raise UsageError("the text is empty", hint='give it as an argument, or "-" to read it from stdin')
    name = provider or registry.infer_provider(model)
    registry.check_can(registry.spec(name), Capability.TOKENIZE, "tokenize")
    opened = registry.get_provider(name, progress=progress or silent)
    return registry.require(opened, Tokenizer, "tokenize").tokenize(text, model)


def sample(p: Plan | Request, n: int, *, progress: Progress | None = None,
           on_done: Callable[[int], None] | None = None, parallel: bool = False) -> list[Run]:
    """`n` sampled runs of one request, seeded base, base + 1, … so the whole set replays.

    `parallel` decodes them together where the provider can (the local model: one llama.cpp batch
    per step), about twice as fast on two cores, with figures that differ slightly from serial
    decoding (each run says so)."""
    import random

    p = as_plan(p)
    if n < 1:
        raise UsageError(f"-n must be at least 1, got {n}")
    if p.request.params.temperature <= 0:
        raise UsageError("sampling at temperature 0 gives the same (greedy) answer every time",
                         hint="give --temperature above 0, e.g. --temperature 1.0")
    opened = open_provider(p, progress)
    params = p.request.params
    base = params.seed if params.seed is not None else random.randrange(2**31)
    if parallel:
        together = registry.require(opened, MultiSequence, "decode samples together (--parallel; servers already "
                                                           "run requests concurrently)")
        runs = together.sample_parallel(p.request, [base + i for i in range(n)])
        if on_done is not None:
            on_done(n)
        return runs
    runs = []
    for i in range(n):
        runs.append(opened.predict(replace(p.request, params=replace(params, seed=base + i))))
        if on_done is not None:
            on_done(len(runs))
    return runs


def score(p: Plan | Request, text: str, *, spec: ScoreSpec | None = None, progress: Progress | None = None,
          on_token: Callable[[int, int], None] | None = None) -> Run:
    """How likely `text` is under the model, token by token, after the plan's prompt (the context)."""
    p = as_plan(p)
    if not text.strip():
        raise UsageError("the text to score is empty", hint='give it as an argument, with --file, or "-" for stdin')
    what = "score a given text (it returns no prompt log-probabilities)"
    registry.check_can(p.spec, Capability.SCORE, what)
    scorer = registry.require(open_provider(p, progress), Scorer, what)
    return scorer.score(p.request, text, on_token, spec or ScoreSpec())
