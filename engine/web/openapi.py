"""OpenAPI 3.1 document generated from the compiled forms (cached per App)."""

from __future__ import annotations

from typing import Any

from engine.model.spec import App, FieldSpec, FormSpec

_ERRORS = {"$ref": "#/components/schemas/Errors"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    if isinstance(kind, list):
        return {**schema, "type": [*kind, "null"]}
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], None]}
    return {"anyOf": [schema, {"type": "null"}]}


def value_schema(spec: FieldSpec, output: bool) -> dict[str, Any]:
    kind = spec.value_type
    described: dict[str, Any] = {"description": spec.label}
    if kind in ("text", "long_text", "phone", "email", "autonumber"):
        schema: dict[str, Any] = {"type": "string"}
        limit = spec.max_length or (255 if kind == "text" else None)
        if limit and not output:
            schema["maxLength"] = limit
    elif kind == "select":
        schema = (
            {"type": "string", "enum": list(spec.option_values)}
            if not output
            else {"type": "string"}
        )
    elif kind == "multiselect":
        schema = {
            "type": "array",
            "items": {"type": "string", "enum": list(spec.option_values)}
            if not output
            else {"type": "string"},
        }
    elif kind == "integer":
        schema = {"type": "integer"}
        if not output:
            schema.update(
                {k: v for k, v in (("minimum", spec.min), ("maximum", spec.max)) if v is not None}
            )
    elif kind in ("decimal", "money"):
        schema = (
            {"type": "string", "pattern": r"^-?\d+(\.\d+)?$"}
            if output
            else {"type": ["number", "string"]}
        )
    elif kind == "boolean":
        schema = {"type": "boolean"}
    elif kind == "date":
        schema = {"type": "string", "format": "date"}
    elif kind == "datetime":
        schema = {"type": "string", "format": "date-time"}
    elif kind == "ref":
        schema = {"type": "integer", "minimum": 1}
    elif kind == "files":
        schema = {"type": "array", "items": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}
    else:
        schema = {}
    return _nullable({**schema, **described}) if schema else described


def _row_schema(fields: tuple[FieldSpec, ...], output: bool) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for spec in fields:
        if spec.type == "table":
            props[spec.name] = {
                "type": "array",
                "description": spec.label,
                "items": _row_schema(spec.children, output),
            }
        elif output or not spec.readonly:
            props[spec.name] = value_schema(spec, output)
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if output:
        schema["required"] = [f.name for f in fields if f.type != "table"]
    else:
        schema["additionalProperties"] = False
    return schema


def _record_schema(form: FormSpec) -> dict[str, Any]:
    schema = _row_schema(form.fields, output=True)
    schema["properties"].update(
        {
            "id": {"type": "integer"},
            "state": {"type": ["string", "null"]},
            "version": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "created_by": {"type": "string"},
            "_titles": {"type": "object", "additionalProperties": {"type": "string"}},
        }
    )
    schema["required"] = ["id", "version", "created_at", *schema["required"]]
    return schema


def _approval_paths(app: App) -> dict[str, Any]:
    """The approval inbox, decisions, approvals of a record, PDF records, delegations."""
    task_id = {
        "name": "task_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
    comment = {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"comment": {"type": "string", "maxLength": 4000}},
                }
            }
        },
    }
    paths: dict[str, Any] = {
        "/api/tasks": {
            "get": {
                "operationId": "listMyTasks",
                "responses": _ok(
                    {
                        "type": "object",
                        "required": ["tasks"],
                        "properties": {"tasks": {"type": "array"}},
                    }
                ),
            }
        },
        "/api/delegations": {
            "get": {"operationId": "listDelegations", "responses": _ok({"type": "object"})},
            "post": {
                "operationId": "addDelegation",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["delegate", "ends"],
                                "properties": {
                                    "delegate": {"type": "string"},
                                    "starts": {"type": "string", "format": "date-time"},
                                    "ends": {"type": "string", "format": "date-time"},
                                    "reason": {"type": "string", "maxLength": 500},
                                },
                            }
                        }
                    },
                },
                "responses": _ok({"type": "object"}, "201"),
            },
        },
        "/api/delegations/{delegation_id}": {
            "delete": {
                "operationId": "revokeDelegation",
                "parameters": [
                    {
                        "name": "delegation_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1},
                    }
                ],
                "responses": _ok({"type": "object"}),
            }
        },
        "/api/approvals/{approval_id}/record.pdf": {
            "get": {
                "operationId": "approvalRecordPdf",
                "parameters": [
                    {
                        "name": "approval_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1},
                    }
                ],
                "responses": {
                    **_ok({"type": "object"}),
                    "200": {
                        "description": "the sealed PDF record",
                        "content": {"application/pdf": {}},
                    },
                },
            }
        },
    }
    for decision in ("approve", "reject", "return"):
        paths[f"/api/tasks/{{task_id}}/{decision}"] = {
            "post": {
                "operationId": f"{decision}Task",
                "parameters": [task_id],
                "requestBody": comment,
                "responses": _ok({"type": "object"}),
            }
        }
    for form in sorted({a.form for a in app.approvals.values()}):
        paths[f"/api/forms/{form}/records/{{record_id}}/approvals"] = {
            "get": {
                "operationId": f"approvalsOf{_pascal(form)}",
                "parameters": [
                    {
                        "name": "record_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1},
                    }
                ],
                "responses": _ok({"type": "object"}),
            }
        }
    return paths


