"""The one data model: a `Run` is everything a provider told us, and everything a view needs.

Every command produces or reads a `Run`, and everything after the provider works on a `Run` alone,
so a saved run re-renders offline, years later, byte for byte. That is why the JSON form is
versioned, validated on the way in, and deterministic on the way out (fixed key order, floats
rounded to fixed precision, no timestamps): it doubles as a golden file.
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass, field
from typing import Any

from tokviz import __version__
from tokviz.ground.errors import RunFileError
from tokviz.run import codec
from tokviz.run import figures as said
from tokviz.run import tokens as tok

SCHEMA = "tokviz.run"
# The newest schema this tokviz writes and reads. A run is written with the lowest version that holds
# it (fields added later say so: `codec.since`), so a run using none of them stays version 1, byte for
# byte, and older tokviz versions still read it.
SCHEMA_VERSION = 3
# Log-probabilities below this are clamped: JSON has no -Infinity, and e^-9999 is 0 to any reader.
LOGPROB_FLOOR = -9999.0
_FLOAT_DIGITS = 6


def _num(x: float, digits: int = _FLOAT_DIGITS) -> float:
    """A float rounded for stable JSON (and -0.0 folded into 0.0, which prints differently)."""
    return round(float(x), digits) + 0.0


@dataclass(frozen=True)
class Token:
    """One token: exact bytes (authoritative), the provider's text for it, its log-probability.

    `text` differs from the bytes' decoding only for special tokens such as ``<eos>``, which have
    no bytes of their own, and for providers that report no bytes.
    """

    text: str
    raw: bytes
    logprob: float
    id: int | None = None
    # True when the provider's report of this token lost information (a server that sends U+FFFD,
    # '' or 'token_id:N' for a token ending inside a character): `raw` is then what it sent, not the truth.
    lossy: bool = field(default=False, metadata=codec.since(2))
    # True for an alternative a grammar (--json-schema) forbade at this step: the model's own figure,
    # which the constrained decoder could not choose.
    forbidden: bool = field(default=False, metadata=codec.since(3))

    def __post_init__(self) -> None:
        # Normalised on the way in, so a run read back from its JSON is equal to the one written.
        lp = float(self.logprob)
        if lp != lp:
            raise ValueError("a logprob is NaN")
        if lp > 1e-6:
            raise ValueError(f"a logprob is above 0 ({lp:g}): not a probability")
        object.__setattr__(self, "logprob", _num(max(min(lp, 0.0), LOGPROB_FLOOR)))

    @property
    def prob(self) -> float:
        return math.exp(self.logprob)

    @property
    def label(self) -> str:
        """What a view shows for this token alone (visible whitespace, escaped fragments)."""
        mark = "≈" if self.lossy else ""
        if not self.raw and self.text:
            return mark + tok.visible(self.text)
        return mark + (tok.display(self.raw) or "∅")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "text": self.text,
            "bytes": self.raw.hex(),
            "logprob": self.logprob,
        }
        if self.lossy:
            out["lossy"] = True
        if self.forbidden:
            out["forbidden"] = True
        return out

    @classmethod
    def from_dict(cls, d: Any) -> Token:
        d = codec.obj(d, "a token")
        value = d.get("logprob")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError("a logprob must be a number")
        return cls(text=codec.text(d, "text"), raw=bytes.fromhex(codec.text(d, "bytes")), logprob=float(value),
                   id=codec.whole(d, "id", default=None, low=0, where="a token's "), lossy=d.get("lossy") is True,
                   forbidden=d.get("forbidden") is True)


@dataclass(frozen=True)
class Watched:
    """A token asked for with `--watch`, at one position: its logprob and its rank among the whole
    vocabulary where the provider saw the whole row; where the provider lists only its top k and
    the token is not among them, `bound` is set and `token.logprob` is an upper bound (the least
    likely listed token's), never a figure."""

    token: Token
    rank: int | None = None
    bound: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"token": self.token.to_dict()}
        if self.rank is not None:
            out["rank"] = self.rank
        if self.bound:
            out["bound"] = True
        return out

    @classmethod
    def from_dict(cls, d: Any) -> Watched:
        d = codec.obj(d, "a watched token")
        return cls(token=Token.from_dict(d.get("token")), rank=codec.whole(d, "rank", default=None, low=1, where="a watched token's "),
                   bound=d.get("bound") is True)


