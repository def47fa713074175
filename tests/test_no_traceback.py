"""A broken file never produces a traceback: hypothesis throws junk at the whole compile stage."""

from __future__ import annotations

import shutil
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.compile import compile_app

PACK = Path(__file__).resolve().parents[1] / "examples" / "manufacturing_pack"
SEED_FILES = [
    *sorted(str(p.relative_to(PACK)) for p in PACK.rglob("*.yaml") if "schemas" not in p.parts),
    "data/people.csv",
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz") / "pack"
    shutil.copytree(PACK, root)
    return root


def mutate(text: str, data: st.DataObject) -> str:
    lines = text.splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        if not lines:
            break
        i = data.draw(st.integers(0, len(lines) - 1))
        op = data.draw(
            st.sampled_from(
                ["delete", "duplicate", "indent", "dedent", "junk", "swap", "truncate", "replace"]
            )
        )
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "indent":
            lines[i] = "  " + lines[i]
        elif op == "dedent":
            lines[i] = lines[i][2:]
        elif op == "junk":
            junk = data.draw(st.text(alphabet=string.printable + "：中&*!|>{}[]", max_size=12))
            pos = data.draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:pos] + junk + lines[i][pos:]
        elif op == "swap" and len(lines) > 1:
            j = data.draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "truncate":
            lines[i] = lines[i][: data.draw(st.integers(0, len(lines[i])))]
        elif op == "replace":
            word = data.draw(
                st.sampled_from(
                    [
                        "true",
                        "no",
                        "[]",
                        "{}",
                        "''",
                        "~",
                        "-1",
                        "1e309",
                        "x" * 50,
                        "&a",
                        "*a",
                        "!!binary",
                        "'unterminated",
                        '"a\\q"',
                        "@",
                        "`",
                        "%",
                    ]
                )
            )
            if ":" in lines[i]:
                key = lines[i].split(":", 1)[0]
                lines[i] = f"{key}: {word}"
    return "\n".join(lines) + "\n"


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_pack_never_raises(workspace: Path, data: st.DataObject) -> None:
    rel = data.draw(st.sampled_from(SEED_FILES))
    original = (PACK / rel).read_text(encoding="utf-8")
    target = workspace / rel
    try:
        target.write_text(mutate(original, data), encoding="utf-8")
        result = compile_app(workspace)  # must not raise
        for d in result.diagnostics.items:
            assert d.line >= 1 and d.col >= 1
            assert d.message.en and d.message.zh
        if result.app is None:
            assert result.diagnostics.has_errors()
    finally:
        target.write_text(original, encoding="utf-8")


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.text(max_size=300),
    kind=st.sampled_from(["forms/x.yaml", "flows/x.yaml", "approvals/x.yaml", "app.yaml"]),
)
def test_random_text_never_raises(workspace: Path, text: str, kind: str) -> None:
    target = workspace / kind
    original = target.read_text(encoding="utf-8") if target.exists() else None
    try:
        target.write_text(text, encoding="utf-8", errors="surrogatepass")
        result = compile_app(workspace)
        assert result.app is None or not result.diagnostics.has_errors()
    finally:
        if original is None:
            target.unlink()
        else:
            target.write_text(original, encoding="utf-8")
