"""The one boundary with the model's forward pass: tokens in, float32 logits rows out, the KV cache
kept by the caller.

Rows leave as numpy float32 (a view of a CPU tensor, a copy from a GPU), so they are reduced and
drawn by the same arithmetic as the llama.cpp engine's (`tokviz.providers.logits`, `.draw`): one
seed draws the same token from the same row in both engines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tokviz.ground.errors import ProviderError

if TYPE_CHECKING:
    import numpy as np

    from tokviz.providers.hf.models import Model


def new_cache(m: Model) -> Any:
    from transformers import DynamicCache

    try:
        return DynamicCache(config=m.model.config)  # sliding-window layers where the model has them
    except TypeError:
        return DynamicCache()


def rows(m: Model, ids: Sequence[int], cache: Any, *, keep: int | None = None) -> np.ndarray:
    """Feed `ids` after what `cache` holds; the logits rows of the last `keep` of them (all by
    default), as float32 numpy [n, vocab]."""
    import torch

    if not ids:
        raise ProviderError("nothing to read (no tokens)")
    tensor = torch.tensor([list(ids)], dtype=torch.long, device=m.device)
    kwargs: dict[str, Any] = {m.cache_kw: cache, "use_cache": True}
    if keep is not None:
        kwargs["logits_to_keep"] = keep
    try:
        with torch.inference_mode():
            out = m.model(input_ids=tensor, **kwargs)
    except RuntimeError as err:  # out of memory, a shape the model refuses
        raise ProviderError(f"the model failed to read its input: {str(err).splitlines()[0][:300]}") from None
    logits = out.logits[0]
    if logits.dtype != torch.float32:
        logits = logits.float()
    return logits.cpu().numpy()


def cut(m: Model, cache: Any, keep: int) -> bool:
    """Cut `cache` back to its first `keep` positions; False when it cannot be (a sliding-window
    layer already dropped what would be needed again), and the caller reads the path afresh."""
    held = cache.get_seq_length()
    if held <= keep:
        return held == keep
    try:
        cache.crop(keep - held)  # negative: drop that many (the spelling every transformers version takes)
    except (ValueError, NotImplementedError):
        return False
    return cache.get_seq_length() == keep


def batch_rows(m: Model, tokens: list[list[int]], mask: Any, positions: Any, cache: Any) -> np.ndarray:
    """Feed one column block of several sequences (`tokens`, left-padded to one length) after what
    `cache` holds; `mask` covers every position so far (0: padding), `positions` are each token's
    position in its own sequence. The logits row after each sequence's last token, float32 [B, vocab]."""
    import torch

    tensor = torch.tensor(tokens, dtype=torch.long, device=m.device)
    try:
        with torch.inference_mode():
            out = m.model(input_ids=tensor, attention_mask=mask, position_ids=positions, use_cache=True,
                          logits_to_keep=1, **{m.cache_kw: cache})
    except RuntimeError as err:
        raise ProviderError(f"the model failed to read its input: {str(err).splitlines()[0][:300]}") from None
    logits = out.logits[:, -1]
    if logits.dtype != torch.float32:
        logits = logits.float()
    return logits.cpu().numpy()
