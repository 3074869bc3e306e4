"""Server log-probabilities → tokviz tokens and steps, exactly or marked as lossy.

Every shape a server may send ends up here: the chat shape (`content`: items with `token`,
`logprob`, `bytes`, sometimes `id`, and `top_logprobs` lists), the legacy completions shape
(parallel `tokens` / `token_logprobs` lists and one {text: logprob} dict per position, which
Together and Fireworks also put inside chat answers), and llama.cpp's `prob` (post-sampling mode).
The rules that keep figures true:

- A token's bytes are trusted only when the server's bytes are the token's own (`Dialect.
  exact_bytes`); bytes that are merely the encoding of a decoded text holding U+FFFD, an empty
  text with no bytes, or 'token_id:N' mark the token `lossy`: shown as such, never as truth.
- Ids are used where sent: two alternatives with equal text but different ids stay two tokens.
- A `null` logprob (older llama.cpp for -inf) is the floor, not a failure; a NaN, infinite or
  positive one is a malformed answer.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

from tokviz.providers.openai.dialects import Dialect
from tokviz.run import LOGPROB_FLOOR, Step, Token, same_token
from tokviz.run import tokens as tok
from tokviz.run.tokens import join

_TOKEN_ID = re.compile(r"token_id:(\d+)")


def _logprob(item: dict[str, Any]) -> tuple[float, bool]:
    """The item's log-probability, and whether it is invalid: a positive one (Together has sent
    one on a first token) is kept as 0 and marked, so one bad figure costs that figure, not the
    answer. NaN, infinities and non-numbers are a malformed answer."""
    if "logprob" not in item and isinstance(item.get("prob"), (int, float)):  # llama.cpp post_sampling_probs
        p = float(item["prob"])
        if p != p or p < 0 or p > 1 + 1e-4:
            raise ValueError(f"a probability is not a probability: {p!r}")
        return (math.log(min(p, 1.0)) if p > 0 else LOGPROB_FLOOR), False
    value = item.get("logprob")
    if value is None:
        return LOGPROB_FLOOR, False
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"a logprob is not a number: {value!r}")
    lp = float(value)
    if lp != lp or lp == math.inf:
        raise ValueError(f"a logprob is not a log-probability: {lp!r}")
    return max(min(lp, 0.0), LOGPROB_FLOOR), lp > 1e-4


def token(item: dict[str, Any], dialect: Dialect) -> Token:
    """One logprob item (a chosen token or an alternative) as a Token."""
    if not isinstance(item, dict):
        raise ValueError("a logprob item is not an object")
    text = item.get("token")
    text = text if isinstance(text, str) else ""
    token_id = item.get("id") if isinstance(item.get("id"), int) and not isinstance(item.get("id"), bool) else None
    logprob, invalid = _logprob(item)
    named = _TOKEN_ID.fullmatch(text)
    if named:  # vLLM --return-tokens-as-token-ids: the id is exact, the text is unknown
        return Token(text=text, raw=b"", logprob=logprob, id=int(named.group(1)), lossy=True)
    sent = item.get("bytes")
    raw = bytes(sent) if isinstance(sent, list) and all(isinstance(b, int) and 0 <= b < 256 for b in sent) else None
    if raw == b"":  # no token is no bytes: vLLM's "" / [] for the leading piece of a split character
        return Token(text=text, raw=b"", logprob=logprob, id=token_id, lossy=True)
    if raw is not None and (dialect.exact_bytes or not ("\ufffd" in text and raw == text.encode("utf-8"))):
        return Token(text=text, raw=raw, logprob=logprob, id=token_id, lossy=invalid)
    if raw is not None:  # the bytes of a decoded text that held U+FFFD: the token's own bytes are lost
        return Token(text=text, raw=raw, logprob=logprob, id=token_id, lossy=True)
    lossy = invalid or text == "" or "\ufffd" in text
    return Token(text=text, raw=text.encode("utf-8"), logprob=logprob, id=token_id, lossy=lossy)


def post_sampling(item: dict[str, Any]) -> bool:
    """llama-server's answer with post_sampling_probs: probabilities after its samplers (`prob`,
    `top_probs`), not model log-probabilities."""
    return "logprob" not in item and "prob" in item


def invalid_figures(item: dict[str, Any]) -> int:
    """How many of an item's figures (the chosen token's and its alternatives') were positive."""
    entries = [item, *(a for a in item.get("top_logprobs") or [] if isinstance(a, dict))]
    return sum(1 for e in entries if isinstance(e.get("logprob"), (int, float)) and not isinstance(e.get("logprob"), bool)
               and float(e["logprob"]) > 1e-4)


