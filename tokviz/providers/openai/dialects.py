"""What each OpenAI-shaped server really sends, as data: one `Dialect` per server family.

Servers that speak "the OpenAI API" differ exactly where tokviz looks: how a token that ends inside
a UTF-8 character is reported, whether token ids and exact bytes come along, whether the sampled
token is repeated among its alternatives, which penalties are on by default, and which endpoints
return log-probabilities at all. Each fact below is taken from the server's own source (file named
on each dialect; the full table with sources is docs/servers.md). A server's dialect is detected
once per URL from what it exposes (`detect`), or named with `--dialect`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Dialect:
    name: str
    label: str
    source: str  # the file the facts below come from
    chat_logprobs: bool = True  # /v1/chat/completions returns logprobs
    completions_logprobs: bool = True  # /v1/completions returns logprobs
    exact_bytes: bool = True  # `bytes` are the token's own bytes (not the encoding of a decoded text)
    ids: bool = False  # items carry the token `id`
    partial_tokens: str = "exact"  # how a token ending inside a character is reported
    greedy_body: dict[str, Any] = field(default_factory=dict)  # what to send so temperature 0 is greedy
    default_penalties: str = "none"
    # the most alternatives it returns per token; None: the server's own setting decides (vLLM's
    # --max-logprobs, 20 by default) or it has no limit (llama-server answers 300), and it says so
    max_top_logprobs: int | None = 20
    logprobs_are: str = "model log-probabilities before sampling (penalties, temperature, top-k/top-p not applied)"
    # the same in the few words every view shows (Run.figures): "unknown" where the server does not say
    figures: str = "before sampling"
    score: str = "no"  # how it can score a given text (prompt log-probabilities), for people
    score_echo: bool = False  # /v1/completions with echo + logprobs returns the prompt's logprobs
    score_models: tuple[str, ...] = ()  # when set, the only models that can (OpenAI's legacy ones)
    echo_max_tokens: int = 1  # the fewest tokens to ask for beside the echo (OpenAI accepts 0)
    refuses_logprobs: str | None = None  # why a server returns none, when it is known to
    one_at_a_time: str | None = None  # why requests to it must not overlap, when they must not
    silent_truncation: bool = False  # partial characters can vanish from a token's text with no sign
    # the least `logprobs` to ask /v1/completions for: 0 is "only the sampled token's" to OpenAI but
    # "no log-probabilities at all" to compatible servers
    min_completion_logprobs: int = 1
    # alternatives at -9999 are the samplers' mask, not candidates (vLLM --logprobs-mode processed_logprobs)
    fillers: bool = False
    # a character split across tokens comes whole on the token that completes it, with no id to tell
    # (vLLM's _correct_decoded_token, vllm/v1/engine/logprobs.py): the leading pieces come as ""
    whole_on_completion: bool = False
    # what the server names the limit on alternatives, for the one line when -k is over it
    max_logprobs_hint: str = "ask for fewer alternatives with -k"


def official(dialect: Dialect) -> bool:
    """OpenAI's own API (chat wants max_completion_tokens there), not a server that imitates it."""
    return dialect.name == "openai"


def can_score(dialect: Dialect, model: str) -> bool:
    return dialect.score_echo and (not dialect.score_models or model in dialect.score_models)


