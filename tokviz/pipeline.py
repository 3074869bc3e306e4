"""Provider → `Run`: the one path every command takes to get tokens, whatever the provider."""

from __future__ import annotations

from pathlib import Path

from tokviz.errors import UsageError
from tokviz.providers import registry
from tokviz.providers.registry import Progress, Provider, Request, TreeSpec
from tokviz.run import Run, Token, Tokenization


def check(request: Request) -> None:
    """Checks every request must pass before anything is loaded or sent."""
    if not request.prompt.strip():
        raise UsageError("the prompt is empty", hint='give it as an argument, or "-" to read it from stdin')
    registry.validate(request.params)
    if request.timeout <= 0:
        raise UsageError(f"--timeout must be positive, got {request.timeout:g}")
    if request.retries < 0:
        raise UsageError(f"--retries must be 0 or more, got {request.retries}")


def resolve(request: Request, provider: str | None = None, *, replay: str | Path | None = None) -> str:
    """Check the request and name the provider that will serve it."""
    check(request)
    if replay is not None:
        return "replay"
    name = provider or registry.infer_provider(request.model, request.base_url)
    if name not in registry.PROVIDERS:
        registry.get_provider(name)  # raises the "unknown provider" usage error
    return name


def open_provider(name: str, *, progress: Progress | None = None, record: str | Path | None = None,
                  replay: str | Path | None = None) -> Provider:
    """A provider ready for any number of requests (a batch opens each one once)."""
    from tokviz.providers.replay import Recorder

    options = {"cassette": replay} if name == "replay" else {}
    provider = registry.get_provider(name, progress=progress or registry.silent, **options)
    return Recorder(provider, record) if record is not None else provider


def predict(request: Request, *, provider: str | None = None, progress: Progress | None = None,
            record: str | Path | None = None, replay: str | Path | None = None) -> Run:
    name = resolve(request, provider, replay=replay)
    return open_provider(name, progress=progress, record=record, replay=replay).predict(request)


def tokenize(text: str, model: str, *, provider: str | None = None, progress: Progress | None = None) -> Tokenization:
    if not text:
        raise UsageError("the text is empty", hint='give it as an argument, or "-" to read it from stdin')
    name = provider or registry.infer_provider(model)
    return registry.get_provider(name, progress=progress or registry.silent).tokenize(text, model)


def sample(request: Request, n: int, *, provider: str | None = None, progress: Progress | None = None,
           record: str | Path | None = None, replay: str | Path | None = None) -> list[Run]:
    """`n` sampled runs of one request, seeded base, base + 1, … so the whole set replays."""
    import random
    from dataclasses import replace

    if n < 1:
        raise UsageError(f"-n must be at least 1, got {n}")
    if request.params.temperature <= 0:
        raise UsageError("sampling at temperature 0 gives the same (greedy) answer every time",
                         hint="give --temperature above 0, e.g. --temperature 1.0")
    name = resolve(request, provider, replay=replay)
    opened = open_provider(name, progress=progress, record=record, replay=replay)
    base = request.params.seed if request.params.seed is not None else random.randrange(2**31)
    return [opened.predict(replace(request, params=replace(request.params, seed=base + i))) for i in range(n)]


def tree(request: Request, spec: TreeSpec, *, provider: str | None = None, progress: Progress | None = None,
         forced: tuple[Token, ...] = ()) -> Run:
    """Grow a tree of alternatives from the prompt (see `tokviz tree`)."""
    if not 1 <= spec.depth <= 12:
        raise UsageError(f"--depth must be between 1 and 12, got {spec.depth}")
    if not 1 <= spec.branch <= 20:
        raise UsageError(f"--branch must be between 1 and 20, got {spec.branch}")
    if not 0.0 <= spec.min_prob < 1.0:
        raise UsageError(f"--min-prob must be in [0, 1), got {spec.min_prob}")
    if spec.max_nodes < 1 or spec.complete < 0:
        raise UsageError("--max-nodes must be at least 1 and --complete at least 0")
    name = resolve(request, provider)
    grower = open_provider(name, progress=progress)
    if not hasattr(grower, "tree"):
        raise UsageError(f"the {name} provider cannot grow trees", hint="use the local model, or --base-url with a server that has the completions endpoint")
    return grower.tree(request, spec, forced)  # type: ignore[attr-defined]
