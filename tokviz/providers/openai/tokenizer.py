"""OpenAI models' token split, offline: tiktoken with the encodings that ship in a package."""

from __future__ import annotations

from tokviz.run import Token, Tokenization


def tokenize(text: str, model: str) -> Tokenization:
    """tiktoken's split of `text` for an OpenAI model, offline (message framing tokens not included)."""
    from tokviz.providers.openai import tiktoken_offline

    name = tiktoken_offline.encoding_name_for_model(model)
    enc = tiktoken_offline.get_encoding(name)
    ids = enc.encode(text, disallowed_special=())
    tokens = []
    for i in ids:
        raw = enc.decode_single_token_bytes(i)
        tokens.append(Token(text=raw.decode("utf-8", "replace"), raw=raw, logprob=0.0, id=i))
    return Tokenization(model=model, tokenizer=f"{name} (tiktoken)", text=text, tokens=tuple(tokens))
