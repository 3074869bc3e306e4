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


def hidden(m: Model, ids: Sequence[int], cache: Any) -> Any:
    """Feed `ids` through the model's body only (no output layer): the last hidden state of each,
    a [n, d] tensor. Scoring applies the output layer to these in chunks (`head`), so the body
    reads a long window in few passes while the [n, vocab] logits never exist all at once."""
    import torch

    tensor = torch.tensor([list(ids)], dtype=torch.long, device=m.device)
    try:
        with torch.inference_mode():
            out = m.model.get_decoder()(input_ids=tensor, use_cache=True, **{m.cache_kw: cache})
    except RuntimeError as err:
        raise ProviderError(f"the model failed to read its input: {str(err).splitlines()[0][:300]}") from None
    return out.last_hidden_state[0]


def head(m: Model, states: Any) -> np.ndarray:
    """The output layer over some hidden states: float32 logits rows [n, vocab]."""
    import torch

    with torch.inference_mode():
        logits = m.model.get_output_embeddings()(states)
    if logits.dtype != torch.float32:
        logits = logits.float()
    return logits.cpu().numpy()


def plain_head(m: Model) -> bool:
    """Whether the model's logits are exactly its output layer over its body's last hidden state
    (no soft-capping or scaling after it), checked on a few tokens rather than assumed per
    architecture: only then may scoring apply the layer itself."""
    import torch

    try:
        decoder, layer = m.model.get_decoder(), m.model.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return False
    if decoder is None or layer is None:
        return False
    probe = torch.tensor([[*([m.bos] if m.bos is not None else []), *m.tokenizer("a b c").input_ids[-3:]]],
                         device=m.device)
    try:
        with torch.inference_mode():
            whole = m.model(input_ids=probe).logits[0]
            split = layer(decoder(input_ids=probe).last_hidden_state[0])
    except (RuntimeError, TypeError, ValueError, AttributeError):
        return False
    return whole.shape == split.shape and bool(torch.equal(whole, split))


def cut(m: Model, cache: Any, keep: int) -> bool:
    """Cut `cache` back to its first `keep` positions; False when it cannot be (a sliding-window
    layer already dropped what would be needed again), and the caller reads the path afresh — the
    same way predict read it, so the figures stay predict's. (transformers can keep the dropped
    states for a rollback, `activate_past_recording`, but attention then runs over a longer cache,
    whose rounding is not predict's.)"""
    held = cache.get_seq_length()
    if held <= keep:
        return held == keep
    try:
        cache.crop(keep - held)  # negative: drop that many (the spelling every transformers version takes)
    except (ValueError, NotImplementedError, RuntimeError):  # transformers 5 raises RuntimeError past the window
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
