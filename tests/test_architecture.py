"""The import contract: the layers of docs/design.md, kept by a test instead of by good intentions.

Every `import` in tokviz/ (at the top of a module or inside a function, where heavy imports wait)
is an edge from one module to another. Each module belongs to one layer, given by its package; an
edge may only go down the table below, and a few pairs on the same floor never meet. The rules
are written here once, as data; docs/design.md explains them.
"""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent / "tokviz"

# Layer → the module prefixes it holds, top to bottom. `tokviz` itself (the package face: its
# version, which any module may read, and `tokviz.predict`, the notebook API) counts as the face.
LAYERS: dict[str, tuple[str, ...]] = {
    "face": ("tokviz.cli", "tokviz.commands", "tokviz.__main__", "tokviz.testing"),
    "workflows": ("tokviz.batch", "tokviz.explore", "tokviz.notebook"),
    "pipeline": ("tokviz.pipeline",),
    "views": ("tokviz.views",),
    "providers": ("tokviz.providers",),
    "measures": ("tokviz.measures",),
    "model": ("tokviz.run",),
    "ground": ("tokviz.ground",),
}
# What each layer may import besides itself (its own floor included).
MAY_IMPORT: dict[str, set[str]] = {
    "face": {"workflows", "pipeline", "views", "providers", "measures", "model", "ground"},
    "workflows": {"pipeline", "views", "providers", "measures", "model", "ground"},
    "pipeline": {"providers", "measures", "model", "ground"},
    "views": {"measures", "model", "ground"},
    "providers": {"measures", "model", "ground"},
    "measures": {"model", "ground"},
    "model": {"ground"},
    "ground": set(),
}
# Pairs that share a floor but never import each other: each workflow stands alone, and each
# provider package is a plugin that could have come from another distribution.
# The provider packages: nothing outside a provider's own package imports it (the registry finds
# them through entry points), so adding one touches its package and one entry point.
PROVIDER_PACKAGES = ("tokviz.providers.local", "tokviz.providers.openai", "tokviz.providers.replay",
                     "tokviz.providers.hf", "tokviz.providers.gemini")
APART = [("tokviz.batch", "tokviz.explore"), ("tokviz.batch", "tokviz.notebook"), ("tokviz.explore", "tokviz.notebook"),
         *((a, b) for i, a in enumerate(PROVIDER_PACKAGES) for b in PROVIDER_PACKAGES[i + 1:])]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_only(tree: ast.AST) -> set[int]:
    """Line numbers of imports under `if TYPE_CHECKING:` (names for annotations, never run)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            lines.update(n.lineno for stmt in node.body for n in ast.walk(stmt) if isinstance(n, (ast.Import, ast.ImportFrom)))
    return lines


def imports(path: Path, root: Path, *, types: bool = True) -> Iterator[tuple[str, int]]:
    """Every tokviz module `path` imports (top level, in functions, and, unless `types` is false,
    under TYPE_CHECKING), with its line."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = set() if types else _type_only(tree)
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:  # `from tokviz.x import y`: the module y, or a name in tokviz.x
                yield f"{base}.{alias.name}", node.lineno


def layer(module: str) -> str | None:
    if module == "tokviz":
        return "face"
    for name, prefixes in LAYERS.items():
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return name
    return None


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def resolve(target: str, known: set[str]) -> str | None:
    """The tokviz module an import names (`tokviz.run.Run` is the module `tokviz.run`)."""
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def violations(root: Path) -> list[str]:
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    known = set(files)
    found = []
    for module, path in sorted(files.items()):
        own = layer(module)
        if own is None:
            found.append(f"{module}: in no layer (add its package to LAYERS)")
            continue
        for raw, line in imports(path, root):
            target = resolve(raw, known) if raw.startswith("tokviz") else None
            if target is None or target == module or target == "tokviz":  # the package face: its version
                continue
            where = f"{module}:{line} imports {target}"
            theirs = layer(target)
            if theirs is None:
                found.append(f"{where}, which is in no layer")
            elif theirs != own and theirs not in MAY_IMPORT[own]:
                found.append(f"{where}: {own} may not import {theirs}")
            for a, b in APART:
                if (_within(module, a) and _within(target, b)) or (_within(module, b) and _within(target, a)):
                    found.append(f"{where}: {a} and {b} never import each other")
            for pkg in PROVIDER_PACKAGES:
                if _within(target, pkg) and not _within(module, pkg):
                    found.append(f"{where}: only {pkg} itself imports {pkg}")
    return sorted(set(found))


def cycles(root: Path) -> list[list[str]]:
    """Import circles between modules (Tarjan's strongly connected components of more than one).
    Imports for annotations only (under TYPE_CHECKING) are no circle: they never run."""
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    known = set(files)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets = {resolve(raw, known) for raw, _ in imports(path, root, types=False) if raw.startswith("tokviz")}
        # a package's face importing its own modules (and they their package) is not a circle
        graph[module] = {t for t in targets if t and t != module and not _within(t, module) and not _within(module, t)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_import_follows_the_layers() -> None:
    assert violations(ROOT) == []


def test_no_import_circles() -> None:
    assert cycles(ROOT) == []


@pytest.mark.parametrize(("module", "line", "expected"), [
    ("run/tokens.py", "from tokviz.views import table", "tokviz.run.tokens:1 imports tokviz.views.table: model may not import views"),
    ("views/dot.py", "from tokviz.providers import registry", "views may not import providers"),
    ("batch/state.py", "from tokviz.explore import session", "tokviz.batch and tokviz.explore never import each other"),
    ("pipeline/goldens.py", "import tokviz.providers.local", "only tokviz.providers.local itself imports tokviz.providers.local"),
    ("providers/openai/dialects.py", "from tokviz.providers.local import chat",
     "tokviz.providers.local and tokviz.providers.openai never import each other"),
])
def test_the_contract_fails_when_a_rule_is_broken(tmp_path: Path, module: str, line: str, expected: str) -> None:
    """The checker is not vacuous: one upward (or sideways) import in a copy of the tree is named."""
    copy = tmp_path / "tokviz"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(line + "\n" + target.read_text(encoding="utf-8"), encoding="utf-8")
    found = violations(copy)
    assert any(expected in v for v in found), found


def test_a_circle_is_found(tmp_path: Path) -> None:
    copy = tmp_path / "tokviz"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "run" / "tokens.py").write_text("from tokviz.run import record\n" + (copy / "run" / "tokens.py").read_text())
    assert ["tokviz.run.record", "tokviz.run.tokens"] in cycles(copy)
