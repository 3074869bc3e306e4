"""The provider protocol and the one registry of providers.

A provider turns a `Request` into a `Run`. Adding one means writing one module with a class that
satisfies `Provider` and adding one line to `PROVIDERS`; nothing else in tokviz names providers.
Entries are import paths, not classes, so that `tokviz --help` never imports a provider's heavy
dependencies (llama_cpp, openai).
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from tokviz.errors import UsageError
from tokviz.run import Params, Run, Tokenization

DEFAULT_MODEL = "gemma-3-270m"
MAX_TOP_K = 20

Progress = Callable[[str], None]


def silent(_: str) -> None:
    """The progress callback that says nothing."""


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

    def to_dict(self) -> dict[str, float | int]:
        return {"depth": self.depth, "branch": self.branch, "min_prob": self.min_prob,
                "max_nodes": self.max_nodes, "complete": self.complete}


class Provider(Protocol):
    name: str

    def predict(self, request: Request) -> Run:
        """Generate from `request`, recording every chosen token and its top-k alternatives."""
        ...

    def tokenize(self, text: str, model: str) -> Tokenization:
        """How `model` splits `text` into tokens, with no generation."""
        ...


# name → "module:class"; the class is constructed with keyword `progress`.
PROVIDERS: dict[str, str] = {
    "local": "tokviz.providers.local:LocalProvider",
    "openai": "tokviz.providers.openai:OpenAIProvider",
    "replay": "tokviz.providers.replay:ReplayProvider",
}

# OpenAI's model families (gpt-4.1-mini, gpt-4o, o3, chatgpt-4o-latest, fine-tunes "ft:…").
_OPENAI_MODEL = re.compile(r"^(gpt-|chatgpt-|o\d|ft:|davinci|babbage|text-)", re.IGNORECASE)


# Names that mean "the embedded model"; any path ending in .gguf runs locally too.
LOCAL_MODELS = frozenset({DEFAULT_MODEL, "local", "gemma3-270m"})


def default_model() -> str:
    return os.environ.get("TOKVIZ_MODEL") or DEFAULT_MODEL


def infer_provider(model: str, base_url: str | None = None) -> str:
    """Which provider serves `model` when none is named: a .gguf file or the embedded model run
    locally; OpenAI model names, or any model when a server URL is given, go to `openai`."""
    if base_url:  # an explicit server wins: it may serve a model named like the embedded one
        return "openai"
    if model.lower().endswith(".gguf") or model in LOCAL_MODELS:
        return "local"
    if os.environ.get("OPENAI_BASE_URL") or _OPENAI_MODEL.match(model):
        return "openai"
    raise UsageError(
        f"unknown model {model!r}",
        hint=f"use the embedded model ({DEFAULT_MODEL}), a path to a .gguf file, an OpenAI model such as "
        "gpt-4.1-mini, or --base-url URL for an OpenAI-compatible server",
    )


def get_provider(name: str, *, progress: Progress = silent, **options: object) -> Provider:
    target = PROVIDERS.get(name)
    if target is None:
        raise UsageError(f"unknown provider {name!r}", hint=f"known providers: {', '.join(sorted(PROVIDERS))}")
    module_name, _, cls_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    provider: Provider = cls(progress=progress, **options)
    return provider


def validate(params: Params) -> None:
    """Checks that hold for every provider; done before any model is loaded or request is sent."""
    if not 0 <= params.top_k <= MAX_TOP_K:
        raise UsageError(f"--top-k must be between 0 and {MAX_TOP_K}, got {params.top_k}")
    if params.max_tokens < 1:
        raise UsageError(f"--max-tokens must be at least 1, got {params.max_tokens}")
    if not 0.0 <= params.temperature <= 2.0:
        raise UsageError(f"--temperature must be between 0 and 2, got {params.temperature}")
    if not 0.0 < params.top_p <= 1.0:
        raise UsageError(f"--top-p must be in (0, 1], got {params.top_p}")
    if params.mode not in ("raw", "chat"):
        raise UsageError(f"mode must be 'raw' or 'chat', got {params.mode!r}")
