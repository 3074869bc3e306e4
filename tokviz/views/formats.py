"""The one view registry, as data: every output format, its file extensions, and which kinds of
record it can draw.

Help texts, `--format` lists, the allowed extensions of each command and the errors all come from
this table, so a new view is one row here and one renderer in `tokviz.views.export`. It imports
nothing heavy: `tokviz --help` reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tokviz.ground.errors import UsageError

PREDICT, TREE, SAMPLES, COMPARISON, SCORE = "predict", "tree", "samples", "comparison", "score"
SCORE_COMPARISON, CHOICES = "score-comparison", "choices"
KIND_NAMES = {PREDICT: "a run", TREE: "a tree", SAMPLES: "samples", COMPARISON: "a comparison", SCORE: "a scored text",
              SCORE_COMPARISON: "two scores of one text", CHOICES: "weighed answers"}


@dataclass(frozen=True)
class Format:
    name: str
    extensions: tuple[str, ...]
    description: str
    kinds: frozenset[str]  # the kinds of record (RunKind values) it can draw


FORMATS: tuple[Format, ...] = (
    Format("svg", (".svg",), "the graph, as SVG (the chart for a comparison)", frozenset({PREDICT, TREE, SAMPLES, COMPARISON, SCORE, SCORE_COMPARISON, CHOICES})),
    Format("png", (".png",), "the graph, as PNG (the chart for a comparison)", frozenset({PREDICT, TREE, SAMPLES, COMPARISON, SCORE, SCORE_COMPARISON, CHOICES})),
    Format("dot", (".dot", ".gv"), "the graph, as Graphviz DOT source", frozenset({PREDICT, TREE, SAMPLES, SCORE})),
    Format("json", (".json",), "the record itself, to re-render with `tokviz render`", frozenset({PREDICT, TREE, SAMPLES, COMPARISON, SCORE, SCORE_COMPARISON, CHOICES})),
    Format("txt", (".txt",), "the table, as plain text", frozenset({PREDICT, TREE, SAMPLES, COMPARISON, SCORE, SCORE_COMPARISON, CHOICES})),
    Format("html", (".html", ".htm"), "a self-contained page: coloured text, alternatives on hover, the graph", frozenset({PREDICT, TREE, SCORE, SAMPLES, SCORE_COMPARISON, CHOICES})),
)
BY_NAME = {f.name: f for f in FORMATS}
BY_EXTENSION = {ext: f for f in FORMATS for ext in f.extensions}
NAMES = tuple(f.name for f in FORMATS)


def for_kind(kind: str) -> tuple[Format, ...]:
    return tuple(f for f in FORMATS if kind in f.kinds)


def extensions(kind: str | None = None) -> str:
    """'.svg .png …' for help texts: every format, or those a kind of record can be drawn in."""
    return " ".join(f.extensions[0] for f in (for_kind(kind) if kind else FORMATS))


def from_path(path_name: str, suffix: str, kind: str | None = None) -> str:
    """The format a file name asks for, checked against the kind of record being written."""
    fmt = BY_EXTENSION.get(suffix.lower())
    if fmt is None:
        raise UsageError(f"cannot tell what to write for {path_name!r}: unknown extension {suffix or '(none)'!r}",
                         hint=f"use one of {' '.join(sorted(BY_EXTENSION))}")
    check(fmt.name, kind)
    return fmt.name


def check(name: str, kind: str | None) -> None:
    fmt = BY_NAME.get(name)
    if fmt is None:
        raise UsageError(f"unknown format {name!r}", hint=f"use one of {', '.join(NAMES)}")
    if kind is not None and kind not in fmt.kinds:
        raise UsageError(f"{KIND_NAMES[kind]} cannot be drawn as .{name}",
                         hint=f"{KIND_NAMES[kind]} is written as {extensions(kind)}")
