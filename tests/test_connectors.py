"""Connectors against real local fakes (tests/fakes.py): HTTP APIs, DingTalk and WeCom robots,
signed webhooks and SMTP; failure classification; keep paths; message templates."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import httpx
import jinja2
import pytest
from fakes import (
    FakeDingTalk,
    FakeHttpApi,
    Received,
    Reply,
    closed_port_url,
    fake_dingtalk,
    fake_http_api,
    fake_smtp,
    fake_webhook,
    fake_wecom,
    webhook_signature,
)

from engine.config.bundle import read_bundle
from engine.flows.messages import message_environment, render_message
from engine.model.i18n import Text
from engine.model.spec import ConnectorSpec, OperationSpec, frozen_map
from engine.outbox.connectors import (
    CallResult,
    ConnectorError,
    ConnectorNotConfigured,
    Connectors,
    Message,
    Recipient,
    keep_values,
)

PACK = Path(__file__).resolve().parents[1] / "examples" / "manufacturing_pack"
NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
KEY = "effect-42"

PROCUREMENT = (
    Recipient("li", name="李采购", email="li@example.com", phone="13800000001", dingtalk_id="d1"),
    Recipient("wang", name="王采购", email="wang@example.com", wecom_id="WangCaiGou"),
)


def wms(**changes: Any) -> ConnectorSpec:
    ops = {
        "stock": OperationSpec("stock", "GET", "/api/stock/{sku}"),
        "reserve": OperationSpec("reserve", "POST", "/api/reservations"),
        "release": OperationSpec("release", "DELETE", "/api/reservations/{id}"),
    }
    fields: dict[str, Any] = {
        "name": "wms",
        "type": "http",
        "base_url_env": "WMS_BASE_URL",
        "token_env": "WMS_TOKEN",
        "timeout": 5.0,
        "operations": frozen_map(ops),
    }
    fields.update(changes)
    return ConnectorSpec(**fields)


def robot(kind: str, **changes: Any) -> ConnectorSpec:
    fields: dict[str, Any] = {"name": kind, "type": kind, "timeout": 5.0}
    fields.update(changes)
    return ConnectorSpec(**fields)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False) as c:
        yield c


@pytest.fixture
def api() -> Iterator[FakeHttpApi]:
    with fake_http_api() as server:
        server.answer(
            "GET",
            "/api/stock/{sku}",
            handler=lambda r, p: {"sku": p["sku"], "available": 3, "incoming": []},
        )
        server.answer("POST", "/api/reservations", {"id": "R1"}, status=201)
        yield server


def connectors_for(
    client: httpx.Client, *specs: ConnectorSpec, clock: Any = lambda: NOW, **environ: str
) -> Connectors:
    return Connectors({s.name: s for s in specs}, environ=environ, client=client, clock=clock)


def raises(fn: Any, *args: Any, **kwargs: Any) -> ConnectorError:
    with pytest.raises(ConnectorError) as info:
        fn(*args, **kwargs)
    return info.value


# ----------------------------------------------------------------------------- http


def test_http_get_fills_path_query_token_and_idempotency_key(
    client: httpx.Client, api: FakeHttpApi
) -> None:
    conns = connectors_for(client, wms(), WMS_BASE_URL=api.url + "/", WMS_TOKEN="t0k")
    result = conns.call(
        "wms", "stock", {"sku": "A/1 中", "site": "SH", "at": date(2026, 1, 2)}, idempotency_key=KEY
    )
    assert isinstance(result, CallResult)
    assert result.status == 200
    assert result.data == {"sku": "A/1 中", "available": 3, "incoming": []}
    assert result.elapsed_ms > 0
    [seen] = api.requests
    assert seen.raw_path == "/api/stock/A%2F1%20%E4%B8%AD"
    assert seen.query == {"site": "SH", "at": "2026-01-02"}
    assert seen.headers["authorization"] == "Bearer t0k"
    assert seen.headers["idempotency-key"] == KEY
    assert api.applied == 0  # GETs are not effects


def test_http_post_sends_json_body_and_the_fake_honours_idempotency(
    client: httpx.Client, api: FakeHttpApi
) -> None:
    conns = connectors_for(client, wms(), WMS_BASE_URL=api.url, WMS_TOKEN="t")
    values = {"sku": "SD-1", "quantity": Decimal("2.50"), "due": date(2026, 2, 1), "note": None}
    for _ in range(2):
        result = conns.call("wms", "reserve", values, idempotency_key=KEY)
        assert (result.status, result.data) == (201, {"id": "R1"})
    assert api.requests[0].json == {
        "sku": "SD-1",
        "quantity": 2.5,
        "due": "2026-02-01",
        "note": None,
    }
    assert (api.applied, api.repeats, api.keys) == (1, 1, [KEY])


def test_http_default_base_url_needs_no_token(client: httpx.Client, api: FakeHttpApi) -> None:
    conns = connectors_for(client, wms(base_url_default=api.url))
    assert conns.call("wms", "stock", {"sku": "X"}, idempotency_key=KEY).data["available"] == 3
    assert "authorization" not in api.requests[0].headers


@pytest.mark.parametrize(
    ("spec", "environ", "variable"),
    [
        (wms(), {"WMS_TOKEN": "t"}, "WMS_BASE_URL"),
        (wms(), {"WMS_BASE_URL": "http://127.0.0.1:9"}, "WMS_TOKEN"),
        (wms(), {"WMS_BASE_URL": "  ", "WMS_TOKEN": "t"}, "WMS_BASE_URL"),
        (robot("dingtalk", url_env="DINGTALK_WEBHOOK"), {}, "DINGTALK_WEBHOOK"),
        (
            robot("dingtalk", url_env="DINGTALK_WEBHOOK", token_env="DINGTALK_SECRET"),
            {"DINGTALK_WEBHOOK": "http://127.0.0.1:9/robot/send"},
            "DINGTALK_SECRET",
        ),
        (robot("wecom", url_env="WECOM_WEBHOOK"), {}, "WECOM_WEBHOOK"),
        (robot("webhook", url_env="HOOK_URL"), {}, "HOOK_URL"),
        (robot("email", smtp_url_env="SMTP_URL", sender="a@b.c"), {}, "SMTP_URL"),
    ],
)
def test_missing_environment_variable_is_named(
    client: httpx.Client, spec: ConnectorSpec, environ: dict[str, str], variable: str
) -> None:
    conns = connectors_for(client, spec, **environ)
    with pytest.raises(ConnectorNotConfigured) as info:
        if spec.type == "http":
            conns.call(spec.name, "stock", {"sku": "X"}, idempotency_key=KEY)
        else:
            conns.send(spec.name, Message("t", "x", to=PROCUREMENT), idempotency_key=KEY)
    error = info.value
    assert error.variable == variable
    assert not error.transient
    assert variable in error.message.en and variable in error.message.zh
    assert "环境变量" in error.message.zh


def test_errors_survive_pickling() -> None:
    import pickle

    error = ConnectorNotConfigured("wms", "WMS_TOKEN", Text("the token", "令牌"), "token_env")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is ConnectorNotConfigured
    assert (copy.message, copy.variable, copy.transient) == (error.message, "WMS_TOKEN", False)
    assert str(copy) == str(error) and "WMS_TOKEN" in str(copy)


def test_missing_yaml_setting_is_named(client: httpx.Client) -> None:
    error = raises(
        connectors_for(client, robot("wecom")).send,
        "wecom",
        Message("t", "x"),
        idempotency_key=KEY,
    )
    assert isinstance(error, ConnectorNotConfigured)
    assert error.variable is None and "url_env" in error.message.en


@pytest.mark.parametrize(
    ("status", "transient"),
    [(500, True), (502, True), (503, True), (429, True), (408, True), (400, False), (401, False),
     (404, False), (409, False), (422, False)],
)  # fmt: skip
def test_http_status_classification(
    client: httpx.Client, api: FakeHttpApi, status: int, transient: bool
) -> None:
    api.fail_next(1, status=status)
    conns = connectors_for(client, wms(), WMS_BASE_URL=api.url, WMS_TOKEN="s3cret")
    error = raises(conns.call, "wms", "stock", {"sku": "X"}, idempotency_key=KEY)
    assert (error.transient, error.status, error.connector) == (transient, status, "wms")
    assert f"HTTP {status}" in error.message.en and f"HTTP {status}" in error.message.zh
    assert "s3cret" not in repr(error) + error.message.zh
    # the next call (no fault queued) succeeds
    assert conns.call("wms", "stock", {"sku": "X"}, idempotency_key=KEY).status == 200


def test_retry_after_is_passed_on(client: httpx.Client, api: FakeHttpApi) -> None:
    api.answer(
        "GET", "/api/busy", handler=lambda r, p: Reply(429, {}, headers={"Retry-After": "7"})
    )
    spec = wms(operations=frozen_map({"busy": OperationSpec("busy", "GET", "/api/busy")}))
    conns = connectors_for(client, spec, WMS_BASE_URL=api.url, WMS_TOKEN="t")
    error = raises(conns.call, "wms", "busy", {}, idempotency_key=KEY)
    assert error.transient and error.retry_after == 7.0


def test_http_timeout_is_transient(client: httpx.Client, api: FakeHttpApi) -> None:
    api.behave("slow", seconds=5)
    conns = connectors_for(client, wms(timeout=0.3), WMS_BASE_URL=api.url, WMS_TOKEN="t")
    error = raises(conns.call, "wms", "stock", {"sku": "X"}, idempotency_key=KEY)
    assert error.transient and error.status is None
    assert "0.3 s" in error.message.en and "0.3 秒" in error.message.zh


def test_connection_refused_is_transient(client: httpx.Client) -> None:
    conns = connectors_for(client, wms(), WMS_BASE_URL=closed_port_url(), WMS_TOKEN="t")
    error = raises(conns.call, "wms", "stock", {"sku": "X"}, idempotency_key=KEY)
    assert error.transient and "cannot connect" in error.message.en


def test_dropped_connection_is_transient(client: httpx.Client, api: FakeHttpApi) -> None:
    api.behave("drop")
    conns = connectors_for(client, wms(), WMS_BASE_URL=api.url, WMS_TOKEN="t")
    error = raises(conns.call, "wms", "stock", {"sku": "X"}, idempotency_key=KEY)
    assert error.transient and "broke" in error.message.en
    api.behave("ok")
    assert conns.call("wms", "stock", {"sku": "X"}, idempotency_key=KEY).status == 200


def test_bad_url_is_permanent(client: httpx.Client) -> None:
    conns = connectors_for(client, wms(), WMS_BASE_URL="ftp://example.com", WMS_TOKEN="t")
    error = raises(conns.call, "wms", "stock", {"sku": "X"}, idempotency_key=KEY)
    assert not error.transient and "not a valid http(s) address" in error.message.en


def test_non_json_answer_is_permanent(client: httpx.Client, api: FakeHttpApi) -> None:
    api.answer("GET", "/api/stock/{sku}", text="<html>login</html>", content_type="text/html")
    api.answer("GET", "/api/broken", text="{oops", content_type="application/json")
    api.answer("POST", "/api/reservations", text="OK", content_type="text/plain")
    spec = wms(
        operations=frozen_map(
            {
                "stock": OperationSpec("stock", "GET", "/api/stock/{sku}"),
                "broken": OperationSpec("broken", "GET", "/api/broken"),
                "reserve": OperationSpec("reserve", "POST", "/api/reservations"),
            }
        )
    )
    conns = connectors_for(client, spec, WMS_BASE_URL=api.url, WMS_TOKEN="t")
    for op in ("stock", "broken"):
        error = raises(conns.call, "wms", op, {"sku": "X"}, idempotency_key=KEY)
        assert not error.transient and error.status == 200
        assert "not JSON" in error.message.en and "不是 JSON" in error.message.zh
    # a plain-text answer to an effect is not an error: the effect happened
    assert conns.call("wms", "reserve", {}, idempotency_key=KEY).data == "OK"


def test_missing_placeholder_unknown_operation_and_wrong_type(
    client: httpx.Client, api: FakeHttpApi
) -> None:
    conns = connectors_for(
        client, wms(), robot("wecom", url_env="W"), WMS_BASE_URL=api.url, WMS_TOKEN="t"
    )
    for values in ({}, {"sku": None}, {"sku": ""}):
        error = raises(conns.call, "wms", "stock", values, idempotency_key=KEY)
        assert not error.transient and "sku" in error.message.en and "sku" in error.message.zh
    error = raises(conns.call, "wms", "nope", {}, idempotency_key=KEY)
    assert not error.transient and "release, reserve, stock" in error.message.en
    assert not raises(conns.call, "erp", "x", {}, idempotency_key=KEY).transient
    assert "notify" in raises(conns.call, "wecom", "x", {}, idempotency_key=KEY).message.en
    assert "call" in raises(conns.send, "wms", Message("t", "x"), idempotency_key=KEY).message.en
    assert api.count == 0


def test_connectors_own_and_close_their_client(api: FakeHttpApi) -> None:
    with Connectors({"wms": wms()}, environ={"WMS_BASE_URL": api.url, "WMS_TOKEN": "t"}) as conns:
        assert conns.call("wms", "stock", {"sku": "X"}, idempotency_key=KEY).status == 200
        own = conns._client
    assert own.is_closed
    with httpx.Client(trust_env=False) as mine:
        Connectors({}, client=mine).close()
        assert not mine.is_closed


# ----------------------------------------------------------------------------- keep


def test_keep_values_paths() -> None:
    answer = {"available": 3, "eta": None, "incoming": [{"po": "PO-1", "qty": 5}]}
    keep = {"a": "data.available", "b": "available", "eta": "eta", "po": "incoming.0.po"}
    assert keep_values(answer, keep) == {"a": 3, "b": 3, "eta": None, "po": "PO-1"}
    wrapped = {"data": {"available": 4}, "available": 9}
    assert keep_values(wrapped, {"a": "data.available", "b": "available"}) == {"a": 4, "b": 9}


def test_keep_values_missing_path_says_what_is_there() -> None:
    answer = {"sku": "X", "stock": {"on_hand": 1, "reserved": 0}}
    with pytest.raises(ConnectorError) as info:
        keep_values(answer, {"avail": "data.stock.available"}, connector="wms")
    error = info.value
    assert not error.transient
    assert "'available'" in error.message.en and "data.stock" in error.message.en
    assert "on_hand, reserved" in error.message.en and "on_hand, reserved" in error.message.zh
    assert "wms" in error.message.zh
    for answer_, path, words in (
        ([1, 2], "data.first", "list of 2 items"),
        ({"a": None}, "a.b", "a null, not an object"),
        ({"a": [1]}, "a.3", "list of 1 items"),
    ):
        error = raises(keep_values, answer_, {"x": path})
        assert words in error.message.en and not error.transient


# ----------------------------------------------------------------------------- DingTalk


def independent_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's documented rule, written out again here on purpose."""
    string_to_sign = f"{timestamp_ms}\n{secret}"
    mac = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256)
    return quote_plus(base64.b64encode(mac.digest()))


