"""The one data model: a `Run` is everything a provider told us, and everything a view needs.

Every command produces or reads a `Run`, and everything after the provider works on a `Run` alone,
so a saved run re-renders offline, years later, byte for byte. That is why the JSON form is
versioned, validated on the way in, and deterministic on the way out (fixed key order, floats
rounded to fixed precision, no timestamps): it doubles as a golden file.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from tokviz import __version__
from tokviz import tokens as tok
from tokviz.errors import RunFileError

SCHEMA = "tokviz.run"
SCHEMA_VERSION = 1
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

    def __post_init__(self) -> None:
        # Normalised on the way in, so a run read back from its JSON is equal to the one written.
        object.__setattr__(self, "logprob", _num(max(self.logprob, LOGPROB_FLOOR)))

    @property
    def prob(self) -> float:
        return math.exp(self.logprob)

    @property
    def label(self) -> str:
        """What a view shows for this token alone (visible whitespace, escaped fragments)."""
        if not self.raw and self.text:
            return tok.visible(self.text)
        return tok.display(self.raw) or "∅"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "bytes": self.raw.hex(),
            "logprob": self.logprob,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Token:
        return cls(
            text=str(d["text"]),
            raw=bytes.fromhex(d["bytes"]),
            logprob=float(d["logprob"]),
            id=None if d.get("id") is None else int(d["id"]),
        )


@dataclass(frozen=True)
class Step:
    """One generated position: the token chosen, and the top alternatives the model weighed.

    `alternatives` is the provider's top-k list, best first. It usually contains the chosen token
    too (always, under greedy decoding); when sampling picks something outside the top-k it does
    not, which is why the chosen token's own logprob is kept on `chosen`, never looked up here.
    """

    chosen: Token
    alternatives: tuple[Token, ...] = ()

    def others(self) -> tuple[Token, ...]:
        """The alternatives that were not chosen: the roads not taken at this step."""
        return tuple(a for a in self.alternatives if not same_token(a, self.chosen))

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen.to_dict(),
            "alternatives": [a.to_dict() for a in self.alternatives],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Step:
        return cls(
            chosen=Token.from_dict(d["chosen"]),
            alternatives=tuple(Token.from_dict(a) for a in d["alternatives"]),
        )


def same_token(a: Token, b: Token) -> bool:
    """The same token of the vocabulary (by id when both have one), whatever its logprob."""
    if a.id is not None and b.id is not None:
        return a.id == b.id
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "temperature", _num(self.temperature))
        object.__setattr__(self, "top_p", _num(self.top_p))

    def to_dict(self) -> dict[str, Any]:
        return {
            "top_k": self.top_k,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "mode": self.mode,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Params:
        return cls(
            top_k=int(d["top_k"]),
            max_tokens=int(d["max_tokens"]),
            temperature=float(d["temperature"]),
            top_p=float(d["top_p"]),
            seed=None if d.get("seed") is None else int(d["seed"]),
            mode=str(d["mode"]),
        )


@dataclass(frozen=True)
class Message:
    role: str
    content: str


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
    def from_dict(cls, d: dict[str, Any]) -> TreeNode:
        return cls(parent=int(d["parent"]), token=Token.from_dict(d["token"]), depth=int(d["depth"]),
                   cum_logprob=float(d["cum_logprob"]), completion=tuple(Token.from_dict(t) for t in d.get("completion", [])))


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
    kind: str = "predict"
    tool_version: str = __version__
    nodes: tuple[TreeNode, ...] = ()
    tree: dict[str, Any] = field(default_factory=dict)  # how the tree was grown: depth, branch, limits, cut

    def __post_init__(self) -> None:
        object.__setattr__(self, "timings", {k: _num(v, 4) for k, v in sorted(self.timings.items())})
        object.__setattr__(self, "usage", {k: int(v) for k, v in sorted(self.usage.items())})

    @property
    def text(self) -> str:
        """The generated text, with characters split across tokens joined whole."""
        return tok.join(s.chosen.raw for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "tool_version": self.tool_version,
            "kind": self.kind,
            "provider": self.provider,
            "model": self.model,
            "params": self.params.to_dict(),
            "prompt": self.prompt,
            "messages": [{"role": m.role, "content": m.content} for m in self.messages],
            "finish_reason": self.finish_reason,
            "usage": dict(self.usage),
            "timings": dict(self.timings),
            "steps": [s.to_dict() for s in self.steps],
            **({"tree": dict(self.tree), "nodes": [n.to_dict() for n in self.nodes]} if self.kind == "tree" else {}),
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
        out = json.dumps(data, ensure_ascii=False, indent=2, allow_nan=False)[:-2]
        for key, items in lists.items():
            body = ",\n".join("    " + json.dumps(x, ensure_ascii=False, allow_nan=False) for x in items)
            out += f',\n  "{key}": [\n{body}\n  ]' if items else f',\n  "{key}": []'
        return out + "\n}\n"

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "input") -> Run:
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            raise RunFileError(f"{source} is not a tokviz run (no \"schema\": \"{SCHEMA}\" field)")
        version = d.get("schema_version")
        if not isinstance(version, int) or version < 1:
            raise RunFileError(f"{source} has no valid schema_version")
        if version > SCHEMA_VERSION:
            raise RunFileError(
                f"{source} was written by a newer tokviz (run schema {version}; this tokviz "
                f"{__version__} reads up to {SCHEMA_VERSION})",
                hint="upgrade tokviz: pip install -U tokviz",
            )
        try:
            return cls(
                provider=str(d["provider"]),
                model=str(d["model"]),
                prompt=str(d["prompt"]),
                params=Params.from_dict(d["params"]),
                steps=tuple(Step.from_dict(s) for s in d["steps"]),
                nodes=tuple(TreeNode.from_dict(n) for n in d.get("nodes", [])),
                tree=dict(d.get("tree", {})),
                messages=tuple(Message(str(m["role"]), str(m["content"])) for m in d["messages"]),
                finish_reason=d.get("finish_reason"),
                usage={str(k): int(v) for k, v in d.get("usage", {}).items()},
                timings={str(k): float(v) for k, v in d.get("timings", {}).items()},
                kind=str(d.get("kind", "predict")),
                tool_version=str(d.get("tool_version", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise RunFileError(f"{source} is a damaged tokviz run ({type(err).__name__}: {err})") from None

    @classmethod
    def from_json(cls, text: str, *, source: str = "input") -> Run:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise RunFileError(f"{source} is not valid JSON (line {err.lineno}: {err.msg})") from None
        return cls.from_dict(data, source=source)


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

    def to_json(self, extra: dict[str, Any] | None = None) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n"


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