@dataclass(frozen=True)
class Step:
    """One generated position: the token chosen, and the top alternatives the model weighed.

    `alternatives` is the provider's top-k list, best first. It usually contains the chosen token
    too (always, under greedy decoding); when sampling picks something outside the top-k it does
    not, which is why the chosen token's own logprob is kept on `chosen`, never looked up here.
    """

    chosen: Token
    alternatives: tuple[Token, ...] = ()
    # Where the chosen token stood among the whole vocabulary (1 = the model's first choice), when
    # the provider can know it (a scored text on the local model); None otherwise.
    rank: int | None = field(default=None, metadata=codec.since(2))
    # The tokens asked for with --watch, in the order asked, at this position.
    watched: tuple[Watched, ...] = field(default=(), metadata=codec.since(3))

    def others(self) -> tuple[Token, ...]:
        """The alternatives that were not chosen: the roads not taken at this step."""
        return tuple(a for a in self.alternatives if not same_token(a, self.chosen))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "chosen": self.chosen.to_dict(),
            "alternatives": [a.to_dict() for a in self.alternatives],
        }
        if self.rank is not None:
            out["rank"] = self.rank
        if self.watched:
            out["watched"] = [w.to_dict() for w in self.watched]
        return out

    @classmethod
    def from_dict(cls, d: Any) -> Step:
        d = codec.obj(d, "each step")
        if not isinstance(d.get("alternatives"), list):
            raise TypeError("each step needs a chosen token and a list of alternatives")
        return cls(chosen=Token.from_dict(d["chosen"]), alternatives=tuple(Token.from_dict(a) for a in d["alternatives"]),
                   rank=codec.whole(d, "rank", default=None, low=1, where="a step's "),
                   watched=tuple(Watched.from_dict(w) for w in codec.listed(d, "watched", [])))


def same_token(a: Token, b: Token) -> bool:
    """The same token of the vocabulary (by id when both have one), whatever its logprob.

    Without ids, two lossy tokens that a server reported with the same text ('' or U+FFFD) may
    be different tokens: they count as the same only if their logprobs agree too.
    """
    if a.id is not None and b.id is not None:
        return a.id == b.id
    if a.lossy or b.lossy:
        return a.raw == b.raw and a.text == b.text and a.logprob == b.logprob
    return a.raw == b.raw and a.text == b.text


