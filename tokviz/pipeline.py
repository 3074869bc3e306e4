"""Provider → `Run`: the one path every command takes to get tokens, whatever the provider."""

from __future__ import annotations

from tokviz.errors import UsageError
from tokviz.providers import registry
from tokviz.providers.registry import Progress, Request
from tokviz.run import Run, Tokenization


def resolve(request: Request, provider: str | None = None) -> str:
    """Check the request and name the provider that will serve it, before anything is loaded."""
    if not request.prompt.strip():
        raise UsageError("the prompt is empty", hint='give it as an argument, or "-" to read it from stdin')
    registry.validate(request.params)
    if request.timeout <= 0:
        raise UsageError(f"--timeout must be positive, got {request.timeout:g}")
    if request.retries < 0:
        raise UsageError(f"--retries must be 0 or more, got {request.retries}")
    name = provider or registry.infer_provider(request.model, request.base_url)
    if name not in registry.PROVIDERS:
        registry.get_provider(name)  # raises the "unknown provider" usage error
    return name


def predict(request: Request, *, provider: str | None = None, progress: Progress | None = None) -> Run:
    name = resolve(request, provider)
    return registry.get_provider(name, progress=progress or (lambda _: None)).predict(request)


def tokenize(text: str, model: str, *, provider: str | None = None, progress: Progress | None = None) -> Tokenization:
    if not text:
        raise UsageError("the text is empty", hint='give it as an argument, or "-" to read it from stdin')
    name = provider or registry.infer_provider(model)
    return registry.get_provider(name, progress=progress or (lambda _: None)).tokenize(text, model)
