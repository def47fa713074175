"""A mock warehouse management system (WMS) for the manufacturing pack and its tests.

Run it next to the pack (the ``wms`` connector in app.yaml defaults to port 8765)::

    uvicorn --app-dir examples/manufacturing_pack mock_wms:app --port 8765
    python examples/manufacturing_pack/mock_wms.py --port 8765      # the same

Everything lives in memory. Every product code in ``data/products.csv`` (next to this file)
is a known SKU; its stock is generated deterministically from the code on first use, so the
same SKU always shows the same locations and quantities. Expected arrival dates of in-transit
purchase orders are offsets from a base date: ``WMS_BASE_DATE`` (YYYY-MM-DD) when set, else
today in Asia/Shanghai, so a demo never shows orders that should have arrived long ago.
Four showcase SKUs are fixed: SD-100000 (plenty), DP-100001 (short, one PO), HL-100002
(short, two POs) and CP-100003 (nothing on hand, nothing incoming).

API (JSON, English keys):

* ``GET /api/stock/{sku}`` — on hand per location, reserved, safety stock, available, incoming;
* ``POST /api/reservations`` — ``{"sku", "quantity", "order_no"}`` with an ``Idempotency-Key``
  header (201 created; the same key again → 200 with the same reservation). The check and the
  reservation are one step, so concurrent requests never reserve the same units twice. By
  default it is all or nothing (409 ``insufficient_stock`` when short, and nothing is kept);
  with ``"allow_partial": true`` the warehouse reserves what is available, up to the quantity,
  and the answer says how much: ``requested``, ``quantity`` (reserved from stock) and
  ``short``. A reservation of 0 is kept with status ``unfilled``, so a retry with the same
  key gets the same answer;
* ``GET /api/reservations`` (``?sku=``, ``?order_no=``, ``?status=``) and
  ``DELETE /api/reservations/{id}``.

With ``WMS_TOKEN`` set, ``/api/*`` needs ``Authorization: Bearer <token>``.

Test controls (never authenticated, never faulted — keep the mock on localhost):

* ``POST /_control`` ``{"mode": "ok"|"fail"|"slow"|"drop", "status": 500, "delay": 2.0,
  "count": N, "path": "/api/", "method": "GET", "after": false, "rate": 1.0, "seed": S}`` —
  the next N matching requests (all of them until reset when ``count`` is omitted) fail with
  ``status``, wait ``delay`` seconds, or lose their connection. ``after: true`` runs the
  request first and then spoils the answer (the reservation exists but the client never hears
  about it). With ``rate`` below 1 each matching request is spoiled with that probability
  (``seed`` makes the draws repeatable) and ``count`` counts the spoiled ones;
  ``GET /_control`` shows the current fault;
* ``POST /_reset`` — fresh data, no fault, zeroed statistics;
* ``GET /_stats`` — requests per endpoint, per path, per idempotency key, and faults injected;
* ``PUT /_stock/{sku}`` — replace one SKU's stock (creates the SKU when unknown);
* ``GET /_health`` — ``{"ok": true}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import hmac
import json
import os
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route
from starlette.types import Message, Receive, Scope, Send

__all__ = ["ConnectionDropped", "MockWms", "Warehouse", "app", "create_app"]

HERE = Path(__file__).resolve().parent
PRODUCTS_CSV = HERE / "data" / "products.csv"
SHANGHAI = ZoneInfo("Asia/Shanghai")
MODES = ("ok", "fail", "slow", "drop")
FAULT_KEYS = frozenset(
    ("mode", "status", "delay", "count", "path", "method", "after", "rate", "seed")
)
MAX_DELAY = 60.0
MAX_KEY_LENGTH = 200
MAX_QUANTITY = 10**9

# SKUs with hand-picked stock, for demos and docs: (locations, reserved, safety stock,
# incoming as (po, quantity, days after the base date)).
SHOWCASE: dict[str, tuple[dict[str, int], int, int, tuple[tuple[str, int, int], ...]]] = {
    "SD-100000": ({"A-01-03": 420, "B-02-01": 180}, 40, 20, ()),
    "DP-100001": ({"A-01-03": 20, "B-02-01": 10}, 0, 0, (("PO-260101", 100, 14),)),
    "HL-100002": (
        {"C-03-02": 60},
        20,
        10,
        (("PO-260102", 50, 7), ("PO-260103", 200, 21)),
    ),
    "CP-100003": ({}, 0, 0, ()),
}


class ConnectionDropped(httpx.RemoteProtocolError):
    """Raised to the client when a ``drop`` fault runs without a real socket (TestClient,
    ``httpx.ASGITransport``); under uvicorn the connection is closed instead."""


# ---- data ---------------------------------------------------------------------------------


@dataclass
class StockRecord:
    """One SKU. ``reserved`` is what was reserved outside this API (seed data or PUT)."""

    locations: dict[str, int]
    reserved: int = 0
    safety_stock: int = 0
    incoming: list[dict[str, Any]] = field(default_factory=list)


def load_skus(path: Path | None) -> frozenset[str]:
    """Product codes from the pack's products.csv (the showcase SKUs when it is missing)."""
    codes = set(SHOWCASE)
    if path is not None and path.is_file():
        with path.open(encoding="utf-8", newline="") as handle:
            codes.update(row["code"].strip() for row in csv.DictReader(handle) if row.get("code"))
    return frozenset(codes)


