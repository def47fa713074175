"""The PDF record of a final approval decision.

``render_approval_pdf`` turns an ``ApprovalDocument`` into an A4 PDF: title, record, key
fields, route and outcome, every step line, and the hash of the event that recorded the
final decision. Chinese text is drawn with a CJK TrueType font embedded as a subset (Debian's
``fonts-wqy-microhei`` by default, ``SEAMLINE_PDF_FONT`` to choose another).

The output is deterministic: the same document, font file and fpdf2 version give the same
bytes, because the SHA-256 of the PDF is sealed in the audit chain and re-rendering must
reproduce it. The creation date is the decision time and the file identifier is derived from
the chain hash; nothing depends on the clock, randomness or hash-seed ordering.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from fontTools.ttLib import TTCollection  # type: ignore[import-untyped]
from fpdf import FPDF
from fpdf.enums import Align, MethodReturnValue, WrapMode, XPos, YPos

__all__ = [
    "FONT_ENV",
    "ApprovalDocument",
    "CJKFontNotFound",
    "DecisionLine",
    "find_cjk_font",
    "render_approval_pdf",
]

FONT_ENV = "SEAMLINE_PDF_FONT"

DECISIONS = ("approved", "rejected", "returned", "escalated", "skipped", "open")
OUTCOMES = ("approved", "rejected", "returned")
LANGS = ("zh", "en")

_FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
)
_NOTO_DIRS = (
    Path("/usr/share/fonts/truetype/noto"),
    Path("/usr/share/fonts/opentype/noto"),
    Path("/usr/share/fonts/truetype/noto-cjk"),
    Path("/usr/share/fonts/opentype/noto-cjk"),
)
_TRUETYPE_TAGS = (b"\x00\x01\x00\x00", b"true")

_BODY = "cjk"
_MONO = "Courier"  # a PDF core font: truly monospace, nothing to load or embed
_MARGIN = 15.0
_PAD = 1.2
_HEAD_LINE = 4.6
_NO_LINE_START = frozenset("，。、；：？！）》」』】〉”’,.;:?!)]}%")
_RULE_GREY = 200
_MUTED = 110


@dataclass(frozen=True, slots=True)
class DecisionLine:
    """One step of the approval as it ended: who decided what, when, and why."""

    step: str
    approver: str
    decision: str
    at: datetime | None
    comment: str = ""
    on_behalf_of: str | None = None

    def __post_init__(self) -> None:
        if self.decision not in DECISIONS:
            raise ValueError(f"unknown decision {self.decision!r}; expected one of {DECISIONS}")
        if self.at is not None:
            _require_aware(self.at, "DecisionLine.at")


@dataclass(frozen=True, slots=True)
class ApprovalDocument:
    """Everything the PDF record shows; all values are already display text except times."""

    app_title: str
    form_title: str
    record_label: str
    fields: tuple[tuple[str, str], ...]
    route: str
    outcome: str
    submitter: str
    started_at: datetime
    finished_at: datetime
    lines: tuple[DecisionLine, ...]
    chain_hash: str
    timezone: str = "Asia/Shanghai"
    lang: str = "zh"

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}; expected one of {OUTCOMES}")
        if self.lang not in LANGS:
            raise ValueError(f"unknown lang {self.lang!r}; expected one of {LANGS}")
        _require_aware(self.started_at, "ApprovalDocument.started_at")
        _require_aware(self.finished_at, "ApprovalDocument.finished_at")
        ZoneInfo(self.timezone)  # raises ZoneInfoNotFoundError for an unknown zone


class CJKFontNotFound(FileNotFoundError):
    """No font that can draw Chinese text is available for the PDF record."""


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {moment.isoformat()}")


# --- labels ------------------------------------------------------------------------------

_LABELS: dict[str, dict[str, str]] = {
    "zh": {
        "title": "{app} 审批记录",
        "form": "表单",
        "route": "审批路线",
        "outcome": "结果：{word}",
        "submitter": "提交人",
        "started": "发起时间",
        "finished": "完成时间",
        "fields": "关键字段",
        "steps": "审批过程",
        "no": "#",
        "step": "步骤",
        "approver": "审批人",
        "decision": "决定",
        "time": "时间",
        "comment": "意见",
        "on_behalf": "代 {name} 审批",
        "no_steps": "（无审批步骤）",
        "none": "—",
        "hash": "事件链哈希（SHA-256）",
        "seal": (
            "最终审批决定已封存于防篡改事件日志（哈希链）：上面是记录该决定的事件的 SHA-256 哈希，"
            "本 PDF 文件的 SHA-256 也记录在事件日志中。校验方法：运行 `seamline audit verify`，"
            "它会重新校验整条事件链，并核对每份已封存的审批 PDF 与所记录的 SHA-256 是否一致；"
            "再在事件日志（sl_events.hash）中查到此哈希对应的事件。"
        ),
        "page": "第 {n} 页 / 共 {m} 页",
        "tz": "时区",
    },
    "en": {
        "title": "{app} — Approval record",
        "form": "Form",
        "route": "Route",
        "outcome": "Outcome: {word}",
        "submitter": "Submitted by",
        "started": "Started",
        "finished": "Finished",
        "fields": "Key fields",
        "steps": "Approval steps",
        "no": "#",
        "step": "Step",
        "approver": "Approver",
        "decision": "Decision",
        "time": "Time",
        "comment": "Comment",
        "on_behalf": "on behalf of {name}",
        "no_steps": "(no steps)",
        "none": "—",
        "hash": "Event chain hash (SHA-256)",
        "seal": (
            "The final decision is sealed in the tamper-evident event log (a hash chain): the "
            "hash above is the SHA-256 of the event that recorded it, and the SHA-256 of this "
            "PDF file is recorded in the event log too. To verify: run `seamline audit verify`, "
            "which re-checks the whole chain and every sealed approval PDF against its recorded "
            "SHA-256, then find the event with this hash in the event log (sl_events.hash)."
        ),
        "page": "Page {n} of {m}",
        "tz": "Time zone",
    },
}

_DECISION_WORDS: dict[str, dict[str, str]] = {
    "zh": {
        "approved": "通过",
        "rejected": "驳回",
        "returned": "退回修改",
        "escalated": "已升级",
        "skipped": "已跳过",
        "open": "待处理",
    },
    "en": {
        "approved": "Approved",
        "rejected": "Rejected",
        "returned": "Returned for changes",
        "escalated": "Escalated",
        "skipped": "Skipped",
        "open": "Open",
    },
}

_OUTCOME_COLOURS: dict[str, tuple[int, int, int]] = {
    "approved": (22, 120, 60),
    "rejected": (180, 30, 30),
    "returned": (170, 100, 0),
}


# --- font ---------------------------------------------------------------------------------


def find_cjk_font() -> Path:
    """The CJK TrueType font to embed: ``$SEAMLINE_PDF_FONT``, else the usual Debian paths."""
    override = os.environ.get(FONT_ENV, "").strip()
    if override:
        path = Path(override)
        if not path.is_file():
            raise CJKFontNotFound(
                f"{FONT_ENV}={override} does not exist or is not a file; point it at a "
                f"TrueType font (.ttf/.ttc) that has Chinese glyphs, or unset it to use "
                f"fonts-wqy-microhei. / 环境变量 {FONT_ENV}={override} 指向的字体文件不存在；"
                f"请改为含中文字形的 TrueType 字体（.ttf/.ttc），或取消该变量以使用 "
                f"fonts-wqy-microhei。"
            )
        return path
    for path in _candidate_fonts():
        if path.is_file() and _is_truetype(path):
            return path
    raise CJKFontNotFound(
        "No CJK TrueType font found for approval PDFs: install Debian's package "
        "fonts-wqy-microhei (apt-get install fonts-wqy-microhei, or run "
        f"scripts/install-browser), or set {FONT_ENV} to a .ttf/.ttc font file with Chinese "
        "glyphs. / 未找到可用于审批 PDF 的中文 TrueType 字体：请安装 Debian 软件包 "
        f"fonts-wqy-microhei（apt-get install fonts-wqy-microhei），或设置环境变量 {FONT_ENV} "
        "指向含中文字形的 .ttf/.ttc 字体文件。"
    )


def _candidate_fonts() -> list[Path]:
    noto = [
        path
        for folder in _NOTO_DIRS
        if folder.is_dir()
        for path in sorted(folder.glob("NotoSans*CJK*.tt[cf]"))
    ]
    return [*_FONT_CANDIDATES, *noto]


def _is_truetype(path: Path) -> bool:
    """True for TrueType outlines (glyf); False for CFF ("OTTO") fonts such as Noto CJK .ttc."""
    with path.open("rb") as handle:
        head = handle.read(16)
        if head[:4] == b"ttcf":
            handle.seek(int.from_bytes(head[12:16], "big"))
            head = handle.read(4)
    return head[:4] in _TRUETYPE_TAGS


@lru_cache(maxsize=8)
def _collection_face(path: str, lang: str) -> int:
    """Which face of a .ttc to use: not a Mono one, the Simplified Chinese one for Chinese.

    fpdf2 opens collections itself (``add_font(collection_font_number=...)`` passes the index
    to fontTools and HarfBuzz); it only needs the index. In wqy-microhei.ttc face 0 is
    "WenQuanYi Micro Hei" and face 1 its Mono variant."""
    if not path.lower().endswith((".ttc", ".otc")):
        return 0
    with TTCollection(path, lazy=True) as collection:
        names = [str(face["name"].getDebugName(4) or "") for face in collection.fonts]
    plain = [i for i, name in enumerate(names) if "mono" not in name.lower()]
    preferred = [i for i in plain if lang == "zh" and _name_is_sc(names[i])]
    return (preferred or plain or [0])[0]


def _name_is_sc(name: str) -> bool:
    """Whether a Noto-style face name is the Simplified Chinese one ("Noto Sans CJK SC")."""
    return name.upper().endswith(" SC") or " SC " in name.upper()


# --- the document -------------------------------------------------------------------------


class _RecordPDF(FPDF):
    """FPDF with the record's running header, repeated table head and page numbers."""

    def __init__(self, doc: ApprovalDocument) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.doc = doc
        self.words = _LABELS[doc.lang]
        self.repeat_head: Sequence[tuple[float, str]] | None = None

    def file_id(self) -> str:
        digest = hashlib.sha256(f"seamline-approval-pdf:{self.doc.chain_hash}".encode()).hexdigest()
        token = digest[:32].upper()
        return f"<{token}><{token}>"

    def header(self) -> None:
        if self.page_no() == 1:
            return
        self.set_font(_BODY, size=8)
        self.set_text_color(_MUTED)
        title = self.words["title"].format(app=self.doc.app_title)
        self.cell(0, 5, f"{title} · {self.doc.record_label}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(0)
        self.ln(2)
        if self.repeat_head is not None:
            _head_row(self, self.repeat_head)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(_BODY, size=8)
        self.set_text_color(_MUTED)
        text = self.words["page"].format(n=self.page_no(), m=self.str_alias_nb_pages)
        self.cell(0, 5, text, align=Align.C)
        self.set_text_color(0)


def render_approval_pdf(doc: ApprovalDocument) -> bytes:
    """The PDF record of ``doc``; byte-identical for the same document, font and fpdf2."""
    pdf = _new_pdf(doc)
    try:
        pdf.add_page()
        _title(pdf)
        _summary(pdf)
        _fields(pdf)
        _steps(pdf)
        _seal(pdf)
        return bytes(pdf.output())
    finally:
        _close_fonts(pdf)


def _new_pdf(doc: ApprovalDocument) -> _RecordPDF:
    font = find_cjk_font()
    face = _collection_face(str(font), doc.lang)
    pdf = _RecordPDF(doc)
    pdf.set_margins(_MARGIN, _MARGIN, _MARGIN)
    pdf.set_auto_page_break(True, margin=18)
    pdf.c_margin = 1.0
    pdf.add_font(_BODY, fname=font, collection_font_number=face)
    pdf.set_creation_date(doc.finished_at)
    pdf.set_creator("Seamline")
    pdf.set_lang("zh-CN" if doc.lang == "zh" else "en")
    title = pdf.words["title"].format(app=doc.app_title)
    pdf.set_title(f"{title} · {doc.record_label}")
    pdf.set_subject(doc.form_title)
    return pdf


def _close_fonts(pdf: FPDF) -> None:
    """Close the font files fpdf2 opened (it closes only the fonts it wrote out)."""
    for font in pdf.fonts.values():
        close = getattr(font, "close", None)
        if close is not None:
            close()


def _title(pdf: _RecordPDF) -> None:
    doc = pdf.doc
    pdf.set_font(_BODY, size=16)
    title = pdf.words["title"].format(app=doc.app_title)
    _paragraph(pdf, 8, title)
    pdf.set_font(_BODY, size=11)
    _paragraph(pdf, 6, _subtitle(doc))
    pdf.ln(3)


def _subtitle(doc: ApprovalDocument) -> str:
    """The form and the record, the form's title once ("销售订单 SO-2026-000123", not
    "销售订单 · 销售订单 SO-2026-000123": record labels usually start with it)."""
    if not doc.form_title or doc.record_label.startswith(doc.form_title):
        return doc.record_label
    return f"{doc.form_title} · {doc.record_label}"


def _summary(pdf: _RecordPDF) -> None:
    doc, words = pdf.doc, pdf.words
    decision_words = _DECISION_WORDS[doc.lang]
    pdf.set_font(_BODY, size=12)
    pdf.set_text_color(*_OUTCOME_COLOURS[doc.outcome])
    outcome = words["outcome"].format(word=decision_words[doc.outcome])
    pdf.cell(0, 7, outcome, new_x=XPos.LMARGIN)
    pdf.set_text_color(0)
    pdf.ln(8)
    rows = (
        (words["route"], doc.route),
        (words["submitter"], doc.submitter),
        (words["started"], _when(doc.started_at, doc)),
        (words["finished"], _when(doc.finished_at, doc)),
        (words["tz"], doc.timezone),
    )
    _pairs(pdf, rows)
    pdf.ln(3)


def _fields(pdf: _RecordPDF) -> None:
    if not pdf.doc.fields:
        return
    _heading(pdf, pdf.words["fields"])
    _pairs(pdf, pdf.doc.fields)
    pdf.ln(3)


def _pairs(pdf: _RecordPDF, rows: Sequence[tuple[str, str]]) -> None:
    pdf.set_font(_BODY, size=9.5)
    label_w = 42.0
    for label, value in rows:
        _row(pdf, ((label_w, label), (pdf.epw - label_w, value)), line_h=5, muted_first=True)


def _heading(pdf: _RecordPDF, text: str) -> None:
    """A section heading, kept on the page with the first rows under it."""
    if pdf.will_page_break(30):
        pdf.add_page()
    pdf.set_font(_BODY, size=12)
    pdf.cell(0, 7, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(1)


def _step_columns(pdf: _RecordPDF) -> list[float]:
    fixed = [8.0, 34.0, 36.0, 18.0, 24.0]
    return [*fixed, pdf.epw - sum(fixed)]


def _steps(pdf: _RecordPDF) -> None:
    doc, words = pdf.doc, pdf.words
    _heading(pdf, words["steps"])
    widths = _step_columns(pdf)
    keys = ("no", "step", "approver", "decision", "time", "comment")
    head = tuple(zip(widths, (words[key] for key in keys), strict=True))
    _head_row(pdf, head)
    pdf.repeat_head = head
    try:
        for number, line in enumerate(doc.lines, start=1):
            cells = _step_cells(line, number, doc)
            pdf.set_font(_BODY, size=9)
            _row(pdf, tuple(zip(widths, cells, strict=True)), line_h=4.6)
        if not doc.lines:
            pdf.set_font(_BODY, size=9)
            pdf.cell(0, 6, words["no_steps"], new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    finally:
        pdf.repeat_head = None
    pdf.ln(4)


def _step_cells(line: DecisionLine, number: int, doc: ApprovalDocument) -> tuple[str, ...]:
    words = _LABELS[doc.lang]
    approver = line.approver
    if line.on_behalf_of:
        approver = f"{approver}\n{words['on_behalf'].format(name=line.on_behalf_of)}"
    when = _when(line.at, doc) if line.at is not None else words["none"]
    decision = _DECISION_WORDS[doc.lang][line.decision]
    return (str(number), line.step, approver, decision, when, line.comment)


def _head_row(pdf: FPDF, head: Sequence[tuple[float, str]]) -> None:
    pdf.set_font(_BODY, size=9)
    pdf.set_fill_color(235)
    pdf.rect(pdf.l_margin, pdf.y, pdf.epw, _HEAD_LINE + 2 * _PAD, style="F")
    _row(pdf, head, line_h=_HEAD_LINE)


def _row(
    pdf: FPDF, cells: Sequence[tuple[float, str]], *, line_h: float, muted_first: bool = False
) -> None:
    """One table row, its cells top-aligned. A row that fits on a page is kept together; a
    taller one (a 2,000-character comment, a long list of assignees) is cut into slices of
    whole lines, one per page, and the header repeats the table head above each next slice."""
    columns = [_wrapped_lines(pdf, width, text, line_h) for width, text in cells]
    tallest = max(len(lines) for lines in columns)
    if pdf.will_page_break(_space_needed(pdf, tallest, line_h)):
        pdf.add_page()
    first = 0
    while True:
        top = pdf.y + _PAD
        room = max(int((pdf.page_break_trigger - top - _PAD) // line_h), 1)
        shown = min(tallest - first, room)
        _row_slice(
            pdf,
            cells,
            [lines[first : first + shown] for lines in columns],
            top,
            line_h,
            muted_first=muted_first,
        )
        pdf.set_y(top + shown * line_h + _PAD)
        first += shown
        if first >= tallest:
            break
        pdf.add_page()
    _rule(pdf)


def _row_slice(
    pdf: FPDF,
    cells: Sequence[tuple[float, str]],
    slices: Sequence[Sequence[str]],
    top: float,
    line_h: float,
    *,
    muted_first: bool,
) -> None:
    """Lines already wrapped to their column width, drawn side by side from ``top``."""
    x = pdf.l_margin
    for index, ((width, _), lines) in enumerate(zip(cells, slices, strict=True)):
        pdf.set_text_color(_MUTED if muted_first and index == 0 else 0)
        for number, line in enumerate(lines):
            pdf.set_xy(x, top + number * line_h)
            pdf.cell(width, line_h, line, align=Align.L)
        x += width
    pdf.set_text_color(0)


def _space_needed(pdf: FPDF, tallest: int, line_h: float) -> float:
    """Room to ask for before a row: all of it when it fits on a page, else three lines."""
    body_h = pdf.page_break_trigger - pdf.t_margin - 20
    whole = tallest * line_h
    return (whole if whole <= body_h else 3 * line_h) + 2 * _PAD


def _wrapped_lines(pdf: FPDF, width: float, text: str, line_h: float) -> list[str]:
    lines = pdf.multi_cell(
        width,
        line_h,
        text,
        align=Align.L,
        wrapmode=_wrap(text),
        dry_run=True,
        output=MethodReturnValue.LINES,
    )
    assert isinstance(lines, list)  # what output=LINES returns
    return _hang_punctuation([str(line) for line in lines] or [""])


def _hang_punctuation(lines: list[str]) -> list[str]:
    """No line starts with closing punctuation (禁则): it hangs at the end of the line before,
    into the cell padding, as Chinese typesetting does."""
    hung = list(lines)
    for index in range(1, len(hung)):
        while hung[index] and hung[index - 1] and hung[index][0] in _NO_LINE_START:
            hung[index - 1] += hung[index][0]
            hung[index] = hung[index][1:]
    return hung


def _paragraph(pdf: FPDF, line_h: float, text: str) -> None:
    """Full-width wrapped text from the left margin.

    Always from the left margin with an explicit width: fpdf2 2.8 loops forever when a cell
    is narrower than one character (``w=0`` right after a multi_cell that left x at the right
    margin), which is also why every table column has a fixed width of several characters."""
    pdf.set_x(pdf.l_margin)
    pdf.multi_cell(
        pdf.epw,
        line_h,
        text,
        align=Align.L,
        wrapmode=_wrap(text),
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )


def _rule(pdf: FPDF) -> None:
    pdf.set_draw_color(_RULE_GREY)
    pdf.set_line_width(0.2)
    pdf.line(pdf.l_margin, pdf.y, pdf.l_margin + pdf.epw, pdf.y)
    pdf.set_draw_color(0)


def _seal(pdf: _RecordPDF) -> None:
    doc, words = pdf.doc, pdf.words
    if pdf.will_page_break(32):
        pdf.add_page()
    pdf.set_font(_BODY, size=9)
    pdf.cell(0, 5, words["hash"], new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    chain_hash = doc.chain_hash or words["none"]
    # Courier has Latin-1 glyphs only: anything else (an empty hash shown as "—") in the body font.
    pdf.set_font(_MONO if chain_hash.isascii() else _BODY, size=8)
    pdf.cell(0, 5, chain_hash, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(_BODY, size=8)
    pdf.set_text_color(_MUTED)
    _paragraph(pdf, 4.2, words["seal"])
    pdf.set_text_color(0)


def _when(moment: datetime, doc: ApprovalDocument) -> str:
    return moment.astimezone(ZoneInfo(doc.timezone)).strftime("%Y-%m-%d %H:%M:%S")


def _wrap(text: str) -> WrapMode:
    """Chinese has no spaces between words: wrap it by character, other text by word."""
    return WrapMode.CHAR if any(ord(char) >= 0x2E80 for char in text) else WrapMode.WORD