def dingtalk(robot_: FakeDingTalk, client: httpx.Client, clock: Any = lambda: NOW) -> Connectors:
    spec = robot("dingtalk", url_env="DINGTALK_WEBHOOK", token_env="DINGTALK_SECRET")
    return connectors_for(
        client, spec, clock=clock, DINGTALK_WEBHOOK=robot_.url, DINGTALK_SECRET=robot_.secret or ""
    )


def test_dingtalk_signature_and_markdown_with_mentions(client: httpx.Client) -> None:
    import time

    with fake_dingtalk(secret="SECabc+/=密") as fake:
        conns = dingtalk(fake, client, clock=time.time)
        message = Message("缺料提醒：SO-1", "- 产品：螺丝\n- 可用：3", to=PROCUREMENT)
        conns.send("dingtalk", message, idempotency_key=KEY)
        [body] = fake.messages
        [seen] = fake.requests
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == "缺料提醒：SO-1"
    assert body["markdown"]["text"].startswith("#### 缺料提醒：SO-1\n\n- 产品：螺丝")
    assert body["markdown"]["text"].endswith("@13800000001")
    assert body["at"] == {"atMobiles": ["13800000001"], "atUserIds": [], "isAtAll": False}
    assert seen.headers["idempotency-key"] == KEY
    assert seen.query["access_token"] == "test-token"