DIALECTS: dict[str, Dialect] = {d.name: d for d in (
    Dialect("openai", "OpenAI", "OpenAI API reference (chat and legacy completions)",
            completions_logprobs=True, min_completion_logprobs=0, partial_tokens="token text may hold a partial character as bytes:\\xNN; `bytes` exact",
            score="legacy completion models (babbage-002, davinci-002) with echo",
            score_echo=True, score_models=("babbage-002", "davinci-002"), echo_max_tokens=0),
    Dialect("vllm", "vLLM", "vllm/entrypoints/openai/serving_chat.py (_get_top_logprobs, _create_chat_logprobs)",
            max_top_logprobs=None,
            exact_bytes=False,
            partial_tokens="the leading tokens of a split character as '' with no bytes, and the whole character on the "
                           "token that completes it with that token's figure alone (vllm/v1/engine/logprobs.py, "
                           "_correct_decoded_token); 'token_id:N' with --return-tokens-as-token-ids",
            default_penalties="the model's generation_config (may set repetition_penalty) unless --generation-config vllm",
            logprobs_are="raw model log-probabilities by default (--logprobs-mode raw_logprobs), clamped at -9999; "
                         "a server started with --logprobs-mode processed_logprobs reports them after temperature and "
                         "penalties, which its API does not say",
            figures="before sampling (vLLM's default --logprobs-mode)",
            fillers=True, whole_on_completion=True,
            max_logprobs_hint="vLLM returns at most --max-logprobs alternatives (20 unless the server was started "
                              "with more): use -k 20 or less, or restart it with --max-logprobs N",
            score="prompt_logprobs, or echo with logprobs on /v1/completions (vllm/entrypoints/openai/serving_completion.py)",
            score_echo=True, echo_max_tokens=0),
    Dialect("sglang", "SGLang", "python/sglang/srt/entrypoints/openai/serving_chat.py (_process_logprobs_tokens)",
            max_top_logprobs=None,
            exact_bytes=False, partial_tokens="decoded text with U+FFFD, `bytes` = that text encoded (lossy)",
            logprobs_are="log-probabilities after temperature scaling (unless the server sets "
                         "SGLANG_RETURN_ORIGINAL_LOGPROB; python/sglang/srt/layers/sampler.py)",
            figures="after temperature (SGLang's default)",
            score="echo with logprobs on /v1/completions (return_logprob, logprob_start_len natively)", score_echo=True),
    Dialect("llama.cpp", "llama.cpp llama-server", "tools/server/server-task.cpp (completion_token_output::to_json)",
            max_top_logprobs=None,
            ids=True, partial_tokens="a character split across tokens comes as one entry, on the token that completes it "
                                "(the whole character in `token` and `bytes`; that token's id and figure alone); "
                                "otherwise `bytes` and `id` exact",
            logprobs_are="model log-probabilities before sampling (post_sampling_probs=true gives probabilities after it)",
            score="no: llama-server returns no log-probabilities for the prompt (no echo, no prompt logprobs; "
                  "ggml-org/llama.cpp#27174)"),
    Dialect("llama-cpp-python", "llama-cpp-python server", "llama_cpp/llama.py (_create_completion), llama_chat_format.py",
            max_top_logprobs=None,
            exact_bytes=False,
            partial_tokens="decoded with errors='ignore': partial characters become '' (lossy); alternatives keyed by text, so equal texts merge; no bytes, no ids",
            greedy_body={"repeat_penalty": 1.0}, default_penalties="repeat_penalty 1.1 (applied after the logprobs it reports)",
            silent_truncation=True,
            score="echo with logprobs on /v1/completions (the whole vocabulary sorted in Python per token: slow)",
            score_echo=True,
            one_at_a_time="it serves one request at a time and, by default (interrupt_requests, llama_cpp/server/"
                          "settings.py and app.py), ends a running stream when another request arrives"),
    Dialect("ollama", "Ollama", "server/logprob.go (toAPILogprobs), openai/openai.go; logprobs since v0.12.11 (PR #12899)",
            exact_bytes=False, silent_truncation=True,
            partial_tokens="the runner's token text made valid UTF-8, `bytes` = that text's bytes, no ids (lossy)",
            logprobs_are="model log-probabilities before sampling (temperature is not applied to them)"),
    Dialect("lmstudio", "LM Studio", "LM Studio's OpenAI-compatible endpoints", figures="unknown",
            chat_logprobs=False, completions_logprobs=False, refuses_logprobs="LM Studio's OpenAI-compatible API returns no log-probabilities"),
    Dialect("generic", "an OpenAI-compatible server", "the OpenAI API shape", score_echo=True, figures="unknown",
            max_top_logprobs=None,
            logprobs_are="unknown: a server tokviz cannot identify does not say whether its figures are before or "
                         "after sampling (--dialect NAME names it)",
            score="echo with logprobs on /v1/completions, if the server supports it (checked in its answer)",
            exact_bytes=False, partial_tokens="unknown: tokens whose text holds U+FFFD or is empty are marked lossy"),
)}


def root_url(base_url: str) -> str:
    """The server's root: the base URL without a trailing /v1 (where /props, /version live)."""
    trimmed = base_url.rstrip("/")
    return trimmed[: -len("/v1")] if trimmed.endswith("/v1") else trimmed


