"""The `local` provider: GGUF models run in this process through llama.cpp, the embedded Gemma 3
270M by default (offline, no key).

This module is what the entry point loads: the spec, light (llama_cpp and numpy are imported when a
model is used). The provider is in `provider`; `models` finds and sizes a model, `engine` is the one
boundary with llama.cpp (rows are reduced by `tokviz.providers.logits` and drawn by `tokviz.providers.draw`, shared
with the transformers provider), `chat` builds the prompt, `scoring`
scores a text, `scheduler` decodes several requests together, `cursors` walk trees.
"""

from __future__ import annotations

from typing import Any

from tokviz.providers.base import Capability, OptionSpec, ProviderSpec
from tokviz.providers.local.provider import LocalProvider

MAX_THREADS = 512  # ggml's GGML_MAX_N_THREADS: more aborts the process from C (a native backtrace, exit 134)


def _positive(value: Any) -> str | None:
    return None if 1 <= value <= MAX_THREADS else f"must be between 1 and {MAX_THREADS}"


SPEC = ProviderSpec(
    name="local",
    description="GGUF models run in this process through llama.cpp; the embedded Gemma 3 270M by default (offline, no key)",
    factory=LocalProvider,
    models=(r"^(?-i:gemma-3-270m|gemma3-270m|local)$", r"\.gguf$"),
    concurrent=False,
    max_top_k=100,
    capabilities=frozenset({Capability.CHAT, Capability.RAW, Capability.STRUCTURED}),  # the modes; what it can do beyond them, its class says
    options=(OptionSpec("n_threads", int, "CPU threads for llama.cpp (default: the cores other processes leave free, counted before each run)", check=_positive),),
    priority=10,
    figures="before sampling",  # log-softmax of the model's logits; the draw comes after (draw.py)
)
