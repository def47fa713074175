"""The closed JSON Schemas (draft-07) of every kind of workspace file.

Draft-07 because the VS Code YAML extension validates with it and ignores newer keywords.
Every object is closed (``additionalProperties: false``) so a misspelt key is an error, and
every property carries a description: the YAML reference in docs/ is generated from them.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

DRAFT = "http://json-schema.org/draft-07/schema#"
BASE_ID = "https://seamline.dev/schemas/"
KINDS = ("app", "form", "flow", "approval", "dashboard", "test")

IDENT = r"^[a-z][a-z0-9_]*$"
FIELD_TYPES = (
    "text",
    "long_text",
    "integer",
    "decimal",
    "money",
    "boolean",
    "date",
    "datetime",
    "select",
    "multiselect",
    "phone",
    "email",
    "ref",
    "files",
    "computed",
    "autonumber",
    "table",
)
CHILD_FIELD_TYPES = tuple(t for t in FIELD_TYPES if t not in ("table", "autonumber"))
COMPUTED_RESULTS = ("text", "integer", "decimal", "money", "boolean", "date", "datetime")
# Every pattern has a name here and plain words in check_schema (_FORMATS): a test holds that
# no pattern of any schema reaches people as a regular expression.
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
HOURS_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d$"
ENV_NAME_PATTERN = r"^[A-Z][A-Z0-9_]*$"
URL_PATTERN = r"^https?://"
URL_PATH_PATTERN = r"^/"
PEOPLE_FILE_PATTERN = r"\.(csv|ya?ml)$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
EXTENSION_PATTERN = r"^\.[a-z0-9]+$"
SEQ_PATTERN = r"\{seq(:\d+)?\}"
FIELD_PATH_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?$"
CRON_PATTERN = r"^\S+( \S+){4}$"
WINDOW_PATTERN = r"^(today|all|this_month|\d+d)$"
THRESHOLD_PATTERN = r"^(<|<=|>|>=)\s*-?\d+(\.\d+)?$"
# the colours a tracking stage's badge may have: the state badges' (.badge.* in seamline.css,
# each dark text on a light ground, WCAG AA)
STAGE_COLORS = ("grey", "blue", "green", "amber", "red")


def obj(
    desc: str,
    props: dict[str, Any],
    required: tuple[str, ...] = (),
    **extra: Any,
) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "description": desc,
        "properties": props,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = list(required)
    schema.update(extra)
    return schema


def text(desc: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": desc, **extra}


def ident(desc: str) -> dict[str, Any]:
    return {"type": "string", "pattern": IDENT, "description": desc}


def expr(desc: str) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "description": desc + " (an expression)"}


def number(desc: str, **extra: Any) -> dict[str, Any]:
    return {"type": "number", "description": desc, **extra}


def integer(desc: str, **extra: Any) -> dict[str, Any]:
    return {"type": "integer", "description": desc, **extra}


def boolean(desc: str) -> dict[str, Any]:
    return {"type": "boolean", "description": desc}


def names(desc: str) -> dict[str, Any]:
    return {
        "type": "array",
        "description": desc,
        "items": {"type": "string", "pattern": IDENT},
        "uniqueItems": True,
    }


def one_or_many(desc: str) -> dict[str, Any]:
    return {
        "description": desc,
        "anyOf": [
            {"type": "string", "pattern": IDENT},
            {"type": "array", "items": {"type": "string", "pattern": IDENT}, "minItems": 1},
        ],
    }


def ident_map(desc: str, value: dict[str, Any], min_props: int = 0) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "description": desc,
        "propertyNames": {"pattern": IDENT},
        "additionalProperties": value,
    }
    if min_props:
        schema["minProperties"] = min_props
    return schema


def dates(desc: str) -> dict[str, Any]:
    return {
        "type": "array",
        "description": desc,
        "items": {"type": "string", "pattern": DATE_PATTERN},
        "uniqueItems": True,
    }


# --------------------------------------------------------------------------- app.yaml


def _env_ref(desc: str) -> dict[str, Any]:
    return text(
        desc + " — the NAME of an environment variable, never the secret itself",
        pattern=ENV_NAME_PATTERN,
    )


def _connector() -> dict[str, Any]:
    operation = obj(
        "One operation of an HTTP connector.",
        {
            "method": {
                "enum": ["GET", "POST", "PUT", "PATCH", "DELETE"],
                "description": "HTTP method",
            },
            "path": text(
                "Path appended to the base URL; {name} placeholders are filled "
                "from the step's `with:` values",
                pattern=URL_PATH_PATTERN,
            ),
            "description": text("What the operation does"),
        },
        required=("method", "path"),
    )
    return obj(
        "An outside system the flows talk to. URLs and secrets come from environment variables.",
        {
            "type": {
                "enum": ["http", "dingtalk", "wecom", "email", "webhook"],
                "description": "Kind of connector",
            },
            "title": text("Human-readable name"),
            "base_url_env": _env_ref("Variable holding the base URL (http connectors)"),
            "base_url_default": text(
                "Base URL used when the variable is not set (for local mock servers only)",
                pattern=URL_PATTERN,
            ),
            "url_env": _env_ref("Variable holding the webhook URL (dingtalk, wecom, webhook)"),
            "token_env": _env_ref("Variable holding a bearer token or robot secret"),
            "smtp_url_env": _env_ref("Variable holding the SMTP URL (email)"),
            "sender": text("Sender address for email", format="email"),
            "timeout": number(
                "Seconds before a request is abandoned", exclusiveMinimum=0, maximum=120
            ),
            "retries": integer("How many times a failed call is retried", minimum=0, maximum=50),
            "operations": ident_map("Named operations (http connectors)", operation),
        },
        required=("type",),
    )


def _tracking() -> dict[str, Any]:
    rate = obj(
        "At most `count` requests in `minutes`.",
        {
            "count": integer("How many requests are allowed", minimum=1, maximum=10_000),
            "minutes": number("Length of the window in minutes", exclusiveMinimum=0, maximum=1440),
        },
        required=("count", "minutes"),
    )
    contacts = obj(
        "The form holding the people outside (e.g. customers) and how to reach them.",
        {
            "form": ident("The contact form"),
            "phone": ident("Its phone field: what people type to find their records"),
            "channel": ident(
                "Its field with the recipient id for the code connector (e.g. a WeCom id)"
            ),
            "name": ident("Its field with a person's name, shown masked (e.g. 张**)"),
        },
        required=("form", "phone"),
    )
    records = obj(
        "The form people track and the only fields they ever see.",
        {
            "form": ident("The tracked form (e.g. orders)"),
            "contact": ident("Its ref field pointing at the contact form"),
            "number": ident("Its number field (heading of each record; the suffix check)"),
            "show": names(
                "Fields shown besides the number and the state (never money, long text, "
                "tables or files)"
            ),
            "hide_states": names("Records in these states are not listed, nor these steps"),
            "stages": {
                "type": "object",
                "description": "What people see instead of the flow's states: each stage "
                "name (in the page's words, e.g. 已接单) with the states it covers, in the "
                "order they happen; every state is in one stage or in hide_states. A stage is "
                "a list of states (grey badge) or {states: [...], color: blue}",
                "propertyNames": {"minLength": 1, "maxLength": 40},
                "additionalProperties": {
                    "anyOf": [
                        {**names("The states shown as this stage"), "minItems": 1},
                        obj(
                            "A stage with its colour",
                            {
                                "states": {
                                    **names("The states shown as this stage"),
                                    "minItems": 1,
                                },
                                "color": {
                                    "enum": list(STAGE_COLORS),
                                    "description": "Colour of the stage's badge and of its "
                                    "step on the progress line (default grey)",
                                },
                            },
                            required=("states",),
                        ),
                    ]
                },
                "minProperties": 1,
            },
            "limit": integer(
                "Records per page, newest first (the page says how many more there are)",
                minimum=1,
                maximum=200,
            ),
        },
        required=("form", "contact", "number"),
    )
    code = obj(
        "The one-time code: how it is sent and how long it lives.",
        {
            "via": ident("Connector that sends the code (wecom, dingtalk, email or webhook)"),
            "template": text("Message template under templates/ ({{ code }} is the code)"),
            "length": integer("Digits of the code", minimum=6, maximum=10),
            "minutes": number("Minutes a code stays valid", exclusiveMinimum=0, maximum=30),
            "visible_to": names(
                "Roles who may read code messages in the outbox (/runs) — for demos"
            ),
        },
        required=("via", "template"),
    )
    return obj(
        "The public tracking page /track: people find their records by phone number without "
        "an account, after a one-time code (or the last characters of a record number).",
        {
            "title": text("Page title shown to people"),
            "company": text(
                "The company's name people know, shown at the top of the page instead of "
                "the app's internal title",
                minLength=1,
            ),
            "contacts": contacts,
            "records": records,
            "verify": {
                "enum": ["code", "order_suffix"],
                "description": "code: a one-time code sent to the contact (default); "
                "order_suffix: the phone plus the last characters of a record number",
            },
            "code": code,
            "suffix_length": integer(
                "Characters of the number asked for with order_suffix", minimum=4, maximum=8
            ),
            "session_minutes": number(
                "Minutes a verified visit lasts", exclusiveMinimum=0, maximum=120
            ),
            "max_attempts": integer(
                "Wrong tries per phone number before it is locked", minimum=1, maximum=20
            ),
            "max_attempts_ip": integer(
                "Wrong tries per address before it is locked", minimum=1, maximum=1000
            ),
            "lockout_minutes": number(
                "How long a lockout lasts (wrong tries count in this window)",
                exclusiveMinimum=0,
                maximum=1440,
            ),
            "rate_limits": obj(
                "How often a phone number and an address may ask.",
                {"per_phone": rate, "per_ip": rate},
            ),
        },
        required=("contacts", "records"),
    )


def _insight() -> dict[str, Any]:
    return obj(
        "Frequent combinations of a multiselect field, clustered into candidate standard "
        "templates with their coverage (CLI, CSV and the page /insights/NAME)",
        {
            "title": text("Title of the report", minLength=1),
            "form": ident("The form whose records are read"),
            "field": ident("A multiselect field of that form"),
            "min_support": integer(
                "A combination becomes a candidate when at least this many records ask for "
                "exactly it (default 2)",
                minimum=1,
            ),
            "top": integer("How many templates to suggest at most (default 7)", minimum=1),
            "roles": names("Roles that may open the page (default: everyone signed in)"),
        },
        required=("title", "form", "field"),
    )


def app_schema() -> dict[str, Any]:
    calendar_obj = obj(
        "Working-day calendar with overrides.",
        {
            "base": {
                "enum": ["cn", "weekends"],
                "description": "cn: Chinese statutory holidays and make-up workdays; "
                "weekends: Monday to Friday",
            },
            "holidays": dates(
                "Extra days off (YYYY-MM-DD); any date here makes its year known to the calendar"
            ),
            "workdays": dates("Extra working days such as make-up Saturdays (YYYY-MM-DD)"),
        },
        required=("base",),
    )
    role = obj(
        "A role people can hold.",
        {
            "label": text("Name shown to people"),
            "description": text("What the role does"),
        },
        required=("label",),
    )
    return {
        "$schema": DRAFT,
        "$id": BASE_ID + "app.schema.json",
        "title": "Seamline app (app.yaml)",
        **obj(
            "The app: name, language, calendar, roles, people and connectors.",
            {
                "name": ident("Machine name of the app"),
                "title": text("Title shown in pages", minLength=1),
                "version": text('Version of this configuration, e.g. "1.2"'),
                "description": text("What the app is for"),
                "locale": {
                    "enum": ["zh-CN", "en"],
                    "description": "Language of pages and messages",
                },
                "timezone": text("IANA time zone, e.g. Asia/Shanghai"),
                "currency": text(
                    "ISO currency code of money amounts (a money field's own currency wins), "
                    "e.g. CNY: amounts read ¥1,234.00",
                    pattern=CURRENCY_PATTERN,
                ),
                "calendar": {
                    "description": "Working days: `cn`, `weekends`, or a mapping with overrides",
                    "anyOf": [{"enum": ["cn", "weekends"]}, calendar_obj],
                },
                "business_hours": {
                    "type": "array",
                    "description": 'Working hours of a working day, e.g. ["08:30-12:00", '
                    '"13:00-17:30"]',
                    "items": {"type": "string", "pattern": HOURS_PATTERN},
                    "minItems": 1,
                },
                "roles": ident_map("Roles people can hold", role, min_props=1),
                "people": text(
                    "Org chart file under the app folder (CSV or YAML) with "
                    "user, name, roles, manager, phone, chat ids",
                    pattern=PEOPLE_FILE_PATTERN,
                ),
                "database": text("Default database URL (SEAMLINE_DB or --db override it)"),
                "connectors": ident_map("Outside systems the flows talk to", _connector()),
                "tracking": _tracking(),
                "insights": ident_map(
                    "Named insight reports (`seamline insights NAME`)", _insight()
                ),
            },
            required=("name", "title", "roles"),
        ),
    }


# --------------------------------------------------------------------------- forms

_COMMON_FIELD: dict[str, Any] = {
    "type": {"enum": list(FIELD_TYPES), "description": "Kind of value"},
    "label": text("Name shown to people", minLength=1),
    "help": text("Help text shown under the input"),
    "required": boolean("A value must be given"),
    "readonly": boolean("Nobody edits it in pages or the API"),
    "editable_by": names("Roles that may edit the field (default: anyone who may edit the record)"),
    "editable_in": names("States in which the field may be edited"),
    "renamed_from": ident("The field's previous name, so deploy renames the column"),
    "index": boolean(
        "Give the column an index of its own (`ix_<table>_<field>`), so lists filtered on it "
        "(`?field=value`) and dashboard conditions comparing it read only the matching rows; "
        "deploy adds it, and drops it when the key goes. Refs, dates, times and autonumbers "
        "have one already; not for table, files, multiselect or long_text"
    ),
}

_COMPARE = obj(
    "Show this field beside another one on the record page, highlighted while a condition holds",
    {
        "with": ident("The field shown beside this one, e.g. the date the system can promise"),
        "highlight": expr("Highlight the pair while this is true, e.g. promise_gap_days > 2"),
        "message": text("Shown with the highlight"),
    },
    required=("with",),
)


def _field_props(kind: str, child: bool) -> dict[str, Any]:
    options = {
        "type": "array",
        "description": "Choices: plain strings, or {value, label}",
        "minItems": 1,
        "items": {
            "anyOf": [
                {"type": "string", "minLength": 1},
                obj(
                    "A choice with a label",
                    {
                        "value": text("Stored value", minLength=1),
                        "label": text("Name shown to people"),
                    },
                    required=("value",),
                ),
            ]
        },
    }
    by_type: dict[str, dict[str, Any]] = {
        "text": {
            "min_length": integer("Shortest allowed length", minimum=0),
            "max_length": integer("Longest allowed length", minimum=1, maximum=10000),
            "pattern": text("Regular expression the value must match"),
            "pattern_message": text("Message shown when the pattern does not match"),
            "default": text("Initial value"),
        },
        "long_text": {
            "max_length": integer("Longest allowed length", minimum=1, maximum=1000000),
            "default": text("Initial value"),
        },
        "integer": {
            "min": integer("Smallest allowed value, a whole number, e.g. 1"),
            "max": integer("Largest allowed value, a whole number, e.g. 1000000"),
            "default": integer("Initial value"),
        },
        "decimal": {
            "min": number("Smallest allowed value, a number, e.g. 0.5"),
            "max": number("Largest allowed value, a number, e.g. 99.9"),
            "scale": integer("Digits after the decimal point", minimum=0, maximum=10),
            "default": number("Initial value"),
        },
        "money": {
            "min": number("Smallest allowed amount, a number, e.g. 0.01"),
            "max": number("Largest allowed amount, a number, e.g. 100000"),
            "currency": text("ISO currency code", pattern=CURRENCY_PATTERN),
            "default": number("Initial value"),
        },
        "boolean": {"default": boolean("Initial value")},
        "date": {
            "min": text("Earliest allowed date, YYYY-MM-DD, e.g. 2026-01-01", pattern=DATE_PATTERN),
            "max": text("Latest allowed date, YYYY-MM-DD, e.g. 2030-12-31", pattern=DATE_PATTERN),
            "default": expr("Initial value, e.g. today()"),
        },
        "datetime": {"default": expr("Initial value, e.g. now()")},
        "select": {"options": options, "default": text("Initial value (one of the options)")},
        "multiselect": {
            "options": options,
            "min_items": integer("Fewest choices", minimum=0),
            "max_items": integer("Most choices", minimum=1),
        },
        "phone": {"default": text("Initial value")},
        "email": {"default": text("Initial value")},
        "ref": {
            "form": ident("The form this field points to"),
        },
        "files": {
            "accept": {
                "type": "array",
                "description": "Allowed file extensions, e.g. [.png, .jpg, .pdf, .dwg]",
                "items": {"type": "string", "pattern": EXTENSION_PATTERN},
                "minItems": 1,
            },
            "max_size_mb": number("Largest file in MB", exclusiveMinimum=0, maximum=500),
            "max_files": integer("Most files", minimum=1, maximum=100),
        },
        "computed": {
            "expr": expr("How the value is computed from other fields"),
            "result": {"enum": list(COMPUTED_RESULTS), "description": "Type of the result"},
        },
        "autonumber": {
            "format": text(
                "Pattern with {yyyy}, {yy}, {mm}, {dd} and {seq:N}, e.g. SO-{yyyy}{mm}-{seq:5}",
                pattern=SEQ_PATTERN,
            ),
        },
        "table": {
            "fields": ident_map(
                "Columns of the child table", {"$ref": "#/definitions/child_field"}, min_props=1
            ),
            "append_only": boolean(
                "Rows can be added but never edited or deleted (e.g. a communication log)"
            ),
            "min_rows": integer("Fewest rows", minimum=0),
            "max_rows": integer("Most rows", minimum=1, maximum=10000),
        },
    }
    props = dict(_COMMON_FIELD)
    if child:
        props["type"] = {"enum": list(CHILD_FIELD_TYPES), "description": "Kind of value"}
    props.update(by_type[kind])
    if not child and kind not in ("table", "files"):
        props["compare"] = _COMPARE
    return props


_REQUIRED_BY_TYPE = {
    "select": ("options",),
    "multiselect": ("options",),
    "ref": ("form",),
    "computed": ("expr", "result"),
    "autonumber": ("format",),
    "table": ("fields",),
}


def _field_schema(child: bool) -> dict[str, Any]:
    types = CHILD_FIELD_TYPES if child else FIELD_TYPES
    branches = []
    for kind in types:
        branches.append(
            {
                "if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
                "then": {
                    "properties": _field_props(kind, child),
                    "additionalProperties": False,
                    "required": ["type", "label", *_REQUIRED_BY_TYPE.get(kind, ())],
                },
            }
        )
    return {
        "type": "object",
        "description": "A field: its type, label and the rules of its type",
        "required": ["type", "label"],
        "properties": {
            "type": _COMMON_FIELD["type"]
            if not child
            else {"enum": list(CHILD_FIELD_TYPES), "description": "Kind of value"}
        },
        "allOf": branches,
    }


def _hint() -> dict[str, Any]:
    return obj(
        "Among the last records with the same values that reached a state, compare a date "
        "field with the day each reached it; when all were early (or all late) by at least "
        "min_days, show it with the evidence, e.g. delivered 2 days before the promised date",
        {
            "match": {
                "type": "array",
                "description": "Fields whose values the earlier records share with this one: "
                "a field or a path through a ref, e.g. [customer, product.category]",
                "items": {"type": "string", "pattern": FIELD_PATH_PATTERN},
                "minItems": 1,
                "uniqueItems": True,
            },
            "state": ident("The state the earlier records reached, e.g. delivered"),
            "date": ident("A date field compared with the day they reached it"),
            "last": integer("How many of the latest such records are read (default 3)", minimum=1),
            "min_days": integer(
                "Each must be early (or late) by at least this many days (default 2)", minimum=1
            ),
        },
        required=("match", "state", "date"),
    )


def form_schema() -> dict[str, Any]:
    rule = obj(
        "A rule across fields: when `check` is false the record is refused with `message`.",
        {
            "name": ident("Name of the rule"),
            "check": expr("Must be true for the record to be valid"),
            "when": expr("The rule applies only when this is true"),
            "field": ident("Field the message is attached to"),
            "message": text("Message shown to people when the check fails", minLength=1),
        },
        required=("name", "check", "message"),
    )
    return {
        "$schema": DRAFT,
        "$id": BASE_ID + "form.schema.json",
        "title": "Seamline form (forms/*.yaml)",
        "definitions": {"field": _field_schema(False), "child_field": _field_schema(True)},
        **obj(
            "One form: its fields, in order, and its rules. The file name is the form name.",
            {
                "title": text("Name of the form shown to people", minLength=1),
                "description": text("What the form is for"),
                "title_field": ident("Field that names a record in lists and ref pickers"),
                "list_columns": names("Fields shown as columns in the record list"),
                "picker": obj(
                    "How a ref picker pointing at this form shows each record: its title, then "
                    "its code, then the `show` fields (e.g. 仪表板总成 · DP-100001 · 内饰件), so "
                    "records with the same title can be told apart",
                    {
                        "code": ident(
                            "Field that identifies a record, shown after the title and matched "
                            "by the picker's search (default: the form's first autonumber field)"
                        ),
                        "show": names("Further fields shown after the code (e.g. a category)"),
                    },
                ),
                "permissions": obj(
                    "Which roles may see, create and edit records of this form (default for "
                    "each: everyone signed in); checked on the server for pages and the API",
                    {
                        "read": names("Roles that may list and open records"),
                        "create": names("Roles that may create records"),
                        "update": names("Roles that may edit records"),
                    },
                ),
                "fields": ident_map(
                    "Fields in display order", {"$ref": "#/definitions/field"}, min_props=1
                ),
                "rules": {"type": "array", "description": "Rules across fields", "items": rule},
                "hints": ident_map("Hints from earlier records on the record page", _hint()),
                "indexes": {
                    "type": "array",
                    "description": "Indexes on several columns, each a list of field names "
                    "in order (`ix_<table>_<field1>_<field2>…`), e.g. `[[customer, desired_date]]`"
                    " for lists filtered on the first and sorted or filtered on the next; a "
                    "condition on the first field alone uses it too; built-in fields (state, "
                    "created_at, updated_at, created_by) may be listed; deploy adds and drops them",
                    "items": {
                        "type": "array",
                        "items": {"type": "string", "pattern": IDENT},
                        "minItems": 1,
                        "uniqueItems": True,
                    },
                    "uniqueItems": True,
                },
            },
            required=("title", "fields"),
        ),
    }


# --------------------------------------------------------------------------- flows


def _event() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "What starts it: exactly one of created, updated, field_changed, "
        "state_entered, transition, schedule",
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": False,
        "properties": {
            "created": boolean("When a record is created"),
            "updated": boolean("When a record is saved with changes"),
            "field_changed": one_or_many("When one of these fields changes"),
            "state_entered": one_or_many("When the record enters one of these states"),
            "transition": one_or_many("When one of these transitions is fired"),
            "schedule": text(
                "Cron expression (minute hour day month weekday) in the app's time zone",
                pattern=CRON_PATTERN,
            ),
        },
    }


def _who() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "Who: exactly one of role, person, manager_of, field",
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": False,
        "properties": {
            "role": ident("Everyone holding this role"),
            "person": text("One person (user name from the org chart)", minLength=1),
            "manager_of": {
                "enum": ["owner", "submitter"],
                "description": "The manager of the record's owner or submitter",
            },
            "field": ident("The person named in this field of the record"),
            "expr": expr(
                "A user name or a list of user names computed from the record, "
                "e.g. the department head of the customer's region"
            ),
        },
    }


def _steps_schema() -> dict[str, Any]:
    common = {
        "id": ident("Name for the step; its results are `steps.<id>.<name>`"),
        "when": expr("Run the step only when this is true"),
    }
    call = obj(
        "Call an operation of a connector",
        {
            "connector": ident("Connector from app.yaml"),
            "operation": ident("Operation of that connector"),
            "with": ident_map("Values sent, by name", expr("Value")),
            "keep": ident_map(
                "Values kept from the answer, as dotted paths into its JSON",
                text("Dotted path", minLength=1),
            ),
            "pending_state": ident(
                "State the record waits in while the system does not answer; retried until it does"
            ),
        },
        required=("connector", "operation"),
    )
    notify = obj(
        "Send a message from a template",
        {
            "via": ident("Connector that delivers it (dingtalk, wecom, email, webhook)"),
            "to": {"type": "array", "description": "Recipients", "items": _who(), "minItems": 1},
            "template": text("Template file under templates/", minLength=1),
            "todo": boolean(
                "Send it as a to-do (a DingTalk action card) and leave an in-app to-do on the "
                "record for each person (or role) named, in their worklist until marked done"
            ),
        },
        required=("via", "to", "template"),
    )
    create = obj(
        "Create a record of another form",
        {
            "form": ident("Form of the new record"),
            "values": ident_map("Field values", expr("Value")),
        },
        required=("form", "values"),
    )
    wait = obj(
        "Wait before the next step (durable: survives restarts)",
        {
            "minutes": number("Calendar minutes", exclusiveMinimum=0),
            "hours": number("Calendar hours", exclusiveMinimum=0),
            "days": number("Calendar days", exclusiveMinimum=0),
            "business_hours": number("Business hours (app calendar)", exclusiveMinimum=0),
            "workdays": integer("Working days (app calendar)", minimum=1),
        },
        minProperties=1,
        maxProperties=1,
    )
    actions = {
        "call": call,
        "if": expr("Condition choosing `then` or `else`"),
        "set": ident_map("Fields to set on the record", expr("New value"), min_props=1),
        "create": create,
        "notify": notify,
        "transition": ident("Transition to fire"),
        "wait": wait,
    }
    step_branches = []
    for action, spec in actions.items():
        props = {**common, action: spec}
        required = [action]
        if action == "if":
            props["then"] = {
                "$ref": "#/definitions/steps",
                "description": "Steps run when the condition is true",
            }
            props["else"] = {
                "$ref": "#/definitions/steps",
                "description": "Steps run when the condition is false",
            }
            required.append("then")
        step_branches.append(
            {
                "if": {"required": [action]},
                "then": {"properties": props, "additionalProperties": False, "required": required},
            }
        )
    step = {
        "type": "object",
        "description": "One step: call, if, set, create, notify, transition or wait",
        "anyOf": [{"required": [a]} for a in actions],
        "allOf": step_branches,
    }
    return {"type": "array", "description": "Steps run in order", "items": step, "minItems": 1}


def flow_schema() -> dict[str, Any]:
    state = obj(
        "A state of the record",
        {
            "label": text("Name shown to people", minLength=1),
            "initial": boolean("New records start here (exactly one state)"),
            "final": boolean("Nothing leaves this state"),
            "editable": boolean(
                "Records in this state may be edited (default: true for the "
                "initial state, false otherwise)"
            ),
            "color": {
                "enum": ["grey", "blue", "green", "amber", "red"],
                "description": "Colour of the state badge",
            },
        },
        required=("label",),
    )
    transition = obj(
        "A move between states, shown as a button",
        {
            "label": text("Button text", minLength=1),
            "from": one_or_many("State(s) it leaves from"),
            "to": ident("State it goes to"),
            "roles": {
                **names(
                    "Roles that may fire it (default: the roles that may update the form; "
                    "see README 'Who may do what')"
                ),
                "minItems": 1,
            },
            "by": {
                "enum": ["people", "system"],
                "description": "Who fires it: 'people' (default: a person presses the button) or "
                "'system' (only the engine: an approval's outcome or an automation; people "
                "get 403 and never see the button)",
            },
            "guard": expr("Must be true for the transition to be allowed"),
            "guard_message": text("Message shown when the guard is false"),
            "require": names("Fields that must be filled before it may fire"),
            "set": {
                "type": "object",
                "description": "Fields written together with the transition, each from an "
                "expression evaluated when it fires (e.g. keep the price the order was "
                "submitted with: unit_price: product.unit_price)",
                "propertyNames": {"pattern": IDENT},
                "additionalProperties": expr("The value written"),
            },
            "confirm": obj(
                "A confirmation gate: each role confirms the current value of a field, and the "
                "transition fires only when all of them confirmed the same value; a change of "
                "the field (or of a reopen_on field) re-opens the gate",
                {
                    "field": ident("The field whose value is confirmed, e.g. a promised date"),
                    "by": {**names("Roles that must each confirm the value"), "minItems": 1},
                    "reopen_on": names(
                        "Other fields whose change also re-opens the gate, e.g. a computed date"
                    ),
                },
                required=("field", "by"),
            ),
        },
        required=("label", "from", "to"),
    )
    automation = obj(
        "When something happens, run steps",
        {
            "on": _event(),
            "when": expr("Run only when this is true"),
            "steps": {"$ref": "#/definitions/steps", "description": "Steps run in order"},
        },
        required=("on", "steps"),
    )
    return {
        "$schema": DRAFT,
        "$id": BASE_ID + "flow.schema.json",
        "title": "Seamline flow (flows/*.yaml)",
        "definitions": {"steps": _steps_schema()},
        **obj(
            "The state machine and automations of one form.",
            {
                "form": ident("The form this flow belongs to"),
                "description": text("What the flow does"),
                "states": ident_map("States in order", state, min_props=1),
                "transitions": ident_map("Transitions between states", transition),
                "automations": ident_map("Automations, by name", automation),
            },
            required=("form",),
        ),
    }


# --------------------------------------------------------------------------- approvals


def approval_schema() -> dict[str, Any]:
    sla = obj(
        "How long a step may wait, and what happens then",
        {
            "business_hours": number("Business hours before escalation", exclusiveMinimum=0),
            "escalate_to": {
                "enum": ["manager", "none"],
                "description": "Who gets it when the time is up",
            },
            "max_escalations": integer("How far up the chain it may go", minimum=0, maximum=10),
            "remind_before_hours": number(
                "Reminder this many business hours before the deadline", exclusiveMinimum=0
            ),
        },
        required=("business_hours",),
    )
    who_list = {"type": "array", "description": "Approvers", "items": _who(), "minItems": 1}
    step_common = {
        "name": ident("Name of the step"),
        "label": text("Name shown to people"),
        "sla": sla,
    }
    n_of = obj(
        "At least n of these approve",
        {
            "n": integer("How many approvals are needed", minimum=1),
            "of": who_list,
        },
        required=("n", "of"),
    )
    kinds = {"approver": _who(), "any_of": who_list, "all_of": who_list, "n_of": n_of}
    step = {
        "type": "object",
        "description": "A step: approver (one), any_of, all_of (countersign) or n_of",
        "anyOf": [{"required": [k]} for k in kinds],
        "allOf": [
            {
                "if": {"required": [k]},
                "then": {
                    "properties": {**step_common, k: v},
                    "additionalProperties": False,
                    "required": ["name", k],
                },
            }
            for k, v in kinds.items()
        ],
    }
    steps = {
        "type": "array",
        "description": "Approval steps in order",
        "items": step,
        "minItems": 1,
    }
    route = obj(
        "A route: when it matches, its steps run in order",
        {
            "name": ident("Name of the route (config tests expect it)"),
            "label": text("Name shown to people"),
            "when": expr("The route is taken when this is true (first match wins)"),
            "default": boolean("Taken when no other route matches; must be last"),
            "steps": steps,
        },
        required=("name", "steps"),
    )
    extra = obj(
        "Steps added after the chosen route's steps when a condition holds (every "
        "matching rule adds its steps, in order) — e.g. a general manager above an amount",
        {
            "name": ident("Name of the rule (config tests expect it)"),
            "label": text("Name shown to people"),
            "when": expr("The steps are added when this is true"),
            "steps": steps,
        },
        required=("name", "when", "steps"),
    )
    message = obj(
        "How approvers hear of a task, a reminder or an escalation",
        {
            "via": ident("Connector that delivers it (dingtalk, wecom, email, webhook)"),
            "template": text("Template file under templates/", minLength=1),
            "todo": boolean(
                "Send it as a to-do (a DingTalk action card); the approval task itself is the "
                "approver's in-app to-do"
            ),
        },
        required=("via", "template"),
    )
    param = {
        "description": "A value the conditions use as params.NAME",
        "type": ["number", "string", "boolean"],
    }
    return {
        "$schema": DRAFT,
        "$id": BASE_ID + "approval.schema.json",
        "title": "Seamline approval (approvals/*.yaml)",
        **obj(
            "Who approves a record, chosen by rules.",
            {
                "form": ident("The form approved"),
                "description": text("What the approval is for"),
                "start": _event(),
                "on_approved": ident("Transition fired when every step approves"),
                "on_rejected": ident("Transition fired when someone rejects"),
                "on_returned": ident("Transition fired when someone returns it for changes"),
                "sla": sla,
                "if_record_changes": {
                    "enum": ["restart", "lock"],
                    "description": "While approving: restart approvals "
                    "when the record changes, or lock it",
                },
                "self_approval": {
                    "enum": ["forbid_creator_and_starter", "forbid_starter", "allow"],
                    "description": "Who may never decide the record: its creator and whoever "
                    "started the approval (forbid_creator_and_starter, the default), only the "
                    "starter (forbid_starter), or nobody is refused (allow)",
                },
                "allow_self_approval": boolean(
                    "Deprecated: true is self_approval: allow (with a warning)"
                ),
                "params": ident_map("Named values for the conditions (params.NAME)", param),
                "notify": message,
                "routes": {
                    "type": "array",
                    "description": "Routes in order; first match wins",
                    "items": route,
                    "minItems": 1,
                },
                "add_steps": {
                    "type": "array",
                    "description": "Rules that add steps after the route's steps",
                    "items": extra,
                },
            },
            required=("form", "start", "on_approved", "on_rejected", "routes"),
        ),
    }


# --------------------------------------------------------------------------- dashboards


def _kpi_endpoint() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "Where a duration starts or ends: exactly one of created, "
        "state_entered, transition, notified, field",
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": False,
        "properties": {
            "created": boolean("When the record was created"),
            "state_entered": one_or_many("The first time the record entered one of these states"),
            "transition": one_or_many("The first time one of these transitions was fired"),
            "notified": one_or_many(
                "The first message of one of these automations delivered for the record"
            ),
            "field": ident("The value of this date or datetime field of the record"),
        },
    }


def _kpi_count() -> dict[str, Any]:
    return obj(
        "For per_record: what is counted for each record — exactly one of state_entered, "
        "transition, field_changed, notified, rows",
        {
            "state_entered": one_or_many("Times the record entered one of these states"),
            "transition": one_or_many("Times one of these transitions was fired"),
            "field_changed": one_or_many("Changes saved to one of these fields"),
            "notified": one_or_many("Messages of these automations delivered"),
            "rows": ident("Rows of this child table"),
            "where": expr("With rows: only rows for which this is true (over the row's fields)"),
        },
    )


def dashboard_schema() -> dict[str, Any]:
    rule = THRESHOLD_PATTERN
    kpi = obj(
        "A key figure with traffic-light thresholds",
        {
            "title": text("Name shown to people", minLength=1),
            "form": ident("Records measured"),
            "measure": {
                "enum": [
                    "count",
                    "rate",
                    "sum",
                    "avg",
                    "distinct_count",
                    "per_record",
                    "median_hours",
                    "percentile_hours",
                    "on_time_rate",
                ],
                "description": "count/sum/avg of records, distinct_count of a field's values, "
                "rate of records matching `numerator`, per_record: average `count` per record, "
                "median/percentile hours between `from` and `to`, on_time_rate: share of "
                "records whose `to` came within `within_hours` of `from`",
            },
            "where": expr(
                "Only records for which this is true; entered('state') and "
                "fired('transition') ask the record's history"
            ),
            "numerator": expr("For rate: records counted in the numerator"),
            "field": ident("For sum/avg: the field summed; for distinct_count: the field"),
            "from": _kpi_endpoint(),
            "to": _kpi_endpoint(),
            "percentile": number(
                "For percentile_hours, e.g. 90", exclusiveMinimum=0, exclusiveMaximum=100
            ),
            "within_hours": number("For on_time_rate: on time within this many hours", minimum=0),
            "count": _kpi_count(),
            "window": text(
                "Time window: today, 7d, 30d, this_month, all",
                pattern=WINDOW_PATTERN,
            ),
            "unit": text("Unit shown after the value"),
            "target": number("The value aimed at, shown next to the value"),
            "green": text("Green when the value meets this, e.g. '<= 2'", pattern=rule),
            "amber": text("Amber when the value meets this (otherwise red)", pattern=rule),
            "trend": {"enum": ["day", "week", "month"], "description": "Bucket of the trend"},
            "group_by": ident(
                "Also show the value per value of this field (a ref: per referenced record), "
                "worst first"
            ),
            "top": integer(
                "With group_by: how many groups to show (default 5)", minimum=1, maximum=50
            ),
            "drill": obj(
                "The drill-down list",
                {"columns": names("Fields shown for each record behind the value")},
            ),
        },
        required=("title", "form", "measure"),
    )
    return {
        "$schema": DRAFT,
        "$id": BASE_ID + "dashboard.schema.json",
        "title": "Seamline dashboard (dashboards/*.yaml)",
        **obj(
            "A dashboard of KPIs.",
            {
                "title": text("Title of the dashboard", minLength=1),
                "description": text("What it shows"),
                "roles": names("Roles that may see it (default: everyone signed in)"),
                "kpis": ident_map("KPIs in display order", kpi, min_props=1),
            },
            required=("title", "kpis"),
        ),
    }


# --------------------------------------------------------------------------- config tests


def test_schema() -> dict[str, Any]:
    expect = obj(
        "What should happen",
        {
            "valid": boolean("The record passes every field check and rule"),
            "errors": {
                "type": "array",
                "description": "Fields expected to be refused",
                "items": ident("Field name"),
            },
            "values": {"type": "object", "description": "Computed values expected, by field"},
            "route": ident("Approval route expected"),
            "added": {
                "type": "array",
                "description": "add_steps rules expected to add their steps ([] = none)",
                "items": ident("Rule name"),
            },
            "steps": {
                "type": "array",
                "description": "Approval steps expected, in order",
                "items": ident("Step name"),
            },
            "approvers": ident_map(
                "People expected to be asked, by step name (user names from the org chart)",
                {"type": "array", "items": text("User name", minLength=1)},
            ),
            "transition": ident("Transition expected to be allowed"),
            "refused_transition": ident("Transition expected to be refused"),
            "editable": {
                "type": "array",
                "description": "Fields the person acting (as_role / as_user) may change on such "
                "a record in its state",
                "items": ident("Field name"),
            },
            "refused_edit": {
                "type": "array",
                "description": "Fields the person acting may not change (the form's update "
                "permission, the field's editable_by or readonly, the state)",
                "items": ident("Field name"),
            },
        },
        minProperties=1,
    )
    case = obj(
        "One example and what it should give",
        {
            "name": text("What the case shows", minLength=1),
            "form": ident("Form of the example record"),
            "today": text("Date the case runs on (YYYY-MM-DD)", pattern=DATE_PATTERN),
            "state": ident("State the record is in"),
            "given": {
                "type": "object",
                "description": "Field values; a ref field takes a "
                "mapping of the referenced record's fields",
            },
            "as_role": ident("Role of the person acting"),
            "as_user": text(
                "A person of the org chart acting, with all their roles (instead of as_role)",
                minLength=1,
            ),
            "confirmed_by": names(
                "Roles that confirmed the current value at the gate of the expected transition"
            ),
            "expect": expect,
        },
        required=("name", "form", "given", "expect"),
    )
    return {
        "$schema": DRAFT,
        "$id": BASE_ID + "test.schema.json",
        "title": "Seamline config tests (tests/*.yaml)",
        **obj(
            "Examples that prove the rules and routes.",
            {
                "description": text("What these tests cover"),
                "cases": {
                    "type": "array",
                    "description": "The examples",
                    "items": case,
                    "minItems": 1,
                },
            },
            required=("cases",),
        ),
    }


_BUILDERS = {
    "app": app_schema,
    "form": form_schema,
    "flow": flow_schema,
    "approval": approval_schema,
    "dashboard": dashboard_schema,
    "test": test_schema,
}


@cache
def schema_for(kind: str) -> dict[str, Any]:
    """The schema of one kind of file (built once)."""
    return _BUILDERS[kind]()


def schema_json(kind: str) -> str:
    return json.dumps(schema_for(kind), ensure_ascii=False, indent=2) + "\n"


def schema_file_name(kind: str) -> str:
    return f"{kind}.schema.json"