def test_dingtalk_sign_matches_the_documented_rule(client: httpx.Client) -> None:
    with fake_dingtalk() as fake:  # this fake checks no signature: we compare the raw query
        spec = robot("dingtalk", url_env="U", token_env="S")
        conns = connectors_for(client, spec, U=fake.url, S="SEC0+/=x")
        conns.send("dingtalk", Message("t", "x"), idempotency_key=KEY)
        [seen] = fake.requests
    timestamp = int(NOW * 1000)
    raw = dict(pair.split("=", 1) for pair in seen.query_string.split("&"))
    assert raw == {
        "access_token": "test-token",
        "timestamp": str(timestamp),
        "sign": independent_sign("SEC0+/=x", timestamp),
    }
    assert "%2B" in raw["sign"] or "%2F" in raw["sign"] or "%3D" in raw["sign"]


def test_dingtalk_wrong_secret_is_permanent(client: httpx.Client) -> None:
    import time

    with fake_dingtalk(secret="right") as fake:
        spec = robot("dingtalk", url_env="U", token_env="S")
        conns = connectors_for(client, spec, clock=time.time, U=fake.url, S="wrong")
        error = raises(conns.send, "dingtalk", Message("t", "x"), idempotency_key=KEY)
        assert fake.messages == []
    assert not error.transient and "310000" in error.message.en and "S" in error.message.en
    assert "加签" in error.message.zh


