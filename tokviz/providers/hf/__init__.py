"""The `transformers` provider: any causal language model run in this process through Hugging Face
transformers (PyTorch) — a local folder, a model in the Hugging Face cache, or a GGUF file, the
embedded Gemma 3 270M included (dequantised to float32: the float reference the quantised llama.cpp
engine can be held against, `docs/score.md`). Nothing is downloaded.

An optional extra (`pip install "tokviz[transformers]"`): this module, which the entry point
loads, imports neither torch nor transformers; `provider` does when a model is used. `models`
finds and loads a model (device and dtype chosen here, recorded in the run), `pieces` reads a
token's exact bytes from the tokenizer, `forward` is the one boundary with the model's forward
pass, `cursor` walks trees, `scoring` scores a text.
"""

from __future__ import annotations

from typing import Any

from tokviz.providers.base import Capability, OptionSpec, ProviderSpec
from tokviz.providers.hf.provider import TransformersProvider

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")


def _one_of(choices: tuple[str, ...]) -> Any:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"
    return check


SPEC = ProviderSpec(
    name="transformers",
    description=("causal language models run in this process through Hugging Face transformers: a folder, the "
                 "Hugging Face cache or a GGUF (the embedded model dequantised to float32); offline"),
    factory=TransformersProvider,
    models=(),  # claims no name by itself: chosen with -p transformers
    concurrent=False,
    max_top_k=100,
    capabilities=frozenset({Capability.CHAT, Capability.RAW, Capability.STRUCTURED}),
    options=(OptionSpec("device", str, "where the model runs: auto (CUDA, then CPU), cpu, cuda, mps", check=_one_of(DEVICES)),
             OptionSpec("dtype", str, "weights and arithmetic: auto (float32 on CPU, bfloat16 on a GPU), float32, "
                        "bfloat16, float16", check=_one_of(DTYPES)),
             OptionSpec("threads", int, "CPU threads for PyTorch (default: PyTorch's own choice)",
                        check=lambda v: None if 1 <= v <= 512 else "must be between 1 and 512")),
    priority=50,
    figures="before sampling",  # log-softmax of the model's logits; the draw comes after (tokviz.providers.draw)
)
