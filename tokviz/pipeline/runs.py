"""A plan → a record: predict, sample, score and tokenize, each through the provider's capability."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from tokviz.ground.errors import UsageError
from tokviz.pipeline.plans import Plan, as_plan, open_provider
from tokviz.providers import registry
from tokviz.providers.base import (
    Capability,
    Live,
    MultiSequence,
    Progress,
    Provider,
    Request,
    Scorer,
    ScoreSpec,
    StepListener,
    Stopped,
    Tokenizer,
    silent,
)
from tokviz.run import Message, Run, Step, Tokenization
from tokviz.run.tokens import count


def predict(p: Plan | Request, *, progress: Progress | None = None, on_step: StepListener | None = None) -> Run:
    """The run of a plan. A stop during the generation raises `Stopped` with the run as far as it
    got (for providers that hand over their steps as they come)."""
    from tokviz.pipeline.structured import validated

    p = as_plan(p)
    try:
        run = validated(watched(_predict(open_provider(p, progress), p, on_step)))
    except Stopped as stop:
        stop.record = validated(watched(stop.record))
        raise
    if "structured_invalid" in run.source:
        (progress or silent)(f"tokviz: warning: {run.source['structured_invalid']}")
    return run


def watching(p: Plan, specs: Sequence[str]) -> Plan:
    """The plan with tokens to watch at every step (`--watch`), checked."""
    from tokviz.providers.watch import check

    specs = check(specs)
    if not specs:
        return p
    return replace(p, request=replace(p.request, params=replace(p.request.params, watch=specs)))


def watched(run: Run) -> Run:
    """A run whose watched tokens a provider did not read from the whole row (a server's top k):
    each read from its step's list, exact where listed, else an upper bound (`providers/watch.py`)."""
    if not isinstance(run, Run):
        return run
    specs = run.params.watch
    if not specs or all(len(s.watched) == len(specs) for s in run.steps):
        return run
    from tokviz.providers.watch import from_top_k

    steps = tuple(s if len(s.watched) == len(specs) else replace(s, watched=from_top_k(s, specs)) for s in run.steps)
    return replace(run, steps=steps, source={**run.source, "watch": "watched tokens read from each step's top "
                                             f"{run.params.top_k}: a figure where listed, else an upper bound"})


def _predict(opened: Provider, p: Plan, on_step: StepListener | None = None) -> Run:
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
               source={"interrupted": f"stopped after {count(len(steps), 'token')} (Ctrl-C or SIGTERM): what was "
                                      "generated before", "figures": p.spec.figures})


def predict_together(plans: list[Plan], *, progress: Progress | None = None, slots: int | None = None) -> list[Run]:
    """The runs of several plans, those for one model of a provider that can decode sequences
    together (the local model) in one batch per step; the rest one by one. In the plans' order."""
    runs: list[Run | None] = [None] * len(plans)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, p in enumerate(plans):
        groups.setdefault((p.provider, p.request.model), []).append(i)
    for (_provider, _model), members in groups.items():
        opened = open_provider(plans[members[0]], progress)
        if isinstance(opened, MultiSequence) and len(members) > 1:
            for i, run in zip(members, opened.predict_parallel([plans[i].request for i in members], slots)):
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
           on_done: Callable[[int], None] | None = None, parallel: int = 1) -> list[Run]:
    """`n` sampled runs of one request, seeded base, base + 1, … so the whole set replays.

    `parallel` > 1 decodes up to that many together where the provider can (the local model: one
    llama.cpp batch per step), about twice as fast on two cores, with figures that differ slightly
    from serial decoding (each run says so)."""
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
    if parallel > 1:
        together = registry.require(opened, MultiSequence, "decode samples together (--parallel; servers already "
                                                           "run requests concurrently)")
        runs = together.sample_parallel(p.request, [base + i for i in range(n)], parallel)
        if on_done is not None:
            on_done(n)
        return runs
    runs: list[Run] = []
    try:
        for i in range(n):
            runs.append(_predict(opened, replace(p, request=replace(p.request, params=replace(params, seed=base + i)))))
            if on_done is not None:
                on_done(len(runs))
    except Stopped as stop:  # the samples drawn, and the one being drawn as far as it got
        raise Stopped([*runs, stop.record], stop.cause) from None
    except KeyboardInterrupt as cause:
        if runs:
            raise Stopped(runs, cause) from None
        raise
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
    text, joined = join_context(p.request.prompt, text)
    if joined:
        (progress or silent)(f"tokviz: note: {joined}")
    try:
        run = watched(scorer.score(p.request, text, on_token, spec or ScoreSpec()))
    except Stopped as stop:
        if isinstance(stop.record, Run):
            stop.record = watched(stop.record)
        if joined and isinstance(stop.record, Run):
            stop.record = replace(stop.record, source={**stop.record.source, "joined": joined})
        raise
    return replace(run, source={**run.source, "joined": joined}) if joined else run


def join_context(context: str, text: str) -> tuple[str, str | None]:
    """The text as it follows the context, and how the two were joined (None: as given). A context
    that ends, and a text that starts, without a space ("Fact:" + "Paris is…") would be read as
    one word ("Fact:Paris"): what a user means is two, so they are joined with one space, and the
    run says so."""
    if context and text and not context[-1].isspace() and not text[0].isspace():
        return " " + text, (f"the context and the text are joined with one space ({context[-12:]!r} + ' ' + "
                            f"{text[:12]!r}); end the context with a space or a newline to join them yourself")
    return text, None
