"""Golden files of two kinds: renderings compared byte for byte with the files on disk (`render
--check`), and behaviour goldens, whose own request is asked again (`tokviz check`) so the answer
can be compared with them under the noise tolerances (`measures.compare`)."""

from __future__ import annotations

import difflib
from dataclasses import replace
from pathlib import Path

from tokviz.pipeline.plans import Plan, check
from tokviz.providers import registry
from tokviz.providers.base import Progress, Request, ScoreSpec, TreeSpec
from tokviz.run import Run, RunKind, RunSet

MAX_DIFF_LINES = 60


def diff(name: str, expected: bytes | None, actual: bytes) -> str | None:
    """None when `actual` equals `expected`; otherwise a short unified diff (or a note for binary
    files, or a missing one) to show the reader what changed."""
    if expected == actual:
        return None
    if expected is None:
        return f"{name}: missing (run with --update to write it)\n"
    try:
        old = expected.decode("utf-8").splitlines(keepends=True)
        new = actual.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return f"{name}: binary files differ ({len(expected)} bytes on disk, {len(actual)} rendered)\n"
    lines = list(difflib.unified_diff(old, new, fromfile=f"{name} (on disk)", tofile=f"{name} (rendered)", n=2))
    lines = [line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines]
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"… {len(lines) - MAX_DIFF_LINES} more diff lines\n"]
    return "".join(lines)


# --- behaviour goldens: a record's own request, asked again ---------------------------------------

def plan_of(run: Run, *, base_url: str | None = None, replay: Path | None = None) -> Plan:
    """The request that made `run`, ready to be asked again: its prompt, model, provider, settings
    (the seed actually used included), system message, and the server it came from (recorded
    without credentials) unless `base_url` names another; `replay` answers it from a cassette."""
    system = next((m.content for m in run.messages if m.role == "system"), None)
    params = run.params if run.kind is not RunKind.SCORE else replace(run.params, max_tokens=max(1, run.params.max_tokens))
    request = Request(prompt=run.prompt, model=run.model, params=params, system=system,
                      base_url=base_url or run.source.get("server"))
    name = registry.REPLAY if replay is not None else run.provider
    registry.spec(name)  # a record of a provider that is not installed: one line naming it
    check(request, registry.spec(name), allow_empty=True)
    return Plan(request=request, provider=name, replay=replay)


def rerun(record: Run | RunSet, *, base_url: str | None = None, replay: Path | None = None,
          progress: Progress | None = None) -> Run | RunSet:
    """The record made again from its own request(s): a generation, a scored text, a tree, or each
    run of a set."""
    if isinstance(record, RunSet):
        return RunSet(kind=record.kind, runs=tuple(_rerun(r, base_url, replay, progress) for r in record.runs))
    return _rerun(record, base_url, replay, progress)


def _rerun(run: Run, base_url: str | None, replay: Path | None, progress: Progress | None) -> Run:
    from tokviz.pipeline import runs, trees

    p = plan_of(run, base_url=base_url, replay=replay)
    if run.kind is RunKind.SCORE:
        exact = "one token at a time" in run.source.get("scoring", "")
        return runs.score(p, run.text, spec=ScoreSpec(exact=exact), progress=progress)
    if run.kind is RunKind.TREE and run.tree is not None:
        t = run.tree
        spec = TreeSpec(depth=t.depth, branch=t.branch, min_prob=t.min_prob, max_nodes=t.max_nodes, complete=t.complete,
                        parallel="decoded together" in (t.approximation or ""))
        return trees.tree(p, spec, progress=progress)
    return runs.predict(p, progress=progress)
