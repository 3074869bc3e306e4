"""The one place a request's body is built, for every way it is sent: streamed by `predict`, written
to a request file for OpenAI's Batch API and `vllm run-batch`."""

from __future__ import annotations

from typing import Any

from tokviz.ground.errors import UsageError
from tokviz.providers.base import Request
from tokviz.providers.openai import dialects
from tokviz.run import Message


def request_body(request: Request, params: Any, dialect: dialects.Dialect, *,
                 openai: bool) -> tuple[str, dict[str, Any], list[Message], dict[str, str]]:
    """The one place a request's body is built: (path, body without streaming, messages, the run's
    `source` notes). `predict` streams it; `batch --export-requests` writes it for OpenAI's Batch
    API and `vllm run-batch`."""
    chat = params.mode == "chat"
    if dialect.max_top_logprobs is not None and params.top_k > dialect.max_top_logprobs:
        raise UsageError(f"--top-k must be at most {dialect.max_top_logprobs} on {dialect.label}, got {params.top_k}",
                         hint="servers such as llama-server and vLLM (--max-logprobs) return more")
    messages = (([Message("system", request.system)] if request.system else []) + [Message("user", request.prompt)]) if chat else []
    body: dict[str, Any] = {"model": request.model, "temperature": params.temperature, "top_p": params.top_p}
    if chat:
        body["messages"] = [{"role": m.role, "content": m.content} for m in messages]
        body["logprobs"] = True
        if params.top_k:
            body["top_logprobs"] = params.top_k
    else:
        body["prompt"] = request.prompt
        body["logprobs"] = max(params.top_k, dialect.min_completion_logprobs)
    if params.seed is not None:
        body["seed"] = params.seed
    source = {"dialect": dialect.name, "logprobs": dialect.logprobs_are, "figures": dialect.figures}
    if params.temperature == 0 and dialect.greedy_body:
        body.update({k: v for k, v in dialect.greedy_body.items() if k not in params.options})
        source["greedy"] = (f"sent {', '.join(f'{k}={v}' for k, v in dialect.greedy_body.items())} "
                            f"(the server's default: {dialect.default_penalties})")
    elif dialect.default_penalties != "none":
        source["penalties"] = f"server default: {dialect.default_penalties}"
    body.update({k: v for k, v in params.options.items() if k != "dialect"})  # -O settings, checked by SPEC
    # OpenAI wants max_completion_tokens on chat (max_tokens is deprecated and refused by
    # reasoning models); compatible servers mostly know only max_tokens.
    body["max_completion_tokens" if (chat and openai) else "max_tokens"] = params.max_tokens
    return ("/chat/completions" if chat else "/completions"), body, messages, source