@dataclass(frozen=True)
class Params:
    """What was asked of the provider. `seed` is the seed actually used, so sampled runs replay."""

    top_k: int = 5
    max_tokens: int = 20
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    mode: str = "raw"  # "raw": continue the text; "chat": wrap it in the model's chat format
    # Provider-specific settings given with -O key=value, as the provider checked them.
    options: dict[str, Any] = field(default_factory=dict)
    # Tokens whose figure is recorded at every step (--watch): a token's text, or "id:N".
    watch: tuple[str, ...] = field(default=(), metadata=codec.since(3))
    # The JSON schema the answer was constrained to (--json-schema / --json-object), as canonical JSON.
    json_schema: str | None = field(default=None, metadata=codec.since(3))

    def __post_init__(self) -> None:
        object.__setattr__(self, "temperature", _num(self.temperature))
        object.__setattr__(self, "top_p", _num(self.top_p))
        object.__setattr__(self, "options", dict(sorted(self.options.items())))
        object.__setattr__(self, "watch", tuple(self.watch))

    def to_dict(self) -> dict[str, Any]:
        out = {
            "top_k": self.top_k,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "mode": self.mode,
        }
        if self.options:  # left out when empty, so runs without options keep their old bytes
            out["options"] = dict(self.options)
        if self.watch:
            out["watch"] = list(self.watch)
        if self.json_schema is not None:
            out["json_schema"] = self.json_schema
        return out

    @classmethod
    def from_dict(cls, d: Any) -> Params:
        d = codec.obj(d, "'params'")
        options = d.get("options") or {}
        if not isinstance(options, dict) or not all(isinstance(v, (str, int, float, bool)) for v in options.values()):
            raise ValueError("params.options must map names to plain values")
        if any(isinstance(v, float) and not math.isfinite(v) for v in options.values()):
            raise ValueError("params.options must hold finite numbers")
        if d.get("mode") not in ("raw", "chat"):
            raise ValueError(f"params.mode must be 'raw' or 'chat', not {d.get('mode')!r}")
        return cls(top_k=codec.whole(d, "top_k", low=0, where="params."),
                   max_tokens=codec.whole(d, "max_tokens", low=0, where="params."),
                   temperature=codec.number(d, "temperature", low=0, where="params."),
                   top_p=codec.number(d, "top_p", low=0, where="params."),
                   seed=codec.whole(d, "seed", default=None, where="params."),
                   mode=codec.text(d, "mode"), options={str(k): v for k, v in options.items()},
                   watch=tuple(_watch_list(d.get("watch"))), json_schema=codec.text(d, "json_schema", optional=True))


