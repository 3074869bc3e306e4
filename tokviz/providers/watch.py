"""`--watch TOKEN`: one named token's figure at every step, however far outside the top k.

An in-process engine sees the whole row, so it reads the token's logprob and rank there (exact;
`ids` turns what was asked into the vocabulary's ids). A server lists only its top k, so a watched
token is read from that list (`from_top_k`): its figure where it is listed, else an upper bound (it
is no likelier than the least likely listed token), marked as a bound, never a figure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from tokviz.ground.errors import UsageError
from tokviz.run import Step, Token, Watched

MAX_WATCH = 16
_ID = re.compile(r"id:(\d{1,9})")


def check(specs: Sequence[str]) -> tuple[str, ...]:
    """What was asked, checked: each a token's text or id:N, none twice, at most MAX_WATCH."""
    if len(specs) > MAX_WATCH:
        raise UsageError(f"--watch takes at most {MAX_WATCH} tokens, got {len(specs)}")
    seen: set[str] = set()
    for spec in specs:
        if not spec:
            raise UsageError("--watch needs a token's text (e.g. --watch \" Paris\") or id:N")
        if spec.startswith("id:") and not _ID.fullmatch(spec):
            raise UsageError(f"--watch {spec!r}: an id is id: and a whole number, e.g. id:1234")
        if spec in seen:
            raise UsageError(f"--watch {spec!r} is given twice")
        seen.add(spec)
    return tuple(specs)


def token_id(spec: str) -> int | None:
    found = _ID.fullmatch(spec)
    return int(found.group(1)) if found else None


def ids(specs: Sequence[str], tokenize: Callable[[str], list[int]], n_vocab: int, model: str) -> list[int]:
    """The vocabulary id of each watched token, for an engine that sees the whole row: id:N as
    given (within the vocabulary), a text only when the model reads it as exactly one token."""
    out = []
    for spec in specs:
        wanted = token_id(spec)
        if wanted is not None:
            if wanted >= n_vocab:
                raise UsageError(f"--watch {spec}: {model}'s vocabulary has {n_vocab:,} tokens (ids 0 to {n_vocab - 1:,})")
            out.append(wanted)
            continue
        found = tokenize(spec)
        if len(found) != 1:
            raise UsageError(f"--watch {spec!r} is {len(found)} tokens for {model}, not one",
                             hint="watch one token: `tokviz tokenize` shows how the model splits a text; id:N names one by id")
        out.append(found[0])
    return out


def from_top_k(step: Step, specs: Sequence[str]) -> tuple[Watched, ...]:
    """Each watched token at a step whose provider listed only its top k: exact where listed (its
    rank then its place in the list), else an upper bound. A listed token whose bytes or id the
    server did not send might be the watched one, so the bound is never below its figure; an id
    asked of a server that sends no ids can only be bounded by the likeliest listed token."""
    listed = step.alternatives
    out = []
    for spec in specs:
        wanted = token_id(spec)
        data = None if wanted is not None else spec.encode("utf-8")

        def same(t: Token, wanted: int | None = wanted, data: bytes | None = data) -> bool:
            return t.id == wanted if wanted is not None else (not t.lossy and t.raw == data)

        hit = next((n for n, t in enumerate(listed) if same(t)), None)
        if hit is not None:
            out.append(Watched(token=listed[hit], rank=hit + 1))
            continue
        if same(step.chosen):  # sampled from outside the list: its figure, no rank
            out.append(Watched(token=step.chosen))
            continue
        if not listed:
            out.append(Watched(token=Token(text=spec, raw=data or b"", logprob=0.0, id=wanted), bound=True))
            continue
        unknown = [t.logprob for t in listed if (t.id is None if wanted is not None else (t.lossy or not t.raw))]
        bound = max([min(t.logprob for t in listed), *unknown])
        out.append(Watched(token=Token(text=spec if wanted is None else "", raw=data or b"", logprob=bound, id=wanted),
                           bound=True))
    return tuple(out)