# vLLM clamps -inf to -9999 (vllm/v1/sample/sampler.py): with --logprobs-mode processed_logprobs,
# the tokens top-p or top-k removed come back as alternatives at -9999. They are no candidates.
FILLER = LOGPROB_FLOOR  # -9999.0


def fillers(item: dict[str, Any]) -> int:
    """How many of an item's alternatives are vLLM's -9999 fillers (tokens the samplers removed)."""
    tops = item.get("top_logprobs") or []
    return sum(1 for a in tops if isinstance(a, dict) and isinstance(a.get("logprob"), (int, float))
               and not isinstance(a.get("logprob"), bool) and float(a["logprob"]) <= FILLER)


def step(item: dict[str, Any], dialect: Dialect, k: int | None = None) -> Step:
    """One generated position: the chosen token and its alternatives, best first, each token once;
    at most `k` of them (vLLM adds the chosen token to its top-k list when it lies outside it, and
    an alternative k+1 would give it an invented rank), and no filler of a sampler's mask."""
    chosen = token(item, dialect)
    alternatives: list[Token] = []
    tops = item.get("top_logprobs") or item.get("top_probs") or []  # top_probs: llama-server's post_sampling_probs
    for alt in sorted((token(a, dialect) for a in tops if isinstance(a, dict)), key=lambda t: -t.logprob):
        if any(_duplicate(alt, seen) for seen in alternatives) or (dialect.fillers and alt.logprob <= FILLER):
            continue
        alternatives.append(alt)
    if k is not None and len(alternatives) > k:
        alternatives = alternatives[:k]
    if chosen.id is not None:
        twin = next((a for a in alternatives if a.id == chosen.id), None)
        if twin is not None and _completes(chosen, twin):
            # llama-server (tools/server: text_to_send) sends no entry for a token that leaves a
            # character unfinished; the entry of the token that completes it carries the whole
            # character in `token` and `bytes`, with the id and figures of that last token alone.
            # The text is kept whole (the answer reads right) and the figure marked: it is not the
            # probability of the whole character, and the earlier tokens' figures were never sent.
            chosen = replace(chosen, lossy=True)
        elif twin is not None and not twin.lossy and twin.raw != chosen.raw:
            # older llama.cpp reported the text it sent at that step, which for a token ending
            # inside a character is not the token's own; its alternative of the same id is.
            chosen = Token(text=twin.text, raw=twin.raw, logprob=chosen.logprob, id=chosen.id, lossy=chosen.lossy)
    return Step(chosen=chosen, alternatives=tuple(alternatives))


def _completes(chosen: Token, twin: Token) -> bool:
    """The chosen entry carries more than its own token's bytes, ending with them: llama-server's
    whole character on the token that completes it (see `step`)."""
    return bool(twin.raw) and chosen.raw != twin.raw and chosen.raw.endswith(twin.raw)


def merged(step_: Step) -> bool:
    """A llama-server entry that stands for several tokens (see `step`)."""
    twin = next((a for a in step_.alternatives if a.id is not None and a.id == step_.chosen.id), None)
    return twin is not None and _completes(step_.chosen, twin)


