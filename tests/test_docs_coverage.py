"""Docs coverage: every schema key, step kind, field type, function and diagnostic code is
documented, and the generated pages equal what the code generates today."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from engine.cli.functions import groups, render_markdown, run_example
from engine.cli.main import main
from engine.config.reference_text import FIELD_EXAMPLES, STEP_EXAMPLES
from engine.config.schema_docs import branches, render_reference, walk
from engine.config.schemas import FIELD_TYPES, KINDS, schema_for
from engine.expressions.functions import FUNCTION_DOCS
from engine.functions import DOMAIN_FUNCTION_DOCS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
ENGINE = ROOT / "engine"
CODE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

# Calls that emit a diagnostic (or an expression error shown as one), with the position of
# their code argument: Diagnostics.report/error/warning, CompileContext.report/error/warning/
# unknown/check_names, the loader's and check_schema's helpers, the expression errors.
EMITTERS: dict[str, tuple[int, ...]] = {
    "report": (3,),
    "error": (1, 2),
    "warning": (1, 2),
    "unknown": (5,),
    "check_names": (4,),
    "Diagnostic": (4,),
    "add": (1,),
    "fail": (0,),
    "_fail": (0,),
    "ExpressionError": (0,),
    "ExpressionWarning": (0,),
    "EvaluationError": (0,),
}
# where those calls are diagnostics (elsewhere error/warning/add are loggers, HTTP refusals…)
SCANNED = ("config", "compile", "expressions", "functions", "model")


# ---- the generated pages are current ------------------------------------------------------


def test_function_reference_is_current() -> None:
    assert (DOCS / "functions.md").read_text(encoding="utf-8") == render_markdown("en"), (
        "docs/functions.md is stale: run seamline functions --format markdown > docs/functions.md"
    )


def test_yaml_reference_is_current() -> None:
    assert (DOCS / "yaml-reference.md").read_text(encoding="utf-8") == render_reference()


def test_functions_command_prints_text_and_markdown() -> None:
    text = CliRunner().invoke(main, ["--lang", "en", "functions"])
    assert text.exit_code == 0, text.output
    assert "add_workdays(d, n)" in text.output and "→  2026-10-08" in text.output
    md = CliRunner().invoke(main, ["functions", "--format", "markdown"])
    assert md.output == render_markdown("en")
    zh = CliRunner().invoke(main, ["--lang", "zh", "functions"])
    assert "d 之后第 n 个工作日" in zh.output


# ---- every function: signature, example that runs ----------------------------------------


def test_every_function_has_a_signature_and_a_working_example() -> None:
    for _en, _zh, functions, docs in groups():
        assert sorted(docs) == sorted(functions), "every function needs a FunctionDoc"
        for name, doc in docs.items():
            assert doc.signature.startswith(name + "("), name
            assert name + "(" in doc.example, name
            run_example(doc)  # raises when the example is wrong


def test_every_function_is_in_the_page() -> None:
    page = (DOCS / "functions.md").read_text(encoding="utf-8")
    assert _missing_functions(page) == []
    assert "error:" not in page


def _missing_functions(page: str) -> list[str]:
    docs = {**FUNCTION_DOCS, **DOMAIN_FUNCTION_DOCS}
    return [
        name for name, doc in docs.items() if f"`{doc.signature}`".replace("|", "\\|") not in page
    ]


def test_a_missing_function_is_caught() -> None:
    page = (DOCS / "functions.md").read_text(encoding="utf-8")
    stub = "\n".join(line for line in page.splitlines() if "`add_workdays(" not in line)
    assert _missing_functions(stub) == ["add_workdays"]


# ---- every schema key, field type and step kind ------------------------------------------


def _schema_keys() -> Iterator[tuple[str, str]]:
    for kind in KINDS:
        schema = schema_for(kind)
        for row in walk(schema):
            yield kind, row[0]
        for definition in schema.get("definitions", {}).values():
            item = definition.get("items", definition)
            for _k, then in branches(item):
                for row in walk(then):
                    yield kind, row[0]
            for row in walk(definition):
                yield kind, row[0]


def _undocumented_keys(page: str) -> list[str]:
    return sorted({f"{kind}: {key}" for kind, key in _schema_keys() if f"| `{key}` |" not in page})


def test_every_schema_key_is_in_the_reference() -> None:
    assert _undocumented_keys((DOCS / "yaml-reference.md").read_text(encoding="utf-8")) == []


def test_a_missing_key_is_caught() -> None:
    page = (DOCS / "yaml-reference.md").read_text(encoding="utf-8")
    stub = page.replace("| `calendar.workdays` |", "| `calendar.work_days` |")
    assert _undocumented_keys(stub) == ["app: calendar.workdays"]


def _step_kinds() -> list[str]:
    steps = schema_for("flow")["definitions"]["steps"]["items"]
    return [kind for kind, _ in branches(steps)]


def test_every_step_kind_and_field_type_has_a_section_and_an_example() -> None:
    page = (DOCS / "yaml-reference.md").read_text(encoding="utf-8")
    assert _step_kinds() == ["call", "if", "set", "create", "notify", "transition", "wait"]
    for kind in _step_kinds():
        assert f"#### `{kind}`" in page, kind
        assert kind in STEP_EXAMPLES, kind
    for kind in FIELD_TYPES:
        assert f"#### `type: {kind}`" in page, kind
        assert kind in FIELD_EXAMPLES, kind


def test_a_field_key_is_described_once_not_per_type() -> None:
    page = (DOCS / "yaml-reference.md").read_text(encoding="utf-8")
    assert page.count("Name shown to people; (long_text)") == 0
    assert page.count("| `label` | text | yes | Name shown to people |") >= 1
    date_min = re.search(r"#### `type: date`.*?\| `min` \| ([^|]+) \|", page, re.S)
    assert date_min is not None and "date" in date_min.group(1)  # not "whole number"


def test_behaviour_sections_are_in_the_reference() -> None:
    page = (DOCS / "yaml-reference.md").read_text(encoding="utf-8")
    for title in (
        "### Webhook signing",
        "### What `call` sends and keeps",
        "### Editing while approving",
        "### Which time a window counts",
    ):
        assert title in page
    assert "X-Seamline-Signature" in page and "HMAC-SHA256" in page
    assert "created_at" in page


def test_field_examples_compile(make_app: Any) -> None:
    fields = "\n".join(
        "  " + line for name in FIELD_EXAMPLES for line in FIELD_EXAMPLES[name].splitlines()
    )
    files = {
        "forms/customer.yaml": "title: Customer\nfields:\n  name: {type: text, label: Name}\n",
        "forms/thing.yaml": "title: Thing\nfields:\n  promised_date: {type: date, label: P}\n"
        + fields.replace("  desired_date:", "  desired_date:", 1)
        + "\n",
    }
    result = make_app(files)
    errors = [(d.line, d.code, d.message.en) for d in result.diagnostics.errors]
    assert errors == []


# ---- every diagnostic code ----------------------------------------------------------------


def _strings(node: ast.AST | None, names: dict[str, set[str]]) -> set[str]:
    """The code strings an argument can be: a constant, either side of ``a if c else b``, or
    a local variable assigned such values in the same function."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value} if CODE.match(node.value) else set()
    if isinstance(node, ast.IfExp):
        return _strings(node.body, names) | _strings(node.orelse, names)
    if isinstance(node, ast.Name):
        return names.get(node.id, set())
    return set()