def test_dingtalk_errcodes(client: httpx.Client) -> None:
    import time

    with fake_dingtalk(secret="s") as fake:
        conns = dingtalk(fake, client, clock=time.time)
        fake.reply_next(1, errcode=130101, errmsg="send too fast")
        error = raises(conns.send, "dingtalk", Message("t", "x"), idempotency_key=KEY)
        assert error.transient and error.retry_after == 60.0 and "130101" in error.message.en
        fake.reply_next(1, errcode=400013, errmsg="robot not exist")
        error = raises(conns.send, "dingtalk", Message("t", "x"), idempotency_key=KEY)
        assert not error.transient and "DINGTALK_WEBHOOK" in error.message.en
        assert "test-token" not in error.message.en  # webhook URLs hold secrets
        fake.fail_next(1, status=502)
        assert raises(conns.send, "dingtalk", Message("t", "x"), idempotency_key=KEY).transient
        conns.send("dingtalk", Message("t", "x"), idempotency_key=KEY)
        assert len(fake.messages) == 1


def test_dingtalk_todo_is_an_action_card(client: httpx.Client) -> None:
    import time

    with fake_dingtalk(secret="s") as fake:
        conns = dingtalk(fake, client, clock=time.time)
        todo = Message("缺料：SO-1", "请确认", to=PROCUREMENT, todo=True, url="https://x/o/1")
        conns.send("dingtalk", todo, idempotency_key=KEY)
        no_link = Message("缺料：SO-2", "请确认", to=PROCUREMENT, todo=True)
        conns.send("dingtalk", no_link, idempotency_key=KEY + "b")
        card, fallback = fake.messages
    assert card["msgtype"] == "actionCard"
    assert card["actionCard"]["title"] == "缺料：SO-1"
    assert card["actionCard"]["singleTitle"] == "查看订单"
    assert card["actionCard"]["singleURL"] == "https://x/o/1"
    assert "处理人：李采购、王采购" in card["actionCard"]["text"]
    assert fallback["msgtype"] == "markdown"
    assert fallback["markdown"]["title"] == "【待办】缺料：SO-2"


