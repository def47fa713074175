"""Safe YAML loading that keeps a position for every key and value.

PyYAML's composer gives nodes with marks; we build plain Python data from them ourselves so
that we can close the traps that bite people who edit YAML by hand:

* duplicate keys are errors (PyYAML silently keeps the last one);
* scalars resolve by the YAML 1.2 core schema: ``yes``/``no``/``on``/``off`` stay text (and
  are remembered, so the checker can say so plainly), dates stay text, ``010`` is ten;
* anchors, aliases and custom tags are refused (alias bombs explode in whoever walks the
  data later), nesting depth and file size are bounded;
* a syntax error becomes a diagnostic at its position, never a traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import yaml
from yaml.events import AliasEvent, CollectionStartEvent, Event, ScalarEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

from engine.config.yaml_words import SyntaxProblem, explain
from engine.model.diagnostics import Diagnostic, Diagnostics, Mark
from engine.model.i18n import Text

MAX_FILE_BYTES = 1_000_000
MAX_DEPTH = 40

YamlPath = tuple[str | int, ...]

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_YAML11_BOOL = re.compile(r"^(?:yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF|y|Y|n|N)$")
_INT = re.compile(r"^[-+]?[0-9]+$")
_INT_OCT = re.compile(r"^0o[0-7]+$")
_INT_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")

_STD = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_STD + t for t in ("str", "int", "float", "bool", "null")}


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A file of the workspace: the path shown to people, and its text."""

    path: str
    text: str


@dataclass
class LoadedYaml:
    """Plain data from one YAML file plus where every piece of it came from."""

    source: SourceFile
    data: Any
    values: dict[YamlPath, Mark] = field(default_factory=dict)
    keys: dict[YamlPath, Mark] = field(default_factory=dict)
    styles: dict[YamlPath, str] = field(default_factory=dict)
    yaml11_bools: set[YamlPath] = field(default_factory=set)

    @property
    def path(self) -> str:
        return self.source.path

    def mark(self, path: YamlPath) -> Mark:
        """Position of the value at ``path`` (or of its nearest ancestor)."""
        p = tuple(path)
        while p and p not in self.values:
            p = p[:-1]
        return self.values.get(p, Mark(1, 1))

    def key_mark(self, path: YamlPath) -> Mark:
        """Position of the key that holds ``path`` (falls back to the value's position)."""
        p = tuple(path)
        if p in self.keys:
            return self.keys[p]
        return self.mark(p)

    def get(self, path: YamlPath, default: Any = None) -> Any:
        node = self.data
        for part in path:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return default
        return node


class _YamlMark(Protocol):
    """What we read of a PyYAML mark (pure-Python ``yaml.Mark`` or the C loader's)."""

    @property
    def line(self) -> int: ...

    @property
    def column(self) -> int: ...


class _RefusedNode(yaml.YAMLError):
    def __init__(self, code: str, mark: _YamlMark | None, message: Text, hint: Text) -> None:
        super().__init__(message.en)
        self.code = code
        self.mark = mark
        self.message = message
        self.hint = hint


class _Loader(yaml.SafeLoader):
    """SafeLoader that resolves nothing implicitly and refuses anchors and aliases."""

    yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012 - PyYAML class attribute

    if TYPE_CHECKING:
        # types-PyYAML leaves Parser.peek_event unannotated; this is what it returns.
        def peek_event(self) -> Event: ...

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            raise _RefusedNode(
                "yaml-alias",
                event.start_mark,
                Text(
                    f"alias '*{event.anchor}' is not allowed",
                    f"不支持别名 '*{event.anchor}'",
                ),
                Text(
                    "write the values out in full; anchors and aliases are refused so that a "
                    "small file cannot expand into a huge one",
                    "请把内容完整写出；为防止小文件展开成巨大数据，不支持锚点和别名",
                ),
            )
        if isinstance(event, ScalarEvent | CollectionStartEvent) and event.anchor is not None:
            raise _RefusedNode(
                "yaml-alias",
                event.start_mark,
                Text(
                    f"anchor '&{event.anchor}' is not allowed",
                    f"不支持锚点 '&{event.anchor}'",
                ),
                Text(
                    "remove the '&name' and write repeated values out in full",
                    "请删除 '&名称'，重复的内容请完整写出",
                ),
            )
        return super().compose_node(parent, index)


