"""Which model file, loaded with which context: the embedded model assembled once into the user's
cache (atomically, so an interrupted first run never leaves a truncated model), any .gguf path,
and a context large enough for what is asked, refused before any memory is allocated for it."""

from __future__ import annotations

from pathlib import Path

from tokviz.ground.errors import UsageError
from tokviz.providers.base import DEFAULT_MODEL, Progress
from tokviz.providers.embedded import EMBEDDED_NAMES, embedded_model_path
from tokviz.providers.local.engine import Loaded, ctx_for, load, train_context, use_threads

DEFAULT_N_CTX = 2048
# Names that mean "the embedded model"; any path ending in .gguf runs locally too.
LOCAL_MODELS = EMBEDDED_NAMES


def shown_name(model: str) -> str:
    """The model's name in a run: the embedded model under one name, whatever alias was given."""
    return DEFAULT_MODEL if model in LOCAL_MODELS else model


def resolve_model_path(model: str, progress: Progress) -> Path:
    if model in LOCAL_MODELS:
        return embedded_model_path(progress)
    path = Path(model).expanduser()
    if not path.is_file():
        raise UsageError(f"model file {model} does not exist",
                         hint=f"give a path to a .gguf file, or use the embedded model ({DEFAULT_MODEL})")
    return path


def check_context(m: Loaded, prompt_tokens: int, more: int, what: str) -> None:
    """Refuse, before any memory is allocated for it, what the model's context cannot hold:
    a huge --max-tokens once allocated 14.6 GB before failing."""
    limit = train_context(m)
    if prompt_tokens + more + 1 > limit:
        raise UsageError(f"the prompt ({prompt_tokens} tokens) and {what} ({more}) exceed the model's context of "
                         f"{limit} tokens", hint="shorten the prompt or lower the count")


def probe(path: Path, threads: int | None) -> Loaded:
    """The model at the default context: enough to tokenize a request and see what it needs; its
    threads chosen for this run (`threads.py`: -O n_threads, else the cores others leave free)."""
    return use_threads(load(path, DEFAULT_N_CTX, threads), threads)


def sized(probed: Loaded, path: Path, threads: int | None, needed: int) -> Loaded:
    """The model with a context of at least `needed` cells: the probe itself when it holds them,
    else loaded again with a larger context (one model stays in memory)."""
    return probed if needed <= DEFAULT_N_CTX else use_threads(load(path, ctx_for(needed), threads), threads)