def is_openai(base_url: str | None) -> bool:
    if base_url is None:
        return True
    try:
        return (urlsplit(base_url).hostname or "").endswith("openai.com")
    except ValueError:  # not a URL at all (checked, with its own message, before any request)
        return False


# owned_by in GET /v1/models, as each server writes it (see docs/servers.md for the files)
_OWNED_BY = {"vllm": "vllm", "sglang": "sglang", "llamacpp": "llama.cpp", "me": "llama-cpp-python",
             "library": "ollama", "ollama": "ollama", "organization_owner": "lmstudio"}

_cache: dict[str, Dialect] = {}
_lock = threading.Lock()


def detect(base_url: str | None, get: Callable[[str], Any]) -> Dialect:
    """The dialect of the server at `base_url`, probed once per URL with `get(absolute_url)`
    (returns parsed JSON or raises). Unknown servers are `generic`: read defensively."""
    if is_openai(base_url):
        return DIALECTS["openai"]
    assert base_url is not None
    with _lock:
        if base_url in _cache:
            return _cache[base_url]
    found = _probe(base_url, get)
    with _lock:
        _cache[base_url] = found
    return found


def _probe(base_url: str, get: Callable[[str], Any]) -> Dialect:
    try:
        models = get(base_url.rstrip("/") + "/models")
        data = models.get("data") if isinstance(models, dict) else None
        owners = {str(m.get("owned_by", "")).lower() for m in data or [] if isinstance(m, dict)}
        for owner in owners:
            if owner in _OWNED_BY:
                return DIALECTS[_OWNED_BY[owner]]
    except Exception:  # a server without /models is still a server: try its own routes
        pass
    root = root_url(base_url)
    for path, name in (("/props", "llama.cpp"), ("/api/version", "ollama"), ("/version", "vllm")):
        try:
            answer = get(root + path)
        except Exception:
            continue
        if isinstance(answer, dict):
            if name == "llama.cpp" and "default_generation_settings" not in answer:
                continue
            return DIALECTS[name]
    return DIALECTS["generic"]


def detected(base_url: str | None) -> Dialect | None:
    """The dialect already detected for this URL, if any (no request is made)."""
    if is_openai(base_url):
        return DIALECTS["openai"]
    with _lock:
        return _cache.get(base_url or "")


OLLAMA_LOGPROBS = (0, 12, 11)  # the first Ollama that returns log-probabilities (ollama/ollama PR #12899)
_versions: dict[str, tuple[int, ...] | None] = {}


def _asked_once(answers: dict[str, Any], base_url: str, ask: Callable[[], Any]) -> Any:
    """What `ask()` gives for this server, asked once per URL (`forget` clears it); a server that
    does not answer, or answers something unreadable, counts as saying nothing (None)."""
    with _lock:
        if base_url in answers:
            return answers[base_url]
    try:
        found = ask()
    except Exception:  # a server that does not say cannot be judged
        found = None
    with _lock:
        answers[base_url] = found
    return found


def ollama_version(base_url: str | None, get: Callable[[str], Any]) -> tuple[int, ...] | None:
    """Ollama's version from /api/version (None when it does not say), asked once per URL."""
    if base_url is None:
        return None

    def ask() -> tuple[int, ...] | None:
        answer = get(root_url(base_url) + "/api/version")
        text = str(answer.get("version", "")) if isinstance(answer, dict) else ""
        numbers = text.lstrip("v").split("-")[0].split(".")
        return tuple(int(n) for n in numbers) if numbers and all(n.isdigit() for n in numbers) else None

    return _asked_once(_versions, base_url, ask)


def too_old(base_url: str | None, dialect: Dialect, get: Callable[[str], Any]) -> str | None:
    """Why this server cannot give log-probabilities at all, when its version says so."""
    if dialect.name != "ollama":
        return None
    version = ollama_version(base_url, get)
    if version is not None and version < OLLAMA_LOGPROBS:
        have, need = ".".join(map(str, version)), ".".join(map(str, OLLAMA_LOGPROBS))
        return f"Ollama {have} returns no log-probabilities (they came in v{need})"
    return None


