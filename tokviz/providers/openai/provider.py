"""OpenAI and OpenAI-compatible servers (vLLM, llama.cpp's server, Ollama, LM Studio) through the
official `openai` SDK, streamed, with log-probabilities: Chat Completions (`--chat`, the default)
or Completions (`--raw`), read through the server's dialect (`dialects.py`, `logprobs.py`).

What the API gives per generated token: its text, logprob, exact `bytes` (a list of ints, or null
on some compatible servers) and the top alternatives with the same fields. The chosen token's own
logprob is read from the item itself, never looked up among the alternatives: when sampling picks
a token outside the top k it is not there. Bytes are kept exactly, so a character split across
tokens (emoji, Korean) joins back whole.

Every failure becomes one `ProviderError` line that names the server and the fix; the API key is
redacted from every message (see `tokviz.ground.errors.redact`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tokviz.ground.errors import ProviderError, UsageError
from tokviz.providers.base import SERVER_MODEL, Progress, Request, ScoreSpec, StepListener, TreeSpec
from tokviz.providers.openai import batchapi, connection, dialects, logprobs, responses
from tokviz.providers.openai.bodies import request_body, responses_body
from tokviz.providers.openai.connection import OPENAI_URL, Connection, where
from tokviz.providers.openai.cursor import ServerCursor
from tokviz.providers.openai.errors import LOGPROB_MODELS, translate_error
from tokviz.providers.openai.stream import read_answer
from tokviz.providers.openai.tokenizer import tokenize
from tokviz.run import Params, Run, RunKind, Step, Token, Tokenization, same_token
from tokviz.run import tokens as tok

SCORERS = "the local model; vLLM, SGLang and llama-cpp-python servers (echo); OpenAI's babbage-002 and davinci-002"


class OpenAIProvider:
    """OpenAI and OpenAI-compatible servers: chat or raw completions, with logprobs, per dialect."""

    name = "openai"

    def __init__(self, *, progress: Progress) -> None:
        self.progress = progress
        self.connection = Connection()

    def tokenize(self, text: str, model: str) -> Tokenization:
        return tokenize(text, model)

    def tree_cursor(self, request: Request, spec: TreeSpec, forced: tuple[Token, ...] = ()) -> ServerCursor:
        if dialects.is_openai(connection.base_url(request)):
            raise UsageError(
                "OpenAI's chat API cannot continue from a forced prefix, so it cannot grow a tree or explore",
                hint="use the local model, or --base-url with a server that has the completions endpoint (vLLM, llama.cpp)",
            )
        if request.params.mode == "chat":
            raise UsageError("a tree on a server continues raw text through /v1/completions; it cannot use the chat format",
                             hint="leave out --chat, or grow the tree on the local model, which applies the chat format itself")
        request = self.connection.model(request)
        return ServerCursor(self.connection, request, spec, forced)

    def explore_cursor(self, request: Request, k: int, depth: int) -> ServerCursor:
        return self.tree_cursor(request, TreeSpec(depth=depth, branch=k))

    def score(self, request: Request, text: str, progress: Any = None, spec: ScoreSpec | None = None) -> Run:
        """The prompt log-probabilities of context + text, through /v1/completions with `echo`.

        Only servers whose dialect returns them can (vLLM, SGLang, llama-cpp-python; OpenAI only
        for its legacy completion models); the rest are refused in one line naming who can. The
        server tokenizes context and text together: a token that straddles the boundary belongs
        to the context, and the run says so when the scored tokens do not rebuild the text.
        """
        spec = spec or ScoreSpec()
        if spec.exact or spec.window or spec.stride:
            raise UsageError("--exact, --window and --stride are for the local model; a server scores the text as it reads it")
        request = self.connection.model(request)
        refused = self._cannot_score(request)
        if refused is not None:
            raise refused
        client, base_url = self.connection.client(request)
        dialect = self.connection.dialect(client, base_url, request)
        t0 = time.perf_counter()
        whole = request.prompt + text
        body = {"model": request.model, "prompt": whole, "max_tokens": dialect.echo_max_tokens, "echo": True,
                "logprobs": max(request.params.top_k, dialect.min_completion_logprobs), "temperature": 0.0,
                **dialect.greedy_body}
        try:
            with self.connection.turn(base_url, dialect):
                answer = client.post("/completions", body=body, cast_to=object)
        except Exception as err:  # every SDK and transport failure becomes one line
            raise translate_error(err, request, base_url) from None
        choice = ((answer.get("choices") if isinstance(answer, dict) else None) or [{}])[0]
        try:
            echoed = logprobs.echoed(choice.get("logprobs") if isinstance(choice, dict) else None, whole)
        except ValueError as err:
            raise ProviderError(f"{where(base_url)} sent log-probabilities tokviz cannot read: {err}") from None
        start, stop = len(request.prompt), len(whole)
        if not echoed or echoed[0][0] > 0:
            raise ProviderError(f"{where(base_url)} ({dialect.label}) did not echo the text with its log-probabilities",
                                hint=f"it may not support echo on /v1/completions; providers that can score: {SCORERS}")
        scored = [(at, item) for at, item in echoed if start <= at < stop]
        steps, unscored = [], 0
        try:
            for _, item in scored:
                if item is None:
                    unscored += 1
                    continue
                steps.append(logprobs.step(item, dialect, request.params.top_k))
        except ValueError as err:
            raise ProviderError(f"{where(base_url)} sent log-probabilities tokviz cannot read: {err}") from None
        steps, loss = logprobs.reconcile(steps, "", dialect)  # split characters marked as in a generation
        if not steps:
            raise ProviderError(f"{where(base_url)} returned no log-probabilities for the text",
                                hint="the first token of a text has none on a server (nothing precedes it): give --context")
        if progress is not None:
            progress(len(steps), len(steps))
        source = {"dialect": dialect.name, "scoring": "teacher-forced by the server: echo with logprobs on /v1/completions",
                  "figures": dialect.figures, **_server(base_url)}
        notes = []
        if unscored:
            notes.append("the text's first token has no log-probability on a server (nothing precedes it; give --context)")
        if "".join(t.text for t in (st.chosen for st in steps)) != text and not unscored:
            notes.append("the server's tokens do not rebuild the text exactly (a token straddles the context's end, "
                         "or partial characters were dropped)")
        if loss is not None:
            notes.append(loss.note)
        elif any(st.chosen.lossy for st in steps):
            notes.append(f"{sum(st.chosen.lossy for st in steps)} token(s) reported without their exact bytes")
        if notes:
            source["lossy"] = "; ".join(notes)
            self.progress(f"tokviz: warning: {'; '.join(notes)}")
        elapsed = time.perf_counter() - t0
        before = sum(1 for at, _ in echoed if at < start)
        return Run(provider=self.name, model=request.model, prompt=request.prompt,
                   params=replace(request.params, max_tokens=len(steps), temperature=0.0, mode="raw"),  # /v1/completions
                   steps=tuple(steps), finish_reason=None, kind=RunKind.SCORE,
                   usage={"prompt_tokens": before, "scored_tokens": len(steps)},
                   timings={"total_s": elapsed, "tokens_per_s": len(steps) / elapsed if elapsed > 0 else 0.0},
                   source=source)

    def _cannot_score(self, request: Request) -> UsageError | None:
        """Why the server cannot score a given text (no prompt log-probabilities), or None if it can."""
        base_url = connection.base_url(request)
        if dialects.is_openai(base_url) and not dialects.can_score(dialects.DIALECTS["openai"], request.model):
            return UsageError(f"OpenAI's {request.model} cannot score a given text (its API returns no prompt log-probabilities)",
                              hint=f"providers that can: {SCORERS}")
        client, base_url = self.connection.client(request)
        dialect = self.connection.dialect(client, base_url, request)
        if not dialects.can_score(dialect, request.model):
            why = dialect.score.removeprefix("no").lstrip(": ")  # "no: llama-server returns …" → the reason
            return UsageError(f"{where(base_url)} ({dialect.label}) cannot score a given text" + (f": {why}" if why else ""),
                              hint=f"providers that can: {SCORERS}")
        return None

    def weigh(self, request: Request, choices: Sequence[str]) -> list[Run]:
        """Each choice scored exactly by a server that echoes prompt log-probabilities (raw text: one
        request per choice, the context first; a server's prefix cache reads it once); on any other
        server, or in chat mode, one greedy token with the top 20 and each choice exact or bounded
        from it (`providers/choices.py`)."""
        from tokviz.providers.choices import EXACT, choice_run, from_step, split

        request = self.connection.model(request)
        if request.params.mode != "chat" and self._cannot_score(request) is None:
            context, moved = split(request)
            runs = []
            for choice in choices:
                scored = self.score(replace(request, prompt=context), moved + choice)
                runs.append(choice_run(request, choice, scored.steps, provider=self.name, model=scored.model,
                                       figure=EXACT, how="teacher-forced by the server (echo with logprobs on /v1/completions)",
                                       moved=moved, source=scored.source, usage=scored.usage))
            return runs
        params = request.params
        one = self.predict(replace(request, params=replace(params, max_tokens=1, temperature=0.0, top_k=max(params.top_k, 20))))
        if not one.steps:
            raise ProviderError("the server generated no token after the prompt, so no choice can be bounded")
        return from_step(request, one.steps[0], list(choices), provider=self.name, model=one.model, source=dict(one.source))

    def describe(self, request: Request) -> list[tuple[bool | None, str]]:
        """What the server at request.base_url supports, as (ok?, line) pairs for `tokviz server`."""
        client, base_url = self.connection.client(request)
        lines: list[tuple[bool | None, str]] = []
        try:
            listed = self.connection.probe(client, request)((base_url or OPENAI_URL).rstrip("/") + "/models")
            names = [tok.visible(str(m.get("id")), visible_spaces=False)  # a server's text is data, never escapes
                     for m in (listed.get("data") or []) if isinstance(m, dict)]  # type: ignore[union-attr]
            lines.append((True, f"reachable: /models lists {len(names)} model(s)" + (f": {', '.join(names[:5])}" if names else "")))
        except Exception as err:
            import openai

            if isinstance(err, openai.APIConnectionError):  # nothing answers: there is nothing to describe
                raise translate_error(err, request, base_url) from None
            lines.append((False, translate_error(err, request, base_url).line()))  # it answers, without /models
        d = self.connection.dialect(client, base_url, request)
        lines.append((None, f"dialect: {d.label} ({d.name}; facts from {d.source}; --dialect NAME overrides)"))
        if d.name == "llama.cpp" and base_url and not base_url.rstrip("/").endswith("/v1"):
            # its root answers chat in the OpenAI shape but /completions in its own: say it before a
            # --raw run fails
            lines.append((False, f"this URL is llama-server's root, where /completions is its own API: use "
                                 f"{base_url.rstrip('/')}/v1"))
        problem = dialects.chat_problem(base_url, d, self.connection.probe(client, request))
        if problem is None and d.chat_logprobs:
            try:
                model = self.connection.model(request).model
            except UsageError:
                model = None  # several models, or none listed: chat is not asked
            if model is not None:
                problem = dialects.chat_refused(base_url, d, self.connection.probe_post(client, request), model)
        lines.append((d.chat_logprobs and not problem, "log-probabilities on chat (--chat, the default on servers)"
                      + (f": but {problem}; use --raw" if problem else "")))
        lines.append((d.completions_logprobs, "log-probabilities on /v1/completions (--raw, tree)"))
        lines.append((d.ids and d.exact_bytes, "token ids and exact bytes" if d.ids and d.exact_bytes else
                      "no token ids or exact bytes: partial characters marked ≈"))
        lines.append((None, f"partial characters: {d.partial_tokens}"))
        lines.append((None, f"logprobs are {d.logprobs_are}"))
        lines.append((None, f"default penalties: {d.default_penalties}" +
                      (f" (tokviz sends {d.greedy_body} at temperature 0)" if d.greedy_body else "")))
        lines.append((None, f"scoring a given text: {d.score}"))
        if d.refuses_logprobs:
            lines.append((False, d.refuses_logprobs))
        if d.name == "ollama":
            version = dialects.ollama_version(base_url, self.connection.probe(client, request))
            old = dialects.too_old(base_url, d, self.connection.probe(client, request))
            lines.append((not old if version else None, old or (f"Ollama {'.'.join(map(str, version))}" if version else
                                                               "Ollama's version unknown (no /api/version)")
                          + ("" if old else ": log-probabilities since v0.12.11")))
        return lines

    def predict(self, request: Request, on_step: StepListener | None = None) -> Run:
        if dialects.is_openai(connection.base_url(request)):  # its limits are known before a key is needed
            request_body(request, request.params, dialects.DIALECTS["openai"], openai=True)
        request = self.connection.model(request)
        params = request.params
        if params.temperature > 0 and params.seed is None:
            params = replace(params, seed=random.randrange(2**31))  # recorded, so replayable
        client, base_url = self.connection.client(request)
        dialect = self.connection.dialect(client, base_url, request)
        chat = params.mode == "chat"
        old = dialects.too_old(base_url, dialect, self.connection.probe(client, request))
        if old:
            raise ProviderError(f"{where(base_url)}: {old}", hint="upgrade the server")
        if dialect.refuses_logprobs or not (dialect.chat_logprobs if chat else dialect.completions_logprobs):
            endpoint = "chat" if chat else "completions"
            raise ProviderError(f"{where(base_url)} ({dialect.label}) returns no log-probabilities on its {endpoint} endpoint",
                                hint=dialect.refuses_logprobs or ("try --chat" if not chat else "try --raw"))
        if params.options.get("api") == "responses":
            return self._respond(request, params, client, base_url, dialect, on_step)
        path, body, messages, source = request_body(request, params, dialect, openai=dialects.is_openai(base_url))
        source.update(_server(base_url))
        problem = dialects.chat_problem(base_url, dialect, self.connection.probe(client, request)) if chat else None
        if problem:
            source["chat"] = problem
            self.progress(f"tokviz: warning: {where(base_url)}: {problem}; use --raw (/v1/completions) to continue "
                          "the prompt as the model reads text")
        body.update({"stream": True, "stream_options": {"include_usage": True}})
        with self.connection.turn(base_url, dialect):  # requests that would interrupt each other wait their turn
            t0 = time.perf_counter()
            answer = read_answer(client, path, body, request, base_url, dialect, on_step)
            total = time.perf_counter() - t0
        steps = answer.steps
        if answer.text_without_logprobs and not steps:
            hints = {"openai": "use a model that returns them, such as " + LOGPROB_MODELS,
                     "generic": "the server (or this route) may not support logprobs"}
            raise ProviderError(f"{where(base_url)} returned text but no log-probabilities for model {request.model!r}",
                                hint=hints.get(dialect.name, f"{dialect.label} did not send them"))
        ttft = answer.t_first if answer.t_first is not None else total
        decode = max(total - ttft, 1e-9)
        timings = {"ttft_s": ttft, "total_s": total,
                   "tokens_per_s": (len(steps) - 1) / decode if len(steps) > 1 else 0.0}
        usage = dict(answer.usage or {})
        usage.setdefault("completion_tokens", len(steps))
        if answer.post_sampling:  # asked for with -O post_sampling_probs=true: said, not assumed
            source["figures"] = "after sampling"
            source["logprobs"] = "probabilities after the server's samplers (llama-server post_sampling_probs)"
        processed = _processed_note(answer.fillers, dialect, params, lambda: dialects.reports_after_temperature(
            base_url, dialect, self.connection.probe_post(client, request), request.model))
        if processed:
            source["figures"], source["logprobs"] = "after sampling", processed
            self.progress(f"tokviz: warning: {where(base_url)} ({dialect.label}) reports log-probabilities after its "
                          "samplers (--logprobs-mode processed_logprobs): shown as 'after sampling'")
        elif _all_certain(steps):
            raise ProviderError(f"{where(base_url)} ({dialect.label}) gave every chosen token a log-probability of "
                                "exactly 0 while its alternatives have their own: not the model's figures",
                                hint="a server decoding with a draft model (speculative decoding) reports 0.0 for "
                                     "every token (ggml-org/llama.cpp#27972); run it without the draft model")
        steps = _without_end_token(steps, "".join(answer.text), answer.finish, source)
        steps, loss = logprobs.reconcile(steps, "".join(answer.text), dialect, answer.invalid)
        content = loss.content if loss else None
        if loss:
            source["lossy"] = loss.note
            self.progress(f"tokviz: warning: {where(base_url)} ({dialect.label}) {loss.warning}")
        return Run(provider=self.name, model=request.model, prompt=request.prompt, params=params,
                   steps=tuple(steps), messages=tuple(messages), finish_reason=answer.finish, usage=usage,
                   timings=timings, content=content, source=source)

    def _respond(self, request: Request, params: Params, client: Any, base_url: str | None, dialect: dialects.Dialect,
                 on_step: StepListener | None) -> Run:
        """One answer through the Responses API (`--api responses`), not streamed: its tokens come
        with their bytes only then (see `responses`); each step is handed on once the answer is in."""
        body, messages = responses_body(request, params, dialect, openai=dialects.is_openai(base_url))
        source = {"dialect": dialect.name, "api": "responses", "logprobs": dialect.logprobs_are,
                  "figures": dialect.figures, **_server(base_url)}
        t0 = time.perf_counter()
        try:
            with self.connection.turn(base_url, dialect):
                answer = client.post("/responses", body=body, cast_to=object)
        except Exception as err:  # every SDK and transport failure becomes one line
            raise translate_error(err, request, base_url) from None
        total = time.perf_counter() - t0
        try:
            got = responses.read(answer, dialect, params.top_k, where(base_url))
        except ValueError as err:
            raise ProviderError(f"{where(base_url)} sent log-probabilities tokviz cannot read: {err}") from None
        for step in got.steps:
            if on_step is not None:
                on_step(step)
        steps, loss = logprobs.reconcile(got.steps, got.text, dialect)
        if loss:
            source["lossy"] = loss.note
            self.progress(f"tokviz: warning: {where(base_url)} ({dialect.label}) {loss.warning}")
        return Run(provider=self.name, model=request.model, prompt=request.prompt, params=params, steps=tuple(steps),
                   messages=tuple(messages), finish_reason=got.finish, usage=got.usage,
                   timings={"total_s": total, "tokens_per_s": len(steps) / total if total > 0 else 0.0},
                   content=loss.content if loss else None, source=source)

    def predict_live(self, request: Request, on_step: StepListener) -> Run:
        return self.predict(request, on_step)

    # --- batch files (BatchFiles) ------------------------------------------------------------------

    def batch_request(self, request: Request, dialect: str | None) -> tuple[str, dict[str, Any]]:
        """The URL path and body of one request line of a Batch API / `vllm run-batch` file."""
        if request.model == SERVER_MODEL:
            raise UsageError("request files name their model: give --model")
        named = dialects.DIALECTS[dialect or "openai"]
        url, body, _, _ = request_body(request, request.params, named, openai=dialects.official(named))
        return url, body

    def batch_answer(self, answer: Any, request: Request, dialect: str | None, origin: str) -> Run:
        return batchapi.run_from_answer(answer, request, dialects.DIALECTS[dialect or "openai"], origin=origin)

    def submit_batches(self, request: Request, inputs: list[tuple[Path, str]], *, known: list[dict[str, str]] | None,
                       remember: Callable[[list[dict[str, str]]], None], progress: Callable[[str], None],
                       poll_s: float) -> list[bytes]:
        return batchapi.submit(self.connection, request, inputs, known=known, remember=remember, progress=progress,
                               poll_s=poll_s)


def _without_end_token(steps: list[Step], streamed: str, finish: str | None, source: dict[str, str]) -> list[Step]:
    """The steps without a last one that is the end-of-sequence token itself: vLLM lists `<eos>` as a
    generated token when the model stops (its text is not in the answer the server streams). The
    local model does not record the token it stops on; neither does a server's run."""
    import re

    if finish != "stop" or not steps:
        return steps
    last = steps[-1].chosen.text
    if not re.fullmatch(r"<[^<>\s]{1,40}>", last) or streamed.endswith(last):
        return steps
    source["end"] = f"the end-of-sequence token {last} the server listed as the last token is left out, as the answer leaves it"
    return steps[:-1]


def _processed_note(fillers: int, dialect: dialects.Dialect, params: Params, moves: Callable[[], bool | None]) -> str | None:
    """What a vLLM's figures are when it reports them after its samplers (--logprobs-mode
    processed_logprobs), which no answer states: seen by the -9999 fillers of a top-p/top-k mask,
    or, at a temperature other than 0 and 1, by figures that move with temperature (`moves`, a
    probe asked once per server). None for a server that reports the model's own figures."""
    if not dialect.fillers:
        return None
    if fillers:
        return (f"{dialect.label} reports figures after its samplers (--logprobs-mode processed_logprobs): "
                f"{tok.count(fillers, 'masked alternative')} at -9999 left out")
    if params.temperature not in (0.0, 1.0) and moves():
        return f"{dialect.label} reports figures after temperature (--logprobs-mode processed_logprobs: they move with it)"
    return None


def _all_certain(steps: list[Step]) -> bool:
    """Every chosen token at probability exactly 1 while an alternative holds real probability:
    figures no model gives (the chosen token and its alternatives would sum past 1)."""
    return len(steps) >= 2 and all(st.chosen.logprob == 0.0 for st in steps) and any(
        a.logprob > -9.0 and not same_token(a, st.chosen) for st in steps for a in st.alternatives)


def _server(base_url: str | None) -> dict[str, str]:
    """The server a run came from, without credentials (`tokviz check` asks it again): recorded for
    servers named by URL; OpenAI's own API is implied."""
    return {"server": where(base_url)} if base_url else {}