def test_dingtalk_unsigned_plain_text(client: httpx.Client) -> None:
    with fake_dingtalk() as fake:
        conns = connectors_for(client, robot("dingtalk", url_env="U"), U=fake.url)
        conns.send("dingtalk", Message("标题", "正文", markdown=False), idempotency_key=KEY)
        assert fake.messages[0]["text"] == {"content": "标题\n正文"}
        assert "sign" not in fake.requests[0].query


# ----------------------------------------------------------------------------- WeCom


def test_wecom_markdown_with_mentions(client: httpx.Client) -> None:
    with fake_wecom() as fake:
        conns = connectors_for(
            client, robot("wecom", url_env="WECOM_WEBHOOK"), WECOM_WEBHOOK=fake.url
        )
        conns.send("wecom", Message("订单进度", "已排产", to=PROCUREMENT), idempotency_key=KEY)
        [body] = fake.messages
        assert fake.requests[0].headers["idempotency-key"] == KEY
    assert body == {
        "msgtype": "markdown",
        "markdown": {"content": "**订单进度**\n已排产\n<@WangCaiGou>"},
    }


def test_wecom_long_messages_are_clipped_and_errcodes_classified(client: httpx.Client) -> None:
    with fake_wecom() as fake:
        conns = connectors_for(client, robot("wecom", url_env="W"), W=fake.url)
        conns.send("wecom", Message("长", "字" * 3000, to=PROCUREMENT), idempotency_key=KEY)
        content = fake.messages[0]["markdown"]["content"]
        assert len(content.encode()) <= 4096 and content.endswith("…\n<@WangCaiGou>")
        fake.reply_next(1, errcode=45009, errmsg="api freq out of limit")
        assert raises(conns.send, "wecom", Message("t", "x"), idempotency_key=KEY).transient
    with fake_wecom(key="other") as fake:
        conns = connectors_for(
            client, robot("wecom", url_env="W"), W=fake.url.replace("other", "k")
        )
        error = raises(conns.send, "wecom", Message("t", "x"), idempotency_key=KEY)
    assert not error.transient and "93000" in error.message.en and "W" in error.message.en


