"""A plan → a record: predict, sample, score and tokenize, each through the provider's capability."""

from __future__ import annotations

import time
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
from tokviz.run import Message, Run, Step, Tokenization


class Stopped(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a generation, carrying what was generated before it (`record`: a
    run marked "interrupted", or the runs of a set so far). A command saves, draws and prints it,
    then re-raises `cause` so the exit status still says it was stopped (130 or 143)."""

    def __init__(self, record: Run | list[Run], cause: BaseException) -> None:
        super().__init__()
        self.record = record
        self.cause = cause


def predict(p: Plan | Request, *, progress: Progress | None = None, on_step: StepListener | None = None) -> Run:
    """The run of a plan. A stop during the generation raises `Stopped` with the run as far as it
    got (for providers that hand over their steps as they come)."""
    p = as_plan(p)
    opened = open_provider(p, progress)
    if not registry.can(opened, Live):
        return opened.predict(p.request)
    steps: list[Step] = []
    t0 = time.perf_counter()

    def listen(step: Step) -> None:
        steps.append(step)
        if on_step is not None:
            on_step(step)

    try:
        return opened.predict_live(p.request, listen)
    except KeyboardInterrupt as cause:
        if not steps or isinstance(cause, Stopped):
            raise
        raise Stopped(interrupted(p, opened.name, steps, time.perf_counter() - t0), cause) from None


def interrupted(p: Plan, provider: str, steps: list[Step], elapsed: float) -> Run:
    """The run of a generation stopped after `steps`: marked as such in its finish and its source."""
    request = p.request
    messages: tuple[Message, ...] = ()
    if request.params.mode == "chat":
        messages = ((Message("system", request.system),) if request.system else ()) + (Message("user", request.prompt),)
    return Run(provider=provider, model=request.model, prompt=request.prompt, params=request.params, steps=tuple(steps),
               messages=messages, finish_reason="interrupted", usage={"completion_tokens": len(steps)},
               timings={"total_s": elapsed},
               source={"interrupted": f"stopped after {len(steps)} tokens (Ctrl-C or SIGTERM): what was generated before"})


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