def seed_record(sku: str, base_date: date) -> StockRecord:
    """The deterministic stock of a known SKU: the same code always gives the same numbers."""
    if sku in SHOWCASE:
        fixed, held, kept, arriving = SHOWCASE[sku]
        return StockRecord(
            dict(fixed),
            held,
            kept,
            [
                {"po": po, "quantity": qty, "eta": (base_date + timedelta(days=days)).isoformat()}
                for po, qty, days in arriving
            ],
        )
    rng = random.Random(int.from_bytes(hashlib.sha256(sku.encode()).digest()[:8], "big"))
    profile = rng.random()
    counts: tuple[int, int]
    safety_choices: tuple[int, ...]
    if profile < 0.6:  # well stocked
        counts, low, high, safety_choices, po_chance = (1, 3), 50, 600, (0, 10, 20, 50), 0.3
    elif profile < 0.9:  # tight: needs the purchase orders already on their way
        counts, low, high, safety_choices, po_chance = (1, 2), 0, 60, (10, 20, 30), 1.0
    else:  # nothing on hand
        counts, low, high, safety_choices, po_chance = (0, 0), 0, 0, (0, 10), 0.5
    locations: dict[str, int] = {}
    for _ in range(rng.randint(*counts)):
        code = f"{rng.choice('ABCD')}-{rng.randint(1, 12):02d}-{rng.randint(1, 8):02d}"
        locations[code] = locations.get(code, 0) + rng.randint(low, high)
    on_hand = sum(locations.values())
    reserved = rng.randint(0, on_hand // 5) if on_hand else 0
    safety = rng.choice(safety_choices)
    incoming: list[dict[str, Any]] = []
    if rng.random() < po_chance:
        for _ in range(rng.randint(1, 2)):
            eta = base_date + timedelta(days=rng.randint(5, 45))
            incoming.append(
                {
                    "po": f"PO-{rng.randint(100000, 999999)}",
                    "quantity": rng.randint(10, 50) * 10,
                    "eta": eta.isoformat(),
                }
            )
    incoming.sort(key=lambda line: line["eta"])
    return StockRecord(locations, reserved, safety, incoming)


class Warehouse:
    """The mock's whole state: stock, reservations, the current fault and statistics."""

    def __init__(self, skus: frozenset[str], base_date: date) -> None:
        self.skus = skus
        self.base_date = base_date
        self.reset()

    def reset(self) -> None:
        self.records: dict[str, StockRecord] = {}
        self.reservations: dict[str, dict[str, Any]] = {}
        self.by_key: dict[str, str] = {}
        self.next_id = 1
        self.fault: dict[str, Any] | None = None
        self.fault_rng = random.Random()
        self.stats = Stats()

    # -- stock --

    def record(self, sku: str) -> StockRecord | None:
        if sku not in self.records:
            if sku not in self.skus:
                return None
            self.records[sku] = seed_record(sku, self.base_date)
        return self.records[sku]

    def put(self, sku: str, record: StockRecord) -> None:
        self.records[sku] = record

    def reserved(self, sku: str, record: StockRecord) -> int:
        held: int = sum(
            r["quantity"]
            for r in self.reservations.values()
            if r["sku"] == sku and r["status"] == "active"
        )
        return record.reserved + held

    def stock(self, sku: str, record: StockRecord) -> dict[str, Any]:
        on_hand = sum(record.locations.values())
        reserved = self.reserved(sku, record)
        return {
            "sku": sku,
            "on_hand": on_hand,
            "reserved": reserved,
            "safety_stock": record.safety_stock,
            "available": max(0, on_hand - reserved - record.safety_stock),
            "locations": [
                {"location": loc, "on_hand": qty} for loc, qty in sorted(record.locations.items())
            ],
            "incoming": sorted(
                (dict(line) for line in record.incoming), key=lambda line: line["eta"]
            ),
        }

    # -- reservations --

    def reserve(
        self, sku: str, requested: int, granted: int, order_no: str, key: str
    ) -> dict[str, Any]:
        """Keep a reservation of ``granted`` of the ``requested`` units (0 → ``unfilled``)."""
        reservation: dict[str, Any] = {
            "id": f"RSV-{self.next_id:06d}",
            "sku": sku,
            "quantity": granted,
            "requested": requested,
            "short": requested - granted,
            "order_no": order_no,
            "idempotency_key": key,
            "status": "active" if granted else "unfilled",
        }
        self.next_id += 1
        self.reservations[reservation["id"]] = reservation
        self.by_key[key] = reservation["id"]
        return reservation


@dataclass
class Stats:
    total: int = 0
    endpoints: Counter[str] = field(default_factory=Counter)
    paths: Counter[str] = field(default_factory=Counter)
    idempotency_keys: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "endpoints": dict(self.endpoints),
            "paths": dict(self.paths),
            "idempotency_keys": dict(self.idempotency_keys),
            "faults": dict(self.faults),
        }


