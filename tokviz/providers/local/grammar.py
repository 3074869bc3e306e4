"""A JSON schema as llama.cpp's grammar: which tokens the answer may take next.

llama-cpp-python turns the schema into a GBNF grammar (`json_schema_to_gbnf`) and llama.cpp's
grammar sampler says, for a list of candidate tokens, which the grammar allows after what was
chosen so far. The model's own row is never changed: tokviz records the model's figures, masks a
copy, and chooses from the mask, so a step can show both what the model wanted and what the grammar
let it take (docs/structured.md).

Checking a token against the grammar costs about 0.1 µs; checking all 262,144 of the embedded
model's tokens costs 20–70 ms a step. A greedy step needs only the likeliest allowed token, so the
256 likeliest are checked first and the whole vocabulary only when none of them is allowed.
Sampling needs the whole allowed set, so every token is checked.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any

from tokviz.ground.errors import ProviderError, UsageError

if TYPE_CHECKING:
    import numpy as np

    from tokviz.providers.local.engine import Loaded

FIRST = 256  # candidates checked first on a greedy step
RANGE = 1000  # an integer range of at most this many values is written as their list (the converter ignores bounds)
# llama-cpp-python's converter lets a string hold raw control characters, which JSON forbids (a model
# once wrote a newline inside a string and the answer did not parse): they are taken out of `char`.
_CHAR = 'char ::= [^"\\\\]'
_JSON_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F]'


def to_gbnf(schema: str) -> str:
    """The schema as a GBNF grammar, with what llama-cpp-python's converter leaves out put back:
    bounded integer ranges (as the list of their values) and JSON's rule that a string holds no raw
    control character. Bounds it cannot hold (a number's, a long range's) are checked on the answer
    (`pipeline.runs.validated`)."""
    import json

    from llama_cpp.llama_grammar import json_schema_to_gbnf

    gbnf = json_schema_to_gbnf(json.dumps(_ranges(json.loads(schema))))
    return gbnf.replace(_CHAR, _JSON_CHAR, 1)


def _ranges(node: Any) -> Any:
    if isinstance(node, list):
        return [_ranges(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _ranges(v) for k, v in node.items()}
    low, high = out.get("minimum"), out.get("maximum")
    if (out.get("type") == "integer" and isinstance(low, int) and isinstance(high, int)
            and 0 <= high - low < RANGE and "enum" not in out):
        out = {k: v for k, v in out.items() if k not in ("type", "minimum", "maximum")}
        out["enum"] = list(range(low, high + 1))
    return out


class Grammar:
    def __init__(self, m: Loaded, schema: str) -> None:
        import llama_cpp
        import numpy as np

        try:
            gbnf = to_gbnf(schema)
        except Exception as err:  # a schema feature the converter does not know
            raise UsageError(f"the JSON schema cannot be made into llama.cpp's grammar: {str(err)[:200]}") from None
        self.sampler = llama_cpp.llama_sampler_init_grammar(m.llm._model.vocab, gbnf.encode("utf-8"), b"root")
        if not self.sampler:
            raise UsageError("llama.cpp could not read the grammar made from the JSON schema")
        self.dtype = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)
        self.n_vocab = m.n_vocab

    def _apply(self, ids: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """The logits of `ids` with each token the grammar forbids at -inf."""
        import llama_cpp
        import numpy as np

        data = np.zeros(len(ids), dtype=self.dtype)
        data["id"] = ids
        data["logit"] = logits[ids]
        cur = llama_cpp.llama_token_data_array(data=data.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token_data)),
                                               size=len(ids), selected=-1, sorted=False)
        llama_cpp.llama_sampler_apply(self.sampler, ctypes.byref(cur))
        return data["logit"]

    def mask(self, logits: np.ndarray, *, greedy: bool) -> np.ndarray:
        """A copy of the row with every token the grammar forbids now at -inf (on a greedy step,
        every token outside the likeliest allowed ones too, which changes no argmax)."""
        import numpy as np

        masked = np.full(len(logits), -np.inf, dtype=np.float32)
        if greedy:
            first = np.argpartition(-logits, FIRST)[:FIRST]
            kept = self._apply(first, logits)
            if np.isfinite(kept).any():
                masked[first] = kept
                return masked
        every = np.arange(len(logits), dtype=np.int32)
        masked[every] = self._apply(every, logits)
        if not np.isfinite(masked).any():
            raise ProviderError("the JSON schema's grammar allows no token here (a schema no answer can satisfy?)")
        return masked

    def accept(self, token: int) -> None:
        import llama_cpp

        llama_cpp.llama_sampler_accept(self.sampler, token)

    def close(self) -> None:
        import llama_cpp

        if self.sampler:
            llama_cpp.llama_sampler_free(self.sampler)
            self.sampler = None
