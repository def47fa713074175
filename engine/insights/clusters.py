"""Frequent combinations of a multiselect field → candidate standard templates.

The database does the scan: one ``GROUP BY`` over the field's column gives every distinct
combination with its record count. The rest runs in Python over those few combinations only:

- a *demand* is a record whose field holds at least one choice;
- a *candidate* is a combination requested exactly by at least ``min_support`` records;
- a demand is *covered* by a template when its choices are equal to or a subset of it;
- templates are picked greedily (set cover): each time the candidate that covers the most
  demands not covered yet (ties: fewer choices, then the choices in option order), until
  ``top`` templates are picked or no candidate adds coverage.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.model import sheets
from engine.model.i18n import Text
from engine.model.spec import App
from engine.store.tables import table_name

__all__ = [
    "ClusterReport",
    "NotAMultiselect",
    "Template",
    "cluster_report",
    "combination_counts",
    "csv_text",
    "pick_templates",
]


class NotAMultiselect(LookupError):
    """The form or field does not exist, or the field is not a multiselect."""

    def __init__(self, message: Text) -> None:
        super().__init__(message.en)
        self.message = message


@dataclass(frozen=True, slots=True)
class Template:
    choices: tuple[str, ...]  # in the field's option order
    exact: int  # records asking for exactly these choices
    covers: int  # demands whose choices are a subset of these
    added: int  # demands this template covers that earlier ones did not
    cumulative: int  # demands covered by this template and the earlier ones


@dataclass(frozen=True, slots=True)
class ClusterReport:
    form: str
    field: str
    records: int  # all records of the form
    demands: int  # records with at least one choice
    combinations: int  # distinct combinations among the demands
    min_support: int
    templates: tuple[Template, ...]

    @property
    def covered(self) -> int:
        return self.templates[-1].cumulative if self.templates else 0

    def share(self, count: int) -> float:
        return count / self.demands if self.demands else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "form": self.form,
            "field": self.field,
            "records": self.records,
            "demands": self.demands,
            "combinations": self.combinations,
            "min_support": self.min_support,
            "covered": self.covered,
            "coverage": round(self.share(self.covered), 4),
            "templates": [
                {
                    "choices": list(t.choices),
                    "exact": t.exact,
                    "covers": t.covers,
                    "added": t.added,
                    "cumulative": t.cumulative,
                    "coverage": round(self.share(t.cumulative), 4),
                }
                for t in self.templates
            ],
        }


def _choices(raw: Any) -> frozenset[str]:
    value = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(value, list):
        return frozenset()
    return frozenset(str(v) for v in value if v not in (None, ""))


def combination_counts(
    engine: Engine, app: App, form: str, field: str
) -> tuple[int, Counter[frozenset[str]]]:
    """All records of ``form``, and how many hold each distinct non-empty combination."""
    spec = app.forms.get(form)
    if spec is None:
        raise NotAMultiselect(Text(f"no form named {form!r}", f"没有名为 {form!r} 的表单"))
    kind = next((f.type for f in spec.fields if f.name == field), None)
    if kind != "multiselect":
        raise NotAMultiselect(
            Text(
                f"{form}.{field} is not a multiselect field",
                f"{form}.{field} 不是多选字段",
            )
        )
    table = sa.table(table_name(form), sa.column(field), sa.column("id"))
    column = table.c[field]
    counts: Counter[frozenset[str]] = Counter()
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
        rows = conn.execute(
            sa.select(column, sa.func.count()).where(column.is_not(None)).group_by(column)
        )
        for raw, count in rows:
            choices = _choices(raw)
            if choices:
                counts[choices] += int(count)
    return int(total), counts


def pick_templates(
    counts: Mapping[frozenset[str], int],
    min_support: int,
    top: int,
    order: Iterable[str] = (),
) -> tuple[Template, ...]:
    """Greedy set cover of the demands by the frequent combinations (see the module doc)."""
    rank = {value: i for i, value in enumerate(order)}

    def key(choices: frozenset[str]) -> tuple[tuple[int, str], ...]:
        return tuple(sorted((rank.get(c, len(rank)), c) for c in choices))

    candidates = sorted((c for c, n in counts.items() if n >= min_support), key=key)
    uncovered = dict(counts)
    picked: list[Template] = []
    done = 0
    while candidates and len(picked) < top:
        gains = [(sum(n for c, n in uncovered.items() if c <= t), t) for t in candidates]
        best_gain = max(g for g, _ in gains)
        if best_gain == 0:
            break
        best = min((t for g, t in gains if g == best_gain), key=lambda t: (len(t), key(t)))
        done += best_gain
        picked.append(
            Template(
                choices=tuple(c for _, c in key(best)),
                exact=counts[best],
                covers=sum(n for c, n in counts.items() if c <= best),
                added=best_gain,
                cumulative=done,
            )
        )
        uncovered = {c: n for c, n in uncovered.items() if not c <= best}
        candidates.remove(best)
    return tuple(picked)


def cluster_report(
    engine: Engine, app: App, form: str, field: str, *, min_support: int = 2, top: int = 7
) -> ClusterReport:
    total, counts = combination_counts(engine, app, form, field)
    spec = next(f for f in app.forms[form].fields if f.name == field)
    templates = pick_templates(counts, min_support, top, (o.value for o in spec.options))
    return ClusterReport(
        form=form,
        field=field,
        records=total,
        demands=sum(counts.values()),
        combinations=len(counts),
        min_support=min_support,
        templates=templates,
    )


CSV_HEADER = ("rank", "template", "exact", "covers", "added", "cumulative", "coverage")


def csv_text(report: ClusterReport) -> str:
    """The templates as CSV (the shared writer: a BOM, neutralised cells): one row per
    template, the coverage as a share (0.6300)."""
    rows: list[tuple[Any, ...]] = [CSV_HEADER]
    for i, t in enumerate(report.templates, 1):
        share = f"{report.share(t.cumulative):.4f}"
        rows.append((i, " + ".join(t.choices), t.exact, t.covers, t.added, t.cumulative, share))
    return sheets.csv_text(rows)