_KPI = {
    "type": "object",
    "required": ["id", "title", "value", "unit", "status", "thresholds", "trend"],
    "properties": {
        "id": {"type": "string"},
        "title": {"type": "string"},
        "value": {"type": ["number", "null"]},
        "unit": {"type": "string"},
        "status": {"enum": ["green", "amber", "red", "none"]},
        "thresholds": {"type": "object"},
        "trend": {"type": ["object", "null"]},
        "target": {"type": ["number", "null"]},
        "groups": {
            "type": ["array", "null"],
            "items": {
                "type": "object",
                "required": ["key", "label", "value", "status"],
                "properties": {
                    "label": {"type": "string"},
                    "value": {"type": ["number", "null"]},
                    "status": {"enum": ["green", "amber", "red", "none"]},
                },
            },
        },
    },
}


def _dashboard_paths(app: App) -> dict[str, Any]:
    """Dashboards my roles may see, their values, and the records behind a KPI (JSON, CSV)."""
    name = {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"enum": sorted(app.dashboards)} if app.dashboards else {"type": "string"},
    }
    kpi = {"name": "kpi", "in": "path", "required": True, "schema": {"type": "string"}}
    limit = {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 5000},
    }
    records = {
        "type": "object",
        "required": ["kpi", "records"],
        "properties": {
            "kpi": {"type": "string"},
            "columns": {"type": "array"},
            "records": {"type": "array"},
        },
    }
    return {
        "/api/dashboards": {
            "get": {
                "operationId": "listDashboards",
                "responses": _ok(
                    {
                        "type": "object",
                        "required": ["dashboards"],
                        "properties": {"dashboards": {"type": "array"}},
                    }
                ),
            }
        },
        "/api/dashboards/{name}": {
            "get": {
                "operationId": "dashboardValues",
                "parameters": [name],
                "responses": _ok(
                    {
                        "type": "object",
                        "required": ["name", "title", "kpis"],
                        "properties": {
                            "name": {"type": "string"},
                            "title": {"type": "string"},
                            "kpis": {"type": "array", "items": _KPI},
                        },
                    }
                ),
            }
        },
        "/api/dashboards/{name}/kpis/{kpi}/records": {
            "get": {
                "operationId": "kpiRecords",
                "parameters": [name, kpi, limit],
                "responses": _ok(records),
            }
        },
        "/api/dashboards/{name}/kpis/{kpi}/records.csv": {
            "get": {
                "operationId": "kpiRecordsCsv",
                "parameters": [name, kpi, limit],
                "responses": {
                    **_ok({"type": "object"}),
                    "200": {"description": "the records as CSV", "content": {"text/csv": {}}},
                },
            }
        },
    }


def _ok(schema: dict[str, Any], status: str = "200") -> dict[str, Any]:
    errors = {"description": "refused", "content": {"application/json": {"schema": _ERRORS}}}
    return {
        status: {"description": "ok", "content": {"application/json": {"schema": schema}}},
        "400": errors,
        "401": errors,
        "403": errors,
        "404": errors,
        "409": errors,
        "413": errors,
        "415": errors,
        "422": errors,
    }


_CACHE: dict[str, dict[str, Any]] = {}


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _gate_paths(
    base: str, pascal: str, id_param: dict[str, Any], gated: list[str]
) -> dict[str, Any]:
    """Where a record stands at its confirmation gates, and confirming at one."""
    gate = {"type": "object", "description": "value, confirmed [{role, user, value, at}], missing"}
    return {
        base + "/{record_id}/confirmations": {
            "get": {
                "operationId": f"gates{pascal}",
                "parameters": [id_param],
                "responses": _ok({"type": "object", "properties": {"gates": {"type": "array"}}}),
            }
        },
        base + "/{record_id}/confirmations/{transition}": {
            "post": {
                "operationId": f"confirm{pascal}",
                "parameters": [
                    id_param,
                    {
                        "name": "transition",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": gated},
                    },
                ],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "role": {"type": "string"},
                                    "value": {"description": "the value the caller saw"},
                                },
                                "additionalProperties": False,
                            }
                        }
                    },
                },
                "responses": _ok(gate),
            }
        },
    }


def build_openapi(app: App) -> dict[str, Any]:
    """The document for ``app`` (built once per configuration)."""
    if app.content_hash not in _CACHE:
        if len(_CACHE) > 8:
            _CACHE.clear()
        _CACHE[app.content_hash] = _build(app)
    return _CACHE[app.content_hash]


