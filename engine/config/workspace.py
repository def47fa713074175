"""Find and load the files of an app folder (the workspace).

Layout: ``app.yaml``, ``forms/*.yaml``, ``flows/*.yaml``, ``approvals/*.yaml``,
``dashboards/*.yaml``, ``tests/*.yaml``, ``templates/`` and ``data/``. The folder a file is
in decides its kind; a YAML file anywhere else is reported, never silently ignored.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from engine.config.loader import LoadedYaml, load_yaml_text
from engine.config.schemas import IDENT
from engine.model.diagnostics import Diagnostics, Mark, suggestion_hint
from engine.model.i18n import Text

FOLDERS = {
    "forms": "form",
    "flows": "flow",
    "approvals": "approval",
    "dashboards": "dashboard",
    "tests": "test",
}
OTHER_FOLDERS = ("templates", "data", "schemas")
_IDENT = re.compile(IDENT)


@dataclass
class Workspace:
    """Every YAML file of an app, loaded with positions, plus the raw texts for messages."""

    root: Path
    app: LoadedYaml | None = None
    files: dict[str, list[LoadedYaml]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    digest: str = ""

    def of_kind(self, kind: str) -> list[LoadedYaml]:
        return self.files.get(kind, [])

    def display(self, path: Path) -> str:
        return display_path(path)

    def name_of(self, doc: LoadedYaml) -> str:
        """A form or dashboard is named by its file name without the extension."""
        return Path(doc.path).stem


def display_path(path: Path) -> str:
    """Path as people should see it: relative to the working directory when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def read_source(path: Path, diags: Diagnostics) -> str | None:
    shown = display_path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        diags.error(
            shown,
            Mark(1, 1),
            "file-unreadable",
            Text(f"cannot read the file: {exc.strerror}", f"无法读取文件：{exc.strerror}"),
            Text("check the file exists and may be read", "请检查文件是否存在且可读"),
        )
        return None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        diags.error(
            shown,
            Mark(line, 1),
            "file-encoding",
            Text("the file is not UTF-8 text", "文件不是 UTF-8 编码的文本"),
            Text("save it as UTF-8 (not GBK)", "请以 UTF-8 编码保存（不要用 GBK）"),
        )
        return None


def load_workspace(root: Path, diags: Diagnostics) -> Workspace:
    """Load every YAML file of the app folder ``root``; problems go to ``diags``."""
    ws = Workspace(root=root)
    digest = hashlib.sha256()
    if not root.is_dir():
        diags.error(
            display_path(root),
            Mark(1, 1),
            "no-app",
            Text("app folder not found", "找不到应用目录"),
            Text(
                "pass --app DIR with the folder holding app.yaml, or start one with "
                "`seamline init DIR`",
                "请用 --app 目录 指定包含 app.yaml 的目录，或用 `seamline init 目录` 新建一个",
            ),
        )
        return ws
    app_file = root / "app.yaml"
    if not app_file.is_file():
        diags.error(
            display_path(app_file),
            Mark(1, 1),
            "no-app",
            Text("app.yaml is missing", "缺少 app.yaml"),
            Text(
                "create app.yaml with name, title and roles",
                "请创建 app.yaml，写明 name、title 和 roles",
            ),
        )
    else:
        ws.app = _load(app_file, ws, diags, digest)
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and entry.name in FOLDERS:
            kind = FOLDERS[entry.name]
            docs = ws.files.setdefault(kind, [])
            for file in sorted(entry.rglob("*")):
                if file.is_dir():
                    continue
                if file.suffix in (".yaml", ".yml"):
                    _check_file_name(file, kind, diags)
                    doc = _load(file, ws, diags, digest)
                    if doc is not None:
                        docs.append(doc)
                elif not file.name.startswith("."):
                    diags.warning(
                        display_path(file),
                        Mark(1, 1),
                        "stray-file",
                        Text(
                            f"'{file.name}' is not a YAML file and is ignored",
                            f"'{file.name}' 不是 YAML 文件，已忽略",
                        ),
                        Text("name it *.yaml or move it elsewhere", "请改名为 *.yaml 或移到别处"),
                    )
        elif (
            entry.is_dir()
            and entry.name not in OTHER_FOLDERS
            and not entry.name.startswith(".")
            and any(entry.rglob("*.y*ml"))
        ):
            diags.warning(
                display_path(entry),
                Mark(1, 1),
                "stray-folder",
                Text(
                    f"folder '{entry.name}' is not read by Seamline",
                    f"Seamline 不读取目录 '{entry.name}'",
                ),
                suggestion_hint(entry.name, [*FOLDERS, *OTHER_FOLDERS], Text("folders", "目录")),
            )
        elif entry.is_file() and entry.suffix in (".yaml", ".yml") and entry.name != "app.yaml":
            diags.warning(
                display_path(entry),
                Mark(1, 1),
                "stray-file",
                Text(f"'{entry.name}' is not read by Seamline", f"Seamline 不读取 '{entry.name}'"),
                Text(
                    "put forms in forms/, flows in flows/, approvals in "
                    "approvals/, dashboards in dashboards/",
                    "表单放在 forms/，流程放在 flows/，审批放在 approvals/，看板放在 dashboards/",
                ),
            )
    ws.digest = digest.hexdigest()
    return ws


def _check_file_name(file: Path, kind: str, diags: Diagnostics) -> None:
    if kind in ("form", "dashboard") and not _IDENT.match(file.stem):
        diags.error(
            display_path(file),
            Mark(1, 1),
            "bad-file-name",
            Text(f"'{file.stem}' is not a valid {kind} name", f"'{file.stem}' 不是合法的名称"),
            Text(
                "the file name is the name: use lowercase letters, digits and _ "
                "(e.g. sales_order.yaml)",
                "文件名就是名称：请使用小写字母、数字和下划线（例如 sales_order.yaml）",
            ),
        )


def _load(
    file: Path, ws: Workspace, diags: Diagnostics, digest: hashlib._Hash
) -> LoadedYaml | None:
    text = read_source(file, diags)
    if text is None:
        return None
    shown = display_path(file)
    ws.sources[shown] = text
    digest.update(str(file.relative_to(ws.root)).encode() + b"\0" + text.encode() + b"\0")
    doc = load_yaml_text(shown, text, diags)
    if doc is not None and not isinstance(doc.data, dict):
        diags.error(
            shown,
            Mark(1, 1),
            "not-a-mapping",
            Text(
                "the file must be a mapping of 'key: value' lines",
                "文件内容必须是 '键: 值' 形式的映射",
            ),
            Text("start with e.g. 'title: …'", "例如以 'title: …' 开头"),
        )
        return None
    return doc
