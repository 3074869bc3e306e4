"""The Gemini API's `logprobsResult` → tokviz steps, exactly or marked as lossy.

An answer holds `chosenCandidates` (one per generated token: token, tokenId, logProbability) and
`topCandidates` (the same positions, each with up to `logprobs` alternatives). A token is sent as
text only: a byte-fallback piece written `<0xF0>` is that byte; a token whose text holds U+FFFD
(a character split across tokens, decoded on its own) is marked lossy, and where the tokens no
longer spell the answer's text, the answer's text is kept as the run's content.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tokviz.ground.errors import ProviderError
from tokviz.run import Step, Token

_BYTE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
# Gemini's finish reasons (google.genai.types.FinishReason) as tokviz's words.
FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}


@dataclass
class Answer:
    """What one generateContent answer (or a stream's chunks, added up) gave."""

    steps: list[Step]
    text: str
    finish: str | None
    usage: dict[str, int]
    model_version: str | None = None


def token(item: Any) -> Token:
    """One candidate (token, tokenId, logProbability) as a Token."""
    text = item.token if isinstance(item.token, str) else ""
    logprob = item.log_probability
    if not isinstance(logprob, (int, float)) or math.isnan(logprob):
        raise ProviderError(f"the Gemini API sent a token without a log-probability ({text!r})")
    token_id = item.token_id if isinstance(item.token_id, int) else None
    byte = _BYTE.fullmatch(text)
    if byte:
        raw = bytes([int(byte.group(1), 16)])
        return Token(text=raw.decode("utf-8", "replace"), raw=raw, logprob=min(float(logprob), 0.0), id=token_id)
    return Token(text=text, raw=text.encode("utf-8"), logprob=min(float(logprob), 0.0), id=token_id,
                 lossy="\ufffd" in text or text == "")


def steps_of(result: Any) -> list[Step]:
    """The steps of one `logprobsResult`."""
    chosen = list(result.chosen_candidates or [])
    tops = list(result.top_candidates or [])
    if tops and len(tops) != len(chosen):
        raise ProviderError(f"the Gemini API sent {len(chosen)} tokens but {len(tops)} lists of alternatives")
    out = []
    for n, item in enumerate(chosen):
        alternatives = tuple(token(c) for c in (tops[n].candidates or [])) if tops else ()
        out.append(Step(chosen=token(item), alternatives=alternatives))
    return out


def read(chunks: Iterable[Any], on_step: Any = None) -> Answer:
    """An answer from the response (or the stream's chunks in order), `on_step` told of each step."""
    steps: list[Step] = []
    text: list[str] = []
    finish = None
    usage: dict[str, int] = {}
    version = None
    blocked = None
    for chunk in chunks:
        version = getattr(chunk, "model_version", None) or version
        feedback = getattr(chunk, "prompt_feedback", None)
        if feedback is not None and getattr(feedback, "block_reason", None):
            blocked = _word(feedback.block_reason)
        meta = getattr(chunk, "usage_metadata", None)
        if meta is not None:
            usage = {k: v for k, v in (("prompt_tokens", meta.prompt_token_count),
                                       ("completion_tokens", meta.candidates_token_count),
                                       ("thinking_tokens", getattr(meta, "thoughts_token_count", None))) if isinstance(v, int)}
        for candidate in (chunk.candidates or [])[:1]:
            content = candidate.content
            for part in (content.parts or []) if content is not None else []:
                if isinstance(part.text, str) and not getattr(part, "thought", False):
                    text.append(part.text)
            if candidate.logprobs_result is not None:
                for step in steps_of(candidate.logprobs_result):
                    steps.append(step)
                    if on_step is not None:
                        on_step(step)
            if candidate.finish_reason is not None:
                finish = _word(candidate.finish_reason)
    if blocked:
        raise ProviderError(f"the Gemini API blocked the prompt ({blocked})")
    answer = Answer(steps=steps, text="".join(text), finish=FINISH.get(finish or "", (finish or "").lower() or None),
                    usage=usage, model_version=version)
    if not answer.steps:
        if answer.text:
            raise ProviderError("the Gemini API answered without log-probabilities",
                                hint="the model may not give them: try gemini-2.0-flash")
        raise ProviderError(f"the Gemini API answered nothing (finish: {answer.finish or 'none given'})")
    return answer


def checked(answer: Answer) -> tuple[list[Step], str | None, str | None]:
    """The steps, marked lossy from the first token that parts from the answer's text; the text to
    keep as the run's content (None when the tokens spell it); and a note for the run's source."""
    spelled = b"".join(s.chosen.raw for s in answer.steps)
    if spelled.decode("utf-8", "replace") == answer.text and not any(s.chosen.lossy for s in answer.steps):
        return answer.steps, None, None
    expected = answer.text.encode("utf-8")
    at, agree = 0, len(answer.steps)
    for n, step in enumerate(answer.steps):
        if step.chosen.lossy or expected[at:at + len(step.chosen.raw)] != step.chosen.raw:
            agree = n
            break
        at += len(step.chosen.raw)
    marked = [s if n < agree else Step(chosen=Token(text=s.chosen.text, raw=s.chosen.raw, logprob=s.chosen.logprob,
                                                    id=s.chosen.id, lossy=True),
                                       alternatives=s.alternatives, rank=s.rank)
              for n, s in enumerate(answer.steps)]
    note = (f"the Gemini API's tokens spell its answer up to token {agree + 1} only (a character split across "
            "tokens is sent as text, not bytes): those from there on are marked ≈ and the answer's own text is kept")
    return marked, answer.text, note


def _word(value: Any) -> str:
    return str(getattr(value, "value", value) or "")
