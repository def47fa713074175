"""The pack's outside world for a test: its mock warehouse system and the DingTalk and WeCom
fakes, each a real HTTP server on 127.0.0.1, with the environment the pack's connectors read."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from apihelp import PACK
from fakes import AsgiServer, FakeDingTalk, FakeWeCom, fake_dingtalk, fake_wecom

from engine.demo.modules import load_module


def mock_wms_module() -> ModuleType:
    """examples/manufacturing_pack/mock_wms.py, imported as ``mock_wms``."""
    module = load_module("mock_wms", PACK / "mock_wms.py")
    assert module is not None
    return module


@dataclass
class PackServices:
    wms: AsgiServer
    ding: FakeDingTalk
    wecom: FakeWeCom


@contextmanager
def pack_services(monkeypatch: pytest.MonkeyPatch) -> Iterator[PackServices]:
    with (
        AsgiServer(mock_wms_module().create_app()) as wms,
        fake_dingtalk(secret="ding-secret") as ding,
        fake_wecom() as wecom,
    ):
        monkeypatch.setenv("WMS_URL", wms.base_url)
        monkeypatch.setenv("WMS_TOKEN", "wms-secret")
        monkeypatch.setenv("DINGTALK_WEBHOOK", ding.url)
        monkeypatch.setenv("DINGTALK_SECRET", "ding-secret")
        monkeypatch.setenv("WECOM_WEBHOOK", wecom.url)
        yield PackServices(wms, ding, wecom)


def submit_order(records: Any, customer: int, product: int, quantity: int, desired: str) -> int:
    """A normal order filed by the engine and submitted: its stock check starts."""
    from engine.flows.machine import fire_transition
    from engine.forms.records import SYSTEM_ACTOR

    values = {
        "customer": customer,
        "product": product,
        "quantity": quantity,
        "desired_date": desired,
        "order_type": "normal",
    }
    order = records.create("order", values, SYSTEM_ACTOR)
    fire_transition(records, "order", order["id"], "submit", SYSTEM_ACTOR)
    return int(order["id"])
