"""Record and replay: a cassette file of runs, keyed by the request that produced them.

`--record FILE` saves every run a provider returns under its request (model, prompt, system
message, parameters as asked); `--replay FILE` answers from the file with no network, no key and
no model, so a CI job can regenerate graphs for OpenAI prompts offline and byte-identically. What
is recorded is the run itself, not HTTP traffic: it is what every view is made from, it is
provider-neutral, and it holds no headers (so no key) by construction.
"""

from __future__ import annotations

from pathlib import Path

from tokviz.ground.errors import ProviderError, UsageError
from tokviz.providers.base import Capability, Progress, ProviderSpec, Request
from tokviz.providers.cassette import Cassette
from tokviz.run import Run


class ReplayProvider:
    """Answers from a cassette; a request that was never recorded is a clear error."""

    name = "replay"

    def __init__(self, *, progress: Progress, cassette: str | Path | None = None) -> None:
        if cassette is None:
            raise UsageError("the replay provider needs a cassette", hint="use --replay FILE")
        self.cassette = Cassette.load(cassette, must_exist=True)

    def predict(self, request: Request) -> Run:
        run = self.cassette.get(request)
        if run is None:
            short = request.prompt if len(request.prompt) <= 40 else request.prompt[:39] + "…"
            raise ProviderError(
                f"cassette {self.cassette.path} has no recording of prompt {short!r} for model {request.model!r} "
                f"with these parameters",
                hint=f"record it: add --record {self.cassette.path} to a run against the real provider",
            )
        return run


SPEC = ProviderSpec(
    name="replay",
    description="answers from a cassette recorded with --record (chosen by --replay FILE): no network, no key",
    factory=ReplayProvider,
    concurrent=True,
    max_top_k=1_000_000,  # whatever was recorded
    capabilities=frozenset({Capability.CHAT, Capability.RAW, Capability.STRUCTURED}),
    priority=1000,
)
