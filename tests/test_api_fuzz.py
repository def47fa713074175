"""schemathesis against the API's own OpenAPI document: no 5xx, no schema violations."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import schemathesis
from apihelp import start_api
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from engine.forms.records import SYSTEM_ACTOR

_DB = Path(os.environ.get("SEAMLINE_FUZZ_DIR", "/tmp")) / f"seamline-fuzz-{os.getpid()}.db"
if _DB.exists():
    _DB.unlink()
API = start_api(f"sqlite:///{_DB}")
API.live.records.create("customer", {"code": "C00001", "name": "客户", "tier": "A"}, SYSTEM_ACTOR)
API.live.records.create(
    "product", {"code": "SD-100001", "name": "面套", "unit_price": 10, "lead_days": 5}, SYSTEM_ACTOR
)
CLIENT = API.client("li.sales")
schema = schemathesis.openapi.from_asgi("/api/openapi.json", CLIENT.app)
TOKEN = CLIENT.headers["authorization"]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module", autouse=True)
def _cleanup():
    yield
    API.engine.dispose()
    _DB.unlink(missing_ok=True)


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("SEAMLINE_FUZZ_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"Authorization": TOKEN}, checks=CHECKS)
