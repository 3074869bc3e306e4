"""The Gemini provider: one generateContent request per run (streamed when the steps are shown
as they arrive), log-probabilities asked for, what comes back checked against the answer's text."""

from __future__ import annotations

import random
import time
from dataclasses import replace
from typing import Any

from tokviz.ground import environment
from tokviz.ground.errors import ProviderError, TokvizError, UsageError, register_url_credentials
from tokviz.providers.base import Progress, Request, StepListener
from tokviz.providers.gemini import answers
from tokviz.providers.gemini.errors import translated
from tokviz.run import Message, Run

MAX_LOGPROBS = 20  # the API's limit on `logprobs` (alternatives per position)
KEY_NAMES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")  # the SDK's own order of preference
RETRY_STATUSES = [408, 429, 500, 502, 503, 504]


class GeminiProvider:
    """Talks to the Gemini API (or any server at --base-url that speaks it) through google-genai."""

    name = "gemini"

    def __init__(self, *, progress: Progress) -> None:
        self.progress = progress
        self._clients: dict[tuple[Any, ...], Any] = {}

    def predict(self, request: Request) -> Run:
        return self._run(request, None)

    def predict_live(self, request: Request, on_step: StepListener) -> Run:
        return self._run(request, on_step)

    def _run(self, request: Request, on_step: StepListener | None) -> Run:
        params = request.params
        if params.temperature > 0 and params.seed is None:
            params = replace(params, seed=random.randrange(2**31))  # sent and recorded, so the run can be asked again
        client = self._client(request)
        config = _config(request, params)
        model = request.model.removeprefix("models/")
        t0 = time.perf_counter()
        try:
            if on_step is None:
                answer = answers.read([client.models.generate_content(model=model, contents=request.prompt, config=config)])
            else:
                stream = client.models.generate_content_stream(model=model, contents=request.prompt, config=config)
                answer = answers.read(stream, on_step)
        except TokvizError:
            raise
        except Exception as err:  # the SDK's APIError, httpx's transport errors, a malformed answer
            raise _failure(err, model) from None
        elapsed = time.perf_counter() - t0
        steps, content, note = answers.checked(answer)
        source = {"figures": "unknown", "api": "generateContent" + (" (streamed)" if on_step else "")}
        if params.json_schema is not None:
            source["structured"] = ("the answer was held to a JSON schema by the Gemini API (responseJsonSchema); what its "
                                    "figures are under the schema is not documented: not known")
        if answer.model_version:
            source["model_version"] = answer.model_version
        if note:
            source["lossy"] = note
        messages = ((Message("system", request.system),) if request.system else ()) + (Message("user", request.prompt),)
        return Run(provider=self.name, model=model, prompt=request.prompt, params=params, steps=tuple(steps),
                   messages=messages, finish_reason=answer.finish, usage=answer.usage,
                   timings={"total_s": elapsed, "tokens_per_s": len(steps) / elapsed if elapsed > 0 else 0.0},
                   content=content, source=source)

    def _client(self, request: Request) -> Any:
        try:
            from google import genai
            from google.genai import types
        except ImportError:
            raise ProviderError("the gemini provider needs Google's SDK (google-genai is not installed)",
                                hint='pip install "tokviz[gemini]"') from None
        environ = environment.current().environ
        key = next((environ[name] for name in KEY_NAMES if environ.get(name)), None)
        if not key:
            raise UsageError("no Gemini API key", hint="set GEMINI_API_KEY (https://aistudio.google.com/apikey)")
        register_url_credentials(request.base_url)  # sent as Basic auth: redacted in every form
        cache_key = (key, request.base_url, request.timeout, request.retries)
        if cache_key not in self._clients:
            options = types.HttpOptions(
                base_url=request.base_url.rstrip("/").removesuffix("/v1beta") + "/" if request.base_url else None,
                api_version="v1beta",  # the Gemini API's version with logprobs (the SDK's own default)
                timeout=int(request.timeout * 1000),
                retry_options=types.HttpRetryOptions(attempts=request.retries + 1, initial_delay=0.5, max_delay=8.0,
                                                     http_status_codes=RETRY_STATUSES))
            self._clients[cache_key] = genai.Client(api_key=key, http_options=options)
        return self._clients[cache_key]


def _config(request: Request, params: Any) -> Any:
    import json

    from google.genai import types

    budget = params.options.get("thinking_budget")
    schema = json.loads(params.json_schema) if params.json_schema is not None else None  # --json-schema: JSON Schema as is
    return types.GenerateContentConfig(
        temperature=params.temperature, top_p=params.top_p, max_output_tokens=params.max_tokens, seed=params.seed,
        candidate_count=1, response_logprobs=True, logprobs=params.top_k or None,
        system_instruction=request.system or None,
        response_mime_type="application/json" if schema is not None else None, response_json_schema=schema,
        thinking_config=types.ThinkingConfig(thinking_budget=budget) if budget is not None else None)


def _failure(err: Exception, model: str) -> TokvizError:
    from google.genai import errors as sdk_errors

    if isinstance(err, sdk_errors.APIError):
        return translated(err, model)
    try:
        import httpx

        if isinstance(err, httpx.HTTPError):
            return translated(err, model)
    except ImportError:
        pass
    return ProviderError(f"the Gemini API's answer could not be read ({type(err).__name__}: "
                         f"{' '.join(str(err).split())[:200]})")
