"""How sure the model was of every field of a JSON answer (`--json-schema`, docs/structured.md).

The answer's text is read by a small JSON scanner that keeps where each key and each leaf value
lies (Python's json module keeps no positions) and, on an answer cut short (`--max-tokens`), keeps
what it read and says where it stopped. Each field is then matched with the tokens that spell it:
every token whose characters overlap the value's (a string's characters inside its quotes). A
field's probability is the product of those tokens' probabilities, its weakest token the least
likely of them, and "instead" the model's likeliest other token at its first one. A token the
grammar forced (the model gave it less than an alternative the grammar forbade) marks its field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tokviz.run import Run, Step, Token
from tokviz.run import tokens as tok


@dataclass(frozen=True)
class Field:
    path: str  # "sentiment", "items[0].name"; a key's path is its object's path and the key
    kind: str  # "key" or "value" (a leaf: string, number, true, false, null)
    text: str  # the characters that spell it (a string's without its quotes)
    start: int  # characters into the answer
    end: int
    steps: tuple[int, ...] = ()  # the steps whose tokens spell it
    logprob: float = 0.0
    weakest: int | None = None  # the step of its least likely token
    instead: Token | None = None  # the likeliest other token at its first step
    forced: tuple[int, ...] = ()  # its steps whose token the grammar forced
    lossy: bool = False

    @property
    def prob(self) -> float:
        return math.exp(self.logprob)

    def to_dict(self, run: Run) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "text": self.text, "prob": round(self.prob, 6),
                "logprob": round(self.logprob, 6), "steps": [s + 1 for s in self.steps],
                "weakest": None if self.weakest is None else {"step": self.weakest + 1,
                                                             "token": run.steps[self.weakest].chosen.text,
                                                             "prob": round(run.steps[self.weakest].chosen.prob, 6)},
                "instead": None if self.instead is None else {"token": self.instead.text,
                                                              "prob": round(self.instead.prob, 6)},
                "forced": [s + 1 for s in self.forced], "lossy": self.lossy}


@dataclass(frozen=True)
class Fields:
    fields: tuple[Field, ...]
    complete: bool  # the answer is one whole JSON value
    stopped: str | None = None  # where and why the scanner stopped, when it is not
    notes: tuple[str, ...] = field(default=())

    def to_dict(self, run: Run) -> dict[str, Any]:
        return {"complete": self.complete, "stopped": self.stopped, "fields": [f.to_dict(run) for f in self.fields]}


class _Stop(Exception):
    pass


class _Scanner:
    """A JSON value's keys and leaves with their character spans, reading as far as the text goes."""

    WS = " \t\r\n"

    def __init__(self, text: str) -> None:
        self.s, self.i, self.out = text, 0, []  # type: ignore[var-annotated]

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in self.WS:
            self.i += 1

    def need(self, what: str) -> None:
        if self.i >= len(self.s):
            raise _Stop(f"the answer ends at character {self.i} inside {what}")

    def value(self, path: str) -> None:
        self.ws()
        self.need("a value")
        c = self.s[self.i]
        if c == "{":
            self.obj(path)
        elif c == "[":
            self.arr(path)
        elif c == '"':
            start, end = self.string()
            self.out.append(("value", path, start, end))
        else:
            start = self.i
            while self.i < len(self.s) and self.s[self.i] not in ",]}" + self.WS:
                self.i += 1
            word = self.s[start:self.i]
            if not word:
                raise _Stop(f"no value at character {start}")
            self.out.append(("value", path, start, self.i))

    def string(self) -> tuple[int, int]:
        self.i += 1  # the opening quote
        start = self.i
        while True:
            self.need("a string")
            c = self.s[self.i]
            if c == "\\":
                self.i += 2
                continue
            if c == '"':
                self.i += 1
                return start, self.i - 1
            self.i += 1

    def obj(self, path: str) -> None:
        self.i += 1
        self.ws()
        self.need("an object")
        if self.s[self.i] == "}":
            self.i += 1
            return
        while True:
            self.ws()
            self.need("an object")
            if self.s[self.i] != '"':
                raise _Stop(f"a key was expected at character {self.i}")
            start, end = self.string()
            key = self.s[start:end]
            here = f"{path}.{key}" if path else key
            self.out.append(("key", here, start, end))
            self.ws()
            self.need("an object")
            if self.s[self.i] != ":":
                raise _Stop(f"':' was expected at character {self.i}")
            self.i += 1
            self.value(here)
            self.ws()
            self.need("an object")
            if self.s[self.i] == ",":
                self.i += 1
                continue
            if self.s[self.i] == "}":
                self.i += 1
                return
            raise _Stop(f"',' or '}}' was expected at character {self.i}")

    def arr(self, path: str) -> None:
        self.i += 1
        self.ws()
        self.need("an array")
        if self.s[self.i] == "]":
            self.i += 1
            return
        n = 0
        while True:
            self.value(f"{path}[{n}]")
            n += 1
            self.ws()
            self.need("an array")
            if self.s[self.i] == ",":
                self.i += 1
                continue
            if self.s[self.i] == "]":
                self.i += 1
                return
            raise _Stop(f"',' or ']' was expected at character {self.i}")


def spans(run: Run) -> list[tuple[int, int]]:
    """Each step's characters in the answer's text (start, end)."""
    out, data = [], b""
    for step in run.steps:
        before = len(data.decode("utf-8", "ignore"))
        data += step.chosen.raw
        out.append((before, len(data.decode("utf-8", "ignore"))))
    return out


def forced(step: Step) -> bool:
    """The grammar forced this token: the model gave it less than an alternative the grammar forbade."""
    barred = [a.logprob for a in step.alternatives if a.forbidden]
    return bool(barred) and step.chosen.logprob < max(barred)


def fields_of(run: Run) -> Fields:
    """The answer's fields with their tokens and figures (see the module)."""
    text = run.text
    scanner = _Scanner(text)
    stopped = None
    try:
        scanner.value("")
        scanner.ws()
        if scanner.i < len(text):
            stopped = f"more text after the JSON value, from character {scanner.i}"
    except _Stop as stop:
        stopped = str(stop)
    at = spans(run)
    found = []
    for kind, path, start, end in scanner.out:
        steps = tuple(n for n, (a, b) in enumerate(at) if a < max(end, start + 1) and b > start)
        if not steps:
            continue
        logprob = math.fsum(run.steps[n].chosen.logprob for n in steps)
        weakest = min(steps, key=lambda n: run.steps[n].chosen.logprob)
        first = run.steps[steps[0]]
        instead = next(iter(first.others()), None)
        found.append(Field(path=path or "(the value)", kind=kind, text=text[start:end], start=start, end=end, steps=steps,
                           logprob=logprob, weakest=weakest, instead=instead,
                           forced=tuple(n for n in steps if forced(run.steps[n])),
                           lossy=any(run.steps[n].chosen.lossy for n in steps)))
    notes = ()
    if run.content is not None:
        notes = ("the server's tokens do not rebuild its text exactly: fields are matched to tokens by their bytes",)
    return Fields(fields=tuple(found), complete=stopped is None, stopped=stopped, notes=notes)


def label(f: Field) -> str:
    return tok.visible(f.text) if f.kind == "value" else f"key {tok.visible(f.text)}"