def _watch_list(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError("params.watch must be a list of token texts")
    return value


@dataclass(frozen=True)
class Message:
    role: str
    content: str

    @classmethod
    def from_dict(cls, d: Any) -> Message:
        if not isinstance(d, dict) or not isinstance(d.get("role"), str) or not isinstance(d.get("content"), str):
            raise TypeError("each message needs a role and a content string")
        return cls(d["role"], d["content"])


class RunKind(str, enum.Enum):
    """What a record holds: one generation, a tree of continuations, several samples, a comparison."""

    PREDICT = "predict"
    TREE = "tree"
    SCORE = "score"  # a given text, teacher-forced: every token's logprob and rank
    SAMPLES = "samples"
    COMPARISON = "comparison"
    SCORE_COMPARISON = "score-comparison"  # one text scored by two models (or servers)
    CHOICES = "choices"  # given answers to one prompt, each scored (predict --choice)


@dataclass(frozen=True)
class Branch:
    """One branch of an exploration (`tokviz explore`): where the user forked and how the model went on.

    `fork` is the node the user picked (an alternative the model did not choose, or -1 for the
    first run from the prompt); the model then generated down to `tip`, greedily at temperature 0
    or sampled with these settings and `seed`. Kept so a reopened exploration shows each branch as
    it was made, and so a sampled branch can be re-made.
    """

    tip: int
    fork: int = -1
    temperature: float = 0.0
    top_k: int = 0  # sampling limited to the k most likely tokens; 0: no limit
    top_p: float = 1.0
    seed: int | None = None
    finish: str | None = None  # "stop", "length" or "cancelled"

    def to_dict(self) -> dict[str, Any]:
        return {"tip": self.tip, "fork": self.fork, "temperature": _num(self.temperature), "top_k": self.top_k,
                "top_p": _num(self.top_p), "seed": self.seed, "finish": self.finish}

    @classmethod
    def from_dict(cls, d: Any) -> Branch:
        if not isinstance(d, dict):
            raise TypeError("each branch must be an object")
        finish = d.get("finish")
        if finish not in (None, "stop", "length", "cancelled"):
            raise ValueError(f"unknown branch finish {finish!r}")
        temperature, top_p = float(d.get("temperature", 0.0)), float(d.get("top_p", 1.0))
        if not (math.isfinite(temperature) and temperature >= 0 and 0 < top_p <= 1):
            raise ValueError("a branch's temperature must be ≥ 0 and its top_p in (0, 1]")
        return cls(tip=int(d["tip"]), fork=int(d.get("fork", -1)), temperature=temperature,
                   top_k=int(d.get("top_k", 0)), top_p=top_p,
                   seed=None if d.get("seed") is None else int(d["seed"]), finish=finish)


@dataclass(frozen=True)
class TreeInfo:
    """How a tree was grown (the `TreeSpec` asked for) and how it ended."""

    depth: int
    branch: int
    min_prob: float = 0.0
    max_nodes: int = 200
    complete: int = 0
    cut: str | None = None  # "max-nodes" | "interrupted" | None
    forced_tokens: int = 0
    evaluated_tokens: int | None = None  # tokens a local model evaluated
    requests: int | None = None  # requests a server answered
    approximation: str | None = None  # what is not exact about this tree, said in the run
    # an exploration's branches (tokviz explore); empty for a grown tree
    branches: tuple[Branch, ...] = field(default=(), metadata=codec.since(2))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"depth": self.depth, "branch": self.branch, "min_prob": self.min_prob,
                               "max_nodes": self.max_nodes, "complete": self.complete, "cut": self.cut}
        for key in ("evaluated_tokens", "requests"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out["forced_tokens"] = self.forced_tokens
        if self.approximation is not None:
            out["approximation"] = self.approximation
        if self.branches:
            out["branches"] = [b.to_dict() for b in self.branches]
        return out

    @classmethod
    def from_dict(cls, d: Any, nodes: int = 0) -> TreeInfo:
        """How a tree of `nodes` nodes was grown; its branches must point inside it."""
        d = codec.obj(d, "tree")
        for branch in d.get("branches") or []:
            tip, fork = (branch.get("tip"), branch.get("fork", -1)) if isinstance(branch, dict) else (None, None)
            if not (isinstance(tip, int) and 0 <= tip < nodes and isinstance(fork, int) and -1 <= fork <= tip):
                raise ValueError(f"branch {branch!r} points outside the tree's {nodes} nodes")
        cut = d.get("cut")
        if cut not in (None, "max-nodes", "interrupted"):
            raise ValueError(f"unknown tree cut {cut!r}")

        def opt_int(key: str) -> int | None:
            return None if d.get(key) is None else int(d[key])

        return cls(depth=int(d["depth"]), branch=int(d["branch"]), min_prob=float(d.get("min_prob", 0.0)),
                   max_nodes=int(d.get("max_nodes", 200)), complete=int(d.get("complete", 0)), cut=cut,
                   forced_tokens=int(d.get("forced_tokens", 0)), evaluated_tokens=opt_int("evaluated_tokens"),
                   requests=opt_int("requests"),
                   approximation=None if d.get("approximation") is None else str(d["approximation"]),
                   branches=tuple(Branch.from_dict(b) for b in d.get("branches") or ()))


@dataclass(frozen=True)
class TreeNode:
    """One node of a `tokviz tree`: a token after one exact path from the prompt.

    `parent` is the index of the parent node in `Run.nodes` (-1: a child of the prompt). The
    token's logprob is its own, given its path; `completion` is the greedy continuation of a leaf
    (`--complete N`), so each branch reads as text.
    """

    parent: int
    token: Token
    depth: int  # 1 for the prompt's children
    cum_logprob: float  # log of the path's probability, this token included
    completion: tuple[Token, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "cum_logprob", _num(max(self.cum_logprob, LOGPROB_FLOOR)))

    @property
    def cum_prob(self) -> float:
        return math.exp(self.cum_logprob)

    def to_dict(self) -> dict[str, Any]:
        return {"parent": self.parent, "depth": self.depth, "cum_logprob": self.cum_logprob,
                "token": self.token.to_dict(), "completion": [t.to_dict() for t in self.completion]}

    @classmethod
    def from_dict(cls, d: Any, index: int) -> TreeNode:
        """Node `index` of a tree: its parent must come before it."""
        d = codec.obj(d, f"node {index}")
        parent = d.get("parent")
        if isinstance(parent, bool) or not isinstance(parent, int) or not -1 <= parent < index:
            raise ValueError(f"node {index} has parent {parent!r}: a node's parent must come before it")
        completion = d.get("completion", [])
        if not isinstance(completion, list):
            raise TypeError(f"node {index}: 'completion' must be a list")
        return cls(parent=parent, token=Token.from_dict(d["token"]), depth=int(d["depth"]),
                   cum_logprob=float(d["cum_logprob"]), completion=tuple(Token.from_dict(t) for t in completion))


@dataclass(frozen=True)
class Run:
    """A complete record of one generation (see the module docstring).

    A tree (`kind == "tree"`) is a Run too: `nodes` holds every expanded token, and `steps` the
    greedy path through the tree (what `predict` would have generated), with each step's
    alternatives, so every view of a predict run also works on a tree.
    """

    provider: str
    model: str
    prompt: str
    params: Params
    steps: tuple[Step, ...]
    messages: tuple[Message, ...] = ()
    finish_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    kind: RunKind = RunKind.PREDICT
    tool_version: str = __version__
    nodes: tuple[TreeNode, ...] = ()
    tree: TreeInfo | None = None  # how the tree was grown (tree runs only)
    # The answer's text as the server streamed it, kept when some tokens are lossy (their bytes
    # cannot rebuild it); None when the tokens' bytes are the text.
    content: str | None = field(default=None, metadata=codec.since(2))
    # What the provider is and how its figures were made: {"dialect": "vllm", "logprobs": "…",
    # "lossy": "…"}; empty for providers whose figures need no comment.
    source: dict[str, str] = field(default_factory=dict, metadata=codec.since(2))

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", RunKind(self.kind))
        if self.kind is RunKind.TREE and self.tree is None:
            raise ValueError("a tree run needs its TreeInfo")
        object.__setattr__(self, "timings", {k: _num(v, 4) for k, v in sorted(self.timings.items())})
        object.__setattr__(self, "usage", {k: int(v) for k, v in sorted(self.usage.items())})

    @property
    def text(self) -> str:
        """The generated text, with characters split across tokens joined whole (or, when the
        provider's tokens were lossy, the text it streamed)."""
        if self.content is not None:
            return self.content
        return tok.join(s.chosen.raw for s in self.steps)

    def since_values(self) -> int:
        """Scored runs came with schema 2 (fields say their own versions: `codec.since`)."""
        return 2 if self.kind is RunKind.SCORE else 1

    @property
    def figures(self) -> str:
        """What the log-probabilities are, in a few words every view shows (see `run.figures`)."""
        return said.of(self.source)

    @property
    def figures_note(self) -> str:
        """`figures` as the views say it."""
        return said.say(self.figures)

    @property
    def lossy_tokens(self) -> int:
        return sum(1 for s in self.steps for t in (s.chosen, *s.alternatives) if t.lossy)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": codec.version(self),
            "tool_version": self.tool_version,
            "kind": self.kind.value,
            "provider": self.provider,
            "model": self.model,
            "params": self.params.to_dict(),
            "prompt": self.prompt,
            "text": self.text,  # derived from the steps (or the streamed content), for scripts; not read back
            "messages": [{"role": m.role, "content": m.content} for m in self.messages],
            "finish_reason": self.finish_reason,
            "usage": dict(self.usage),
            "timings": dict(self.timings),
            **({"content": self.content} if self.content is not None else {}),
            **({"source": dict(self.source)} if self.source else {}),
            "steps": [s.to_dict() for s in self.steps],
            **({"tree": self.tree.to_dict(), "nodes": [n.to_dict() for n in self.nodes]}
               if self.tree is not None and self.kind is RunKind.TREE else {}),
        }

    def to_json(self, extra: dict[str, Any] | None = None) -> str:
        """Deterministic JSON: the same run always gives the same bytes (golden-file material).

        The record is indented, but each step sits on one line of its own: a golden-file diff
        then shows one changed line per changed token, and the steps go through json's C encoder
        (an indented dump runs the pure-Python one, which cost more than the rest of a batch
        prompt's bookkeeping).
        """
        data = self.to_dict()
        lists = {key: data.pop(key) for key in ("steps", "nodes") if key in data}
        data.update(extra or {})  # derived figures (e.g. "stats") that readers may ignore
        out = codec.dumps(data, ensure_ascii=False, indent=2, allow_nan=False)[:-2]
        for key, items in lists.items():
            body = ",\n".join("    " + codec.dumps(x, ensure_ascii=False, allow_nan=False) for x in items)
            out += f',\n  "{key}": [\n{body}\n  ]' if items else f',\n  "{key}": []'
        return out + "\n}\n"

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "input") -> Run:
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            raise RunFileError(f"{source} is not a tokviz run (no \"schema\": \"{SCHEMA}\" field)")
        version = d.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise RunFileError(f"{source} has no valid schema_version")
        if version > SCHEMA_VERSION:
            raise RunFileError(
                f"{source} was written by a newer tokviz (run schema {version}; this tokviz "
                f"{__version__} reads up to {SCHEMA_VERSION})",
                hint="upgrade tokviz: pip install -U tokviz",
            )
        try:
            kind = _run_kind(d.get("kind", "predict"))
            nodes = tuple(TreeNode.from_dict(n, i) for i, n in enumerate(codec.listed(d, "nodes", [])))
            return cls(provider=codec.text(d, "provider"), model=codec.text(d, "model"), prompt=codec.text(d, "prompt"),
                       params=Params.from_dict(d.get("params")),
                       steps=tuple(Step.from_dict(s) for s in codec.listed(d, "steps")),
                       nodes=nodes, tree=TreeInfo.from_dict(d.get("tree"), len(nodes)) if kind is RunKind.TREE else None,
                       messages=tuple(Message.from_dict(m) for m in codec.listed(d, "messages")),
                       finish_reason=codec.text(d, "finish_reason", optional=True),
                       usage={k: int(v) for k, v in codec.figures(d, "usage").items()},
                       timings=codec.figures(d, "timings"), kind=kind, tool_version=str(d.get("tool_version", "")),
                       content=codec.text(d, "content", optional=True),
                       source={str(k): str(v) for k, v in codec.obj(d.get("source") or {}, "'source'").items()})
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as err:
            raise RunFileError(f"{source} is a damaged tokviz run ({type(err).__name__}: {err})") from None

    @classmethod
    def from_json(cls, text: str, *, source: str = "input") -> Run:
        record = load_record(text, source=source)
        if not isinstance(record, Run):
            raise RunFileError(f"{source} holds {record.kind.value}, not one run")
        return record