# ----------------------------------------------------------------------------- webhook


def test_webhook_signed_idempotent_delivery(client: httpx.Client) -> None:
    with fake_webhook(secret="hook-secret") as hook:
        spec = robot("webhook", url_env="HOOK_URL", token_env="HOOK_SECRET")
        conns = connectors_for(client, spec, HOOK_URL=hook.url + "/in", HOOK_SECRET="hook-secret")
        message = Message("缺料", "正文", to=PROCUREMENT[:1], extra={"order": "SO-1", "title": "x"})
        conns.send("webhook", message, idempotency_key=KEY)
        conns.send("webhook", message, idempotency_key=KEY)
        assert (hook.applied, hook.repeats) == (1, 1)
        [payload] = hook.payloads
        seen = hook.requests[0]
    assert payload["title"] == "缺料" and payload["order"] == "SO-1"
    assert payload["recipients"][0]["user"] == "li" and payload["recipients"][0]["phone"]
    stamp = seen.headers["x-seamline-timestamp"]
    assert stamp == str(int(NOW))
    assert seen.headers["x-seamline-signature"] == webhook_signature(
        "hook-secret", stamp, seen.body
    )
    expected = hmac.new(b"hook-secret", f"{stamp}.".encode() + seen.body, hashlib.sha256)
    assert seen.headers["x-seamline-signature"] == "sha256=" + expected.hexdigest()


def test_webhook_lost_answer_then_retry_applies_once(client: httpx.Client) -> None:
    with fake_webhook() as hook:
        conns = connectors_for(client, robot("webhook", url_env="U"), U=hook.url)
        hook.fail_next(1, status=503)
        hook.lose_next(1)
        message = Message("t", "x")
        assert raises(conns.send, "webhook", message, idempotency_key=KEY).transient  # 503
        assert raises(conns.send, "webhook", message, idempotency_key=KEY).transient  # lost
        conns.send("webhook", message, idempotency_key=KEY)  # the worker's next retry
        assert (hook.applied, hook.repeats, hook.count) == (1, 1, 3)


def test_webhook_wrong_secret_is_permanent(client: httpx.Client) -> None:
    with fake_webhook(secret="right") as hook:
        spec = robot("webhook", url_env="U", token_env="S")
        conns = connectors_for(client, spec, U=hook.url, S="wrong")
        error = raises(conns.send, "webhook", Message("t", "x"), idempotency_key=KEY)
        assert hook.applied == 0
    assert not error.transient and error.status == 401


# ----------------------------------------------------------------------------- email


def email_spec(**changes: Any) -> ConnectorSpec:
    return robot("email", smtp_url_env="SMTP_URL", sender="erp@factory.example", **changes)


def test_email_delivery_headers_and_parts(client: httpx.Client) -> None:
    with fake_smtp(user="mailer", password="p@ss:word") as smtp:
        conns = connectors_for(client, email_spec(), SMTP_URL=smtp.url)
        text = "### 明细\n- 产品：**螺丝** <M6>\n- 数量：3\n\n请确认。"
        message = Message("缺料提醒：SO-1", text, to=(*PROCUREMENT, Recipient("noemail")))
        conns.send("email", message, idempotency_key=KEY)
        conns.send("email", message, idempotency_key=KEY)
        conns.send("email", message, idempotency_key="another")
        first, again, other = smtp.messages
    assert first.login == "mailer"
    assert first.mail_from == "erp@factory.example"
    assert first.rcpt_tos == ("li@example.com", "wang@example.com")
    assert first["Subject"] == "缺料提醒：SO-1"
    assert "李采购" in (first["To"] or "")
    assert first["X-Seamline-Idempotency-Key"] == KEY
    assert first["Message-ID"] == again["Message-ID"] != other["Message-ID"]
    assert (first["Message-ID"] or "").endswith("@factory.example>")
    assert first.part("text/plain").strip() == text
    html = first.part("text/html")
    assert "<h4>明细</h4>" in html and "<strong>螺丝</strong> &lt;M6&gt;" in html
    assert "<li>数量：3</li>" in html and "<p>请确认。</p>" in html


