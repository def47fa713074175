"""Error recovery: one mistake gives one error, not fifty.

A file that breaks its schema is not dropped. :func:`recover` cuts out the smallest bad part
(an unknown key, a bad value, the one entry that cannot stand without it) and fills a missing
required text with a stand-in, so the rest of the file is compiled and every name it defines
is still there for the other files to refer to.

What still follows from an error is suppressed afterwards (:func:`suppress_follow_ons`): an
"unknown X" whose X *is* defined, in a file that has an error of its own, only repeats that
error — the way rustc and Elm stay quiet about uses of an item that failed to compile.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.config.check_schema import schema_faults
from engine.config.loader import LoadedYaml, YamlPath
from engine.config.schemas import FIELD_TYPES
from engine.config.workspace import FOLDERS, Workspace
from engine.expressions.form_scopes import FieldShape, shape_from_raw
from engine.model.diagnostics import Diagnostic, Diagnostics, did_you_mean
from engine.model.i18n import Text

__all__ = [
    "Damage",
    "Recovery",
    "definitions",
    "file_order",
    "recover",
    "stand_in_shape",
    "suppress_follow_ons",
]

MAX_ROUNDS = 8

# Mappings whose keys are names other files (or other parts of the same file) refer to.
COLLECTIONS = frozenset(
    {
        "roles",
        "connectors",
        "operations",
        "fields",
        "states",
        "transitions",
        "automations",
        "kpis",
        "params",
        "insights",
        "routes",
        "add_steps",
        "steps",
    }
)
# Keys whose text value names the entry that holds it (a route's, a step's name).
NAME_KEYS = frozenset({"name", "id"})


@dataclass
class Recovery:
    """The usable part of a file that broke its schema.

    ``doc`` is a schema-clean copy (positions kept) or None when not even the file's own
    top level could be saved; ``dropped`` are the places cut out of the original;
    ``renamed`` the misspelt keys read as the key they are close to: (mapping, wrong, meant).
    """

    doc: LoadedYaml | None
    dropped: list[YamlPath] = field(default_factory=list)
    renamed: list[tuple[YamlPath, str, str]] = field(default_factory=list)


def recover(kind: str, doc: LoadedYaml) -> Recovery:
    """Cut ``doc`` down (and fill it in) until it passes the schema of ``kind``.

    A misspelt key is read as the key it is close to (``requird`` as ``required``), an
    unknown or bad one is cut out, a missing required text is filled with the name of what
    holds it; what still cannot stand is cut out with the entry that holds it.
    """
    current = doc
    out = Recovery(None)
    stem = Path(doc.path).stem
    tried: set[YamlPath] = set()  # stand-ins once filled in: not again if they failed too
    for attempt in range(MAX_ROUNDS):
        # A collection of named entries left empty by cutting out its bad ones stays, empty.
        faults = [
            f
            for f in schema_faults(kind, current.data)
            if not (attempt and f[0] == "empty" and _collection(f[3]))
        ]
        if not faults:
            out.doc = current
            return out
        cuts: set[YamlPath] = set()
        fills: dict[YamlPath, Any] = {}
        renames: dict[YamlPath, str] = {}
        missing: dict[tuple[YamlPath, str], Mapping[str, Any] | None] = {}
        for what, path, key, schema in faults:
            if what == "missing" and key is not None:
                missing[(path, key)] = missing.get((path, key)) or schema
            elif what == "unknown":
                parent, wrong = path[:-1], str(path[-1])
                held = current.get(parent)
                free = [k for k in schema or {} if isinstance(held, dict) and k not in held]
                taken = {renames[p] for p in renames if p[:-1] == parent}
                meant = did_you_mean(wrong, [k for k in free if k not in taken])
                if meant is not None:
                    renames[path] = meant
                    out.renamed.append((parent, wrong, meant))
                else:
                    cuts.add(path)
            elif not path:
                return out
            else:
                cuts.add(path)
        filled = {(*p[:-1], k) for p, k in renames.items()}
        for (path, key), schema in missing.items():
            if (*path, key) in filled:
                continue
            stand_in = _stand_in(path, stem, schema)
            if stand_in is not None and (*path, key) not in tried:
                fills[(*path, key)] = stand_in
                tried.add((*path, key))
            elif not path:
                return out
            else:
                cuts.add(path)
        # A cut inside another cut is already gone.
        cuts = {p for p in cuts if not any(p[: len(q)] == q and p != q for q in cuts)}
        current = _rebuild(current, cuts, fills, renames)
        out.dropped.extend(sorted(cuts, key=str))
    return out


def _collection(schema: Mapping[str, Any] | None) -> bool:
    """A mapping of named entries (fields, states, roles…), not one of fixed keys."""
    return (
        schema is not None
        and schema.get("type") == "object"
        and not schema.get("properties")
        and isinstance(schema.get("additionalProperties"), dict)
    )


def _stand_in(path: YamlPath, stem: str, schema: Mapping[str, Any] | None) -> str | None:
    """A harmless value for a missing required text: the name of what holds it."""
    if schema is None or schema.get("type") != "string" or "enum" in schema:
        return None
    if not path:
        return stem
    last = path[-1]
    return last if isinstance(last, str) else None


def _rebuild(
    doc: LoadedYaml,
    cuts: set[YamlPath],
    fills: Mapping[YamlPath, Any],
    renames: Mapping[YamlPath, str],
) -> LoadedYaml:
    """A copy of ``doc`` without ``cuts``, with ``fills`` and ``renames`` (a key read as
    another, its positions kept); list positions renumbered."""
    moved: dict[YamlPath, YamlPath] = {}

    def walk(value: Any, old: YamlPath, new: YamlPath) -> Any:
        moved[old] = new
        if isinstance(value, dict):
            out: dict[Any, Any] = {}
            for key, item in value.items():
                here = (*old, key)
                if here in cuts:
                    continue
                name = renames.get(here, key)
                out[name] = walk(item, here, (*new, name))
            for path, filler in fills.items():
                if path[:-1] == old and path[-1] not in out:
                    out[path[-1]] = filler
            return out
        if isinstance(value, list):
            items: list[Any] = []
            for i, item in enumerate(value):
                if (*old, i) not in cuts:
                    items.append(walk(item, (*old, i), (*new, len(items))))
            return items
        return value

    data = walk(doc.data, (), ())
    return replace(
        doc,
        data=data,
        values={moved[p]: m for p, m in doc.values.items() if p in moved},
        keys={moved[p]: m for p, m in doc.keys.items() if p in moved},
        styles={moved[p]: s for p, s in doc.styles.items() if p in moved},
        yaml11_bools={moved[p] for p in doc.yaml11_bools if p in moved},
    )


def stand_in_shape(raw: Any) -> FieldShape:
    """What expressions see of a field cut out of its form: the type it was written with
    when that one is known (a ref when it names a form), else a value of no known type."""
    if isinstance(raw, dict):
        kind = raw.get("type")
        if kind in FIELD_TYPES:
            return shape_from_raw(raw)
        if isinstance(raw.get("form"), str):
            return FieldShape("ref", ref_form=raw["form"])
    return FieldShape("any")


# ---------------------------------------------------------------------------- names
def definitions(data: Any) -> set[str]:
    """Every name a file defines: keys of its named collections, ``name:``/``id:`` values."""
    out: set[str] = set()
    for parent, key, value in _entries(data):
        if parent in COLLECTIONS and isinstance(value, dict | list | str):
            out.add(str(key))
        if key in NAME_KEYS and isinstance(value, str):
            out.add(value)
    return out


def _entries(data: Any, parent: str | int | None = None) -> Iterator[tuple[Any, Any, Any]]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield parent, key, value
            yield from _entries(value, key)
    elif isinstance(data, list):
        for value in data:
            yield from _entries(value, parent)


_KEY_LINE = re.compile(r"^[ \t-]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*[:：]", re.MULTILINE)


def definitions_in_text(text: str) -> set[str]:
    """For a file that could not be read as YAML: every key-looking word at a line start."""
    return set(_KEY_LINE.findall(text))


# ---------------------------------------------------------------------------- suppression
_QUOTED = re.compile(r"'([^']+)'")
# The subject of "the form has no states": whatever broke the flow file that defines them.
NO_STATES = "\0states"
# Warnings kept in a file that lost parts to recovery (the others judge the whole file).
_KEPT_WARNINGS = frozenset({"yaml11-boolean"})
_SHOWN_PLACES = 3


def subject_of(d: Diagnostic) -> str | None:
    """The name an "unknown …" (or "… has no states") diagnostic is about, if any."""
    if d.subject is not None:
        return d.subject
    if d.code == "no-states":
        return NO_STATES
    if d.code in ("unknown-key", "unknown-function") or "unknown-" not in d.code:
        return None
    names = _QUOTED.findall(d.message.en)
    return names[-1] if names else None


@dataclass
class Damage:
    """What the compile knows about broken files, for :func:`suppress_follow_ons`.

    ``defined``: the names each file with an error defines; ``renamed``: per file, the
    misspelt keys recovery read as the key they are close to; ``cut``: files recovery cut
    parts out of; ``flows_broken``: a flow file has an error (so states may be missing).
    """

    defined: dict[str, set[str]] = field(default_factory=dict)
    renamed: dict[str, list[tuple[YamlPath, str, str]]] = field(default_factory=dict)
    cut: set[str] = field(default_factory=set)
    flows_broken: bool = False


def suppress_follow_ons(diags: Diagnostics, damage: Damage) -> None:
    """Take out of ``diags`` what only repeats an earlier error; never every error.

    - an "unknown X" whose X is defined in a file with an error: its definition was cut out
      or could not compile (and "the form has no states" when a flow file has an error);
    - "missing 'label'" beside the misspelt "unknown key 'lable'" it was read from;
    - warnings of a file that lost parts to recovery: they judge a file that is not there;
    - the same unknown name again: one error names it, its hint says where else it is used.
    """
    poisoned: set[str] = set()
    for names in damage.defined.values():
        poisoned |= names
    if damage.flows_broken:
        poisoned.add(NO_STATES)
    misspelt = {
        (path, parent, meant)
        for path, renames in damage.renamed.items()
        for parent, _, meant in renames
    }

    def follows(d: Diagnostic) -> bool:
        subject = subject_of(d)
        if d.severity == "warning":
            return d.path in damage.cut and d.code not in _KEPT_WARNINGS
        if subject is not None and _name(subject) in poisoned:
            return True
        return d.code == "missing-key" and any(
            (d.path, d.yaml_path, meant) in misspelt for meant in _QUOTED.findall(d.message.en)
        )

    keep = [d for d in diags.items if not follows(d)]
    hidden = [d for d in diags.items if follows(d)]
    if not any(d.severity == "error" for d in keep):
        keep, hidden = list(diags.items), []
    diags.items[:] = _one_per_name(diags, keep, hidden)
    diags.suppressed.extend(hidden)


def _one_per_name(
    diags: Diagnostics, items: list[Diagnostic], hidden: list[Diagnostic]
) -> list[Diagnostic]:
    """The first error about each unknown name, in fix order, telling where else it is."""
    rank = diags.file_order
    ordered = sorted(items, key=lambda d: (rank.get(d.path, len(rank)), *d.sort_key))
    places: dict[str, list[Diagnostic]] = {}
    for d in ordered:
        subject = subject_of(d)
        if d.severity == "error" and subject is not None and subject != NO_STATES:
            places.setdefault(_group(subject), []).append(d)
    out: list[Diagnostic] = []
    for d in items:
        subject = subject_of(d)
        same = places.get(_group(subject or ""), [])
        if len({(o.path, o.line, o.col) for o in same}) < 2 or d not in same:
            out.append(d)
        elif d is same[0]:
            out.append(replace(d, hint=_also(d.hint, same[1:])))
        else:
            hidden.append(d)
    return out


def _name(subject: str) -> str:
    """The name of a subject: ``name`` or ``name\0code`` (an unknown name with nothing to
    choose from: all of those have the one cause, so they are grouped by their code)."""
    return subject.split("\0")[0] if subject != NO_STATES else subject


def _group(subject: str) -> str:
    name, _, code = subject.partition("\0")
    return "\0" + code if code else name


def _also(hint: Text | None, others: list[Diagnostic]) -> Text:
    seen: list[str] = []
    for d in others:
        where = f"{d.path}:{d.line}"
        if where not in seen:
            seen.append(where)
    shown = ", ".join(seen[:_SHOWN_PLACES])
    more = len(seen) - _SHOWN_PLACES
    en = f"also at {shown}" + (f" and {more} more" if more > 0 else "")
    zh = f"另见 {shown}" + (f" 等共 {len(seen)} 处" if more > 0 else "")
    note = Text(en, zh)
    if hint is None:
        return note
    return hint + Text("; ", "" if hint.zh.endswith(("？", "。", "；")) else "；") + note


# ---------------------------------------------------------------------------- order
_KIND_RANK = {"app": 0, "data": 1, **{kind: i + 2 for i, kind in enumerate(FOLDERS.values())}}


def file_order(ws: Workspace) -> dict[str, int]:
    """The rank of each file in the order a person fixes them: app.yaml, then forms, flows,
    approvals, dashboards and tests (what is referred to before what refers to it)."""
    root = ws.root.resolve()
    out: dict[str, int] = {}
    for shown in ws.sources:
        try:
            parts = Path(shown).resolve().relative_to(root).parts
        except ValueError:
            continue
        if parts == ("app.yaml",):
            out[shown] = _KIND_RANK["app"]
        elif len(parts) > 1 and parts[0] in FOLDERS:
            out[shown] = _KIND_RANK[FOLDERS[parts[0]]]
        else:
            out[shown] = _KIND_RANK["data"]  # data/people.csv: read for app.yaml
    return out
