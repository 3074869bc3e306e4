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
from dataclasses import dataclass
from typing import Any

from tokviz.providers.openai.dialects import Dialect
from tokviz.run import LOGPROB_FLOOR, Step, Token, same_token
from tokviz.run.tokens import join

_TOKEN_ID = re.compile(r"token_id:(\d+)")


def _logprob(item: dict[str, Any]) -> float:
    if "logprob" not in item and isinstance(item.get("prob"), (int, float)):  # llama.cpp post_sampling_probs
        p = float(item["prob"])
        return math.log(p) if p > 0 else LOGPROB_FLOOR
    value = item.get("logprob")
    if value is None:
        return LOGPROB_FLOOR
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"a logprob is not a number: {value!r}")
    lp = float(value)
    if lp != lp or lp == math.inf or lp > 1e-4:
        raise ValueError(f"a logprob is not a log-probability: {lp!r}")
    return max(min(lp, 0.0), LOGPROB_FLOOR)


def token(item: dict[str, Any], dialect: Dialect) -> Token:
    """One logprob item (a chosen token or an alternative) as a Token."""
    if not isinstance(item, dict):
        raise ValueError("a logprob item is not an object")
    text = item.get("token")
    text = text if isinstance(text, str) else ""
    token_id = item.get("id") if isinstance(item.get("id"), int) and not isinstance(item.get("id"), bool) else None
    logprob = _logprob(item)
    named = _TOKEN_ID.fullmatch(text)
    if named:  # vLLM --return-tokens-as-token-ids: the id is exact, the text is unknown
        return Token(text=text, raw=b"", logprob=logprob, id=int(named.group(1)), lossy=True)
    sent = item.get("bytes")
    raw = bytes(sent) if isinstance(sent, list) and all(isinstance(b, int) and 0 <= b < 256 for b in sent) else None
    if raw is not None and (dialect.exact_bytes or not ("\ufffd" in text and raw == text.encode("utf-8"))):
        return Token(text=text, raw=raw, logprob=logprob, id=token_id)
    if raw is not None:  # the bytes of a decoded text that held U+FFFD: the token's own bytes are lost
        return Token(text=text, raw=raw, logprob=logprob, id=token_id, lossy=True)
    lossy = text == "" or "\ufffd" in text
    return Token(text=text, raw=text.encode("utf-8"), logprob=logprob, id=token_id, lossy=lossy)


def step(item: dict[str, Any], dialect: Dialect) -> Step:
    """One generated position: the chosen token and its alternatives, best first, each token once."""
    chosen = token(item, dialect)
    alternatives: list[Token] = []
    for alt in sorted((token(a, dialect) for a in (item.get("top_logprobs") or [])), key=lambda t: -t.logprob):
        if any(_duplicate(alt, seen) for seen in alternatives):
            continue
        alternatives.append(alt)
    if chosen.id is not None:
        # llama.cpp reports the chosen token's text as the text it sent at that step, which for a
        # token ending inside a character is not the token's own; its alternative of the same id is.
        twin = next((a for a in alternatives if a.id == chosen.id), None)
        if twin is not None and not twin.lossy and twin.raw != chosen.raw:
            chosen = Token(text=twin.text, raw=twin.raw, logprob=chosen.logprob, id=chosen.id)
    return Step(chosen=chosen, alternatives=tuple(alternatives))


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
    """What a server's answer lost, for the run and its one warning line."""

    note: str  # the run's source["lossy"]
    what: str  # "2 tokens", "alternatives", …
    content: str | None  # the streamed text, when the tokens cannot rebuild it


def reconcile(steps: list[Step], streamed: str, dialect: Dialect) -> Loss | None:
    """How far the tokens can be trusted against the text the server streamed; None: fully.

    The safety net under the per-token rules: if the tokens do not add up to what the server
    streamed, the run says so and keeps the streamed text, even where no single token shows it.
    Not for servers whose bytes are exact: their tokens are the truth, whatever the stream held back.
    """
    lossy = sum(1 for st in steps if st.chosen.lossy)
    suspect = dialect.silent_truncation or (not dialect.exact_bytes and lossy > 0)
    mismatch = suspect and bool(streamed) and join(st.chosen.raw for st in steps) != streamed
    if not mismatch and not any(t.lossy for st in steps for t in (st.chosen, *st.alternatives)):
        return None
    note = f"{dialect.label}: {dialect.partial_tokens}" + (
        "; the tokens' text does not add up to the streamed text" if mismatch else "")
    what = (f"{lossy} token{'s' if lossy != 1 else ''}" if lossy
            else "tokens that do not add up to its streamed text" if mismatch else "alternatives")
    return Loss(note=note, what=what, content=streamed if (lossy or mismatch) else None)


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
