"""Two records of the same request, compared: what changed, and whether it is more than noise.

The same model decoded two ways (another engine, build, batch shape or CPU) gives the same tokens
with figures that differ by the engines' arithmetic alone (`measures.noise`), and at a near-tie the
two may even choose different tokens. So a comparison says, in this order: where the chosen tokens
first part (the fork), how many steps agree, and per step the change of the chosen token's
logprob, its rank, the overlap of the top-k lists and the KL divergence over them, and the change
of entropy; then a verdict under named tolerances: identical, within noise, or changed (with the
reason).

Two records need not share a tokenizer: they are aligned on the byte boundaries both share (as
`align` does for scored texts). A stretch between two shared boundaries is one token in each
(then every per-step figure applies) or several (then only the summed logprob is compared).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from tokviz.measures import noise
from tokviz.measures.metrics import step_entropy
from tokviz.run import Run, RunKind, RunSet, Step, Token, same_token
from tokviz.run import tokens as tok


class Verdict(str, enum.Enum):
    IDENTICAL = "identical"  # the same tokens and the same figures, bit for bit
    WITHIN_NOISE = "within noise"  # differences no larger than two ways of decoding one model make
    CHANGED = "changed"  # a difference beyond the tolerances: the behaviour changed


@dataclass(frozen=True)
class Tolerance:
    """What may differ before a record counts as changed; recorded with every verdict.

    `tokens`: "tie-aware" (the chosen tokens agree, except at a fork where the two tokens lie
    within `near_tie` nats of each other in both records: a near-tie that either engine may break
    either way), "exact" (no fork at all) or "prefix" (the first `prefix` tokens agree; what
    follows may part). The defaults are the measured noise floor with a margin (docs/ci.md).
    """

    atol: float = noise.ATOL
    atol_mean: float = noise.ATOL_MEAN
    tokens: str = "tie-aware"
    prefix: int = 0
    min_overlap: float = noise.MIN_OVERLAP
    max_kl: float = noise.MAX_KL
    near_tie: float = noise.NEAR_TIE
    share_points: float = noise.SHARE_POINTS  # weighed choices: the largest move of one answer's share, in points
    identical: bool = False  # require identity (a replayed cassette must give back what it recorded)

    def __post_init__(self) -> None:
        if self.tokens not in ("tie-aware", "exact", "prefix"):
            raise ValueError(f"tokens must be tie-aware, exact or prefix, not {self.tokens!r}")
        numbers = {"atol": self.atol, "atol_mean": self.atol_mean, "max_kl": self.max_kl, "near_tie": self.near_tie,
                   "share_points": self.share_points}
        for name, value in numbers.items():
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a number ≥ 0, not {value!r}")
        if not 0.0 <= self.min_overlap <= 1.0:
            raise ValueError(f"min_overlap must be between 0 and 1, not {self.min_overlap!r}")
        if self.prefix < 0:
            raise ValueError(f"prefix must be ≥ 0, not {self.prefix!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_settings(cls, *tables: dict[str, Any], identical: bool = False) -> Tolerance:
        """A Tolerance from settings tables, later ones winning (pyproject's, then the options): keys
        as fields or with dashes, `tokens` as tie-aware, exact or prefix:N. ValueError names a bad one."""
        names = {f.name for f in fields(cls)} - {"prefix", "identical"}
        values: dict[str, Any] = {}
        for table in tables:
            for key, value in table.items():
                name = key.replace("-", "_")
                if name not in names:
                    raise ValueError(f"no tolerance {key!r} (the tolerances: {', '.join(sorted(names))})")
                values[name] = value
        mode, _, count = str(values.pop("tokens", "tie-aware")).partition(":")
        if mode == "prefix":
            if not count.isdigit():
                raise ValueError(f"tokens prefix needs a count, e.g. prefix:8, got {mode}:{count}")
            values["prefix"] = int(count)
        elif count:
            raise ValueError(f"tokens must be tie-aware, exact or prefix:N, got {mode}:{count}")
        try:
            return cls(tokens=mode, identical=identical, **values)
        except TypeError as err:
            raise ValueError(str(err)) from None


@dataclass(frozen=True)
class Position:
    """One aligned stretch of text: one token in each record (`a`, `b`), or several (`tokens_a`,
    `tokens_b` > 1, only the summed logprobs compared)."""

    index: int  # the step of A it ends at (0-based)
    text: str
    logprob_a: float
    logprob_b: float
    tokens_a: int = 1
    tokens_b: int = 1
    a: Step | None = None  # the two steps, when the stretch is one token in each
    b: Step | None = None
    rank_a: int | None = None  # the chosen token's place in its own top-k list (1 = first)
    rank_b: int | None = None
    overlap: float | None = None  # |top-k(A) ∩ top-k(B)| / the shorter list's length
    kl: float | None = None  # KL(A ‖ B) over the shared top-k tokens and one rest bucket: a lower bound
    entropy_a: float | None = None  # bits, over the known alternatives and the rest
    entropy_b: float | None = None

    @property
    def delta(self) -> float:
        """log P_B − log P_A of the chosen text: positive where B finds it likelier."""
        return self.logprob_b - self.logprob_a


@dataclass(frozen=True)
class Fork:
    """Where the chosen tokens first part: the text before, and each record's continuation."""

    step_a: int
    step_b: int
    before: str
    rest_a: str
    rest_b: str
    token_a: Token | None
    token_b: Token | None
    gap_a: float | None  # in A: logprob of A's token − logprob of B's token (None: B's not in A's top k)
    gap_b: float | None
    ended: str | None = None  # "a" or "b" when one record simply stops where the other goes on

    def near_tie(self, within: float) -> bool:
        """Both records hold both tokens within `within` nats of each other: either may be chosen."""
        return self.ended is None and self.gap_a is not None and self.gap_b is not None and max(
            abs(self.gap_a), abs(self.gap_b)) <= within


@dataclass(frozen=True)
class Comparison:
    """Two records compared (see the module docstring); `reasons` say why a verdict is not better."""

    name: str
    kind: str
    label_a: str
    label_b: str
    positions: tuple[Position, ...]
    steps_a: int
    steps_b: int
    agree: int  # chosen tokens that agree before the fork (or all of them)
    fork: Fork | None
    verdict: Verdict
    reasons: tuple[str, ...]
    tolerance: Tolerance
    requests: tuple[str, ...] = ()  # how the two requests differ (prompt, model, settings), if they do
    same_vocabulary: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # kind-specific figures (a tree's nodes)
    prompt: str = ""  # A's prompt (B's differs only when `requests` says "prompt")
    sides: tuple[str, str] = ("A", "B")  # what A and B are: two records, or a golden and its new answer

    @property
    def aligned(self) -> list[Position]:
        return [p for p in self.positions if p.a is not None and p.b is not None]

    @property
    def max_delta(self) -> Position | None:
        return max(self.positions, key=lambda p: abs(p.delta), default=None)

    @property
    def mean_abs_delta(self) -> float | None:
        return sum(abs(p.delta) for p in self.positions) / len(self.positions) if self.positions else None

    @property
    def rank_changes(self) -> int:
        return sum(1 for p in self.positions if p.rank_a is not None and p.rank_b is not None and p.rank_a != p.rank_b)

    @property
    def min_overlap(self) -> Position | None:
        known = [p for p in self.positions if p.overlap is not None]
        return min(known, key=lambda p: p.overlap or 0.0, default=None)

    @property
    def max_kl(self) -> Position | None:
        known = [p for p in self.positions if p.kl is not None]
        return max(known, key=lambda p: p.kl or 0.0, default=None)

    @property
    def ok(self) -> bool:
        return self.verdict is not Verdict.CHANGED

    def summary(self) -> str:
        """The verdict in one line, with its first reason."""
        head = f"{self.name}: {self.verdict.value}"
        return head + (f" ({self.reasons[0]})" if self.reasons else "")

    def to_dict(self) -> dict[str, Any]:
        def at(p: Position | None, value: float | None) -> dict[str, Any] | None:
            return None if p is None or value is None else {"step": p.index + 1, "value": round(value, 6), "text": p.text}

        biggest, low, high = self.max_delta, self.min_overlap, self.max_kl
        return {
            "name": self.name, "kind": self.kind, "a": self.label_a, "b": self.label_b, "verdict": self.verdict.value,
            "reasons": list(self.reasons), "requests_differ": list(self.requests), "steps_a": self.steps_a,
            "steps_b": self.steps_b, "agree": self.agree, "same_vocabulary": self.same_vocabulary,
            "fork": None if self.fork is None else {
                "step_a": self.fork.step_a + 1, "step_b": self.fork.step_b + 1, "before": self.fork.before,
                "a": self.fork.rest_a, "b": self.fork.rest_b, "ended": self.fork.ended,
                "gap_a": self.fork.gap_a, "gap_b": self.fork.gap_b,
                "near_tie": self.fork.near_tie(self.tolerance.near_tie)},
            "max_abs_delta": at(biggest, abs(biggest.delta) if biggest else None),
            "mean_abs_delta": None if self.mean_abs_delta is None else round(self.mean_abs_delta, 6),
            "rank_changes": self.rank_changes, "min_overlap": at(low, low.overlap if low else None),
            "max_kl_lower_bound": at(high, high.kl if high else None), "tolerance": self.tolerance.to_dict(),
            "positions": [{"step": p.index + 1, "text": p.text, "delta": round(p.delta, 6), "rank_a": p.rank_a,
                           "rank_b": p.rank_b, "overlap": p.overlap, "kl": None if p.kl is None else round(p.kl, 6),
                           "entropy_a": None if p.entropy_a is None else round(p.entropy_a, 4),
                           "entropy_b": None if p.entropy_b is None else round(p.entropy_b, 4),
                           "tokens_a": p.tokens_a, "tokens_b": p.tokens_b} for p in self.positions],
            **self.extra,
        }


# --- one step against another -------------------------------------------------------------------

Same = Callable[[Token, Token], bool]
GOLDEN_SIDES = ("golden", "new")  # the sides of `tokviz check` and the pytest plugin


def by_bytes(a: Token, b: Token) -> bool:
    """The same token text, for records of two vocabularies (their ids mean different tokens)."""
    return raw_of(a) == raw_of(b)


def raw_of(t: Token) -> bytes:
    """A token's bytes (its text's, for a record written before bytes were kept)."""
    return t.raw or t.text.encode("utf-8")


def rank_in(step: Step, same: Same = same_token) -> int | None:
    """The chosen token's place in its own top-k list (1 = the first), or its vocabulary rank."""
    if step.rank is not None:
        return step.rank
    return next((n for n, t in enumerate(step.alternatives, 1) if same(t, step.chosen)), None)


def _exact(step: Step) -> bool:
    """Whether a step's alternatives are the tokens themselves: a server that sent some without
    their bytes (pieces of a character, or a list keyed by text that merged them) leaves the
    distribution unknown, and figures over it would be invented."""
    return not any(t.lossy for t in step.alternatives)


def overlap(a: Step, b: Step, same: Same = same_token) -> float | None:
    k = min(len(a.alternatives), len(b.alternatives))
    if not k or not (_exact(a) and _exact(b)):
        return None
    shared = sum(1 for x in a.alternatives[:k] if any(same(x, y) for y in b.alternatives[:k]))
    return shared / k


def kl_topk(a: Step, b: Step, same: Same = same_token) -> float | None:
    """KL(A ‖ B) in nats over the tokens both top-k lists hold, plus one bucket for the rest: a
    coarse-graining of both distributions, so a lower bound on the full divergence."""
    if not a.alternatives or not b.alternatives or not (_exact(a) and _exact(b)):
        return None
    pairs = [(x.prob, y.prob) for x in a.alternatives for y in b.alternatives if same(x, y)]
    p_rest = max(0.0, 1.0 - sum(p for p, _ in pairs))
    q_rest = max(0.0, 1.0 - sum(q for _, q in pairs))
    total = sum(p * (math.log(p) - math.log(max(q, 1e-12))) for p, q in [*pairs, (p_rest, q_rest)] if p > 0)
    return max(total, 0.0)


def logprob_of(step: Step, token: Token, same: Same = same_token) -> float | None:
    if same(step.chosen, token):
        return step.chosen.logprob
    return next((t.logprob for t in step.alternatives if same(t, token)), None)


def _position(index: int, a: Step, b: Step, same: Same) -> Position:
    return Position(index=index, text=tok.join([a.chosen.raw]) or a.chosen.text, logprob_a=a.chosen.logprob,
                    logprob_b=b.chosen.logprob, a=a, b=b, rank_a=rank_in(a, same), rank_b=rank_in(b, same),
                    overlap=overlap(a, b, same), kl=kl_topk(a, b, same),
                    entropy_a=step_entropy(a) if a.alternatives else None,
                    entropy_b=step_entropy(b) if b.alternatives else None)


# --- two sequences of steps ---------------------------------------------------------------------

def same_vocabulary(a: Sequence[Step], b: Sequence[Step]) -> bool:
    """Whether token ids mean the same tokens in both records: every token of each (chosen and
    alternatives) has an id, the records share tokens, and each token both hold has one id in
    both (two models, or a server with another tokenizer, fail). Read over the alternatives too,
    so a fork at the first step still knows its vocabulary."""
    ids_a: dict[bytes, int] = {}
    for steps, ids in ((a, ids_a), (b, None)):
        for step in steps:
            for t in (step.chosen, *step.alternatives):
                if t.id is None:
                    return False
                raw = raw_of(t)
                if t.lossy or not raw:
                    continue  # a piece of a character: its bytes do not name the token
                if ids is not None:
                    ids.setdefault(raw, t.id)
                elif ids_a.get(raw, t.id) != t.id:
                    return False
    shared = {raw_of(t) for s in b for t in (s.chosen, *s.alternatives)} & ids_a.keys()
    return bool(shared)


def walk(a: Sequence[Step], b: Sequence[Step], same: Same) -> tuple[list[Position], int, tuple[int, int] | None]:
    """The aligned positions up to where the chosen texts part, how many steps of A agree, and
    where the fork is ((step of A, step of B), or None when neither parts from the other)."""
    ends_a, ends_b = byte_ends(a), byte_ends(b)
    text_a, text_b = b"".join(raw_of(s.chosen) for s in a), b"".join(raw_of(s.chosen) for s in b)
    common = _common_prefix(text_a, text_b)
    cuts = sorted({e for e in ends_a if e <= common} & {e for e in ends_b if e <= common})
    positions: list[Position] = []
    ia = ib = 0
    for cut in cuts:
        ga, gb = [], []
        while ia < len(a) and ends_a[ia] <= cut:
            ga.append(a[ia])
            ia += 1
        while ib < len(b) and ends_b[ib] <= cut:
            gb.append(b[ib])
            ib += 1
        if not ga or not gb:
            continue
        if len(ga) == 1 and len(gb) == 1:
            positions.append(_position(ia - 1, ga[0], gb[0], same))
        else:
            positions.append(Position(index=ia - 1, text=tok.join(raw_of(s.chosen) for s in ga),
                                      logprob_a=sum(s.chosen.logprob for s in ga), logprob_b=sum(s.chosen.logprob for s in gb),
                                      tokens_a=len(ga), tokens_b=len(gb)))
    if ia == len(a) and ib == len(b):
        return positions, ia, None
    rest_a, rest_b = a[ia:], b[ib:]
    if rest_a and rest_b and _unfinished(rest_a) and _unfinished(rest_b):
        # both end inside the same character, each in its own way (vLLM's "" pieces, another
        # engine's byte tokens): one last position, its figures summed, no fork
        positions.append(Position(index=ia, text=tok.join(raw_of(s.chosen) for s in rest_b),
                                  logprob_a=sum(s.chosen.logprob for s in rest_a),
                                  logprob_b=sum(s.chosen.logprob for s in rest_b), tokens_a=len(rest_a),
                                  tokens_b=len(rest_b)))
        return positions, len(a), None
    return positions, ia, (ia, ib)


def byte_ends(steps: Sequence[Step]) -> list[int]:
    """Where each step's bytes end in the text. A step with no bytes (a server's "" for the leading
    piece of a split character) ends where the step after it ends: it belongs to the character it
    begins, never to the one before it (which would move its figure there)."""
    out, at = [], 0
    for s in steps:
        at += len(raw_of(s.chosen))
        out.append(at)
    after = at + 1  # byteless steps at the very end begin a character that never came: in no segment
    for i in range(len(out) - 1, -1, -1):
        if not raw_of(steps[i].chosen):
            out[i] = out[i + 1] if i + 1 < len(out) else after
    return out


def _unfinished(steps: Sequence[Step]) -> bool:
    """The steps spell only the beginning of a character: byteless pieces, or bytes that stop
    inside a UTF-8 sequence (a generation cut mid-character, in either engine's way)."""
    data = b"".join(raw_of(s.chosen) for s in steps)
    if not data:
        return all(s.chosen.lossy for s in steps)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        return err.reason == "unexpected end of data" and err.end == len(data)
    return False


def _common_prefix(x: bytes, y: bytes) -> int:
    n = min(len(x), len(y))
    lo, hi = 0, n
    while lo < hi:  # binary search on equal prefixes: a 10,000-token text is compared in a few steps
        mid = (lo + hi + 1) // 2
        if x[:mid] == y[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _fork(a: Sequence[Step], b: Sequence[Step], at: tuple[int, int], same: Same) -> Fork:
    ia, ib = at
    before = tok.join(raw_of(s.chosen) for s in a[:ia])
    ta = a[ia].chosen if ia < len(a) else None
    tb = b[ib].chosen if ib < len(b) else None
    ended = "a" if ta is None else "b" if tb is None else None
    gap_a = gap_b = None
    if ta is not None and tb is not None:
        in_a, in_b = logprob_of(a[ia], tb, same), logprob_of(b[ib], ta, same)
        gap_a = None if in_a is None else ta.logprob - in_a
        gap_b = None if in_b is None else tb.logprob - in_b
    return Fork(step_a=ia, step_b=ib, before=before, rest_a=tok.join(raw_of(s.chosen) for s in a[ia:]),
                rest_b=tok.join(raw_of(s.chosen) for s in b[ib:]), token_a=ta, token_b=tb, gap_a=gap_a, gap_b=gap_b,
                ended=ended)


def compare_steps(a: Sequence[Step], b: Sequence[Step], *, name: str, kind: str, label_a: str, label_b: str,
                  tolerance: Tolerance, requests: tuple[str, ...] = ()) -> Comparison:
    """Two sequences of steps (a generation or a scored text) compared, with the verdict."""
    positions, agree, at = walk(a, b, by_bytes)
    vocab = same_vocabulary(a, b)
    same: Same = same_token if vocab else by_bytes
    if vocab:  # the ids are comparable: figures by id (two tokens with one text stay apart)
        positions, agree, at = walk(a, b, same)
    fork = _fork(a, b, at, same) if at is not None else None
    verdict, reasons = judge(positions, fork, tolerance, identical=tuple(a) == tuple(b), kind=kind)
    return Comparison(name=name, kind=kind, label_a=label_a, label_b=label_b, positions=tuple(positions),
                      steps_a=len(a), steps_b=len(b), agree=agree, fork=fork, verdict=verdict, reasons=tuple(reasons),
                      tolerance=tolerance, requests=requests, same_vocabulary=vocab)


def judge(positions: Sequence[Position], fork: Fork | None, t: Tolerance, *, identical: bool,
          kind: str = "predict") -> tuple[Verdict, list[str]]:
    """The verdict and its reasons, the weightiest first."""
    if identical:
        return Verdict.IDENTICAL, []
    reasons: list[str] = []
    if t.identical:
        reasons.append("a replayed record must be identical")
    if fork is not None:
        reasons += _fork_reasons(fork, t, kind)
    deltas = [abs(p.delta) for p in positions]
    big = [p for p in positions if abs(p.delta) > t.atol]
    if big:
        worst = max(big, key=lambda p: abs(p.delta))
        reasons.append(f"|Δ logprob| {abs(worst.delta):.3f} nats at step {worst.index + 1} ({tok.visible(worst.text)!s}) "
                       f"exceeds --atol {t.atol:g}" + (f" ({len(big)} steps do)" if len(big) > 1 else ""))
    if deltas and sum(deltas) / len(deltas) > t.atol_mean:
        reasons.append(f"mean |Δ logprob| {sum(deltas) / len(deltas):.3f} nats exceeds --atol-mean {t.atol_mean:g}")
    low = [p for p in positions if p.overlap is not None and p.overlap < t.min_overlap]
    if low:
        worst = min(low, key=lambda p: p.overlap or 0.0)
        reasons.append(f"top-k overlap {worst.overlap:.0%} at step {worst.index + 1} is below --min-overlap {t.min_overlap:g}")
    far = [p for p in positions if p.kl is not None and p.kl > t.max_kl]
    if far:
        worst = max(far, key=lambda p: p.kl or 0.0)
        reasons.append(f"KL over the top-k (a lower bound) {worst.kl:.3f} nats at step {worst.index + 1} exceeds "
                       f"--max-kl {t.max_kl:g}")
    return (Verdict.CHANGED, reasons) if reasons else (Verdict.WITHIN_NOISE, [])


def _fork_reasons(fork: Fork, t: Tolerance, kind: str) -> list[str]:
    where = f"step {fork.step_a + 1}"
    if kind == RunKind.SCORE.value:
        return [f"the scored texts differ from {where} on"]
    if fork.ended is not None:
        which, other = ("A", "B") if fork.ended == "a" else ("B", "A")
        if t.tokens == "prefix" and fork.step_a >= t.prefix:
            return []
        return [f"{which} ends at {where} where {other} goes on ({tok.visible(fork.rest_b if which == 'A' else fork.rest_a)[:40]!s})"]
    if t.tokens == "prefix":
        return [] if fork.step_a >= t.prefix else [f"the chosen tokens part at {where}, inside --tokens prefix:{t.prefix}"]
    if t.tokens == "tie-aware" and fork.near_tie(t.near_tie):
        return []
    label_a = tok.visible(fork.token_a.text) if fork.token_a else "∅"
    label_b = tok.visible(fork.token_b.text) if fork.token_b else "∅"
    sides = ""
    if fork.token_a is not None and fork.token_b is not None:
        sides = f" (A {_side(fork.token_a, fork.token_b, fork.gap_a)}; B {_side(fork.token_b, fork.token_a, fork.gap_b)})"
    why = ""
    if t.tokens == "tie-aware":
        if fork.gap_a is None or fork.gap_b is None:
            why = ": one record does not hold the other's token among its alternatives, so no noise explains it"
        else:
            why = (f": {max(abs(fork.gap_a), abs(fork.gap_b)):.3f} nats apart, more than --near-tie {t.near_tie:g} "
                   "(the engines' noise)")
    return [f"the chosen tokens part at {where}: {label_a!s} vs {label_b!s}{sides}{why}"]


def _side(mine: Token, other: Token, gap: float | None) -> str:
    """One record's figures at the fork: its token, and where the other record's token stood in it."""
    shown = tok.visible(other.text)
    if gap is None:
        return f"{mine.prob:.1%}, {shown!s} not in its top-k"
    return f"{mine.prob:.1%}, {shown!s} {math.exp(mine.logprob - gap):.1%}"


# --- records ------------------------------------------------------------------------------------

def request_differences(a: Run, b: Run) -> tuple[str, ...]:
    """What differs between the requests two runs answered (not a verdict: said beside it)."""
    out = []
    if a.prompt != b.prompt:
        out.append("prompt")
    if a.messages != b.messages:
        out.append("messages")
    pa, pb = a.params, b.params
    for key in ("max_tokens", "temperature", "top_p", "seed", "mode", "top_k"):
        if getattr(pa, key) != getattr(pb, key):
            out.append(key)
    return tuple(out)


def label(run: Run) -> str:
    return f"{run.provider}:{run.model}"


def compare_runs(a: Run, b: Run, tolerance: Tolerance, *, name: str = "run",
                 sides: tuple[str, str] = ("A", "B")) -> Comparison:
    """Two runs of one kind: a generation, a scored text, or a tree."""
    if a.kind is not b.kind:
        raise ValueError(f"a {a.kind.value} record cannot be compared with a {b.kind.value} record")
    requests = request_differences(a, b)
    if a.kind is RunKind.TREE:
        found = compare_trees(a, b, tolerance, name=name, requests=requests)
    else:
        found = compare_steps(a.steps, b.steps, name=name, kind=a.kind.value, label_a=label(a), label_b=label(b),
                              tolerance=tolerance, requests=requests)
        if a.params.json_schema is not None and b.params.json_schema is not None:
            found = _by_field(found, a, b, tolerance)
    return replace(found, prompt=a.prompt, sides=sides)


def _by_field(found: Comparison, a: Run, b: Run, t: Tolerance) -> Comparison:
    """Two answers held to a JSON schema, also field by field: the same fields with the same values,
    each value's summed logprob within --atol; the field that changed is named first."""
    from tokviz.measures.fields import fields_of

    def values(run: Run) -> dict[str, Any]:
        return {f.path: f for f in fields_of(run).fields if f.kind == "value"}

    va, vb = values(a), values(b)
    reasons = []
    for path in [*va, *(p for p in vb if p not in va)]:
        x, y = va.get(path), vb.get(path)
        if x is None or y is None:
            reasons.append(f"the field {tok.visible(path)!s} is in {'B' if x is None else 'A'} only")
        elif x.text != y.text:
            reasons.append(f"the field {tok.visible(path)!s} changed: {tok.visible(x.text)!r} vs {tok.visible(y.text)!r}")
        elif abs(x.logprob - y.logprob) > t.atol:
            reasons.append(f"the field {tok.visible(path)!s} ({tok.visible(x.text)!s}): {x.prob:.1%} vs {y.prob:.1%}, "
                           f"|Δ logprob| {abs(x.logprob - y.logprob):.3f} nats exceeds --atol {t.atol:g}")
    extra = {**found.extra, "fields": {"a": {p: f.text for p, f in va.items()}, "b": {p: f.text for p, f in vb.items()}}}
    if not reasons:
        return replace(found, extra=extra)
    return replace(found, verdict=Verdict.CHANGED, reasons=(*reasons, *found.reasons), extra=extra)


def compare_trees(a: Run, b: Run, t: Tolerance, *, name: str, requests: tuple[str, ...] = ()) -> Comparison:
    """Two trees: the same paths' tokens compared; a path in one tree only is noise if it sits at
    a near-tie with the weakest sibling the other tree kept (a top-k cut-off that fell the other way)."""
    paths_a, paths_b = _paths(a), _paths(b)
    positions = []
    for n, key in enumerate(k for k in paths_a if k in paths_b):
        x, y = paths_a[key], paths_b[key]
        positions.append(Position(index=n, text=tok.join(key), logprob_a=x.token.logprob, logprob_b=y.token.logprob))
    only = [(key, "A") for key in paths_a if key not in paths_b] + [(key, "B") for key in paths_b if key not in paths_a]
    unexplained = [(key, side) for key, side in only if not _cut_at_a_tie(key, paths_a if side == "A" else paths_b,
                                                                         paths_b if side == "A" else paths_a, t.near_tie)]
    verdict, reasons = judge(positions, None, t, identical=a.nodes == b.nodes)
    if unexplained:
        key, side = unexplained[0]
        reasons.insert(0, f"{len(unexplained)} path(s) in one tree only, first {tok.visible(tok.join(key))!s} (in {side})")
        verdict = Verdict.CHANGED
    return Comparison(name=name, kind=RunKind.TREE.value, label_a=label(a), label_b=label(b), positions=tuple(positions),
                      steps_a=len(a.nodes), steps_b=len(b.nodes), agree=len(positions), fork=None, verdict=verdict,
                      reasons=tuple(reasons), tolerance=t, requests=requests,
                      extra={"nodes_only_in_a": sum(1 for _, s in only if s == "A"),
                             "nodes_only_in_b": sum(1 for _, s in only if s == "B")})


def _paths(run: Run) -> dict[tuple[bytes, ...], Any]:
    out: dict[tuple[bytes, ...], Any] = {}
    keys: list[tuple[bytes, ...]] = []
    for node in run.nodes:
        key = (*(keys[node.parent] if node.parent >= 0 else ()), raw_of(node.token))
        keys.append(key)
        out[key] = node
    return out


def _cut_at_a_tie(key: tuple[bytes, ...], mine: dict[tuple[bytes, ...], Any], theirs: dict[tuple[bytes, ...], Any],
                  within: float) -> bool:
    parent = key[:-1]
    if parent and parent not in theirs:
        return True  # its parent is itself in one tree only: counted there
    kept = [n.token.logprob for k, n in theirs.items() if k[:-1] == parent]
    return bool(kept) and abs(mine[key].token.logprob - min(kept)) <= within


def compare_records(a: Run | RunSet, b: Run | RunSet, tolerance: Tolerance, *, name: str = "run",
                    sides: tuple[str, str] = ("A", "B")) -> list[Comparison]:
    """Runs compared one to one: a run with a run, a set's runs in their order with the other's."""
    if isinstance(a, RunSet) != isinstance(b, RunSet) or a.kind is not b.kind:
        raise ValueError(f"a {a.kind.value} record cannot be compared with a {b.kind.value} record")
    if isinstance(a, Run) and isinstance(b, Run):
        return [compare_runs(a, b, tolerance, name=name, sides=sides)]
    assert isinstance(a, RunSet) and isinstance(b, RunSet)
    if a.kind is RunKind.CHOICES:
        return [compare_choices(a, b, tolerance, name=name, sides=sides)]
    if len(a.runs) != len(b.runs):
        raise ValueError(f"the two sets hold {len(a.runs)} and {len(b.runs)} runs")
    return [compare_runs(x, y, tolerance, name=f"{name}[{n}]", sides=sides)
            for n, (x, y) in enumerate(zip(a.runs, b.runs), 1)]


def compare_choices(a: RunSet, b: RunSet, t: Tolerance, *, name: str = "choices",
                    sides: tuple[str, str] = ("A", "B")) -> Comparison:
    """Two sets of weighed answers (`predict --choice`): the same answers, the same winner (unless
    the two best shares lie within --share-points of each other in both, a near-tie either engine
    may break), each answer's share within --share-points, each figure exact or a bound in both.
    Each answer is a position: its summed logprob in A and in B."""
    from tokviz.measures.choices import verdict as weigh_verdict

    va, vb = weigh_verdict(a), weigh_verdict(b)
    names_a, names_b = [w.choice for w in va.choices], [w.choice for w in vb.choices]
    positions = tuple(Position(index=n, text=x.choice, logprob_a=x.logprob, logprob_b=y.logprob, tokens_a=x.tokens,
                               tokens_b=y.tokens) for n, (x, y) in enumerate(zip(va.choices, vb.choices)))
    requests = request_differences(a.runs[0], b.runs[0])
    extra = {"choices": {"a": va.to_dict(), "b": vb.to_dict()}}
    base = Comparison(name=name, kind=RunKind.CHOICES.value, label_a=label(a.runs[0]), label_b=label(b.runs[0]),
                      positions=positions, steps_a=len(names_a), steps_b=len(names_b), agree=0, fork=None,
                      verdict=Verdict.IDENTICAL, reasons=(), tolerance=t, requests=requests, extra=extra,
                      prompt=a.runs[0].prompt, sides=sides)
    if names_a != names_b:
        return replace(base, verdict=Verdict.CHANGED, reasons=(f"the answers differ: {names_a!r} vs {names_b!r}",))
    if [r.steps for r in a.runs] == [r.steps for r in b.runs]:  # the same figures, bit for bit (timings aside)
        return replace(base, agree=len(names_a))
    reasons = []
    kinds = [w.choice for w, v in zip(va.choices, vb.choices) if w.exact != v.exact]
    if kinds:
        reasons.append(f"{tok.visible(kinds[0])!s} is exact in one record and a bound in the other")
    if t.identical:
        reasons.append("a replayed record must be identical")
    points = t.share_points / 100
    if va.acc != vb.acc:
        tops = [sorted(v.shares or (), reverse=True)[:2] for v in (va, vb)]
        if not all(len(s) == 2 and s[0] - s[1] <= points for s in tops):  # not a near-tie in both
            won = ["not known" if v.acc is None else tok.visible(v.choices[v.acc].choice) for v in (va, vb)]
            reasons.append(f"the winner changed: {won[0]!s} vs {won[1]!s}")
    if va.shares is not None and vb.shares is not None:
        moves = [(abs(x - y), n) for n, (x, y) in enumerate(zip(va.shares, vb.shares))]
        far, n = max(moves)
        if far > points:
            reasons.append(f"the share of {tok.visible(names_a[n])!s} moved {far * 100:.2f} points "
                           f"({va.shares[n]:.1%} vs {vb.shares[n]:.1%}), more than --share-points {t.share_points:g}")
    else:  # bounds: compared as figures, on the logprob tolerance
        big = [p for p in positions if abs(p.delta) > t.atol]
        if big:
            reasons.append(f"|Δ logprob| {abs(big[0].delta):.3f} nats for {tok.visible(big[0].text)!s} exceeds --atol {t.atol:g}")
    agree = len(names_a) if va.acc == vb.acc else 0
    return replace(base, verdict=Verdict.CHANGED if reasons else Verdict.WITHIN_NOISE, reasons=tuple(reasons), agree=agree)


def worst(comparisons: Sequence[Comparison]) -> Verdict:
    order = [Verdict.IDENTICAL, Verdict.WITHIN_NOISE, Verdict.CHANGED]
    return max((c.verdict for c in comparisons), key=order.index, default=Verdict.IDENTICAL)


def unmatched(name: str, reason: str, tolerance: Tolerance, kind: str = "predict") -> Comparison:
    """A record with nothing to compare it with (a batch's prompt done on one side only, a golden
    whose request failed): changed, for `reason`."""
    return Comparison(name=name, kind=kind, label_a="", label_b="", positions=(), steps_a=0, steps_b=0, agree=0,
                      fork=None, verdict=Verdict.CHANGED, reasons=(reason,), tolerance=tolerance)


def with_tolerance(t: Tolerance, **changes: Any) -> Tolerance:
    return replace(t, **{k: v for k, v in changes.items() if v is not None})
