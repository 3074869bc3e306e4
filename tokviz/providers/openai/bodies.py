"""The one place a request's body is built, for every way it is sent: streamed by `predict`, written
to a request file for OpenAI's Batch API and `vllm run-batch`."""

from __future__ import annotations

from typing import Any

from tokviz.ground.errors import UsageError
from tokviz.providers.base import Request
from tokviz.providers.openai import dialects
from tokviz.run import Message

# -O settings that tell tokviz how to ask, not the server what to do: never sent
LOCAL_OPTIONS = ("dialect", "api")
# What a server's figures are while its answer is held to a JSON schema, from its source; a
# dialect not named here: not known (said so).
STRUCTURED_FIGURES = {
    "vllm": ("renormalised over the tokens the schema allows: vLLM applies the grammar's bitmask to the logits "
             "before its sampler computes even raw_logprobs (vllm/v1/worker/gpu_model_runner.py, "
             "apply_grammar_bitmask before _sample); a forbidden token is never listed"),
    "llama.cpp": ("the model's own, before the grammar: llama-server reads them from the raw logits "
                  "(tools/server populate_token_probs, unless post_sampling_probs), so the chosen token may be one the "
                  "model gave less than an alternative the grammar forbade"),
    "llama-cpp-python": ("the model's own, before the grammar: llama-cpp-python computes them from the raw logits it "
                         "stored (llama_cpp/llama.py _create_completion, logits_to_logprobs of self._scores) and applies "
                         "the grammar only when it samples"),
}


def response_format(schema: str, dialect: str = "openai") -> dict[str, Any]:
    """The OpenAI API's structured-output request (chat): a schema, or any JSON object.
    llama-cpp-python's server takes only `json_object`, with the schema beside it
    (llama_cpp/llama_chat_format.py, `_grammar_for_response_format`)."""
    import json

    loaded = json.loads(schema)
    if loaded == {"type": "object"}:
        return {"type": "json_object"}
    if dialect == "llama-cpp-python":
        return {"type": "json_object", "schema": loaded}
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": loaded, "strict": True}}


def responses_body(request: Request, params: Any, dialect: dialects.Dialect, *,
                   openai: bool) -> tuple[dict[str, Any], list[Message]]:
    """A request to the Responses API (/v1/responses): the prompt as the user's turn, the system
    message as `instructions`, and the log-probabilities asked for the only way it returns them
    (`top_logprobs` and `include: ["message.output_text.logprobs"]`; without `include` the list
    comes back empty)."""
    if params.mode != "chat":
        raise UsageError("the Responses API answers turns, not raw text: leave out --raw, or use --api chat")
    if dialect.max_top_logprobs is not None and params.top_k > dialect.max_top_logprobs:
        raise UsageError(f"--top-k must be at most {dialect.max_top_logprobs} on {dialect.label}, got {params.top_k}")
    messages = ([Message("system", request.system)] if request.system else []) + [Message("user", request.prompt)]
    body: dict[str, Any] = {"model": request.model, "input": [{"role": "user", "content": request.prompt}],
                            "temperature": params.temperature, "top_p": params.top_p,
                            "max_output_tokens": params.max_tokens, "top_logprobs": params.top_k,
                            "include": ["message.output_text.logprobs"], "store": False}
    if request.system:
        body["instructions"] = request.system
    if params.seed is not None and not openai:  # OpenAI's Responses API takes no seed; vLLM's does
        body["seed"] = params.seed
    body.update({k: v for k, v in params.options.items() if k not in LOCAL_OPTIONS})
    return body, messages


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
    if params.json_schema is not None:
        if not chat:
            raise UsageError("a server holds its answer to a JSON schema in chat (response_format): leave out --raw")
        body["response_format"] = response_format(params.json_schema, dialect.name)
        source["structured"] = ("the answer was held to a JSON schema by the server (response_format); its figures "
                                "under the schema are " + STRUCTURED_FIGURES.get(dialect.name, "not known for this server"))
    if params.temperature == 0 and dialect.greedy_body:
        body.update({k: v for k, v in dialect.greedy_body.items() if k not in params.options})
        source["greedy"] = (f"sent {', '.join(f'{k}={v}' for k, v in dialect.greedy_body.items())} "
                            f"(the server's default: {dialect.default_penalties})")
    elif dialect.default_penalties != "none":
        source["penalties"] = f"server default: {dialect.default_penalties}"
    body.update({k: v for k, v in params.options.items() if k not in LOCAL_OPTIONS})  # -O settings, checked by SPEC
    # OpenAI wants max_completion_tokens on chat (max_tokens is deprecated and refused by
    # reasoning models); compatible servers mostly know only max_tokens.
    body["max_completion_tokens" if (chat and openai) else "max_tokens"] = params.max_tokens
    return ("/chat/completions" if chat else "/completions"), body, messages, source
