"""The boundary with llama.cpp: a loaded model, its logits, its tokens, and a context of several sequences.

Everything tokviz reads from llama.cpp passes here, and only here are llama-cpp-python's private
names used (`Llama._model`, `Llama._ctx`, `llama_cpp._internals`), so a change of the binding
touches one module. Why drive the model by hand at all: llama-cpp-python's built-in logprobs sort
the whole 262,144-token vocabulary in Python at every step (~4 tokens/s here), need an n_ctx ×
n_vocab logits buffer (2 GiB at n_ctx 2048), and return byte-fallback tokens as '' so alternatives
collide. Evaluating one token at a time and reading the last row of logits, with a numpy
log-normaliser and a top-k cut, ran at ~90 tokens/s with exact ids and bytes.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokviz.ground.errors import ProviderError
from tokviz.providers.logits import Reduced
from tokviz.run import Step, Token, Watched

if TYPE_CHECKING:
    import numpy as np
    from llama_cpp import Llama

LLAMA_MAX_SEQ = 256  # llama.cpp refuses a context of more sequences (base.MAX_PARALLEL stays well below)


@dataclass
class Loaded:
    llm: Llama
    n_vocab: int
    stop_ids: frozenset[int]
    token_cache: dict[int, tuple[str, bytes]] = field(default_factory=dict)
    # The prompt generation last read, and a copy of the logits row after it: the next generation
    # from the same prompt (`sample -n`, `compare -t … -t …`, a notebook re-running a cell) keeps
    # the prompt's cache cells instead of reading it again. Trusted only while the Llama object
    # says its cache still starts with those tokens.
    prompt: tuple[tuple[int, ...], np.ndarray] | None = None
    threads: int = 0  # what llama.cpp decodes with now (`use_threads`); 0: as loaded

    def kept_prompt(self, ids: Sequence[int]) -> np.ndarray | None:
        """The logits row after `ids` if the cache still holds exactly them at its start, with the
        cache cut back to them; None if they must be read."""
        import numpy as np

        llm, kept = self.llm, self.prompt
        if (kept is None or kept[0] != tuple(ids) or llm.n_tokens < len(ids)
                or not np.array_equal(llm.input_ids[: len(ids)], ids)):
            return None
        llm.n_tokens = len(ids)  # the next evaluation drops the previous answer's cells
        return kept[1]


@functools.cache
def _quiet_llama_cpp() -> None:
    """Route llama.cpp's C-level log lines (printed even with verbose=False) into Python logging.

    Only the face prints in tokviz; a stray "llama_kv_cache_iswa: …" on stderr would break the
    rule that a run's stderr holds progress and errors only.
    """
    import ctypes
    import logging

    import llama_cpp

    log = logging.getLogger("tokviz.llama_cpp")

    @llama_cpp.llama_log_callback
    def _callback(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
        log.debug("%s", text.decode("utf-8", "replace").rstrip())

    _LOG_CALLBACK.append(_callback)  # ctypes callbacks must outlive their registration
    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))


_LOG_CALLBACK: list[Any] = []

# One loaded model per file and process: batches and notebooks load it once, not per prompt.
# One loaded model per file and process: batches and notebooks load it once, not per prompt.
_MODELS: dict[tuple[str, int, int | None], Loaded] = {}


def close_models() -> None:
    """Free loaded models while llama_cpp is still importable.

    Left to the garbage collector at interpreter exit, llama-cpp-python's `__del__` runs after its
    own module globals are gone and prints a traceback on stderr; closing them at exit avoids it.
    """
    for loaded in list(_MODELS.values()):
        with contextlib.suppress(BaseException):  # at exit, a second Ctrl-C must not print a traceback
            loaded.llm.close()
    _MODELS.clear()


atexit.register(close_models)


def load(path: Path, n_ctx: int, n_threads: int | None = None) -> Loaded:
    key = (str(path.resolve()), n_ctx, n_threads)
    loaded = _MODELS.get(key)
    if loaded is not None:
        return loaded
    try:
        from llama_cpp import Llama
    except ImportError:
        raise ProviderError("llama-cpp-python is not installed", hint="pip install llama-cpp-python") from None
    _quiet_llama_cpp()
    try:
        llm = Llama(model_path=str(path), n_ctx=n_ctx, n_batch=512, n_threads=n_threads or os.cpu_count() or 1,
                    logits_all=False, verbose=False)
    except (ValueError, RuntimeError, OSError) as err:
        raise ProviderError(f"cannot load model {path}: {err}", hint="is it a valid GGUF file?") from None
    stops = {llm.token_eos()}
    turn_end = llm.tokenize(b"<end_of_turn>", add_bos=False, special=True)
    if len(turn_end) == 1:
        stops.add(turn_end[0])
    close_models()  # keep one model in memory at a time
    loaded = Loaded(llm=llm, n_vocab=llm.n_vocab(), stop_ids=frozenset(stops))
    _MODELS[key] = loaded
    return loaded


def use_threads(m: Loaded, requested: int | None) -> Loaded:
    """Set the threads llama.cpp decodes with for the next run (`threads.choose`): generation and
    batches alike, since a batch's threads spin on busy cores too."""
    from tokviz.providers.local.threads import choose

    n = choose(requested)
    if n != m.threads:
        import llama_cpp

        llama_cpp.llama_set_n_threads(m.llm.ctx, n, n)
        m.threads = n
    return m