# End-of-turn markers of models whose own chat format is ChatML: a ChatML template on any other
# model is llama-server's fallback for a model that brought no template (a base model).
_CHATML_EOS = frozenset({"<|im_end|>", "<|endoftext|>", "<|im_start|>", "<|eot_id|>"})
_chat_problems: dict[str, str | None] = {}


NO_TEMPLATE = "the model has no chat template (the server answers chat with 400; vLLM takes one with --chat-template FILE)"


def chat_refused(base_url: str | None, dialect: Dialect, post: Callable[[str, dict[str, Any]], Any],
                 model: str) -> str | None:
    """Why chat on this server fails, asked the one way that works on every server: a one-token
    chat request (vLLM serving a folder with no chat template answers 400, "default chat template
    is no longer allowed", transformers' rule). llama-server is asked through /props instead
    (`chat_problem`): it does not refuse, it falls back to ChatML. Asked once per URL."""
    if base_url is None or dialect.name in ("llama.cpp", "openai"):
        return None

    def ask() -> str | None:
        try:
            post(base_url.rstrip("/") + "/chat/completions",
                 {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1})
        except Exception as err:  # a 400 that names the template is the answer; anything else is not known
            return NO_TEMPLATE if "chat template" in str(getattr(err, "body", None) or err).lower() else None
        return None

    return _asked_once(_chat_refusals, base_url, ask)


_chat_refusals: dict[str, str | None] = {}
_processed: dict[str, bool | None] = {}


def reports_after_temperature(base_url: str | None, dialect: Dialect, post: Callable[[str, dict[str, Any]], Any],
                              model: str) -> bool | None:
    """Whether a vLLM reports its figures after temperature (--logprobs-mode processed_logprobs),
    which nothing in an answer says: one token of the same prompt asked at temperature 1 and 2 (a
    fixed seed) — raw figures are the same both times, processed ones move. Asked once per URL;
    None when it cannot tell."""
    if base_url is None or not dialect.fillers:
        return None

    def figure(temperature: float) -> float | None:
        # the first choice's figure, not the sampled token's (at T=2 another token may be drawn)
        answer = post(base_url.rstrip("/") + "/completions",
                      {"model": model, "prompt": "The", "max_tokens": 1, "logprobs": 1, "temperature": temperature,
                       "seed": 0})
        tops = answer["choices"][0]["logprobs"]["top_logprobs"]
        values = [v for v in (tops[0] or {}).values() if isinstance(v, (int, float))] if tops else []
        return max(values) if values else None

    def ask() -> bool | None:
        one, two = figure(1.0), figure(2.0)
        return None if one is None or two is None else abs(one - two) > 1e-3

    return _asked_once(_processed, base_url, ask)


def chat_problem(base_url: str | None, dialect: Dialect, get: Callable[[str], Any]) -> str | None:
    """Why chat on this server will not work, when it can tell (None otherwise): llama-server
    serving a model with no chat template of its own falls back to ChatML (tools/server: the
    "chatml" default), whose markers the model never saw, and a base model answers "<|im_end|>" or
    nothing. Asked once per URL from /props (the template, and the model's end-of-text token)."""
    if base_url is None or dialect.name != "llama.cpp":
        return None

    def ask() -> str | None:
        props = get(root_url(base_url) + "/props")
        template, eos = (props.get("chat_template") or "", props.get("eos_token") or "") if isinstance(props, dict) else ("", "")
        if "<|im_start|>" in str(template) and str(eos) not in _CHATML_EOS:
            return (f"the model has no chat template of its own (llama-server falls back to ChatML, whose markers a "
                    f"model ending its text with {eos!s} does not know): its chat answers are not the model's")
        return None

    return _asked_once(_chat_problems, base_url, ask)


def forget(base_url: str | None = None) -> None:
    """Forget what was detected for one URL (or every URL): another server may listen there now."""
    with _lock:
        if base_url is None:
            _cache.clear()
            _chat_problems.clear()
            _chat_refusals.clear()
            _processed.clear()
            _versions.clear()
        else:
            _cache.pop(base_url, None)
            _chat_problems.pop(base_url, None)
            _chat_refusals.pop(base_url, None)
            _processed.pop(base_url, None)
            _versions.pop(base_url, None)
