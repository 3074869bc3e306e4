"""The `gemini` provider: Google's Gemini models through the `google-genai` SDK, with the
log-probabilities the API gives when asked (`responseLogprobs`, `logprobs` 1–20).

An optional extra (`pip install "tokviz[gemini]"`); this module, which the entry point loads,
imports no SDK. `provider` sends requests, `answers` turns the API's `logprobsResult` into steps,
`errors` says in one line what went wrong.
"""

from __future__ import annotations

from tokviz.providers.base import Capability, OptionSpec, ProviderSpec
from tokviz.providers.gemini.provider import MAX_LOGPROBS, GeminiProvider

SPEC = ProviderSpec(
    name="gemini",
    description="Google's Gemini API (GEMINI_API_KEY or GOOGLE_API_KEY); models that give log-probabilities, "
                "such as gemini-2.0-flash",
    factory=GeminiProvider,
    models=(r"^(models/)?gemini-",),
    secret_env="GEMINI_API_KEY",
    default_base_url="https://generativelanguage.googleapis.com",  # GOOGLE_API_KEY is redacted too: every *_API_KEY variable is
    concurrent=True,
    max_top_k=MAX_LOGPROBS,
    capabilities=frozenset({Capability.CHAT, Capability.STRUCTURED}),  # a Gemini model answers turns; it does not continue raw text
    default_mode="chat",
    options=(OptionSpec("thinking_budget", int, "tokens a thinking model may spend before answering (0: none, "
                        "where the model allows it); thinking counts against --max-tokens"),),
    priority=60,
    # Google does not document whether its figures come before or after temperature: not assumed.
    figures="unknown",
)