def _mark(node: Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    """Turns a composed node tree into plain data, recording marks as it goes."""

    def __init__(self, out: LoadedYaml, diags: Diagnostics) -> None:
        self.out = out
        self.diags = diags

    def error(self, node: Node, code: str, message: Text, hint: Text, path: YamlPath) -> None:
        self.diags.error(self.out.path, _mark(node), code, message, hint, yaml_path=path)

    def build(self, node: Node, path: YamlPath, depth: int) -> Any:
        self.out.values[path] = _mark(node)
        if depth > MAX_DEPTH:
            self.error(
                node,
                "yaml-too-deep",
                Text(f"nesting deeper than {MAX_DEPTH} levels", f"嵌套超过 {MAX_DEPTH} 层"),
                Text("flatten the structure", "请减少嵌套层级"),
                path,
            )
            return None
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        if isinstance(node, SequenceNode):
            if node.tag != _STD + "seq":
                self.bad_tag(node, path)
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            if node.tag != _STD + "map":
                self.bad_tag(node, path)
            return self.mapping(node, path, depth)
        return None  # pragma: no cover - PyYAML has no other node kinds

    def bad_tag(self, node: Node, path: YamlPath) -> None:
        self.error(
            node,
            "yaml-tag",
            Text(f"the tag '{node.tag}' is not supported", f"不支持标签 '{node.tag}'"),
            Text("remove the '!…' tag", "请删除 '!…' 标签"),
            path,
        )

    def mapping(self, node: MappingNode, path: YamlPath, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_seen: dict[str, Mark] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.error(
                    key_node,
                    "yaml-complex-key",
                    Text("a key must be plain text", "键必须是普通文本"),
                    Text("write 'name: value'", "请写成 '名称: 值'"),
                    path,
                )
                continue
            key = str(key_node.value)
            key_mark = _mark(key_node)
            if key in first_seen:
                first = first_seen[key]
                self.diags.error(
                    self.out.path,
                    key_mark,
                    "yaml-duplicate-key",
                    Text(
                        f"duplicate key '{key}' (first defined at line {first.line})",
                        f"重复的键 '{key}'（第 {first.line} 行已定义过）",
                    ),
                    Text(
                        "remove one of them or rename it; YAML would silently keep only the last",
                        "请删除或改名其中一个；否则 YAML 会悄悄只保留最后一个",
                    ),
                    yaml_path=(*path, key),
                    width=len(key),
                )
                continue
            first_seen[key] = key_mark
            self.out.keys[(*path, key)] = key_mark
            result[key] = self.build(value_node, (*path, key), depth + 1)
        return result

    def scalar(self, node: ScalarNode, path: YamlPath) -> Any:
        text = node.value
        if node.style:
            self.out.styles[path] = node.style
        if node.tag not in _SCALAR_TAGS:
            self.bad_tag(node, path)
            return text
        if node.tag != _STD + "str":  # an explicit !!int / !!bool ... tag
            return _explicit(node.tag, text)
        if node.style:  # quoted or block scalars are always text
            return text
        if _NULL.match(text):
            return None
        if text in _BOOL:
            return _BOOL[text]
        if _YAML11_BOOL.match(text):
            self.out.yaml11_bools.add(path)
            return text
        if _INT.match(text):
            return int(text, 10)
        if _INT_OCT.match(text):
            return int(text[2:], 8)
        if _INT_HEX.match(text):
            return int(text[2:], 16)
        if _FLOAT.match(text):
            return float(text)
        if _INF.match(text):
            return float("-inf") if text.startswith("-") else float("inf")
        if _NAN.match(text):
            return float("nan")
        return text


def _explicit(tag: str, text: str) -> Any:
    kind = tag.removeprefix(_STD)
    try:
        if kind == "int":
            return int(text, 0)
        if kind == "float":
            return float(text)
        if kind == "bool":
            return _BOOL.get(text, text)
        if kind == "null":
            return None
    except ValueError:
        return text
    return text


def load_yaml_text(path: str, text: str, diags: Diagnostics) -> LoadedYaml | None:
    """Load one YAML document; problems go to ``diags``. Returns None if unusable."""
    source = SourceFile(path, text)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        diags.error(
            path,
            Mark(1, 1),
            "yaml-too-large",
            Text(
                f"file is larger than {MAX_FILE_BYTES // 1000} kB",
                f"文件超过 {MAX_FILE_BYTES // 1000} kB",
            ),
            Text(
                "split it into several files; large data belongs in data/ as CSV",
                "请拆分成多个文件；大量数据请以 CSV 放在 data/ 目录",
            ),
        )
        return None
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
    except _RefusedNode as exc:
        diags.error(
            path,
            Mark(exc.mark.line + 1, exc.mark.column + 1) if exc.mark is not None else Mark(1, 1),
            exc.code,
            exc.message,
            exc.hint,
        )
        return None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        at = exc.context_mark
        found = explain(
            text,
            exc.problem or "",
            exc.context or "",
            line,
            col,
            (at.line + 1, at.column + 1) if at is not None else None,
        )
        diags.items.append(_syntax_diagnostic(path, found))
        return None
    except ReaderError as exc:  # a character YAML does not allow
        diags.items.append(_syntax_diagnostic(path, _bad_character(text, exc)))
        return None
    except yaml.YAMLError:  # pragma: no cover - every YAMLError PyYAML raises is one of the above
        diags.items.append(_syntax_diagnostic(path, explain(text, "", "", 1, 1)))
        return None
    except RecursionError:
        diags.error(
            path,
            Mark(1, 1),
            "yaml-too-deep",
            Text("the YAML is nested too deeply", "YAML 嵌套层级过深"),
            Text("flatten the structure", "请减少嵌套层级"),
        )
        return None
    finally:
        if loader is not None:
            loader.dispose()
    out = LoadedYaml(source, None)
    if node is None:
        out.data = {}
        return out
    out.data = _Builder(out, diags).build(node, (), 0)
    return out


def _syntax_diagnostic(path: str, found: SyntaxProblem) -> Diagnostic:
    return Diagnostic(
        path,
        found.line,
        found.col,
        "error",
        "yaml-syntax",
        found.message,
        found.hint,
        width=found.width,
        context_before=2,
    )


def _bad_character(text: str, exc: ReaderError) -> SyntaxProblem:
    position = exc.position if isinstance(exc.position, int) else 0
    before = text[:position]
    line = before.count("\n") + 1
    col = position - (before.rfind("\n") + 1) + 1
    code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or " ")
    return SyntaxProblem(
        line,
        col,
        Text(
            f"an invisible control character (U+{code:04X}) is in the file",
            f"文件里有一个不可见的控制字符（U+{code:04X}）",
        ),
        Text(
            "delete it (it often comes from copying out of a document or a chat)",
            "请删除它（通常是从文档或聊天软件复制时带进来的）",
        ),
    )