def _assigned(function: ast.AST) -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for node in ast.walk(function):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names.setdefault(target.id, set()).update(_strings(node.value, {}))
                elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    for part, value in zip(target.elts, node.value.elts, strict=False):
                        if isinstance(part, ast.Name):
                            names.setdefault(part.id, set()).update(_strings(value, {}))
    return names


def _helpers(tree: ast.AST) -> dict[str, set[int]]:
    """Functions (and classes, by their __init__) taking a ``code`` parameter: the position
    of that parameter in a call — helpers such as ``_report(ctx, doc, line, name, code, …)``."""
    found: dict[str, set[int]] = {}
    for node in ast.walk(tree):
        target, function = None, None
        if isinstance(node, ast.FunctionDef) and node.name != "__init__":
            target, function = node.name, node
        elif isinstance(node, ast.ClassDef):
            init = [n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"]
            if init:
                target, function = node.name, init[0]
        if target is None or function is None:
            continue
        params = [a.arg for a in function.args.posonlyargs + function.args.args]
        if params and params[0] in ("self", "cls"):
            params = params[1:]
        if "code" in params:
            found.setdefault(target, set()).add(params.index("code"))
    return found


def _callee(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Attribute):
        owner = func.value
        if isinstance(owner, ast.Name) and "log" in owner.id.lower():
            return None  # log.error(...), logger.warning(...)
        return func.attr
    return func.id if isinstance(func, ast.Name) else None


def codes_in(source: str, helpers: dict[str, set[int]] | None = None) -> set[str]:
    """The diagnostic codes a module's emitting calls pass."""
    tree = ast.parse(source)
    emitters = {name: set(at) for name, at in EMITTERS.items()}
    for name, at in (helpers if helpers is not None else _helpers(tree)).items():
        emitters.setdefault(name, set()).update(at)
    found: set[str] = set()
    scopes: list[ast.AST] = [
        n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    for scope in [tree, *scopes]:
        names = _assigned(scope) if scope is not tree else {}
        for node in ast.walk(scope):
            if not isinstance(node, ast.Call):
                continue
            name = _callee(node)
            if name is None or name not in emitters:
                continue
            args: list[ast.AST | None] = [
                node.args[i] if i < len(node.args) else None for i in sorted(emitters[name])
            ]
            args += [k.value for k in node.keywords if k.arg == "code"]
            for arg in args:
                found |= _strings(arg, names)
    return found


def engine_codes() -> set[str]:
    sources = [
        path.read_text(encoding="utf-8")
        for folder in SCANNED
        for path in sorted((ENGINE / folder).rglob("*.py"))
    ]
    helpers: dict[str, set[int]] = {}
    for source in sources:
        for name, at in _helpers(ast.parse(source)).items():
            helpers.setdefault(name, set()).update(at)
    found: set[str] = set()
    for source in sources:
        found |= codes_in(source, helpers)
    return found


def documented_codes(page: str) -> set[str]:
    return set(re.findall(r"^\| `([a-z0-9-]+)` \|", page, re.M))


def _undocumented_codes(page: str, codes: Iterable[str]) -> list[str]:
    known = documented_codes(page)
    return sorted(c for c in codes if c not in known)


def test_every_diagnostic_code_is_documented() -> None:
    codes = engine_codes()
    assert {"unknown-role", "unknown-key", "expr-syntax", "calendar-ends-soon"} <= codes
    assert len(codes) > 80  # the scan finds the codes, not nothing
    page = (DOCS / "diagnostics.md").read_text(encoding="utf-8")
    assert _undocumented_codes(page, codes) == [], "add a row to docs/diagnostics.md"


def test_every_documented_code_has_a_meaning_and_a_fix() -> None:
    page = (DOCS / "diagnostics.md").read_text(encoding="utf-8")
    for line in page.splitlines():
        if re.match(r"^\| `[a-z0-9-]+` \|", line):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            assert len(cells) == 3 and all(cells), line


def test_a_missing_code_is_caught() -> None:
    stub = """
def check(ctx, doc):
    code = "brand-new-code" if doc else "other-new-code"
    ctx.error(doc, ("x",), code, Text("m", "m"))
    ctx.warning(doc, ("y",), "unknown-role", Text("m", "m"))
    log.error("not-a-code")
"""
    codes = codes_in(stub)
    assert codes == {"brand-new-code", "other-new-code", "unknown-role"}
    page = (DOCS / "diagnostics.md").read_text(encoding="utf-8")
    assert _undocumented_codes(page, codes) == ["brand-new-code", "other-new-code"]