def ctx_for(needed: int) -> int:
    return -(-needed // 512) * 512


def train_context(m: Loaded) -> int:
    """The context the model was trained with: the most tokens a prompt and its answer may hold."""
    return int(m.llm._model.n_ctx_train())


def forget_cache(m: Loaded) -> None:
    """Empty the model's cache (scoring decodes its own batches into it)."""
    m.llm.reset()
    m.llm._ctx.kv_cache_clear()


def read_prompt(m: Loaded, ids: Sequence[int]) -> np.ndarray:
    """Put `ids` at the start of the model's cache and return the logits row after them (a copy).

    A prompt read just before (the same tokens) is not read again: its cache cells and its row are
    kept. Bit for bit the same figures: what follows lands in the same cells as after a fresh read
    (llama.cpp reuses the first freed cell), which the tests check against a fresh model.
    """
    row = m.kept_prompt(ids)
    if row is not None:
        return row
    m.prompt = None
    m.llm.reset()
    try:
        m.llm.eval(list(ids))
    except RuntimeError as err:
        raise ProviderError(f"the model failed to read the prompt: {err}") from None
    row = last_logits(m).copy()
    m.prompt = (tuple(ids), row)
    return row


def token_of(m: Loaded, token_id: int, logprob: float) -> Token:
    cached = m.token_cache.get(token_id)
    if cached is None:
        raw = piece(m, token_id)
        text = raw.decode("utf-8", "replace") if raw else piece(m, token_id, special=True).decode("utf-8", "replace")
        cached = m.token_cache[token_id] = (text, raw)
    return Token(text=cached[0], raw=cached[1], logprob=logprob, id=token_id)


def piece(m: Loaded, token_id: int, *, special: bool = False) -> bytes:
    """The bytes of one token, however long. llama-cpp-python's `detokenize` reads every piece
    into a 32-byte buffer and returns b'' for a longer one: 379 tokens of the embedded model's
    vocabulary (whole Bengali, Hindi or Tamil words) came out empty, found by holding every token
    against transformers' reading of the same vocabulary (tests/test_transformers.py)."""
    import ctypes

    import llama_cpp

    vocab = m.llm._model.vocab
    size = 64
    for _ in range(2):
        buffer = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(vocab, llama_cpp.llama_token(token_id), buffer, size, 0, special)
        if n >= 0:
            return buffer.raw[:n]
        size = -n  # llama.cpp answers how much it needs
    raise ProviderError(f"llama.cpp cannot spell token {token_id}")


def last_logits(m: Loaded) -> np.ndarray:
    """The float32 logits row of the last evaluated token, read through llama.cpp's public C API.

    A view, not a copy: it is valid until the next evaluation, and everything is read from it
    before then.
    """
    import llama_cpp
    import numpy as np

    ptr = llama_cpp.llama_get_logits_ith(m.llm.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(m.n_vocab,))


def step_of(m: Loaded, reduced: Reduced, chosen: int) -> Step:
    """A position from its reduced row (`reduce_row(row, k, chosen)`): the chosen or scored token,
    its alternatives, and its rank when one was counted."""
    return Step(chosen=token_of(m, chosen, reduced.target_logit - reduced.lse),  # type: ignore[operator]
                alternatives=tuple(token_of(m, i, logit - reduced.lse) for i, logit in reduced.top), rank=reduced.rank,
                watched=tuple(Watched(token=token_of(m, i, logit - reduced.lse), rank=r) for i, logit, r in reduced.watched))


class Batch:
    """A llama.cpp context of several sequences in one unified cache (a prompt shared by sequences
    is held once), and the batch it decodes: what `stream` and `tree --parallel` decode with."""

    def __init__(self, m: Loaded, n_ctx: int, n_seq: int) -> None:
        import llama_cpp
        from llama_cpp import _internals

        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = min(train_context(m), ctx_for(n_ctx))
        cparams.n_batch = cparams.n_ubatch = 512
        cparams.n_seq_max = n_seq
        cparams.kv_unified = True
        cparams.n_threads = cparams.n_threads_batch = m.threads or m.llm.n_threads
        self.cells, self.n_batch, self.vocab = cparams.n_ctx, cparams.n_batch, m.n_vocab
        self.ctx = _internals.LlamaContext(model=m.llm._model, params=cparams, verbose=False)
        self.batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)

    def decode(self, entries: Sequence[tuple[int, int, int, bool]]) -> list[Any]:
        """Decode (token, position, sequence, wants logits) entries, `n_batch` at a time; the rows
        asked for, in order (views into llama.cpp's buffer for the last part, valid until the next
        decode; copies for earlier parts, whose buffer a later part overwrites)."""
        import llama_cpp
        import numpy as np

        out: list[Any] = []
        b = self.batch
        for start in range(0, len(entries), self.n_batch):
            part = entries[start : start + self.n_batch]
            b.n_tokens = len(part)
            for i, (token, pos, seq, logits) in enumerate(part):
                b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, 1, logits
                b.seq_id[i][0] = seq
            code = llama_cpp.llama_decode(self.ctx.ctx, b)
            if code != 0:
                raise ProviderError(f"the model failed to decode (llama_decode returned {code})")
            last = start + len(part) >= len(entries)
            for i, (_, _, _, logits) in enumerate(part):
                if logits:
                    row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.ctx.ctx, i), shape=(self.vocab,))
                    out.append(row if last else row.copy())
        return out

    def share(self, source: int, seq: int, upto: int) -> None:
        """`seq` holds what `source` holds before position `upto` (the cells are shared, not copied)."""
        import llama_cpp

        llama_cpp.llama_memory_seq_cp(self.ctx.memory, source, seq, 0, upto)

    def drop(self, seq: int, start: int = -1) -> None:
        """Forget `seq`'s cells from `start` on (all of them by default)."""
        import llama_cpp

        llama_cpp.llama_memory_seq_rm(self.ctx.memory, seq, start, -1)

    def close(self) -> None:
        import llama_cpp

        llama_cpp.llama_batch_free(self.batch)
        self.ctx.close()


def watch_ids(m: Loaded, specs: Sequence[str], model: str) -> list[int]:
    """The ids of the tokens asked for with --watch (`providers/watch.py`), in this model's vocabulary."""
    from tokviz.providers.watch import ids

    return ids(specs, lambda text: m.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False), m.n_vocab, model)
