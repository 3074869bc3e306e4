"""A token's exact bytes, read from the tokenizer's vocabulary rather than from `decode([id])`.

`decode` of one token returns '�' for a byte that is only part of a character (and two different
byte tokens then look the same), and strips or adds spaces by its own rules. A piece of the
vocabulary says exactly which bytes it stands for, in one of two spellings:
- SentencePiece with byte fallback (Gemma, Llama 2, Mistral): '▁' is a space, `<0xE2>` one byte;
- byte-level BPE (GPT-2, Llama 3, Qwen): each byte is written as one printable character
  (`bytes_to_unicode`), so 'Ġ' is a space.
A special (control) token stands for no text: its bytes are empty and its text is its name, as
llama.cpp gives it, so the same model in both engines shows the same tokens.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

from tokviz.run import Token

if TYPE_CHECKING:
    from tokviz.providers.hf.models import Model

_BYTE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


@functools.cache
def _byte_level_decoder() -> dict[str, int]:
    """GPT-2's bytes_to_unicode, inverted: printable character → the byte it stands for."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def spelling(tokenizer: Any) -> str:
    """'byte-level' or 'sentencepiece', from the tokenizer's decoder."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    decoder = str(getattr(backend, "decoder", "")) if backend is not None else ""
    return "byte-level" if "ByteLevel" in decoder else "sentencepiece"


def piece_bytes(piece: str, style: str) -> bytes:
    """The bytes one vocabulary piece stands for."""
    if style == "byte-level":
        table = _byte_level_decoder()
        if all(c in table for c in piece):
            return bytes(table[c] for c in piece)
        return piece.encode("utf-8")  # an added token spelled as plain text
    match = _BYTE.fullmatch(piece)
    if match:
        return bytes([int(match.group(1), 16)])
    return piece.replace("▁", " ").encode("utf-8")


def token_of(m: Model, token_id: int, logprob: float) -> Token:
    """The token `token_id` of loaded model `m`, its text and bytes cached."""
    cached = m.pieces.get(token_id)
    if cached is None:
        tokenizer = m.tokenizer
        piece = tokenizer.convert_ids_to_tokens(token_id)
        if piece is None:
            piece = ""
        if token_id in m.special_ids:
            cached = (piece, b"")
        else:
            raw = piece_bytes(piece, m.spelling)
            cached = (raw.decode("utf-8", "replace") if raw else piece, raw)
        m.pieces[token_id] = cached
    return Token(text=cached[0], raw=cached[1], logprob=logprob, id=token_id)


def special_ids(tokenizer: Any) -> frozenset[int]:
    """The ids of control tokens (they stand for no text), read once per model: the tokenizer's
    `added_tokens_decoder` is rebuilt on every access (3 ms for Gemma's 6,384 added tokens)."""
    added = getattr(tokenizer, "added_tokens_decoder", {})
    return frozenset({*(i for i, t in added.items() if getattr(t, "special", False)),
                      *getattr(tokenizer, "all_special_ids", ())})
