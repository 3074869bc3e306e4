"""The generation options, declared once: what every generating command and the notebook API take.

Each field carries its command-line flags and help in its metadata; `tokviz.commands.common`
turns the fields into Typer options, and `tokviz.pipeline.plan` turns a `Generation` into the
provider's `Request`. A default lives here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


def _cli(*flags: str, help: str, metavar: str | None = None) -> dict[str, Any]:
    return {"flags": flags, "help": help, "metavar": metavar}


@dataclass(frozen=True)
class Generation:
    """How to generate: which model where, and the sampling settings."""

    model: str | None = field(default=None, metadata=_cli(
        "--model", "-m", metavar="MODEL",
        help="Model name or path to a .gguf file. Default: $TOKVIZ_MODEL or the embedded gemma-3-270m."))
    provider: str | None = field(default=None, metadata=_cli(
        "--provider", "-p", metavar="NAME", help="Provider to use (`tokviz providers` lists them); inferred from the model when omitted."))
    top_k: int = field(default=5, metadata=_cli(
        "--top-k", "-k", help="Alternatives to record at each step (up to the provider's maximum: 100 for the embedded model, 20 for OpenAI and Ollama, the server's own setting for the others)."))
    max_tokens: int = field(default=20, metadata=_cli("--max-tokens", "-n", help="Most tokens to generate."))
    temperature: float = field(default=0.0, metadata=_cli("--temperature", "-t", help="0 is greedy (deterministic); above 0 samples."))
    top_p: float = field(default=1.0, metadata=_cli(
        "--top-p", help="Nucleus sampling: sample only from the smallest set of tokens reaching this probability."))
    seed: int | None = field(default=None, metadata=_cli(
        "--seed", metavar="N", help="Seed for sampling; recorded in the run so it can be replayed."))
    chat: bool = field(default=False, metadata=_cli(
        "--chat", help="Wrap the prompt in the model's chat turn format (the default for servers)."))
    raw: bool = field(default=False, metadata=_cli(
        "--raw", help="Continue the prompt as raw text (the default for the embedded model; on a server, its /v1/completions)."))
    system: str | None = field(default=None, metadata=_cli("--system", metavar="TEXT", help="A system message (implies --chat)."))
    base_url: str | None = field(default=None, metadata=_cli(
        "--base-url", metavar="URL",
        help="An OpenAI-compatible server (vLLM, llama.cpp, Ollama, LM Studio), e.g. http://127.0.0.1:8000/v1. Default: $OPENAI_BASE_URL."))
    dialect: str | None = field(default=None, metadata=_cli(
        "--dialect", metavar="NAME",
        help="How the server speaks (vllm, sglang, llama.cpp, llama-cpp-python, ollama, lmstudio, openai, generic), "
             "instead of detecting it; `tokviz server URL` shows what was detected."))
    api: str | None = field(default=None, metadata=_cli(
        "--api", metavar="NAME",
        help="Which OpenAI API to ask a server through: chat (Chat Completions, the default) or responses "
             "(the Responses API, /v1/responses)."))
    timeout: float = field(default=60.0, metadata=_cli("--timeout", help="Seconds to wait for a server's response."))
    retries: int = field(default=2, metadata=_cli(
        "--retries", help="Retries after a rate limit (429, honouring Retry-After), a server error or a timeout."))
    options: tuple[str, ...] = field(default=(), metadata=_cli(
        "--option", "-O", metavar="KEY=VALUE",
        help="A provider-specific setting (`tokviz providers` lists them); recorded in the run. Repeatable."))
    record: Path | None = field(default=None, metadata=_cli(
        "--record", metavar="FILE", help="Save the run into this cassette file, keyed by the request, for --replay."))
    replay: Path | None = field(default=None, metadata=_cli(
        "--replay", metavar="FILE", help="Answer from this cassette file instead of a provider: no network, no key."))

    def mode(self, default: str) -> str:
        """'chat' or 'raw': as asked, else the provider's default."""
        if self.raw and (self.chat or self.system):
            from tokviz.ground.errors import UsageError

            raise UsageError("--raw excludes --chat and --system")
        return "chat" if (self.chat or self.system) else "raw" if self.raw else default


FIELDS = tuple(f.name for f in fields(Generation))
DEFAULTS = Generation()
