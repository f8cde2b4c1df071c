"""The package map holds: imports between top-level packages follow the data flow, no cycle.

Read from the source with ``ast``, so a test needs nothing installed and sees every module,
also those a run would not import. Each import is classed by where it sits: ``module`` (runs
when the module is imported), ``function`` (runs when the function does) and ``typing``
(under ``if TYPE_CHECKING:``, never runs). Dynamic imports (``finpulse.context.tool``,
``importlib``) are not seen: they are how a command loads a developer tool.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ("finpulse", "ingest", "model", "alerts", "stream", "dashboard", "app")
PACKAGES = (*RUNTIME, "tools")

# Who may import whom, at import time or inside a function. News flows ingest -> stream
# (model) -> alerts -> dashboard, and a stage imports the ones before it. finpulse/ is what
# every stage shares and imports none; alerts/ is a core that imports only finpulse/, driven
# by the stream's worker, alerter and embedded runner; app/ (the `finpulse` command and the
# assembled settings) wires them all; tools/ drives anything from outside.
ALLOWED: dict[str, set[str]] = {
    "finpulse": set(),
    "ingest": {"finpulse"},
    "model": {"finpulse"},
    "alerts": {"finpulse"},
    "stream": {"finpulse", "ingest", "model", "alerts"},
    "dashboard": {"finpulse", "ingest", "model", "alerts", "stream"},
    "app": {"finpulse", "ingest", "model", "alerts", "stream", "dashboard"},
    "tools": set(RUNTIME),
}
# Entry points besides the root command, which start a process the way it does, so they load
# the assembled settings (importing module -> imported module; never imported themselves).
ENTRY_POINTS = {
    ("finpulse.__main__", "app.cli"),  # python -m finpulse
    ("stream.worker", "app.settings"),  # python -m stream.worker, in main()
}
# The one name a runtime package may import against the flow, for annotations only: the type
# of the assembled settings that the root command hands down. (A static graph tool that
# counts TYPE_CHECKING imports draws these as edges to app/; none of them ever runs.)
TYPE_ONLY = {"app.settings"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


class _Imports(ast.NodeVisitor):
    """Every import of one module: (imported module, kind, line)."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.module, self.found = module, []
        self.package = module if is_package else module.rpartition(".")[0]
        self._kind = "module"

    def _inside(self, kind: str, nodes: list[ast.stmt]) -> None:
        outer, self._kind = self._kind, kind if self._kind != "typing" else "typing"
        for node in nodes:
            self.visit(node)
        self._kind = outer

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._inside("function", node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        test = ast.unparse(node.test)
        if test in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            self._inside("typing", node.body)
            self._inside(self._kind, node.orelse)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found += [(alias.name, self._kind, node.lineno) for alias in node.names]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:  # relative: from the package, one level up per extra dot
            base = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
            name = ".".join([*base, node.module] if node.module else base)
        else:
            name = node.module or ""
        self.found.append((name, self._kind, node.lineno))


def imports_between_packages() -> list[tuple[str, str, str, str]]:
    """(importing module, imported module, kind, where) for every import that crosses from
    one top-level package into another."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = _module_name(path)
            visitor = _Imports(module, path.name == "__init__.py")
            visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
            for name, kind, line in visitor.found:
                target = name.split(".")[0]
                if target in PACKAGES and target != package:
                    where = f"{path.relative_to(ROOT)}:{line}"
                    found.append((module, name, kind, where))
    return found


def _top(module: str) -> str:
    return module.split(".")[0]


def _runs(imports: list[tuple[str, str, str, str]]) -> list[tuple[str, str, str, str]]:
    """The imports that run (not type-only), entry points left out."""
    return [i for i in imports if i[2] != "typing" and (i[0], i[1]) not in ENTRY_POINTS]


def test_the_scan_sees_the_known_edges():
    edges = {(_top(m), _top(n)) for m, n, _, _ in imports_between_packages()}
    assert {("stream", "ingest"), ("dashboard", "stream"), ("ingest", "finpulse")} <= edges
    assert {("app", p) for p in RUNTIME if p != "app"} <= edges


def test_no_cycle_between_top_level_packages():
    graph: dict[str, set[str]] = defaultdict(set)
    for module, name, _, _ in _runs(imports_between_packages()):
        graph[_top(module)].add(_top(name))
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        cycle = exc.args[1]
        raise AssertionError(f"import cycle: {' <- '.join(cycle)}") from None


def test_imports_follow_the_flow():
    wrong = [
        f"{where}: {module} ({kind}) imports {name}"
        for module, name, kind, where in _runs(imports_between_packages())
        if _top(name) not in ALLOWED[_top(module)]
    ]
    assert not wrong, "imports against the flow:\n" + "\n".join(wrong)


def test_type_only_imports_against_the_flow_name_only_the_assembled_settings():
    wrong = [
        f"{where}: {module} imports {name} for typing"
        for module, name, kind, where in imports_between_packages()
        if kind == "typing" and _top(name) not in ALLOWED[_top(module)] and name not in TYPE_ONLY
    ]
    assert not wrong, "\n".join(wrong)


def test_runtime_packages_never_import_tools_at_module_level():
    wrong = [
        f"{where}: {module} imports {name}"
        for module, name, kind, where in imports_between_packages()
        if _top(module) in RUNTIME and _top(name) == "tools" and kind == "module"
    ]
    assert not wrong, "load a tool with finpulse.context.tool() instead:\n" + "\n".join(wrong)


def test_every_listed_entry_point_is_still_there():
    imports = {(module, name) for module, name, _, _ in imports_between_packages()}
    assert imports >= ENTRY_POINTS, f"stale: {sorted(ENTRY_POINTS - imports)}"


def test_the_runtime_modules_load_neither_app_nor_tools():
    """What the scan cannot see (an importlib call, a re-export) shows in a real import."""
    modules = ["finpulse.context", "ingest.cli", "model.cli", "alerts.cli", "stream.cli",
               "stream.worker", "stream.faust_app", "dashboard.cli", "dashboard.app"]  # fmt: skip
    code = (
        f"import sys; import {', '.join(modules)}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('app', 'tools')))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
