"""A provider made for tests: deterministic, instant, and registered in-process.

It lets the CLI's own behaviour (options, outputs, errors, views) be tested in this process in
milliseconds; what only a real model or server shows is tested against the real ones. Its answer
is a fixed function of the prompt, so a test can state the expected tokens.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from tokviz.providers import registry
from tokviz.providers.base import Capability, Continuation, OptionSpec, ProviderSpec, Request, TreeSpec
from tokviz.run import Message, Run, Step, Token, Tokenization

WORDS = [" alpha", " beta", " gamma", " delta", " epsilon", " zeta", " eta", " theta"]


def distribution(context: str, k: int) -> list[Token]:
    """The k most likely next words after `context`, best first, with logprobs that sum below 0."""
    digest = hashlib.sha256(context.encode("utf-8")).digest()
    order = sorted(range(len(WORDS)), key=lambda i: (digest[i], i))
    weights = [2.0 ** -(n + 1) for n in range(len(WORDS))]  # 1/2, 1/4, … (sums to < 1)
    return [Token(text=WORDS[i], raw=WORDS[i].encode(), logprob=math.log(weights[n]), id=i) for n, i in enumerate(order[:k])]


class FakeProvider:
    name = "fake"

    def __init__(self, *, progress: Any) -> None:
        self.progress = progress

    def predict(self, request: Request) -> Run:
        context = request.prompt
        steps = []
        for _ in range(request.params.max_tokens):
            alts = distribution(context, max(request.params.top_k, 1))
            chosen = alts[0]
            steps.append(Step(chosen=chosen, alternatives=tuple(alts[: request.params.top_k])))
            context += chosen.text
        messages = (Message("user", request.prompt),) if request.params.mode == "chat" else ()
        return Run(provider=self.name, model=request.model, prompt=request.prompt, params=request.params,
                   steps=tuple(steps), messages=messages, finish_reason="length",
                   usage={"prompt_tokens": len(request.prompt.split()), "completion_tokens": len(steps)})

    def tokenize(self, text: str, model: str) -> Tokenization:
        return Tokenization(model=model, tokenizer="fake words", text=text,
                            tokens=tuple(Token(text=w, raw=w.encode(), logprob=0.0, id=n) for n, w in enumerate(text.split(" "))))

    def tree_cursor(self, request: Request, spec: TreeSpec, forced: tuple[Token, ...] = ()) -> FakeCursor:
        return FakeCursor(request.prompt + "".join(t.text for t in forced))

    def explore_cursor(self, request: Request, k: int, depth: int) -> FakeCursor:
        return FakeCursor(request.prompt)


class FakeCursor:
    def __init__(self, prompt: str) -> None:
        self.prompt = prompt
        self.texts = [prompt]
        self.reads = 0
        self.delay = float(os.environ.get("TOKVIZ_FAKE_DELAY", "0"))

    def children(self, k: int) -> list[Token]:
        self.reads += 1
        return distribution(self.texts[-1], k)

    def enter(self, token: Token) -> None:
        self.texts.append(self.texts[-1] + token.text)

    def leave(self) -> None:
        self.texts.pop()

    def complete(self, n: int) -> tuple[Token, ...]:
        out, text = [], self.texts[-1]
        for _ in range(n):
            out.append(distribution(text, 1)[0])
            text += out[-1].text
        return tuple(out)

    def goto(self, path: Sequence[Token]) -> None:
        self.texts = [self.prompt + "".join(t.text for t in path)]

    def generate(self, how: Continuation, k: int, on_step: Callable[[Step], None] | None = None,
                 stop: Callable[[], bool] | None = None) -> tuple[tuple[Step, ...], str]:
        """Greedy (the fake has no sampler), `delay` seconds per token so a test can cancel."""
        steps: list[Step] = []
        if os.environ.get("TOKVIZ_FAKE_SILENT"):  # a model that ends the text at once
            return (), "stop"
        for _ in range(how.max_tokens):
            if stop is not None and stop():
                return tuple(steps), "cancelled"
            time.sleep(self.delay)
            self.reads += 1
            alts = distribution(self.texts[-1], max(k, 1))
            steps.append(Step(chosen=alts[0], alternatives=tuple(alts[:k])))
            self.texts.append(self.texts[-1] + alts[0].text)
            if on_step is not None:
                on_step(steps[-1])
        return tuple(steps), "length"

    def report(self) -> dict[str, Any]:
        return {"requests": self.reads}

    def close(self) -> None:
        pass


SPEC = ProviderSpec(
    name="fake",
    description="deterministic words for tests",
    factory=FakeProvider,
    models=(r"^fake(-.*)?$",),
    concurrent=True,
    max_top_k=8,
    capabilities=frozenset({Capability.CHAT, Capability.RAW, Capability.TREE, Capability.TOKENIZE}),
    options=(OptionSpec("flavour", str, "a setting that changes nothing, recorded in the run"),),
    source="tests",
)


@contextmanager
def registered() -> Iterator[ProviderSpec]:
    registry.register(SPEC)
    try:
        yield SPEC
    finally:
        registry.unregister(SPEC.name)
