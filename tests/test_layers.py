"""The floor plan holds: which package may import which (docs/architecture.md), read from the
source with ``ast``, so a bad arrow fails here before anyone has to find it in review.

* every import between packages of ``engine`` follows :data:`ALLOWED` (a package may always
  import itself);
* there is no cycle between modules (through top-level imports) — and so none between packages;
* an import inside a function is allowed only where :data:`LOCAL_IMPORTS` lists it, with why;
* the compile stage imports no SQLAlchemy or httpx;
* the run-time floors never load yaml or jsonschema (checked in a fresh interpreter through
  ``sys.modules``): only compiling a configuration reads YAML.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "engine"

# package -> the packages it may import (besides itself). Bottom floors first.
ALLOWED: dict[str, set[str]] = {
    "model": set(),
    "assets": set(),
    "expressions": {"model"},
    "functions": {"model", "expressions"},
    "config": {"model"},
    "compile": {"model", "expressions", "functions", "config", "assets"},
    "store": {"model"},
    "accounts": {"model", "store"},
    "outbox": {"model", "store"},
    "deploy": {"model", "config", "compile", "store", "outbox"},
    "forms": {"model", "expressions", "functions", "store"},
    "dashboards": {"model", "expressions", "store"},
    "insights": {"model", "expressions", "store"},
    "flows": {"model", "expressions", "functions", "store", "outbox", "forms", "assets"},
    "tracking": {"model", "expressions", "store", "outbox", "forms", "flows", "accounts"},
    "runtime": {
        "model", "expressions", "functions", "config", "compile", "store", "outbox",
        "deploy", "forms", "flows", "dashboards", "insights", "tracking", "accounts",
    },
    "web": {
        "model", "expressions", "functions", "config", "compile", "store", "outbox", "deploy",
        "forms", "flows", "dashboards", "insights", "tracking", "accounts", "runtime", "assets",
    },
    "demo": {
        "model", "expressions", "config", "compile", "store", "outbox", "deploy", "forms",
        "flows", "accounts", "runtime", "web", "assets",
    },
    "cli": {
        "model", "expressions", "functions", "config", "compile", "store", "outbox", "deploy",
        "forms", "flows", "dashboards", "insights", "tracking", "accounts", "runtime", "web",
        "demo", "assets",
    },
}  # fmt: skip

# (module, imported module) -> why the import waits until the function runs
LOCAL_IMPORTS: dict[tuple[str, str], str] = {
    ("engine.flows.approvals.service", "engine.flows.approvals.document"): (
        "the approval PDF loads fontTools and fpdf2: only when an approval is sealed"
    ),
    ("engine.flows.approvals.service", "engine.flows.approvals.pdf"): (
        "the approval PDF loads fontTools and fpdf2: only when an approval is sealed"
    ),
    ("engine.cli.testing", "engine.cli.config_tests"): (
        "config tests load the run-time floors; `seamline validate` must start without them"
    ),
}
# packages whose commands load lower floors when they run (never their own package lazily):
# `seamline validate` starts in a quarter of a second because the CLI does not import
# SQLAlchemy, Starlette or httpx until a command needs them (bench/bench_validate.py)
LAZY_PACKAGES: dict[str, str] = {
    "cli": "a command loads the floors it runs on when it runs",
    "demo": "the demo is started by a command; it loads the web floor when it serves",
}

COMPILE_NEVER = ("sqlalchemy", "httpx")
RUNTIME_FLOORS = (
    "model", "expressions", "functions", "store", "outbox", "forms", "flows", "dashboards",
    "insights", "tracking",
)  # fmt: skip


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the imported module, dotted (a name imported from a package counts as it)
    line: int
    local: bool  # inside a function


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(path: Path, known: set[str], root: Path = ROOT) -> Iterator[Import]:
    """Every import in ``path`` of a module of ``known`` (``from pkg import mod`` names the
    module itself); ``if TYPE_CHECKING:`` blocks are skipped (they never run)."""
    module = module_name(path, root)
    is_package = path.name == "__init__.py"

    def walk(node: ast.AST, local: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for stmt in child.orelse:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), local)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(module, alias.name, child.lineno, local)
            elif isinstance(child, ast.ImportFrom):
                base = _absolute(module, is_package, child)
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    yield Import(module, full if full in known else base, child.lineno, local)
            else:
                inner = local or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
                yield from walk(child, inner)

    yield from walk(ast.parse(path.read_text(encoding="utf-8")), False)


def engine_modules(root: Path = ROOT) -> dict[str, Path]:
    # engine/assets holds the shipped app folders (data: a pack's scripts are not engine modules)
    return {
        module_name(p, root): p
        for p in sorted((root / "engine").rglob("*.py"))
        if "assets" not in p.relative_to(root / "engine").parts[:1]
    }


def package_of(module: str) -> str | None:
    """``engine.forms.records`` -> ``forms``; ``engine.runtime`` -> ``runtime``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "engine" else None


def all_imports(root: Path = ROOT) -> list[Import]:
    modules = engine_modules(root)
    known = set(modules)
    return [i for path in modules.values() for i in imports_of(path, known, root)]