def _run_kind(value: Any) -> RunKind:
    if value not in (RunKind.PREDICT.value, RunKind.TREE.value, RunKind.SCORE.value):
        raise ValueError(f"a run's kind is 'predict', 'tree' or 'score', not {value!r}")
    return RunKind(value)


@dataclass(frozen=True)
class Tokenization:
    """How a model's tokenizer splits a text: what `tokviz tokenize` shows."""

    model: str
    tokenizer: str  # e.g. "o200k_base (tiktoken)" or "gemma-3-270m (GGUF vocabulary)"
    text: str
    tokens: tuple[Token, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "tokenizer": self.tokenizer,
            "text": self.text,
            "count": len(self.tokens),
            "tokens": [{"id": t.id, "text": t.text, "bytes": t.raw.hex()} for t in self.tokens],
        }

    def to_json(self) -> str:
        return codec.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n"


def greedy_indices(nodes: tuple[TreeNode, ...] | list[TreeNode]) -> list[int]:
    """Indices of the path through a tree that always takes the most likely child (first on ties)."""
    kids: dict[int, list[int]] = {}
    for i, n in enumerate(nodes):
        kids.setdefault(n.parent, []).append(i)
    out, parent = [], -1
    while parent in kids:
        parent = max(kids[parent], key=lambda i: (nodes[i].token.logprob, -i))
        out.append(parent)
    return out


