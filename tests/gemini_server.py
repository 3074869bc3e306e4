"""A Gemini API on 127.0.0.1 for the gemini provider's tests: no real Gemini server can run here.

Every answer is built from the SDK's own response types (google.genai.types.GenerateContentResponse,
Candidate, LogprobsResult, LogprobsResultCandidate — google/genai/types.py) and written with their
JSON aliases, as the API spells them; errors have the API's documented shape
({"error": {"code", "message", "status"}}, https://ai.google.dev/gemini-api/docs/troubleshooting).
The model named in the URL picks the behaviour (`BEHAVIOURS`); streaming answers are server-sent
events of one token each (`:streamGenerateContent?alt=sse`).
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.servers import LocalHTTP, Received

# (token text, logprob) per position; alternatives are the token and two others below it.
ANSWERS: dict[str, list[tuple[str, float]]] = {
    "gemini-2.0-flash": [("Paris", -0.05), (" is", -0.3), (" lovely", -1.2), (".", -0.1)],
    # a character split across two tokens, each decoded on its own: U+FFFD twice, not the emoji
    "gemini-split": [("Hi", -0.2), (" ", -0.5), ("\ufffd", -0.9), ("\ufffd", -0.01)],
    # the same character as byte-fallback pieces: exact bytes
    "gemini-bytes": [("Hi", -0.2), (" ", -0.5), ("<0xF0>", -0.9), ("<0x9F>", -0.01), ("<0x99>", -0.01), ("<0x82>", -0.01)],
}
TEXTS = {"gemini-split": "Hi 🙂", "gemini-bytes": "Hi 🙂"}
ERRORS: dict[str, tuple[int, str, str]] = {
    "gemini-2.5-pro": (400, "INVALID_ARGUMENT", "Logprobs is not enabled for models/gemini-2.5-pro"),
    "gemini-badkey": (400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."),
    "gemini-e400": (400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
    "gemini-e403": (403, "PERMISSION_DENIED", "Your API key doesn't have the required permissions."),
    "gemini-e404": (404, "NOT_FOUND", "models/gemini-e404 is not found for API version v1beta"),
    "gemini-e429": (429, "RESOURCE_EXHAUSTED", "You exceeded your current quota."),
    "gemini-e500": (500, "INTERNAL", "An internal error has occurred."),
    "gemini-e503": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
}


def response(model: str, positions: list[tuple[str, float]], *, k: int | None, text: str | None = None,
             finish: str | None = "STOP", logprobs: bool = True, usage: bool = True, first: int = 0) -> dict[str, Any]:
    """One GenerateContentResponse, as the API writes it."""
    from google.genai import types

    def candidate(token: str, logprob: float, n: int) -> types.LogprobsResultCandidate:
        return types.LogprobsResultCandidate(token=token, token_id=1000 + n, log_probability=logprob)

    chosen = [candidate(t, lp, i) for i, (t, lp) in enumerate(positions, first)]
    tops = [types.LogprobsResultTopCandidates(candidates=[candidate(t, lp, i), candidate("the", lp - 1.5, 900),
                                                          candidate("a", lp - 2.5, 901)][:k])
            for i, (t, lp) in enumerate(positions, first)] if k else None
    result = types.LogprobsResult(chosen_candidates=chosen, top_candidates=tops,
                                  log_probability_sum=sum(lp for _, lp in positions)) if logprobs else None
    said = text if text is not None else "".join(t for t, _ in positions)
    body = types.GenerateContentResponse(
        candidates=[types.Candidate(content=types.Content(role="model", parts=[types.Part(text=said)] if said else []),
                                    finish_reason=types.FinishReason(finish) if finish else None,
                                    logprobs_result=result, index=0)],
        usage_metadata=types.GenerateContentResponseUsageMetadata(prompt_token_count=5,
                                                                  candidates_token_count=len(positions),
                                                                  total_token_count=5 + len(positions)) if usage else None,
        model_version=model)
    return body.model_dump(mode="json", by_alias=True, exclude_none=True)


class GeminiServer(LocalHTTP):
    """Answers generateContent and streamGenerateContent for the models above; `flaky[model] = n`
    answers 503 n times before answering as gemini-2.0-flash does."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.flaky: dict[str, int] = {}
        outer = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def send(self, status: int, data: bytes, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                outer.received.append(Received(self.path, dict(self.headers), body))
                path = self.path.split("?")[0]
                model, _, method = path.rsplit("/", 1)[-1].partition(":")
                k = body.get("generationConfig", {}).get("logprobs")
                if outer.flaky.get(model, 0) > 0:
                    outer.flaky[model] -= 1
                    error = (503, "UNAVAILABLE", "The model is overloaded.")
                else:
                    error = ERRORS.get(model)
                if error is not None:
                    code, status, message = error
                    self.send(code, json.dumps({"error": {"code": code, "message": message, "status": status}}).encode())
                    return
                if model == "gemini-nologprobs":
                    answers = [response(model, ANSWERS["gemini-2.0-flash"], k=k, logprobs=False)]
                elif model == "gemini-empty":
                    answers = [response(model, [], k=k, finish="SAFETY")]
                else:
                    positions = ANSWERS.get(model, ANSWERS["gemini-2.0-flash"])
                    text = TEXTS.get(model)
                    if method == "streamGenerateContent":  # one chunk per token; the last says why it ended
                        last = len(positions) - 1
                        answers = [response(model, [p], k=k, text=text if text and n == last else None,
                                            finish="STOP" if n == last else None, usage=n == last, first=n)
                                   for n, p in enumerate(positions)]
                        if text:  # the text goes with the chunks that spell it: all at the end here
                            for a in answers[:-1]:
                                a["candidates"][0].pop("content", None)
                    else:
                        answers = [response(model, positions, k=k, text=text)]
                if method == "streamGenerateContent":
                    self.send(200, b"".join(b"data: " + json.dumps(a).encode() + b"\r\n\r\n" for a in answers),
                              "text/event-stream")
                else:
                    self.send(200, json.dumps(answers[0]).encode())

        self._serve(_H)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"