# ---- helpers ------------------------------------------------------------------------------


def _error(status: int, error: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, **extra}, status_code=status)


def _wms(request: Request) -> Warehouse:
    wms: Warehouse = request.app.wms
    return wms


async def _json_object(request: Request) -> dict[str, Any] | JSONResponse:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error(400, "bad_json", "the request body is not valid JSON")
    if not isinstance(body, dict):
        return _error(400, "bad_json", "the request body must be a JSON object")
    return body


def _count(value: Any, name: str, *, positive: bool = False) -> int:
    """A whole number >= 0 (> 0 when ``positive``); ValueError otherwise."""
    if type(value) is not int or value < (1 if positive else 0) or value > MAX_QUANTITY:
        wanted = "a whole number > 0" if positive else "a whole number >= 0"
        raise ValueError(f"{name} must be {wanted} (at most {MAX_QUANTITY}), not {value!r}")
    return value


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_KEY_LENGTH:
        raise ValueError(f"{name} must be non-empty text of at most {MAX_KEY_LENGTH} characters")
    return value.strip()


def _parse_record(body: Mapping[str, Any]) -> StockRecord:
    unknown = set(body) - {"locations", "reserved", "safety_stock", "incoming"}
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
    locations = body.get("locations", {})
    if not isinstance(locations, dict):
        raise ValueError('locations must be an object like {"A-01-01": 30}')
    parsed = {
        _text(loc, "location"): _count(qty, f"locations[{loc}]") for loc, qty in locations.items()
    }
    incoming_raw = body.get("incoming", [])
    if not isinstance(incoming_raw, list):
        raise ValueError("incoming must be a list")
    incoming: list[dict[str, Any]] = []
    for i, line in enumerate(incoming_raw):
        if not isinstance(line, dict):
            raise ValueError(f"incoming[{i}] must be an object")
        try:
            eta = date.fromisoformat(line.get("eta", ""))
        except (TypeError, ValueError):
            raise ValueError(f"incoming[{i}].eta must be a date YYYY-MM-DD") from None
        incoming.append(
            {
                "po": _text(line.get("po", f"PO-{i + 1}"), f"incoming[{i}].po"),
                "quantity": _count(line.get("quantity"), f"incoming[{i}].quantity"),
                "eta": eta.isoformat(),
            }
        )
    return StockRecord(
        parsed,
        _count(body.get("reserved", 0), "reserved"),
        _count(body.get("safety_stock", 0), "safety_stock"),
        incoming,
    )


def _parse_fault(body: Mapping[str, Any]) -> dict[str, Any] | None:
    unknown = set(body) - FAULT_KEYS
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
    mode = body.get("mode", "ok")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "ok":
        return None
    status = body.get("status", 500)
    if type(status) is not int or not 400 <= status <= 599:
        raise ValueError(f"status must be an HTTP error status 400–599, not {status!r}")
    delay = body.get("delay", 2.0)
    if type(delay) not in (int, float) or not 0 <= delay <= MAX_DELAY:
        raise ValueError(f"delay must be a number of seconds from 0 to {MAX_DELAY}")
    count = body.get("count")
    if count is not None:
        count = _count(count, "count", positive=True)
    path = body.get("path", "/api/")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError("path must be a path prefix starting with /")
    method = body.get("method")
    if method is not None and not isinstance(method, str):
        raise ValueError("method must be an HTTP method such as GET")
    after = body.get("after", False)
    if not isinstance(after, bool):
        raise ValueError("after must be true or false")
    rate = body.get("rate", 1.0)
    if type(rate) not in (int, float) or not 0 < rate <= 1:
        raise ValueError("rate must be a probability above 0 and at most 1")
    seed = body.get("seed")
    if seed is not None and type(seed) is not int:
        raise ValueError("seed must be a whole number")
    return {
        "mode": mode,
        "status": status,
        "delay": float(delay),
        "remaining": count,
        "path": path,
        "method": method.upper() if method else None,
        "after": after,
        "rate": float(rate),
        "seed": seed,
    }


