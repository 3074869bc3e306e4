"""The `openai` provider: OpenAI's API, and OpenAI-compatible servers through their dialects.

This module is what the entry point loads: the spec, light (the SDK is imported when a request is
made). The provider is in `provider`; `connection`, `stream`, `bodies`, `errors`, `cursor`,
`batchapi` and `tokenizer` hold its parts; `dialects` and `logprobs` what each server sends.
"""

from __future__ import annotations

from typing import Any

from tokviz.providers.base import Capability, OptionSpec, ProviderSpec
from tokviz.providers.openai import dialects
from tokviz.providers.openai.provider import OpenAIProvider


def _penalty(value: Any) -> str | None:
    return None if -2.0 <= value <= 2.0 else "must be between -2 and 2"


def _positive_float(value: Any) -> str | None:
    return None if 0.0 < value <= 10.0 else "must be above 0 and at most 10"


SPEC = ProviderSpec(
    name="openai",
    description="OpenAI's API, and OpenAI-compatible servers (vLLM, llama.cpp, Ollama, LM Studio) with --base-url",
    factory=OpenAIProvider,
    models=(r"^(gpt-|chatgpt-|o\d|ft:|davinci|babbage|text-)",),
    claims_base_url=True,
    base_url_env="OPENAI_BASE_URL",
    default_base_url="https://api.openai.com/v1",
    secret_env="OPENAI_API_KEY",
    concurrent=True,
    max_top_k=1000,  # the dialect sets the real limit (20 on OpenAI and Ollama; the server's own elsewhere)
    capabilities=frozenset({Capability.CHAT, Capability.RAW, Capability.STRUCTURED}),  # the modes; what it can do beyond them, its class says
    default_mode="chat",
    options=(
        OptionSpec("dialect", str, f"the server's dialect, instead of detecting it ({', '.join(dialects.DIALECTS)})",
                   check=lambda v: None if v in dialects.DIALECTS else f"must be one of {', '.join(dialects.DIALECTS)}"),
        OptionSpec("api", str, "chat (Chat Completions and /v1/completions) or responses (the Responses API)",
                   check=lambda v: None if v in ("chat", "responses") else "must be chat or responses"),
        OptionSpec("frequency_penalty", float, "penalise tokens by how often they appeared (-2 to 2)", check=_penalty),
        OptionSpec("presence_penalty", float, "penalise tokens that appeared at all (-2 to 2)", check=_penalty),
        OptionSpec("repeat_penalty", float, "llama.cpp-style repeat penalty, for compatible servers (1 is off)",
                   check=_positive_float),
        OptionSpec("post_sampling_probs", bool, "llama-server: probabilities after its samplers instead of the "
                   "model's (the run says which)"),
    ),
    priority=50,
)
