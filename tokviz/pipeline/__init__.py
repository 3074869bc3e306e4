"""Provider → record: the one path every command takes to get tokens, whatever the provider.

`plan` turns the generation options into a provider's `Request` (checked before anything is
loaded or sent); `predict`, `sample` and `tree` run it. The tree algorithm lives here, once, over
the small `TreeCursor` protocol that a provider implements.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from tokviz.ground.errors import ProviderError, UsageError
from tokviz.providers import registry
from tokviz.providers.base import (
    Capability,
    ExploreCursor,
    Explorer,
    Live,
    MultiSequence,
    Progress,
    Provider,
    Request,
    Scorer,
    ScoreSpec,
    StepListener,
    Tokenizer,
    TreeCursor,
    TreeGrower,
    TreeSpec,
    check_base_url,
    silent,
)
from tokviz.run import Params, Run, RunKind, Token, Tokenization, TreeInfo, TreeNode, greedy_path
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
    model = gen.model or registry.default_model(environ)
    name = registry.resolve(model, gen.base_url, gen.provider, replay=gen.replay, environ=environ)
    spec = registry.spec(name)
    if gen.dialect and not any(o.name == "dialect" for o in spec.options):
        raise UsageError(f"--dialect is for servers; the {name} provider has no dialects")
    params = Params(top_k=gen.top_k, max_tokens=gen.max_tokens, temperature=gen.temperature, top_p=gen.top_p,
                    seed=gen.seed, mode=gen.mode(_default_mode(model, gen, spec, environ)),
                    options=spec.parse_options(gen.options + ((f"dialect={gen.dialect}",) if gen.dialect else ())))
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


def _as_plan(p: Plan | Request) -> Plan:
    return p if isinstance(p, Plan) else plan_request(p)


def with_prompt(p: Plan, prompt: str, **params: object) -> Plan:
    """The same plan for another prompt (and optionally other parameters), checked again."""
    request = replace(p.request, prompt=prompt, params=replace(p.request.params, **params))  # type: ignore[arg-type]
    check(request, p.spec)
    return replace(p, request=request)


def open_provider(p: Plan, progress: Progress | None = None) -> Provider:
    """A provider ready for any number of requests (a batch opens each one once)."""
    return registry.open_provider(p.provider, progress=progress or silent, record=p.record, replay=p.replay)


def predict(p: Plan | Request, *, progress: Progress | None = None, on_step: StepListener | None = None) -> Run:
    p = _as_plan(p)
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

    p = _as_plan(p)
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
    p = _as_plan(p)
    if not text.strip():
        raise UsageError("the text to score is empty", hint='give it as an argument, with --file, or "-" for stdin')
    what = "score a given text (it returns no prompt log-probabilities)"
    registry.check_can(p.spec, Capability.SCORE, what)
    scorer = registry.require(open_provider(p, progress), Scorer, what)
    return scorer.score(p.request, text, on_token, spec or ScoreSpec())


# --- the one tree algorithm ---------------------------------------------------------------------

def check_tree(spec: TreeSpec) -> None:
    if not 1 <= spec.depth <= 12:
        raise UsageError(f"--depth must be between 1 and 12, got {spec.depth}")
    if not 1 <= spec.branch <= 20:
        raise UsageError(f"--branch must be between 1 and 20, got {spec.branch}")
    if not 0.0 <= spec.min_prob < 1.0:
        raise UsageError(f"--min-prob must be in [0, 1), got {spec.min_prob}")
    if not 1 <= spec.max_nodes <= 100_000:
        raise UsageError(f"--max-nodes must be between 1 and 100000, got {spec.max_nodes}")
    if not 0 <= spec.complete <= 1000:
        raise UsageError(f"--complete must be between 0 and 1000, got {spec.complete}")


def open_cursor(p: Plan, spec: TreeSpec, *, forced: tuple[Token, ...] = (), progress: Progress | None = None) -> tuple[Provider, TreeCursor]:
    """The provider and its cursor after the prompt and `forced`, for the tree; a provider that
    cannot continue a forced prefix is refused in one line."""
    what = "continue from a forced prefix, so it cannot grow a tree"
    registry.check_can(p.spec, Capability.TREE, what)
    opened = open_provider(p, progress)
    return opened, registry.require(opened, TreeGrower, what).tree_cursor(p.request, spec, forced)


def open_explorer(p: Plan, k: int, depth: int, *, progress: Progress | None = None) -> tuple[Provider, ExploreCursor]:
    """The provider and a cursor that can jump to any path and generate from it (`tokviz explore`)."""
    what = "continue from any path, so it cannot explore"
    registry.check_can(p.spec, Capability.EXPLORE, what)
    opened = open_provider(p, progress)
    return opened, registry.require(opened, Explorer, what).explore_cursor(p.request, k, depth)


def tree(p: Plan | Request, spec: TreeSpec, *, forced: tuple[Token, ...] = (), progress: Progress | None = None,
         on_node: Callable[[int], None] | None = None) -> Run:
    """Grow a tree of alternatives from the prompt (see `tokviz tree`).

    Depth first, most likely child first, so `max_nodes` cuts the least likely branches and a
    local model's KV cache only ever extends or cuts back the current path: every evaluated token
    is a new node. Ctrl-C keeps what was grown.
    """
    import time

    check_tree(spec)
    p = _as_plan(p)
    t0 = time.perf_counter()
    opened, cursor = open_cursor(p, spec, forced=forced, progress=progress)
    nodes: list[TreeNode] = []
    cut: str | None = None
    offered = 0  # children the provider returned at all, before --min-prob
    likeliest: Token | None = None  # the prompt's likeliest next token, to name when --min-prob leaves none

    def expand(parent: int, depth: int, cum: float) -> None:
        nonlocal cut, offered, likeliest
        kids = cursor.children(spec.branch)
        offered += len(kids)
        if parent == -1 and kids:
            likeliest = max(kids, key=lambda t: t.logprob)
        for token in kids:
            if token.prob < spec.min_prob:
                continue
            if len(nodes) >= spec.max_nodes:
                cut = "max-nodes"
                return
            nodes.append(TreeNode(parent=parent, token=token, depth=depth, cum_logprob=cum + token.logprob))
            index = len(nodes) - 1
            if on_node is not None:
                on_node(len(nodes))
            if depth < spec.depth:
                cursor.enter(token)
                expand(index, depth + 1, cum + token.logprob)
                cursor.leave()
                if cut:
                    return
            elif spec.complete:
                cursor.enter(token)
                nodes[index] = replace(nodes[index], completion=cursor.complete(spec.complete))
                cursor.leave()

    try:
        expand(-1, 1, 0.0)
    except KeyboardInterrupt:
        cut = "interrupted"
    finally:
        cursor.close()
    if not offered and cut != "interrupted":
        raise ProviderError(f"the {p.provider} provider returned no alternatives to grow a tree from",
                            hint="the server may not return log-probabilities on its completions endpoint")
    if not nodes and cut != "interrupted" and likeliest is not None:  # an empty tree is no answer
        raise UsageError(f"no next token is as likely as --min-prob {spec.min_prob:g}: the likeliest, "
                         f"{likeliest.text!r}, has {likeliest.prob:.1%}", hint="lower --min-prob")
    report = cursor.report()
    info = TreeInfo(depth=spec.depth, branch=spec.branch, min_prob=spec.min_prob, max_nodes=spec.max_nodes,
                    complete=spec.complete, cut=cut, forced_tokens=len(forced),
                    evaluated_tokens=report.get("evaluated_tokens"), requests=report.get("requests"),
                    approximation=report.get("approximation"))
    prompt = p.request.prompt + "".join(t.text for t in forced)
    usage = {"prompt_tokens": report["prompt_tokens"]} if report.get("prompt_tokens") is not None else {}
    return Run(provider=opened.name, model=report.get("model", p.request.model), prompt=prompt,
               params=replace(p.request.params, top_k=spec.branch), steps=greedy_path(nodes),
               messages=report.get("messages", ()), finish_reason=None, kind=RunKind.TREE, usage=usage,
               timings={"total_s": time.perf_counter() - t0}, nodes=tuple(nodes), tree=info)