# ---- endpoints ----------------------------------------------------------------------------


async def get_stock(request: Request) -> Response:
    wms = _wms(request)
    sku = request.path_params["sku"]
    record = wms.record(sku)
    if record is None:
        return _error(404, "unknown_sku", f"no such SKU: {sku}", sku=sku)
    return JSONResponse(wms.stock(sku, record))


async def post_reservation(request: Request) -> Response:
    wms = _wms(request)
    key = request.headers.get("idempotency-key", "").strip()
    if not key:
        return _error(400, "missing_idempotency_key", "send an Idempotency-Key header")
    if len(key) > MAX_KEY_LENGTH:
        return _error(400, "bad_idempotency_key", f"Idempotency-Key is over {MAX_KEY_LENGTH} chars")
    body = await _json_object(request)
    if isinstance(body, JSONResponse):
        return body
    try:
        sku = _text(body.get("sku"), "sku")
        quantity = _count(body.get("quantity"), "quantity", positive=True)
        order_no = _text(body.get("order_no"), "order_no")
        partial = body.get("allow_partial", False)
        if not isinstance(partial, bool):
            raise ValueError("allow_partial must be true or false")
    except ValueError as exc:
        return _error(422, "invalid_request", str(exc))
    if key in wms.by_key:
        existing = wms.reservations[wms.by_key[key]]
        if (existing["sku"], existing["requested"], existing["order_no"]) != (
            sku,
            quantity,
            order_no,
        ):
            return _error(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different reservation",
                reservation=existing,
            )
        return JSONResponse(existing, status_code=200)
    record = wms.record(sku)
    if record is None:
        return _error(404, "unknown_sku", f"no such SKU: {sku}", sku=sku)
    # no await from here on: the check and the reservation are one step of the event loop
    available = wms.stock(sku, record)["available"]
    if quantity > available and not partial:
        return _error(
            409,
            "insufficient_stock",
            f"only {available} of {sku} available, {quantity - available} short",
            sku=sku,
            requested=quantity,
            available=available,
            short=quantity - available,
        )
    granted = min(quantity, available)
    return JSONResponse(wms.reserve(sku, quantity, granted, order_no, key), status_code=201)


async def list_reservations(request: Request) -> Response:
    wanted = {
        k: request.query_params[k]
        for k in ("sku", "order_no", "status")
        if k in request.query_params
    }
    items = [
        r for r in _wms(request).reservations.values() if all(r[k] == v for k, v in wanted.items())
    ]
    return JSONResponse({"reservations": items, "count": len(items)})


async def delete_reservation(request: Request) -> Response:
    reservation = _wms(request).reservations.get(request.path_params["id"])
    if reservation is None:
        return _error(404, "unknown_reservation", f"no reservation {request.path_params['id']}")
    reservation["status"] = "cancelled"  # DELETE is idempotent: cancelling twice is fine
    return JSONResponse(reservation)


