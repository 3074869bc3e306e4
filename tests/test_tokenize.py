"""`tokviz tokenize`: the real tiktoken offline for OpenAI models, the GGUF vocabulary for local."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tokviz import pipeline
from tokviz.providers.local import engine as local_engine
from tokviz.providers.local import models as local_models
from tokviz.providers.openai import tiktoken_offline


def test_gpt_41_mini_uses_o200k_offline(tmp_path: Path) -> None:
    user_cache = tmp_path / "users-own-tiktoken-cache"
    user_cache.mkdir()
    env = {"TOKVIZ_CACHE_DIR": str(tmp_path / "tokviz"), "TIKTOKEN_CACHE_DIR": str(user_cache)}
    proc = run_cli("tokenize", "Hello, how are", "-m", "gpt-4.1-mini", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["tokenizer"] == "o200k_base (tiktoken)"
    assert [t["id"] for t in data["tokens"]] == [13225, 11, 1495, 553]
    assert [t["text"] for t in data["tokens"]] == ["Hello", ",", " how", " are"]
    assert list(user_cache.iterdir()) == []  # the user's own tiktoken cache was left alone
    assert not (tmp_path / "tokviz").exists()  # built from the shipped bytes: no cache folder at all


def test_gpt_4_uses_cl100k() -> None:
    t = pipeline.tokenize("Hello, how are", "gpt-4")
    assert t.tokenizer.startswith("cl100k_base") and [x.id for x in t.tokens] == [9906, 11, 1268, 527]


def test_loading_leaves_the_environment_as_it_was(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "/somewhere/else")
    monkeypatch.setenv("TOKVIZ_CACHE_DIR", str(tmp_path))
    before = dict(os.environ)
    tiktoken_offline.get_encoding.cache_clear()
    tiktoken_offline.get_encoding("o200k_base")
    assert dict(os.environ) == before


@pytest.mark.parametrize("name", tiktoken_offline.SHIPPED)
def test_the_offline_encoding_is_tiktokens_own(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Built from the shipped bytes, the encoding equals the one tiktoken loads itself (from its
    cache, seeded with the same file): the same pattern, special tokens and ids for hostile text."""
    import hashlib

    import tiktoken

    url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
    (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(tiktoken_offline.shipped_ranks(name))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    ours, theirs = tiktoken_offline.get_encoding(name), tiktoken.get_encoding(name)
    text = "Hello, how are you? 한국어 🙂🧿 <|endoftext|> 12345 it's\r\n\n  x\tTHE'LL"
    assert ours.encode(text, allowed_special="all") == theirs.encode(text, allowed_special="all")
    assert (ours.n_vocab, ours._pat_str, ours._special_tokens) == (theirs.n_vocab, theirs._pat_str, theirs._special_tokens)


def test_tokens_that_are_not_utf8_alone_keep_their_bytes() -> None:
    t = pipeline.tokenize("🧿🧿🧿", "gpt-4")
    assert b"".join(x.raw for x in t.tokens) == "🧿🧿🧿".encode()
    assert any(x.label.startswith("\\x") for x in t.tokens)  # cl100k splits this emoji mid-character


def test_local_tokenizer_matches_the_model() -> None:
    t = pipeline.tokenize("Hello, how are 한국어", "gemma-3-270m")
    m = local_engine.load(local_models.embedded_model_path(lambda _: None), local_models.DEFAULT_N_CTX)
    assert [x.id for x in t.tokens] == m.llm.tokenize("Hello, how are 한국어".encode(), add_bos=True)
    assert t.tokens[0].label == "<bos>" and t.tokens[-1].text == "어"


def test_cli_views_and_errors() -> None:
    proc = run_cli("tokenize", "Hello, how are", "-m", "gpt-4o")
    out = proc.stdout.decode()
    assert proc.returncode == 0 and "Hello,␣how␣are" in out and "13225" in out and "4 tokens" in out
    bad = run_cli("tokenize", "x", "-m", "gpt-unknown-model")
    assert bad.returncode == 2 and bad.stderr.decode().count("\n") == 1 and "no known tokenizer" in bad.stderr.decode()
    empty = run_cli("tokenize", "")
    assert empty.returncode == 2 and b"the text is empty" in empty.stderr
