"""Golden files of two kinds: renderings compared byte for byte with the files on disk (`render
--check`), and behaviour goldens, whose own request is asked again (`tokviz check`) so the answer
can be compared with them under the noise tolerances (`measures.compare`)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from pathlib import Path

from tokviz.ground.errors import without_credentials
from tokviz.pipeline.plans import Plan, check
from tokviz.providers import registry
from tokviz.providers.base import SERVER_MODEL, Progress, Request, ScoreSpec, TreeSpec, same_server
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

@dataclass(frozen=True)
class Asked:
    """What `tokviz check` asks instead of a golden's own request, where the user says so: another
    server, model or provider, and the servers a golden may name that the user allows."""

    base_url: str | None = None
    model: str | None = None
    provider: str | None = None
    allow: tuple[str, ...] = ()
    timeout: float | None = None  # seconds per request (--timeout), else the request's default

    def overrides(self) -> bool:
        return bool(self.base_url or self.model or self.provider)


def plan_of(run: Run, *, base_url: str | None = None, replay: Path | None = None, asked: Asked | None = None) -> Plan:
    """The request that made `run`, ready to be asked again: its prompt, model, provider, settings
    (the seed actually used included), system message, and the server it came from (recorded
    without credentials), unless `asked` names another server, model or provider; `replay` answers
    it from a cassette.

    A key goes only to a server the user named: a golden that names a server of its own is asked
    there only when no key is in the environment, or when the user named that server (`--base-url`,
    the provider's variable such as OPENAI_BASE_URL, `--allow-server`); otherwise it is refused in
    one line, since a contributed golden could otherwise collect a CI secret."""
    asked = asked or Asked(base_url=base_url)
    system = next((m.content for m in run.messages if m.role == "system"), None)
    params = run.params if run.kind is not RunKind.SCORE else replace(run.params, max_tokens=max(1, run.params.max_tokens))
    recorded = run.source.get("server")
    server = asked.base_url or recorded
    if replay is None and asked.base_url is None and recorded:
        _may_ask(recorded, run.provider, asked.allow)
    if replay is not None:
        name = registry.REPLAY
    elif not asked.overrides():
        name = run.provider
    else:
        own = registry.spec(run.provider).claims_base_url
        name = registry.resolve(asked.model or run.model, server if (asked.base_url or own) else None, asked.provider)
    model = asked.model or run.model
    if asked.base_url and not asked.model and not registry.spec(run.provider).claims_base_url:
        model = SERVER_MODEL  # a golden of an in-process model asked of a server: the model it serves
    if name not in (run.provider, registry.REPLAY):
        params = replace(params, options={})  # -O settings belong to the provider that recorded them
    request = Request(prompt=run.prompt, model=model, params=params, system=system, base_url=server)
    if asked.timeout is not None:
        request = replace(request, timeout=asked.timeout)
    registry.spec(name)  # a record of a provider that is not installed: one line naming it
    check(request, registry.spec(name), allow_empty=True)
    return Plan(request=request, provider=name, replay=replay)


def _may_ask(server: str, provider: str, allow: tuple[str, ...]) -> None:
    from tokviz.ground import environment
    from tokviz.ground.errors import UsageError, keys_in_force

    if not keys_in_force():
        return  # no key in force: nothing of the user's goes to it
    spec = registry.spec(provider)
    env = environment.current().environ
    named = [*allow, *([env[spec.base_url_env]] if spec.base_url_env and env.get(spec.base_url_env) else []),
             *([spec.default_base_url] if spec.default_base_url else [])]
    if any(same_server(server, n) for n in named):
        return
    raise UsageError(f"a golden names the server {without_credentials(server)}, which you did not name: tokviz sends "
                     "your key only to servers you name",
                     hint=f"ask it with --allow-server {without_credentials(server)} (or --base-url URL to ask another)")


def request_key(p: Plan) -> str:
    """A short digest of everything a plan asks: an answer kept under it answers only this request."""
    import hashlib

    r = p.request
    return hashlib.sha1(repr((p.provider, r.prompt, r.model, r.system, r.params, r.base_url)).encode("utf-8",
                                                                                                   "surrogatepass")).hexdigest()[:10]


def rerun(record: Run | RunSet, *, asked: Asked | None = None, replay: Path | None = None,
          progress: Progress | None = None) -> Run | RunSet:
    """The record made again from its own request(s) (or what `asked` names instead): a generation,
    a scored text, a tree, or each run of a set."""
    if isinstance(record, RunSet) and record.kind is RunKind.CHOICES:  # the same answers weighed again, together
        from tokviz.pipeline.choices import weigh

        first = record.runs[0]
        p = plan_of(replace(first, params=replace(first.params, max_tokens=1)), asked=asked, replay=replay)
        return weigh(p, [r.source.get("choice", r.text) for r in record.runs], progress=progress)
    if isinstance(record, RunSet):
        return RunSet(kind=record.kind, runs=tuple(_rerun(r, asked, replay, progress) for r in record.runs))
    return _rerun(record, asked, replay, progress)


def _rerun(run: Run, asked: Asked | None, replay: Path | None, progress: Progress | None) -> Run:
    from tokviz.pipeline import runs, trees

    p = plan_of(run, asked=asked, replay=replay)
    if run.kind is RunKind.SCORE:
        exact = "one token at a time" in run.source.get("scoring", "")
        return runs.score(p, run.text, spec=ScoreSpec(exact=exact), progress=progress)
    if run.kind is RunKind.TREE and run.tree is not None:
        t = run.tree
        spec = TreeSpec(depth=t.depth, branch=t.branch, min_prob=t.min_prob, max_nodes=t.max_nodes, complete=t.complete,
                        parallel="decoded together" in (t.approximation or ""))
        return trees.tree(p, spec, progress=progress)
    return runs.predict(p, progress=progress)