async def control(request: Request) -> Response:
    wms = _wms(request)
    if request.method == "POST":
        body = await _json_object(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            wms.fault = _parse_fault(body)
        except ValueError as exc:
            return _error(400, "invalid_control", str(exc))
        if wms.fault is not None:
            wms.fault_rng = random.Random(wms.fault["seed"])
    return JSONResponse({"fault": wms.fault})


async def reset(request: Request) -> Response:
    _wms(request).reset()
    return JSONResponse({"ok": True})


async def stats(request: Request) -> Response:
    return JSONResponse(_wms(request).stats.as_json())


async def put_stock(request: Request) -> Response:
    wms = _wms(request)
    sku = request.path_params["sku"]
    body = await _json_object(request)
    if isinstance(body, JSONResponse):
        return body
    try:
        record = _parse_record(body)
    except ValueError as exc:
        return _error(400, "invalid_stock", str(exc))
    wms.put(sku, record)
    return JSONResponse(wms.stock(sku, record))


async def health(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse(
        {"error": "http_error", "message": exc.detail},
        status_code=exc.status_code,
        headers=exc.headers,
    )


ROUTES = [
    Route("/api/stock/{sku}", get_stock, methods=["GET"]),
    Route("/api/reservations", post_reservation, methods=["POST"]),
    Route("/api/reservations", list_reservations, methods=["GET"]),
    Route("/api/reservations/{id}", delete_reservation, methods=["DELETE"]),
    Route("/_control", control, methods=["GET", "POST"]),
    Route("/_reset", reset, methods=["POST"]),
    Route("/_stats", stats, methods=["GET"]),
    Route("/_stock/{sku}", put_stock, methods=["PUT"]),
    Route("/_health", health, methods=["GET"]),
]


# ---- the application: auth, statistics and faults around the routes -----------------------


class MockWms(Starlette):
    """The Starlette app with the warehouse state on ``wms``."""

    def __init__(self, warehouse: Warehouse, token: str | None = None) -> None:
        super().__init__(routes=ROUTES, exception_handlers={HTTPException: http_error})
        self.wms = warehouse
        self._token = token

    def token(self) -> str | None:
        """The bearer token required on /api (``WMS_TOKEN`` is read on every request)."""
        return self._token if self._token is not None else (os.environ.get("WMS_TOKEN") or None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await super().__call__(scope, receive, send)
            return
        self._count(scope)
        fault = self._take_fault(scope)
        if fault is not None and not fault["after"]:
            if fault["mode"] == "slow":
                await asyncio.sleep(fault["delay"])
            else:
                await self._spoil(fault, scope, receive, send)
                return
        if not self._authorized(scope):
            response = _error(401, "unauthorized", "send Authorization: Bearer <WMS_TOKEN>")
            response.headers["WWW-Authenticate"] = "Bearer"
            await response(scope, receive, send)
            return
        if fault is None or not fault["after"]:
            await super().__call__(scope, receive, send)
            return
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await super().__call__(scope, receive, hold)  # the work is done …
        if fault["mode"] == "slow":  # … and the answer comes late,
            await asyncio.sleep(fault["delay"])
            for message in held:
                await send(message)
        else:  # … or never arrives
            await self._spoil(fault, scope, receive, send)

    def _count(self, scope: Scope) -> None:
        stats = self.wms.stats
        method = scope["method"]
        endpoint = f"{method} {scope['path']}"
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL and isinstance(route, Route):
                endpoint = f"{method} {route.path}"
                break
        stats.total += 1
        stats.endpoints[endpoint] += 1
        stats.paths[f"{method} {scope['path']}"] += 1
        key = _header(scope, b"idempotency-key")
        if key:
            stats.idempotency_keys[key] += 1

    def _take_fault(self, scope: Scope) -> dict[str, Any] | None:
        fault = self.wms.fault
        if fault is None or not scope["path"].startswith(fault["path"]):
            return None
        if fault["method"] is not None and fault["method"] != scope["method"]:
            return None
        if fault["rate"] < 1 and self.wms.fault_rng.random() >= fault["rate"]:
            return None
        if fault["remaining"] is not None:
            fault["remaining"] -= 1
            if fault["remaining"] <= 0:
                self.wms.fault = None
        self.wms.stats.faults[fault["mode"]] += 1
        return fault

    def _authorized(self, scope: Scope) -> bool:
        token = self.token()
        if token is None:
            return True
        given = _header(scope, b"authorization") or ""
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    async def _spoil(
        self, fault: dict[str, Any], scope: Scope, receive: Receive, send: Send
    ) -> None:
        if fault["mode"] == "fail":
            response = _error(fault["status"], "injected_fault", "fault injected by /_control")
            await response(scope, receive, send)
            return
        # drop: close the socket without a byte of answer. uvicorn hands the app its
        # RequestResponseCycle.send, whose owner holds the transport; elsewhere raise.
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        if transport is None or not hasattr(transport, "close"):
            raise ConnectionDropped("connection dropped by the mock WMS (fault injection)")
        transport.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):  # let uvicorn notice, so it sends no 500 of its own
                while (await receive())["type"] != "http.disconnect":
                    pass


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            text: str = value.decode("latin-1").strip()
            return text
    return None


def _base_date() -> date:
    text = os.environ.get("WMS_BASE_DATE", "").strip()
    return date.fromisoformat(text) if text else datetime.now(SHANGHAI).date()


def create_app(
    products_csv: Path | None = PRODUCTS_CSV,
    *,
    base_date: date | None = None,
    token: str | None = None,
) -> MockWms:
    """A fresh mock. ``token`` None → ``WMS_TOKEN`` from the environment (checked per request)."""
    return MockWms(Warehouse(load_skus(products_csv), base_date or _base_date()), token)


app = create_app()


if __name__ == "__main__":
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description="Mock WMS for the manufacturing pack")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port)
