"""The PDF record of a final approval decision: Chinese text, page breaks, determinism."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from fontTools.ttLib import TTFont  # type: ignore[import-untyped]
from pypdf import PdfReader
from pypdf.generic import ArrayObject, DictionaryObject

from engine.flows.approvals import pdf as approval_pdf
from engine.flows.approvals.pdf import (
    FONT_ENV,
    ApprovalDocument,
    CJKFontNotFound,
    DecisionLine,
    find_cjk_font,
    render_approval_pdf,
)

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # 14:00 in Asia/Shanghai
CHAIN_HASH = hashlib.sha256(b"approval_decided #4711").hexdigest()
SHORT_COMMENT = "同意，库存充足"
LONG_COMMENT = ("库存充足，同意发货。价格与合同一致，付款条件为月结三十天，质保一年。" * 70)[:2000]
DECISIONS = ("approved", "rejected", "returned", "escalated", "skipped", "open")


def _line(index: int, *, long_at: int | None) -> DecisionLine:
    comment = LONG_COMMENT if index == long_at else SHORT_COMMENT
    if index % 3 == 1:
        comment = "Price matches the contract; payment terms net 30."
    return DecisionLine(
        step=f"第{index + 1}步 财务 + 仓储会签",
        approver="王芳 (wangfang)",
        decision=DECISIONS[index % len(DECISIONS)],
        at=None if DECISIONS[index % len(DECISIONS)] == "open" else T0 + timedelta(minutes=index),
        comment=comment,
        on_behalf_of="李雷 (lilei)" if index % 7 == 0 else None,
    )


def make_document(
    count: int = 60, *, long_at: int | None = 3, lang: str = "zh"
) -> ApprovalDocument:
    return ApprovalDocument(
        app_title="华东制造",
        form_title="销售订单",
        record_label="订单 SO-2026-000123",
        fields=(
            ("客户", "上海星辰机械有限公司"),
            ("金额", "¥ 128,500.00"),
            ("交货日期", "2026-03-20"),
        ),
        route="B 类（常规单）财务 + 仓储双签",
        outcome="approved",
        submitter="张伟 (zhangwei)",
        started_at=T0,
        finished_at=T0 + timedelta(hours=3),
        lines=tuple(_line(index, long_at=long_at) for index in range(count)),
        chain_hash=CHAIN_HASH,
        lang=lang,
    )


@pytest.fixture(scope="module")
def font() -> Path:
    if os.environ.get(FONT_ENV):
        pytest.skip(f"{FONT_ENV} is set; these tests use the default font search")
    try:
        return find_cjk_font()
    except CJKFontNotFound as exc:
        pytest.skip(f"no CJK font (run scripts/install-browser): {exc}")


@pytest.fixture(scope="module")
def long_pdf(font: Path) -> bytes:
    return render_approval_pdf(make_document())


def _text(data: bytes) -> tuple[list[str], str]:
    pages = [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]
    return pages, "\n".join(pages)


def _column(data: bytes, left_mm: float, right_mm: float, head: str) -> str:
    """The text drawn between two x positions on every page, the repeated column head left out."""
    parts: list[str] = []

    def visit(text: str, cm: object, tm: list[float], font: object, size: object) -> None:
        x_mm = tm[4] / 72 * 25.4
        if left_mm <= x_mm < right_mm and text.strip() not in ("", head):
            parts.append(text.strip())

    for page in PdfReader(io.BytesIO(data)).pages:
        page.extract_text(visitor_text=visit)
    return "".join(parts)


def test_renders_a_long_chinese_record_across_pages(long_pdf: bytes) -> None:
    assert long_pdf.startswith(b"%PDF-")
    pages, text = _text(long_pdf)
    assert len(pages) >= 3
    assert "订单 SO-2026-000123" in text
    assert "华东制造 审批记录" in text
    assert SHORT_COMMENT in text
    assert CHAIN_HASH in text
    assert "seamline audit verify" in text
    assert "B 类（常规单）财务 + 仓储双签" in text
    for word in ("通过", "驳回", "退回修改", "代 李雷 (lilei) 审批"):
        assert word in text
    # Shown in the document's time zone, not UTC.
    assert "2026-03-02 14:00:00" in text
    # The 2,000-character comment is wrapped across pages, not cut.
    assert LONG_COMMENT in _column(long_pdf, 130, 210, head="意见")
    # Every page numbered, and the table head repeated on the pages after the first.
    for number, page in enumerate(pages, start=1):
        assert f"第 {number} 页 / 共 {len(pages)} 页" in page
        assert "审批人" in page and "意见" in page


def test_a_cell_taller_than_a_page_in_any_column_flows_on(font: Path) -> None:
    crowd = "、".join(f"员工{i} (user{i})" for i in range(90))
    document = make_document(3, long_at=None)
    lines = (document.lines[0], replace(document.lines[1], approver=crowd), document.lines[2])
    data = render_approval_pdf(replace(document, lines=lines))
    assert len(PdfReader(io.BytesIO(data)).pages) == 2
    # The approver column (57-93 mm) holds the first step's approver, the crowd, the third's.
    approvers = _column(data, 55, 93, head="审批人")
    assert crowd in approvers
    _, text = _text(data)
    assert "第3步 财务 + 仓储会签" in text and CHAIN_HASH in text


def test_same_document_renders_byte_identical(long_pdf: bytes) -> None:
    assert render_approval_pdf(make_document()) == long_pdf


def test_same_bytes_in_another_process_with_another_hash_seed(font: Path) -> None:
    small = make_document(10, long_at=None)
    here = hashlib.sha256(render_approval_pdf(small)).hexdigest()
    script = (
        "import hashlib, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_approval_pdf import make_document\n"
        "from engine.flows.approvals.pdf import render_approval_pdf\n"
        "doc = make_document(10, long_at=None)\n"
        "print(hashlib.sha256(render_approval_pdf(doc)).hexdigest())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parent.parent,
        check=True,
        timeout=120,
    )
    assert result.stdout.strip() == here


def test_creation_date_is_the_decision_time(long_pdf: bytes) -> None:
    metadata = PdfReader(io.BytesIO(long_pdf)).metadata
    assert metadata is not None
    assert metadata.creation_date == T0 + timedelta(hours=3)


def _embedded_fonts(data: bytes) -> list[str]:
    """/BaseFont of every composite font that carries its TrueType program (/FontFile2)."""
    names = []
    for page in PdfReader(io.BytesIO(data)).pages:
        resources = cast(DictionaryObject, page["/Resources"].get_object())
        fonts = cast(DictionaryObject, resources["/Font"].get_object())
        for ref in fonts.values():
            font_dict = cast(DictionaryObject, ref.get_object())
            if font_dict["/Subtype"] != "/Type0":
                continue
            descendants = cast(ArrayObject, font_dict["/DescendantFonts"].get_object())
            descendant = cast(DictionaryObject, descendants[0].get_object())
            descriptor = cast(DictionaryObject, descendant["/FontDescriptor"].get_object())
            if "/FontFile2" in descriptor:
                names.append(str(font_dict["/BaseFont"]))
    return names


def test_embeds_the_cjk_font_as_a_subset(long_pdf: bytes, font: Path) -> None:
    face_number = approval_pdf._collection_face(str(font), "zh")
    with TTFont(font, fontNumber=face_number, lazy=True) as face:
        postscript_name = str(face["name"].getDebugName(6))
    embedded = _embedded_fonts(long_pdf)
    assert embedded
    # "XXXXXX+Name" is how a PDF names an embedded subset.
    assert {name.split("+", 1)[1] for name in embedded} == {postscript_name}
    assert all("+" in name for name in embedded)
    # A subset: far smaller than the 5 MB collection it comes from.
    assert len(long_pdf) < font.stat().st_size / 10


def test_english_labels(font: Path) -> None:
    data = render_approval_pdf(make_document(12, long_at=None, lang="en"))
    pages, text = _text(data)
    assert "华东制造 — Approval record" in text
    assert "Outcome: Approved" in text
    assert "on behalf of 李雷 (lilei)" in text
    assert f"Page 1 of {len(pages)}" in text
    assert CHAIN_HASH in text


def test_outcomes_and_an_empty_record(font: Path) -> None:
    base = make_document(0)
    for outcome, word in (("rejected", "驳回"), ("returned", "退回修改")):
        _, text = _text(render_approval_pdf(replace(base, outcome=outcome, fields=())))
        assert f"结果：{word}" in text
        assert "（无审批步骤）" in text


def test_missing_font_override_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope.ttc"
    monkeypatch.setenv(FONT_ENV, str(missing))
    with pytest.raises(CJKFontNotFound) as caught:
        find_cjk_font()
    message = str(caught.value)
    assert FONT_ENV in message and str(missing) in message
    assert "fonts-wqy-microhei" in message
    assert "字体文件不存在" in message
    with pytest.raises(CJKFontNotFound):
        render_approval_pdf(make_document(1))


def test_no_font_anywhere_names_the_package_and_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(FONT_ENV, raising=False)
    monkeypatch.setattr(approval_pdf, "_candidate_fonts", lambda: [tmp_path / "absent.ttc"])
    with pytest.raises(CJKFontNotFound) as caught:
        find_cjk_font()
    message = str(caught.value)
    assert "fonts-wqy-microhei" in message and FONT_ENV in message
    assert "未找到" in message


def test_font_override_and_cff_fonts_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, font: Path
) -> None:
    monkeypatch.setenv(FONT_ENV, str(font))
    assert find_cjk_font() == font
    monkeypatch.delenv(FONT_ENV)
    cff = tmp_path / "NotoSansCJK-Regular.ttc"  # Noto CJK collections hold CFF ("OTTO") faces
    cff.write_bytes(
        b"ttcf" + b"\x00\x01\x00\x00" + b"\x00\x00\x00\x01" + (16).to_bytes(4, "big") + b"OTTO"
    )
    monkeypatch.setattr(approval_pdf, "_candidate_fonts", lambda: [cff, font])
    assert find_cjk_font() == font


def test_rejects_unknown_words_and_naive_times() -> None:
    with pytest.raises(ValueError, match="decision"):
        DecisionLine(step="财务", approver="王芳", decision="maybe", at=T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        DecisionLine(step="财务", approver="王芳", decision="approved", at=datetime(2026, 3, 2))
    with pytest.raises(ValueError, match="outcome"):
        replace(make_document(0), outcome="open")
    with pytest.raises(ValueError, match="lang"):
        replace(make_document(0), lang="fr")