@pytest.mark.parametrize(("code", "transient"), [(421, True), (451, True), (550, False)])
def test_email_smtp_codes(client: httpx.Client, code: int, transient: bool) -> None:
    with fake_smtp() as smtp:
        conns = connectors_for(client, email_spec(), SMTP_URL=smtp.url)
        smtp.fail_next(1, code=code, text="nope")
        error = raises(conns.send, "email", Message("t", "x", to=PROCUREMENT), idempotency_key=KEY)
        assert (error.transient, error.status) == (transient, code)
        assert f"{code} nope" in error.message.en
        conns.send("email", Message("t", "x", to=PROCUREMENT), idempotency_key=KEY)
        assert len(smtp.messages) == 1


def test_email_failures(client: httpx.Client) -> None:
    to = Message("t", "x", to=PROCUREMENT)
    refused = connectors_for(client, email_spec(), SMTP_URL=closed_port_url("smtp"))
    assert raises(refused.send, "email", to, idempotency_key=KEY).transient
    with fake_smtp(user="u", password="right") as smtp:
        wrong = connectors_for(client, email_spec(), SMTP_URL=smtp.url.replace("right", "bad"))
        error = raises(wrong.send, "email", to, idempotency_key=KEY)
        assert not error.transient and error.status == 535 and "SMTP_URL" in error.message.en
        tls = connectors_for(client, email_spec(), SMTP_URL=smtp.url + "?starttls=1")
        error = raises(tls.send, "email", to, idempotency_key=KEY)
        assert not error.transient and "starttls" in error.message.en.lower()
        conns = connectors_for(client, email_spec(), SMTP_URL=smtp.url)
        error = raises(
            conns.send, "email", Message("t", "x", to=(Recipient("x"),)), idempotency_key=KEY
        )
        assert not error.transient and "email address" in error.message.en
        assert smtp.messages == []
    bad = connectors_for(client, email_spec(), SMTP_URL="mail.example.com:25")
    error = raises(bad.send, "email", to, idempotency_key=KEY)
    assert not error.transient and "SMTP_URL" in error.message.en


# ----------------------------------------------------------------------------- messages


def order_context() -> dict[str, Any]:
    return {
        "record": {
            "order_no": "SO-20260101-001",
            "customer": {"name": "华东精密机械有限公司"},
            "product": {"code": "DP-100001", "name": "伺服电机 750W"},
            "quantity": Decimal("120"),
            "atp_date": date(2026, 1, 20),
            "atp_explanation": "在途 100 件，14 天后到货",
            "promised_date": None,
        },
        "steps": {
            "stock": {
                "available": Decimal("30.0"),
                "on_hand": 30,
                "reserved": 0,
                "safety_stock": 0,
                "incoming": [{"po": "PO-260101", "quantity": 100, "eta": date(2026, 1, 15)}],
            },
            "reservation": {"id": "RSV-000007", "reserved": 30, "short": 90},
        },
        "state_label": "库存已检查",
    }


def test_pack_stock_shortage_template_in_chinese() -> None:
    env = message_environment(read_bundle(PACK))
    message = render_message(
        env, "messages/stock_shortage.md", order_context(), todo=True, to=PROCUREMENT
    )
    assert message.title == "缺料提醒：SO-20260101-001"
    assert message.todo and message.to == PROCUREMENT and message.markdown
    assert not message.text.startswith("#")
    assert "伺服电机 750W" in message.text
    assert "30.0" in message.text and "2026-01-20" in message.text
    assert "PO-260101" in message.text and "2026-01-15" in message.text
    assert "已从库存预留：30（预留单 RSV-000007），缺口：90" in message.text
    assert "None" not in message.text


def test_one_line_template_is_title_and_text() -> None:
    line = (
        "您好，{{ record.customer.name }}：订单 {{ record.order_no }} 当前状态为"
        "「{{ state_label }}」，预计交付日 {{ record.promised_date or record.atp_date }}。"
    )
    env = message_environment({"templates/one.md": line})
    message = render_message(env, "one.md", order_context())
    assert message.title == message.text
    assert "华东精密机械有限公司" in message.text and "「库存已检查」" in message.text
    assert "预计交付日 2026-01-20" in message.text  # promised_date is None → atp_date


