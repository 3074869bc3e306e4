"""A JSON schema held by llguidance for a transformers model: which tokens the answer may take next.

Chosen over xgrammar and outlines-core because it needs no torch of its own (its mask is a numpy
bitmask, applied to the float32 rows this provider already reduces), computes the mask over the
whole vocabulary in ~0.15 ms, holds JSON Schema more completely than llama-cpp-python's converter
(numeric bounds, string lengths), and is the backend vLLM, SGLang and llama.cpp themselves offer.
As for the embedded model, the model's row is never changed: a copy is masked and chosen from, so
a step keeps the model's own figures and marks what the grammar forbade (docs/structured.md).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from tokviz.ground.errors import ProviderError, UsageError

if TYPE_CHECKING:
    import numpy as np

    from tokviz.providers.hf.models import Model

_TOKENIZERS: dict[int, Any] = {}  # one llguidance tokenizer per loaded model (building it takes seconds)


class Grammar:
    def __init__(self, m: Model, schema: str, width: int) -> None:
        try:
            import llguidance
            import llguidance.hf
            import llguidance.numpy as lnp
        except ImportError:
            raise UsageError("the transformers provider holds an answer to a JSON schema through llguidance, which is "
                             "not installed", hint='pip install "tokviz[transformers]"') from None
        key = id(m.tokenizer)
        if key not in _TOKENIZERS:
            _TOKENIZERS.clear()
            eos = sorted(m.stop_ids) if getattr(m, "stop_ids", None) else None
            _TOKENIZERS[key] = llguidance.hf.from_tokenizer(m.tokenizer, n_vocab=width, eos_token=eos)
        grammar = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(json.loads(schema)))
        self.matcher = llguidance.LLMatcher(_TOKENIZERS[key], grammar)
        if self.matcher.is_error():
            raise UsageError(f"llguidance cannot hold an answer to this schema: {self.matcher.get_error()[:200]}")
        self.lnp = lnp
        self.bitmask = lnp.allocate_token_bitmask(1, _TOKENIZERS[key].vocab_size)

    def mask(self, logits: np.ndarray) -> np.ndarray:
        """A copy of the row with every token the grammar forbids now at -inf."""
        import numpy as np

        self.lnp.fill_next_token_bitmask(self.matcher, self.bitmask, 0)
        masked = np.array(logits, dtype=np.float32, copy=True)
        self.lnp.apply_token_bitmask_inplace(masked, self.bitmask[0])
        if not np.isfinite(masked).any():
            raise ProviderError("the JSON schema's grammar allows no token here (a schema no answer can satisfy?)")
        return masked

    def accept(self, token: int) -> None:
        if not self.matcher.consume_token(token):
            raise ProviderError(f"llguidance refused token {token} it had allowed: {self.matcher.get_error()[:200]}")
