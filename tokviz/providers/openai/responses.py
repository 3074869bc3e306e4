"""OpenAI's Responses API (`/v1/responses`, `--api responses`): an answer's log-probabilities as steps.

Asked without streaming: the non-streamed answer carries each token's `bytes`
(`output[i].content[j].logprobs[]` = `{token, bytes, logprob, top_logprobs: [{token, bytes,
logprob}]}`, openai-python `types/responses/response_output_text.py`), while the streamed
`response.output_text.delta` events carry none (a split character could then only be marked). The
answer's output items other than the assistant's message (a reasoning model's `reasoning`) hold no
text to show. llama.cpp and Ollama answer this route with `logprobs: []` always: refused in one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tokviz.ground.errors import ProviderError
from tokviz.providers.openai import logprobs
from tokviz.providers.openai.dialects import Dialect
from tokviz.run import Step


@dataclass
class ResponsesAnswer:
    steps: list[Step] = field(default_factory=list)
    text: str = ""
    finish: str | None = None
    usage: dict[str, int] = field(default_factory=dict)


# The Responses API's status (and incomplete reason) as the finish reasons every run records.
_FINISH = {"completed": "stop", "max_output_tokens": "length", "content_filter": "content_filter"}


def read(answer: Any, dialect: Dialect, k: int, where: str) -> ResponsesAnswer:
    """The steps of a non-streamed Responses answer, checked: an answer with text but no
    log-probabilities is refused, naming the route that gives them."""
    if not isinstance(answer, dict) or answer.get("object") != "response":
        raise ProviderError(f"{where} did not answer in the Responses API's shape (no `object: response`)",
                            hint="use --api chat")
    out = ResponsesAnswer()
    for item in answer.get("output") or []:
        if not isinstance(item, dict) or item.get("type") != "message":
            continue
        for part in item.get("content") or []:
            if not isinstance(part, dict) or part.get("type") != "output_text":
                continue
            out.text += str(part.get("text") or "")
            for entry in part.get("logprobs") or []:
                if isinstance(entry, dict):
                    out.steps.append(logprobs.step(entry, dialect, k))
    if out.text and not out.steps:
        raise ProviderError(f"{where} ({dialect.label}) returned text but no log-probabilities on /v1/responses",
                            hint="its Responses API sends `logprobs: []` (llama.cpp and Ollama always do): "
                                 "use /v1/chat/completions (--api chat)")
    status = str(answer.get("status") or "")
    reason = (answer.get("incomplete_details") or {}).get("reason") if status == "incomplete" else None
    out.finish = _FINISH.get(str(reason or status)) if status in ("completed", "incomplete") else None
    if out.finish is None:
        raise ProviderError(f"{where} answered with status {status!r}: not a finished answer")
    usage = answer.get("usage") or {}
    out.usage = {"prompt_tokens": int(usage.get("input_tokens") or 0),
                 "completion_tokens": int(usage.get("output_tokens") or len(out.steps))}
    return out
