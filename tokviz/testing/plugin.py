"""The pytest plugin: behaviour goldens beside the tests that make them.

    def test_capital(tokviz_golden):
        tokviz_golden.check("The capital of France is", max_tokens=12)

The first run with `--tokviz-update` writes the golden beside the test module, as
pytest-regressions and syrupy keep theirs (`goldens/<module>/<name>.json`); later runs generate
again and compare under the noise tolerances (`[tool.tokviz.check]` in pyproject.toml, or keyword
arguments): a golden that is within noise passes, one that changed fails with the comparison's
table, and its side-by-side HTML page is written for the CI artifact (`--tokviz-report DIR`,
`tokviz-report/` under the rootdir by default). `--tokviz-update` rewrites only what changed.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tokviz.measures.compare import Comparison
    from tokviz.run import Run, RunSet

GOLDENS = "goldens"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tokviz", "tokviz behaviour goldens")
    group.addoption("--tokviz-update", action="store_true", default=False,
                    help="write the tokviz goldens that are missing, and rewrite those that changed")
    group.addoption("--tokviz-report", metavar="DIR", default=None,
                    help="where the HTML comparison of each changed golden is written (default: tokviz-report/ under the rootdir)")


@pytest.fixture
def tokviz_golden(request: pytest.FixtureRequest) -> Golden:
    """Check a run (or a prompt, generated here) against its golden beside the test module."""
    return Golden(request)


class Golden:
    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.request = request
        self.update = bool(request.config.getoption("--tokviz-update"))
        report = request.config.getoption("--tokviz-report")
        self.report_dir = Path(report) if report else Path(str(request.config.rootpath)) / "tokviz-report"

    def path(self, name: str | None = None) -> Path:
        """goldens/<module>/<name>.json beside the test module; the name defaults to the test's."""
        module = Path(str(self.request.node.path))
        stem = name or self.request.node.name
        return module.parent / GOLDENS / module.stem / (file_stem(stem) + ".json")

    def _legacy(self, name: str | None) -> Path:
        """Where tokviz before 0.4 kept this golden (a name that several tests could share)."""
        module = Path(str(self.request.node.path))
        stem = re.sub(r"[^\w.-]+", "-", name or self.request.node.name).strip("-")
        return module.parent / GOLDENS / module.stem / (stem + ".json")

    def _claim(self, path: Path) -> None:
        """One golden, one test: a second test that names the same golden fails, naming the first."""
        claims: dict[Path, str] = self.request.config.stash.setdefault(_CLAIMS, {})
        owner = claims.setdefault(path.resolve(), self.request.node.nodeid)
        if owner != self.request.node.nodeid:
            pytest.fail(f"tokviz golden {path} is already the golden of {owner}: give this test its own name "
                        "(tokviz_golden.check(..., name=...))", pytrace=False)

    def check(self, subject: Run | RunSet | str, name: str | None = None, **settings: Any) -> Comparison | None:
        """Compare `subject` (a record, or a prompt generated with `tokviz.predict(prompt, **options)`)
        with its golden. Keyword arguments that are tolerances (atol, atol_mean, tokens, near_tie,
        min_overlap, max_kl) set them; the rest are generation options."""
        from tokviz.measures.compare import GOLDEN_SIDES, Tolerance, Verdict, compare_records
        from tokviz.run import load_record

        tolerance_keys = {f.name for f in fields(Tolerance)}
        given = {k: v for k, v in settings.items() if k in tolerance_keys}
        options = {k: v for k, v in settings.items() if k not in tolerance_keys}
        path = self.path(name)
        self._claim(path)
        record = self._record(subject, options)
        if not path.exists():
            if self.update:
                return self._write(path, record, "written")
            legacy = self._legacy(name)
            if legacy != path and legacy.is_file():
                pytest.fail(f"tokviz golden {path} does not exist; {legacy.name} is its old name (one several tests "
                            f"could share): rename it, or run pytest with --tokviz-update", pytrace=False)
            pytest.fail(f"tokviz golden {path} does not exist: run pytest with --tokviz-update to write it", pytrace=False)
        comparisons = compare_records(load_record(path.read_text(encoding="utf-8"), source=str(path)), record,
                                      _tolerance(given, Path(str(self.request.config.rootpath))), name=path.name,
                                      sides=GOLDEN_SIDES)
        verdict = max(comparisons, key=lambda c: [Verdict.IDENTICAL, Verdict.WITHIN_NOISE, Verdict.CHANGED].index(c.verdict))
        if verdict.verdict is Verdict.CHANGED:
            if self.update:
                self._write(path, record, "rewritten")
                return verdict
            self._fail(path, comparisons)
        return verdict

    def _record(self, subject: Any, options: dict[str, Any]) -> Run | RunSet:
        if isinstance(subject, str):
            import tokviz

            return tokviz.predict(subject, **options)
        if options:
            raise TypeError(f"generation options ({', '.join(options)}) are for a prompt, not a record")
        from tokviz.notebook import Choices

        if isinstance(subject, Choices):  # tokviz.choices(...): its record
            return subject.record
        return subject  # type: ignore[no-any-return]

    def _write(self, path: Path, record: Run | RunSet, what: str) -> None:
        from tokviz.ground.files import write_atomic

        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, record.to_json().encode("utf-8"))
        self.request.node.warn(pytest.PytestWarning(f"tokviz golden {path} {what}: review it, then commit it"))

    def _fail(self, path: Path, comparisons: list[Comparison]) -> None:
        from tokviz.ground.files import write_atomic
        from tokviz.views import diff as view
        from tokviz.views.table import plain_text

        self.report_dir.mkdir(parents=True, exist_ok=True)
        report = self.report_dir / (file_stem(self.request.node.nodeid) + ".html")
        write_atomic(report, view.page(comparisons).encode("utf-8"))
        pytest.fail(f"tokviz golden {path} changed (HTML comparison: {report}; --tokviz-update rewrites it)\n"
                    + plain_text(view.view(comparisons), width=120), pytrace=False)


_CLAIMS = pytest.StashKey[dict]()
_PLAIN = re.compile(r"[A-Za-z0-9_.\-\[\]]")
MAX_STEM = 120


def file_stem(name: str) -> str:
    """A file name for a test id or golden name, one to one: letters, digits, `_ . - [ ]` stay,
    every other character becomes %XX per UTF-8 byte (so `x/y`, `x-y`, `x y` and `x:y` stay
    apart); a leading dot or dash is escaped too (never a hidden or option-like file), and a name
    too long for a file system keeps its start and gains a hash of the whole."""
    import hashlib

    out = "".join(ch if _PLAIN.fullmatch(ch) else "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
                  for ch in name)
    if out[:1] in (".", "-"):
        out = f"%{ord(out[0]):02X}{out[1:]}"
    out = out or "%00"
    if len(out) > MAX_STEM:
        out = out[:MAX_STEM - 13] + "~" + hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return out


def _tolerance(given: dict[str, Any], root: Path) -> Any:
    """The keyword tolerances over the project's [tool.tokviz.check] over the measured defaults."""
    from tokviz.ground.settings import project_settings
    from tokviz.measures.compare import Tolerance

    return Tolerance.from_settings(project_settings("check", root)[0], given)