def arrow_violations(imports: list[Import], allowed: Mapping[str, set[str]] = ALLOWED) -> list[str]:
    out = []
    for imp in imports:
        src, dst = package_of(imp.module), package_of(imp.target)
        if src is None or dst is None or src == dst:
            continue
        if src not in allowed:
            out.append(f"{imp.module}: package {src!r} has no entry in ALLOWED")
        elif dst not in allowed[src]:
            out.append(f"{imp.module}:{imp.line} imports {imp.target} ({src} -> {dst})")
    return out


def local_violations(imports: list[Import]) -> list[str]:
    return [
        f"{i.module}:{i.line} imports {i.target} inside a function"
        for i in imports
        if i.local
        and i.target.startswith("engine")
        and (i.module, i.target) not in LOCAL_IMPORTS
        and not (
            package_of(i.module) in LAZY_PACKAGES and package_of(i.target) != package_of(i.module)
        )
    ]


def module_cycles(imports: list[Import]) -> list[list[str]]:
    """Strongly connected groups (more than one module) of the top-level import graph."""
    graph: dict[str, set[str]] = {}
    for i in imports:
        if not i.local and i.target.startswith("engine.") and i.target != i.module:
            graph.setdefault(i.module, set()).add(i.target)
            graph.setdefault(i.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


# --- the contract ---------------------------------------------------------------------------


def test_every_package_has_a_floor() -> None:
    packages = {package_of(m) for m in engine_modules()} - {None}
    assert packages <= set(ALLOWED), sorted(packages - set(ALLOWED))


def test_the_allowed_arrows_make_no_circle() -> None:
    seen: set[str] = set()
    for pkg in ALLOWED:  # bottom floors first: each may import only floors listed earlier
        assert ALLOWED[pkg] <= seen, (pkg, sorted(ALLOWED[pkg] - seen))
        seen.add(pkg)


def test_imports_follow_the_floors() -> None:
    assert arrow_violations(all_imports()) == []


def test_no_module_cycles() -> None:
    assert module_cycles(all_imports()) == []


def test_no_function_local_imports_but_the_listed() -> None:
    imports = all_imports()
    assert local_violations(imports) == []
    present = {(i.module, i.target) for i in imports if i.local}
    assert set(LOCAL_IMPORTS) <= present, sorted(set(LOCAL_IMPORTS) - present)


def test_compile_imports_no_database_or_http() -> None:
    bad = [
        f"{i.module}:{i.line} imports {i.target}"
        for i in all_imports()
        if package_of(i.module) == "compile" and i.target.split(".")[0] in COMPILE_NEVER
    ]
    assert bad == []


def test_run_time_floors_never_load_yaml_or_jsonschema() -> None:
    modules = [m for m in engine_modules() if package_of(m) in RUNTIME_FLOORS]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(sorted(n for n in ('yaml', 'jsonschema') if n in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


# --- the test fails on bad arrows (shown on a made-up tree) ----------------------------------


def _tree(tmp: Path, files: dict[str, str]) -> list[Import]:
    for rel, text in files.items():
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return all_imports(tmp)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        # each arrow the restructure removed, put back
        ("engine/model/permissions.py", "from engine.forms.validate import FieldError\n"),
        ("engine/expressions/functions.py", "from engine.functions.atp import ATP\n"),
        ("engine/store/tables.py", "from engine.dashboards.event_times import kpi\n"),
        ("engine/deploy/plan.py", "from engine.dashboards.compute import kpi_queries\n"),
        ("engine/outbox/worker.py", "from engine.flows.runner import FlowRuntime\n"),
        ("engine/outbox/worker.py", "from engine.dashboards.snapshots import x\n"),
        ("engine/config/bundle.py", "from engine.compile import compile_app\n"),
        ("engine/expressions/evaluate.py", "from engine.compile.context import x\n"),
        ("engine/forms/records.py", "from engine.flows.runner import FlowRuntime\n"),
        ("engine/flows/runner.py", "from engine.runtime import LiveApp\n"),
        ("engine/dashboards/compute.py", "from engine.forms.records import RecordService\n"),
        ("engine/tracking/codes.py", "from engine.web.security import client_ip\n"),
    ],
)
def test_a_bad_arrow_fails(tmp_path: Path, source: str, target: str) -> None:
    stub = {
        "engine/__init__.py": "",
        source: target,
        target.split()[1].replace(".", "/") + ".py": "",
    }
    problems = arrow_violations(_tree(tmp_path, stub))
    assert len(problems) == 1 and source.replace("/", ".")[:-3] in problems[0]


def test_a_cycle_and_a_hidden_local_import_fail(tmp_path: Path) -> None:
    imports = _tree(
        tmp_path,
        {
            "engine/__init__.py": "",
            "engine/forms/a.py": "from engine.forms import b\n",
            "engine/forms/b.py": "def f():\n    from engine.forms import a\n",
            "engine/forms/c.py": "import engine.forms.d\n",
            "engine/forms/d.py": "from engine.forms.c import x\n",
        },
    )
    assert module_cycles(imports) == [["engine.forms.c", "engine.forms.d"]]
    assert local_violations(imports) == [
        "engine.forms.b:2 imports engine.forms.a inside a function"
    ]