def _build(app: App) -> dict[str, Any]:
    schemas: dict[str, Any] = {
        "Errors": {
            "type": "object",
            "required": ["errors"],
            "properties": {
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["field", "code", "message"],
                        "properties": {
                            "field": {"type": ["string", "null"]},
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                        },
                    },
                }
            },
        },
    }
    paths: dict[str, Any] = {
        "/api/health": {
            "get": {
                "operationId": "health",
                "security": [],
                "responses": {"200": {"description": "ok"}},
            }
        },
        "/api/ready": {
            "get": {
                "operationId": "ready",
                "security": [],
                "description": "Readiness: the database answers and the job lag is within "
                "SEAMLINE_READY_MAX_LAG seconds (default 300).",
                "responses": {
                    "200": {"description": "ready", "content": _ready_content()},
                    "503": {
                        "description": "not ready: the failing check and a plain reason",
                        "content": _ready_content(),
                    },
                },
            }
        },
        "/api/forms": {
            "get": {
                "operationId": "listForms",
                "responses": _ok({"type": "array", "items": {"type": "object"}}),
            }
        },
    }
    id_param = {
        "name": "record_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
    for form in app.forms.values():
        pascal = _pascal(form.name)
        schemas[f"{pascal}Input"] = _row_schema(form.fields, output=False)
        schemas[f"{pascal}Record"] = _record_schema(form)
        record = {"$ref": f"#/components/schemas/{pascal}Record"}
        body = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{pascal}Input"}}
            },
        }
        base = f"/api/forms/{form.name}/records"
        paths[f"/api/forms/{form.name}"] = {
            "get": {"operationId": f"describe{pascal}", "responses": _ok({"type": "object"})}
        }
        paths[base] = {
            "get": {
                "operationId": f"list{pascal}",
                "parameters": [
                    {"name": "q", "in": "query", "schema": {"type": "string"}},
                    {"name": "sort", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                    },
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": _ok(
                    {
                        "type": "object",
                        "required": ["items", "next_cursor"],
                        "properties": {
                            "items": {"type": "array", "items": record},
                            "next_cursor": {"type": ["string", "null"]},
                        },
                    }
                ),
            },
            "post": {
                "operationId": f"create{pascal}",
                "requestBody": body,
                "responses": _ok(record, "201"),
            },
        }
        patch_body = {
            "required": True,
            "content": {"application/json": {"schema": {**schemas[f"{pascal}Input"]}}},
        }
        paths[base + "/{record_id}"] = {
            "get": {
                "operationId": f"get{pascal}",
                "parameters": [id_param],
                "responses": _ok(record),
            },
            "patch": {
                "operationId": f"update{pascal}",
                "parameters": [id_param],
                "requestBody": patch_body,
                "responses": _ok(record),
            },
        }
        paths[base + "/{record_id}/events"] = {
            "get": {
                "operationId": f"events{pascal}",
                "parameters": [id_param],
                "responses": _ok({"type": "array", "items": {"type": "object"}}),
            }
        }
        machine = app.state_machines.get(form.name)
        if machine is not None:
            paths[base + "/{record_id}/actions/{transition}"] = {
                "post": {
                    "operationId": f"act{pascal}",
                    "parameters": [
                        id_param,
                        {
                            "name": "transition",
                            "in": "path",
                            "required": True,
                            "schema": {
                                "type": "string",
                                "enum": [t.name for t in machine.transitions],
                            },
                        },
                    ],
                    "responses": _ok(record),
                }
            }
        gated = [t.name for t in machine.transitions if t.confirm] if machine else []
        if gated:
            paths.update(_gate_paths(base, pascal, id_param, gated))
        for child in (f for f in form.fields if f.type == "table"):
            paths[f"{base}/{{record_id}}/children/{child.name}"] = {
                "post": {
                    "operationId": f"add{pascal}{_pascal(child.name)}",
                    "parameters": [id_param],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": _row_schema(child.children, output=False)
                            }
                        },
                    },
                    "responses": _ok({"type": "object"}, "201"),
                }
            }
    paths.update(_approval_paths(app))
    paths.update(_dashboard_paths(app))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": app.title,
            "version": app.version,
            "description": f"JSON API of {app.title} (Seamline)",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def _ready_content() -> dict[str, Any]:
    check = {
        "type": "object",
        "required": ["ok"],
        "properties": {
            "ok": {"type": "boolean"},
            "ms": {"type": "number"},
            "lag_seconds": {"type": "number"},
            "due": {"type": "integer"},
            "max_lag_seconds": {"type": "number"},
            "reason": {"type": "string"},
        },
    }
    schema = {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["ready", "not_ready"]},
            "reason": {"type": "string"},
            "checks": {
                "type": "object",
                "properties": {"database": check, "jobs": check},
            },
        },
    }
    return {"application/json": {"schema": schema}}