def _duplicate(a: Token, b: Token) -> bool:
    """The same entry sent twice: same id, or (with no ids) same bytes, text and logprob."""
    if a.id is not None or b.id is not None:
        return a.id == b.id
    return same_token(a, b) and a.logprob == b.logprob


def items(logprobs: Any) -> list[dict[str, Any]]:
    """The logprob items of one choice, in either shape, as chat-shaped items."""
    if not isinstance(logprobs, dict):
        return []
    if isinstance(logprobs.get("content"), list):
        return [i for i in logprobs["content"] if isinstance(i, dict)]
    tokens = logprobs.get("tokens")
    if not isinstance(tokens, list):
        return []
    values = logprobs.get("token_logprobs") or []
    tops = logprobs.get("top_logprobs") or []
    ids = logprobs.get("token_ids") or []
    out = []
    for n, text in enumerate(tokens):
        top = tops[n] if n < len(tops) and isinstance(tops[n], dict) else {}
        item: dict[str, Any] = {"token": text, "logprob": values[n] if n < len(values) else None,
                                "top_logprobs": [{"token": t, "logprob": v} for t, v in top.items()]}
        if n < len(ids) and isinstance(ids[n], int):
            item["id"] = ids[n]
        out.append(item)
    return out


@dataclass(frozen=True)
class Loss:
    """What a server's answer lost or got wrong, for the run and its one warning line."""

    note: str  # the run's source["lossy"]
    warning: str  # the one line on stderr (after "warning: SERVER (DIALECT) ")
    content: str | None  # the streamed text, when the tokens cannot rebuild it


def reconcile(steps: list[Step], streamed: str, dialect: Dialect, invalid: int = 0) -> tuple[list[Step], Loss | None]:
    """Check the tokens against the text the server streamed; the steps (marked where needed) and
    what was lost, None when nothing was.

    Every answer that carries both is cross-checked: when the tokens do not add up to the streamed
    text beyond characters the server held back from its stream (vLLM serving some byte-level BPE
    models sends raw BPE pieces such as 'æĺ¯' for '是', vllm-project/vllm#19177; a server that
    drops partial characters), the tokens from the first that disagrees on are marked, the
    streamed text is kept as the run's text, and the user is told once. `invalid`: how many
    positive log-probabilities the answer held (each marked where it stood).
    """
    joined = join(st.chosen.raw for st in steps)
    mismatch = bool(streamed) and joined != streamed and not _within(streamed, joined)
    if mismatch:  # the tokens agree with the stream up to a point; from there on none can be trusted
        at, agree = 0, 0
        for piece in tok.pieces([st.chosen.raw for st in steps]):
            if not piece or not streamed.startswith(piece, at):
                break
            at, agree = at + len(piece), agree + 1
        steps = [st if n < agree or st.chosen.lossy else replace(st, chosen=replace(st.chosen, lossy=True))
                 for n, st in enumerate(steps)]
    whole = _whole_after_pieces(steps, dialect)
    if whole:
        steps = [_mark_whole(st) if n in whole else st for n, st in enumerate(steps)]
    n_merged = sum(1 for st in steps if merged(st)) + len(whole)
    lossy = sum(1 for st in steps if st.chosen.lossy)
    notes, told = [], []
    if n_merged:
        notes.append(f"{tok.count(n_merged, 'token')} stand for a character split across tokens: {dialect.label} sends "
                     "it whole on the token that completes it, with that last token's figure alone")
        told.append(f"{tok.count(n_merged, 'character')} split across tokens as one entry (its figure is the last token's)")
    if invalid:
        notes.append(f"{tok.count(invalid, 'positive log-probability', 'positive log-probabilities')} (not a "
                     "probability) shown as 100%")
        told.append(f"{tok.count(invalid, 'positive log-probability', 'positive log-probabilities')}")
    if mismatch:
        notes.append(f"the tokens' text does not add up to the streamed text ({dialect.partial_tokens})")
        told.append("tokens whose text does not add up to its streamed text")
    elif lossy > n_merged + invalid or any(t.lossy for st in steps for t in st.alternatives):
        notes.append(f"{dialect.label}: {dialect.partial_tokens}")
        others = lossy - n_merged
        told.append(f"{tok.count(others, 'token')} without their exact bytes" if others > 0 else
                    "alternatives without their exact bytes")
    if not notes:
        return steps, None
    kept = mismatch or lossy > n_merged
    warning = ("reported " + "; ".join(told) + " (" + "; ".join(notes) + "): marked ≈ in every view"
               + (", and the run's text is the streamed text" if kept and streamed else ""))
    return steps, Loss(note="; ".join(notes), warning=warning, content=streamed if kept and streamed else None)