def greedy_path(nodes: tuple[TreeNode, ...] | list[TreeNode]) -> tuple[Step, ...]:
    """That path as steps whose alternatives are each node's siblings: what `predict` would generate."""
    return tuple(
        Step(chosen=nodes[i].token, alternatives=tuple(n.token for n in nodes if n.parent == nodes[i].parent))
        for i in greedy_indices(nodes)
    )


SET_SCHEMAS = {RunKind.SAMPLES: "tokviz.samples", RunKind.COMPARISON: "tokviz.comparison",
               RunKind.SCORE_COMPARISON: "tokviz.score-comparison", RunKind.CHOICES: "tokviz.choices"}
SET_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class RunSet:
    """Several runs drawn as one picture: the samples of one prompt, a comparison of prompts,
    models and temperatures, or the answers to one prompt weighed (each a scored run). Each run is complete, so a saved set re-renders offline."""

    kind: RunKind
    runs: tuple[Run, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", RunKind(self.kind))
        if self.kind not in SET_SCHEMAS:
            raise ValueError(f"a run set is samples or a comparison, not {self.kind.value}")
        if self.kind is RunKind.SCORE_COMPARISON and (len(self.runs) != 2 or any(r.kind is not RunKind.SCORE for r in self.runs)):
            raise ValueError("a score comparison holds two scored runs")
        if self.kind is RunKind.CHOICES and (len(self.runs) < 2 or any(r.kind is not RunKind.SCORE for r in self.runs)
                                             or len({r.prompt for r in self.runs}) != 1):
            raise ValueError("a set of choices holds two or more scored answers to one prompt")

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SET_SCHEMAS[self.kind], "schema_version": SET_SCHEMA_VERSION, "tool_version": __version__,
                "runs": [r.to_dict() for r in self.runs]}

    def to_json(self) -> str:
        return codec.dumps(self.to_dict(), ensure_ascii=False, indent=1, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "input") -> RunSet:
        kind = next(k for k, schema in SET_SCHEMAS.items() if d.get("schema") == schema)
        version = d.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise RunFileError(f"{source} has no valid schema_version")
        if version > SET_SCHEMA_VERSION:
            raise RunFileError(f"{source} was written by a newer tokviz (schema {version})",
                               hint="upgrade tokviz: pip install -U tokviz")
        runs = d.get("runs")
        if not isinstance(runs, list) or not runs:
            raise RunFileError(f"{source} holds no runs", hint="comparisons saved before tokviz 0.2 carry only figures")
        loaded = tuple(Run.from_dict(r, source=f"{source} (run {n})") for n, r in enumerate(runs, 1))
        try:
            return cls(kind=kind, runs=loaded)
        except ValueError as err:
            raise RunFileError(f"{source} is a damaged tokviz record ({err})") from None


def load_record(text: str, *, source: str = "input") -> Run | RunSet:
    """Any record tokviz writes: a run (predict, tree) or a set of runs (samples, comparison)."""
    if not text.strip():
        raise RunFileError(f"{source} is empty, not a tokviz record")
    source = codec.printable(source)
    try:
        data = codec.loads(text)
    except json.JSONDecodeError as err:
        raise RunFileError(f"{source} is not valid JSON (line {err.lineno}: {err.msg})") from None
    except ValueError as err:  # Infinity, a number past a float, 5,000 digits, a lone surrogate
        raise RunFileError(f"{source} is not a tokviz record: {str(err)[:200]}") from None
    except RecursionError:
        raise RunFileError(f"{source} is nested too deeply to be a tokviz run") from None
    if isinstance(data, dict) and data.get("schema") in SET_SCHEMAS.values():
        return RunSet.from_dict(data, source=source)
    return Run.from_dict(data, source=source)
