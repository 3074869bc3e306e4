"""Secrets out of a run, once, where an answer enters: before any view, file, state table or page.

A server may echo the API key it was sent (in an error turned into text, in a prompt injection's
answer). Redacting each writer's output failed writer after writer (the key was stored hex-encoded
in token bytes, split across tokens, escaped in HTML), so a run is redacted itself: every
occurrence of a secret in the chosen tokens' bytes, across token boundaries, becomes
"[redacted]" (the first token it touches carries the mark, the others lose the secret's part),
the same tokens among each step's alternatives with them, and any whole secret in an alternative,
a tree node, the prompt, the messages, the streamed content or the source notes. The run says so
(`source["redacted"]`). `Stream` does the same to steps as they arrive, holding back a step only
while what it ends with could still be the start of a secret.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from tokviz.ground.errors import secrets
from tokviz.run.record import Message, Run, Step, Token

MARK = "[redacted]"


def _needles(found: Sequence[str] | None) -> list[bytes]:
    values = secrets() if found is None else list(found)
    out = {s.encode("utf-8") for s in values if len(s) >= 4}
    out |= {s.strip().encode("utf-8") for s in values if len(s.strip()) >= 4}
    return sorted(out, key=len, reverse=True)


def _text(s: str, needles: list[bytes]) -> str:
    for needle in needles:
        s = s.replace(needle.decode("utf-8"), MARK)
    return s


def _token(t: Token, needles: list[bytes]) -> Token:
    raw = t.raw
    for needle in needles:
        raw = raw.replace(needle, MARK.encode())
    text = _text(t.text, needles)
    return t if raw == t.raw and text == t.text else replace(t, raw=raw, text=text if raw == t.raw else raw.decode("utf-8", "replace") or text)


def spans(data: bytes, needles: list[bytes]) -> list[tuple[int, int]]:
    """Where the secrets lie in `data` (merged, in order)."""
    found: list[tuple[int, int]] = []
    for needle in needles:
        at = data.find(needle)
        while at >= 0:
            found.append((at, at + len(needle)))
            at = data.find(needle, at + 1)
    merged: list[tuple[int, int]] = []
    for start, end in sorted(found):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


# A text that *ends* in the first characters of a secret (a key streamed one character per token
# and cut by --max-tokens, or by a dropped stream) holds most of the key: an ending of at least
# this many characters of a secret is cut as if it were the whole of it. Shorter endings are left:
# four characters of "sk-p…" are in ordinary text.
PARTIAL = 8


def _cut(steps: Sequence[Step], needles: list[bytes], *, final: bool = False) -> tuple[list[Step], int]:
    """The steps with each secret cut out of the chosen tokens' joined bytes, and how many were;
    when the text is `final` (nothing more will follow), a partial secret at its end too."""
    raws = [s.chosen.raw for s in steps]
    data = b"".join(raws)
    where = spans(data, needles)
    if final:
        tail = _open_prefix(data, needles)
        if tail >= PARTIAL and not (where and where[-1][1] == len(data)):
            where.append((len(data) - tail, len(data)))
    if not where:
        return list(steps), 0
    out, at = [], 0
    for step, raw in zip(steps, raws):
        start, end = at, at + len(raw)
        at = end
        touched = [(s, e) for s, e in where if s < end and e > start]
        if not touched:
            out.append(step)
            continue
        new = b""
        pos = start
        for s, e in touched:
            new += raw[max(pos, start) - start: max(s, start) - start]
            if s >= start:  # the secret begins in this token: it carries the mark
                new += MARK.encode()
            pos = min(e, end)
        new += raw[pos - start:]
        chosen = replace(step.chosen, raw=new, text=new.decode("utf-8", "replace"))
        alternatives = tuple(chosen if _same(a, step.chosen) else _token(a, needles) for a in step.alternatives)
        out.append(replace(step, chosen=chosen, alternatives=alternatives))
    return out, len(where)


def _cut_all(steps: Sequence[Step], needles: list[bytes], *, final: bool = False) -> tuple[list[Step], int]:
    """`_cut`, and any whole secret in the alternatives replaced too."""
    cut, count = _cut(steps, needles, final=final)
    return [replace(s, alternatives=tuple(_token(a, needles) for a in s.alternatives),
                    watched=tuple(replace(w, token=_token(w.token, needles)) for w in s.watched)) for s in cut], count


def _same(a: Token, b: Token) -> bool:
    return a.id == b.id if a.id is not None and b.id is not None else a.raw == b.raw


def redact(run: Run, found: Sequence[str] | None = None) -> Run:
    """`run` with every secret (those in the environment, or `found`) removed, and said so."""
    needles = _needles(found)
    if not needles:
        return run
    cut, count = _cut_all(run.steps, needles, final=True)
    nodes = tuple(replace(n, token=_token(n.token, needles), completion=tuple(_token(t, needles) for t in n.completion))
                  for n in run.nodes)
    changed = replace(run, steps=tuple(cut), nodes=nodes, prompt=_text(run.prompt, needles),
                      messages=tuple(Message(m.role, _text(m.content, needles)) for m in run.messages),
                      content=None if run.content is None else _text(run.content, needles),
                      source={k: _text(v, needles) for k, v in run.source.items()})
    if changed == run:
        return run
    note = f"{count} secret(s) in the answer replaced by {MARK}" if count else f"a secret replaced by {MARK}"
    return replace(changed, source={**changed.source, "redacted": note})


class Stream:
    """Steps redacted as they arrive (the live text, an explorer's page): a step is passed on once
    what the steps so far end with can no longer be the start of a secret; `flush` passes the rest."""

    def __init__(self, on_step: Callable[[Step], None], found: Sequence[str] | None = None) -> None:
        self.on_step = on_step
        self.needles = _needles(found)
        self.held: list[Step] = []

    def __call__(self, step: Step) -> None:
        if not self.needles:
            self.on_step(step)
            return
        self.held.append(step)
        cut, _ = _cut_all(self.held, self.needles)
        data = b"".join(s.chosen.raw for s in cut)
        keep = _open_prefix(data, self.needles)  # bytes at the end that could begin a secret
        ready, at = 0, 0
        for s in cut:
            at += len(s.chosen.raw)
            if at <= len(data) - keep:
                ready += 1
        for s in cut[:ready]:
            self.on_step(s)
        if ready:  # what was passed on is final: hold only the undecided tail (already cut)
            self.held = cut[ready:]

    def flush(self) -> None:
        cut, _ = _cut_all(self.held, self.needles, final=True)
        for s in cut:
            self.on_step(s)
        self.held = []


def _open_prefix(data: bytes, needles: list[bytes]) -> int:
    """The length of the longest end of `data` that is the beginning of a secret."""
    best = 0
    for needle in needles:
        for n in range(min(len(needle) - 1, len(data)), best, -1):
            if data.endswith(needle[:n]):
                best = n
                break
    return best


def node_token(t: Token, found: Sequence[str] | None = None) -> Token:
    """One token (a tree node's, a completion's) with any whole secret in it replaced."""
    needles = _needles(found)
    return t if not needles else _token(t, needles)


def steps(given: Sequence[Step], found: Sequence[str] | None = None) -> list[Step]:
    """Steps with every secret cut out, across token boundaries (as in a run)."""
    needles = _needles(found)
    return _cut_all(given, needles, final=True)[0] if needles else list(given)