def _whole_after_pieces(steps: list[Step], dialect: Dialect) -> set[int]:
    """The steps whose chosen token carries a whole multi-byte character right after tokens that
    came with no bytes: vLLM sends the leading pieces of a split character as "" and the whole
    character on the token that completes it (`_correct_decoded_token`), with that last token's
    figure alone and no id to tell it by."""
    if not dialect.whole_on_completion:
        return set()
    return {n for n in range(1, len(steps))
            if steps[n - 1].chosen.lossy and not steps[n - 1].chosen.raw and _leads(steps[n].chosen.raw)}


def _leads(raw: bytes) -> bool:
    """The bytes begin with the lead byte of a multi-byte UTF-8 character."""
    return bool(raw) and raw[0] >= 0xC0


def _mark_whole(st: Step) -> Step:
    """A completing step: its chosen token, and each alternative spelled as a whole character (the
    same correction applied to them), marked: their bytes are not the tokens' own."""
    alternatives = tuple(replace(a, lossy=True) if _leads(a.raw) else a for a in st.alternatives)
    return replace(st, chosen=replace(st.chosen, lossy=True), alternatives=alternatives)


def _within(streamed: str, joined: str) -> bool:
    """The streamed text is the tokens' text less some characters: a server may stream '' for the
    tokens of a character split across them (OpenAI's documented stream does), and then the
    tokens, which hold the character, are the fuller record; tokens that lost characters the stream
    has, or hold other ones, are not."""
    rest = iter(joined)
    return all(ch in rest for ch in streamed)


def echoed(logprobs: Any, prompt: str) -> list[tuple[int, dict[str, Any] | None]]:
    """(character offset in `prompt`, item) for each token of an echoed prompt (legacy shape, as
    OpenAI's legacy models, vLLM, SGLang and llama-cpp-python send it with `echo`); the item is
    None where the server gives no logprob (the first token, which nothing precedes).

    Offsets are the running length of the token texts, shifted to where the prompt starts in
    them: vLLM echoes the <bos> it added, and counts its "text_offset" from there
    (vllm/entrypoints/openai/serving_completion.py, _create_completion_logprobs). When the token
    texts do not contain the prompt (partial characters), the server's own offsets are used.
    """
    found = items(logprobs)
    if not found:
        return []
    texts = [item.get("token") if isinstance(item.get("token"), str) else "" for item in found]
    offsets, at = [], 0
    for text in texts:
        offsets.append(at)
        at += len(text)
    shift = "".join(texts).find(prompt)
    sent = logprobs.get("text_offset")
    if shift < 0 and isinstance(sent, list) and len(sent) == len(found) and all(isinstance(o, int) for o in sent):
        offsets, shift = [int(o) for o in sent], 0
    values = logprobs.get("token_logprobs")
    out: list[tuple[int, dict[str, Any] | None]] = []
    for n, item in enumerate(found):
        missing = isinstance(values, list) and n < len(values) and values[n] is None
        out.append((offsets[n] - max(shift, 0), None if missing or item.get("logprob") is None else item))
    return out