def test_pack_progress_template_says_the_stage_entered_in_plain_words() -> None:
    env = message_environment(read_bundle(PACK))
    context = {**order_context(), "trigger": {"kind": "transition", "to": "approved"}}
    context["record"] = {**context["record"], "state": "scheduled"}  # moved on since
    message = render_message(env, "messages/progress.md", context)
    assert message.title == "订单 SO-20260101-001 进度：已通过审核，进入排产队列"
    assert "- 订单号：SO-20260101-001" in message.text
    # nothing agreed at the promise-date gate: no date (not the ATP estimate), "being confirmed"
    assert "- 交付日：交期确认中" in message.text and "2026-01-20" not in message.text
    assert "- 当前环节：已通过审核，进入排产队列" in message.text
    agreed = render_message(
        env, "messages/progress.md", {**context, "agreed": {"promised_date": "2026-01-22"}}
    )
    assert "- 承诺交付日：2026-01-22" in agreed.text and "确认中" not in agreed.text
    unknown = {**order_context(), "trigger": {"to": "returned"}}  # no phrase: the state label
    assert "当前环节：库存已检查" in render_message(env, "messages/progress.md", unknown).text


def test_undefined_values_render_empty_and_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    bundle = {"templates/m.md": "# {{ record.nope.deeper }}标题\n{{ missing }}正文{{ 1.5e20 }}"}
    with caplog.at_level(logging.WARNING, logger="seamline.flows.messages"):
        message = render_message(message_environment(bundle), "m.md", {"record": {}})
    assert message.title == "标题"
    assert message.text == "正文1.5e+20"
    assert len(caplog.records) == 2 and "missing" in caplog.text


def test_template_errors_are_permanent_and_name_the_template() -> None:
    env = message_environment(
        {
            "templates/bad.md": "# t\n{% if %}",
            "templates/evil.md": "{{ ''.__class__.__mro__ }}",
        }
    )
    for name, words in (("bad.md", "line 2"), ("evil.md", "rendering"), ("nope.md", "not exist")):
        with pytest.raises(ConnectorError) as info:
            render_message(env, name, {})
        assert not info.value.transient
        assert f"templates/{name}" in info.value.message.en and words in info.value.message.en


def test_repo_templates_are_the_fallback() -> None:
    env = message_environment({})
    assert isinstance(env.get_template("base.html"), jinja2.Template)
    own = message_environment({"templates/base.html": "# mine"})
    assert render_message(own, "base.html", {}).title == "mine"


# ----------------------------------------------------------------------------- the pack


def test_pack_connectors_end_to_end(client: httpx.Client) -> None:
    import time

    wms_spec = wms(
        base_url_default="http://127.0.0.1:8765",
        operations=frozen_map({"stock": OperationSpec("stock", "GET", "/api/stock/{sku}")}),
    )
    specs = [
        wms_spec,
        robot("dingtalk", url_env="DINGTALK_WEBHOOK", token_env="DINGTALK_SECRET"),
        robot("wecom", url_env="WECOM_WEBHOOK"),
    ]
    with fake_http_api() as api, fake_dingtalk(secret="SECret") as ding:
        api.answer("GET", "/api/stock/{sku}", handler=stock_answer)
        conns = connectors_for(
            client,
            *specs,
            clock=time.time,
            WMS_BASE_URL=api.url,
            WMS_TOKEN="t",
            DINGTALK_WEBHOOK=ding.url,
            DINGTALK_SECRET="SECret",
        )
        answer = conns.call("wms", "stock", {"sku": "DP-100001"}, idempotency_key="o1:stock")
        kept = keep_values(answer.data, {"available": "available", "incoming": "incoming"})
        context = order_context()
        context["steps"] = {**context["steps"], "stock": kept}
        env = message_environment(read_bundle(PACK))
        message = render_message(
            env, "messages/stock_shortage.md", context, todo=True, to=PROCUREMENT
        )
        conns.send("dingtalk", message, idempotency_key="o1:notify")
        [card] = ding.messages
    assert kept == {
        "available": 30,
        "incoming": [{"po": "PO-9", "quantity": 5, "eta": "2026-03-01"}],
    }
    assert card["msgtype"] == "markdown" and card["markdown"]["title"].startswith(
        "【待办】缺料提醒"
    )
    assert "PO-9" in card["markdown"]["text"]


def stock_answer(request: Received, params: dict[str, str]) -> dict[str, Any]:
    assert request.headers["authorization"] == "Bearer t"
    return {
        "sku": params["sku"],
        "available": 30,
        "incoming": [{"po": "PO-9", "quantity": 5, "eta": "2026-03-01"}],
    }
