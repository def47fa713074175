"""A day of orders at the Shaoxing plant, for ``seamline demo --scenario``.

Each step is one function taking the scenario's ``Run`` (engine/demo/scenario.py): it acts
through the HTTP API as a person of data/people.csv and checks what the pack should do — the
stock check against the mock warehouse, the DingTalk to-do for procurement when stock is
short, the approval route and the inboxes it fills, the promise-date gate, the customer's
WeCom progress messages and the dashboards. Add a step by writing a function and listing it
in ``STEPS``.

The mock warehouse's showcase SKUs (mock_wms.py) make the outcome fixed: SD-100000 has
plenty, DP-100001 has 30 available (a purchase order of 100 arrives in 14 days).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from engine.demo.scenario import Run, Step
from engine.model.i18n import Text

PLENTY, SHORT = "SD-100000", "DP-100001"
SALES, SALES_VIP = "li.sales", "zhang.sales"
FINANCE, WAREHOUSE, ENGINEERING = "huang.fin", "liu.wh", "xu.eng"
DIRECTOR, PROCUREMENT, GM = "zhou.pd", "wu.proc", "wang.gm"
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
ORDERS = "/api/forms/order/records"


# ---------------------------------------------------------------------------- helpers


def record_id(run: Run, form: str, **where: str) -> int:
    items = run.call(SALES, "GET", f"/api/forms/{form}/records", params=where)["items"]
    if not items:
        raise LookupError(f"no {form} with {where}")
    found: int = items[0]["id"]
    return found


def customer_with_tier(run: Run, tier: str) -> int:
    return record_id(run, "customer", tier=tier, sort="id", limit="1")


def new_order(
    run: Run, user: str, customer: int, sku: str, quantity: int, kind: str, **extra: Any
) -> dict[str, Any]:
    """Create and submit an order; return it once the stock check has answered."""
    desired = (date.today() + timedelta(days=21)).isoformat()
    body = {
        "customer": customer,
        "product": record_id(run, "product", code=sku),
        "quantity": quantity,
        "desired_date": desired,
        "order_type": kind,
        "channel": "企业微信",
        **extra,
    }
    order = run.call(user, "POST", ORDERS, 201, json=body)
    run.call(user, "POST", f"{ORDERS}/{order['id']}/actions/submit")
    return wait_state(run, order["id"], "stock_checked")


def get_order(run: Run, order_id: int) -> dict[str, Any]:
    found: dict[str, Any] = run.call(SALES, "GET", f"{ORDERS}/{order_id}")
    return found


def wait_state(run: Run, order_id: int, state: str) -> dict[str, Any]:
    return run.wait(
        lambda: (o := get_order(run, order_id))["state"] == state and o,
        Text("order {id} in state {state}", "订单 {id} 进入状态 {state}").format(
            id=str(order_id), state=state
        ),
    )


def confirm_promise(run: Run, user: str, order: dict[str, Any]) -> dict[str, Any]:
    """The salesperson promises the ATP date (both sides confirm it where the flow has the
    confirmation gate) and asks for approval."""
    path = f"{ORDERS}/{order['id']}"
    run.call(user, "PATCH", path, json={"promised_date": order["atp_date"]})
    confirm_gate(run, order["id"], "confirm_promise", {"sales": user})
    if get_order(run, order["id"])["state"] != "approving":
        run.call(user, "POST", f"{path}/actions/confirm_promise")
    return wait_state(run, order["id"], "approving")


def confirm_gate(run: Run, order_id: int, transition: str, people: dict[str, str]) -> None:
    """Each role of the transition's ``confirm:`` gate confirms the current value through the
    API; nothing to do for a transition without a gate."""
    machine = run.app.state_machines["order"]
    spec = next(t for t in machine.transitions if t.name == transition)
    gate = getattr(spec, "confirm", None)
    if gate is None:
        return
    for role in gate.by:
        user = people.get(role) or next(p.user for p in run.app.people.values() if role in p.roles)
        answer = run.api(user).post(
            f"{ORDERS}/{order_id}/confirmations/{transition}", json={"role": role}
        )
        run.expect(
            answer.status_code in (200, 201),
            Text("{user} confirms the {field} as {role}", "{user} 以{role}身份确认{field}").format(
                user=user,
                role=run.app.roles[role].label,
                field=run.app.forms["order"].by_name[gate.field].label,
            ),
        )


def tasks_for(run: Run, user: str, order_id: int) -> list[dict[str, Any]]:
    tasks = run.call(user, "GET", "/api/tasks")["tasks"]
    return [t for t in tasks if t["form"] == "order" and t["record_id"] == order_id]


def decide(run: Run, user: str, order_id: int, decision: str, comment: str = "") -> None:
    [task] = run.wait(
        lambda: tasks_for(run, user, order_id),
        Text("a task for {user}", "{user} 的待办").format(user=user),
    )
    body = {"comment": comment} if comment else {}
    run.call(user, "POST", f"/api/tasks/{task['id']}/{decision}", json=body)


def chat_about(run: Run, since: int, connector: str, order_no: str) -> list[dict[str, Any]]:
    return [
        m for m in run.chat_messages(since) if m["connector"] == connector and order_no in m["text"]
    ]


def kpi_values(run: Run, dashboard: str) -> dict[str, Any]:
    answer = run.call(GM, "GET", f"/api/dashboards/{dashboard}")
    return {k["id"]: k["value"] for k in answer["kpis"]}


def orders_made(run: Run) -> list[int]:
    made: list[int] = run.memo.setdefault("orders", [])
    return made


# ---------------------------------------------------------------------------- the steps


def dashboards_before(run: Run) -> None:
    values = kpi_values(run, "outcomes")
    run.memo["before"] = values
    run.expect(
        "open_orders" in values,
        Text(
            "the outcomes dashboard answers: {n} open orders",
            "成效指标看板可用：在途订单 {n} 单",
        ).format(n=str(values.get("open_orders"))),
    )


def regular_orders(run: Run) -> None:
    since = run.chat_seq()
    customer = customer_with_tier(run, "B")
    for quantity in (120, 200, 60):
        order = new_order(run, SALES, customer, PLENTY, quantity, "normal")
        orders_made(run).append(order["id"])
        run.expect(
            order["atp_date"],
            Text(
                "{no}: {q} × {sku} in stock, ATP date {atp}",
                "{no}：{sku} × {q} 有货，可承诺交付日 {atp}",
            ).format(no=order["order_no"], q=str(quantity), sku=PLENTY, atp=str(order["atp_date"])),
        )
        run.memo.setdefault("regular", []).append(order)
    # the demo's own short-stock drafts are checked in the background meanwhile: their
    # shortage to-dos are not about these orders
    numbers = [o["order_no"] for o in run.memo["regular"]]
    todo = [m for m in run.chat_messages(since) if m["connector"] == "dingtalk"]
    shortage = [m for m in todo if "缺料" in m["text"] and any(n in m["text"] for n in numbers)]
    run.expect(
        not shortage,
        Text("no shortage to-do for procurement", "没有给采购的缺料待办"),
    )


def regular_approvals(run: Run) -> None:
    for order in run.memo["regular"]:
        order = confirm_promise(run, SALES, order)
        approvals = run.call(SALES, "GET", f"{ORDERS}/{order['id']}/approvals")["approvals"]
        route = approvals[-1]["route"] if approvals else None
        run.expect(
            route == "class_b",
            Text(
                "{no}: route class_b (finance + warehouse countersign), got {route}",
                "{no}：走 B 类路线（财务 + 仓储会签），实际 {route}",
            ).format(no=order["order_no"], route=str(route)),
        )
        run.expect(
            tasks_for(run, FINANCE, order["id"]) and tasks_for(run, WAREHOUSE, order["id"]),
            Text(
                "tasks in the inboxes of {fin} (finance) and {wh} (warehouse)",
                "待办已进入 {fin}（财务）和 {wh}（仓储）的收件箱",
            ).format(fin=FINANCE, wh=WAREHOUSE),
        )
        decide(run, FINANCE, order["id"], "approve")
        decide(run, WAREHOUSE, order["id"], "approve")
        wait_state(run, order["id"], "approved")
        run.expect(True, Text("{no} approved", "{no} 审批通过").format(no=order["order_no"]))


def vip_rush_with_shortage(run: Run) -> None:
    since = run.chat_seq()
    customer = customer_with_tier(run, "VIP")
    order = new_order(run, SALES_VIP, customer, SHORT, 80, "rush")
    orders_made(run).append(order["id"])
    run.memo["vip"] = order
    todo = run.wait(
        lambda: chat_about(run, since, "dingtalk", order["order_no"]),
        Text("the DingTalk to-do for procurement", "给采购的钉钉待办"),
    )
    run.expect(
        "缺料" in todo[0]["text"],
        Text(
            "stock check: {sku} short for 80 → DingTalk to-do to procurement ({who})",
            "库存校验：{sku} 不足 80 件 → 已向采购（{who}）推送钉钉待办",
        ).format(sku=SHORT, who=PROCUREMENT),
    )
    run.say(
        Text(
            "ATP date from the incoming purchase order: {atp}", "按在途采购单可承诺：{atp}"
        ).format(atp=str(order["atp_date"]))
    )


def promise_gate(run: Run) -> None:
    order = run.memo["vip"]
    path = f"{ORDERS}/{order['id']}"
    run.call(SALES_VIP, "PATCH", path, json={"promised_date": order["desired_date"]})
    refused = run.api(SALES_VIP).post(f"{path}/actions/confirm_promise")
    run.expect(
        refused.status_code in (409, 422) and get_order(run, order["id"])["state"] != "approving",
        Text(
            "promising the desired date {d} (ATP {atp}) is refused: {why}",
            "按期望交付日 {d} 承诺（可承诺 {atp}）被拒绝：{why}",
        ).format(d=order["desired_date"], atp=str(order["atp_date"]), why=refused.text[:160]),
    )
    order = confirm_promise(run, SALES_VIP, get_order(run, order["id"]))
    run.expect(
        order["promised_date"] == order["atp_date"],
        Text(
            "promised the ATP date {atp}: the order goes to approval",
            "按可承诺交付日 {atp} 承诺后进入审批",
        ).format(atp=str(order["atp_date"])),
    )


def vip_route(run: Run) -> None:
    order = run.memo["vip"]
    mine = run.wait(
        lambda: tasks_for(run, DIRECTOR, order["id"]),
        Text("a task for the production director", "生产总监的待办"),
    )
    run.expect(
        mine[0]["route"] == "class_a" and not tasks_for(run, FINANCE, order["id"]),
        Text(
            "route class_a: straight to the production director {who}, finance skipped",
            "A 类路线：直达生产总监 {who}，不经财务",
        ).format(who=DIRECTOR),
    )
    decide(run, DIRECTOR, order["id"], "approve")
    wait_state(run, order["id"], "approved")
    run.expect(True, Text("{no} approved", "{no} 审批通过").format(no=order["order_no"]))


def trial_order(run: Run) -> None:
    upload = run.api(SALES).post(
        "/api/files",
        params={"form": "order", "field": "attachments"},
        files={"file": ("drawing.pdf", PDF, "application/pdf")},
    )
    run.expect(
        upload.status_code == 201,
        Text("drawing uploaded ({status})", "图纸已上传（{status}）").format(
            status=str(upload.status_code)
        ),
    )
    customer = customer_with_tier(run, "A")
    order = new_order(run, SALES, customer, PLENTY, 12, "trial", attachments=[upload.json()["id"]])
    orders_made(run).append(order["id"])
    order = confirm_promise(run, SALES, order)
    waiting = {u: tasks_for(run, u, order["id"]) for u in (FINANCE, WAREHOUSE, ENGINEERING)}
    run.expect(
        all(waiting.values()) and waiting[ENGINEERING][0]["route"] == "class_c",
        Text(
            "route class_c: finance, warehouse and engineering ({eng}) countersign",
            "C 类路线：财务、仓储和技术部（{eng}）会签",
        ).format(eng=ENGINEERING),
    )
    for user in (FINANCE, WAREHOUSE, ENGINEERING):
        decide(run, user, order["id"], "approve")
    wait_state(run, order["id"], "approved")
    run.expect(True, Text("{no} approved", "{no} 审批通过").format(no=order["order_no"]))


def returned_then_rejected(run: Run) -> None:
    customer = customer_with_tier(run, "C")
    order = new_order(run, SALES, customer, PLENTY, 90, "normal")
    orders_made(run).append(order["id"])
    order = confirm_promise(run, SALES, order)
    decide(run, FINANCE, order["id"], "return", "数量请与客户再确认 / please check the quantity")
    wait_state(run, order["id"], "returned")
    run.expect(True, Text("finance returned it for changes", "财务退回修改"))
    path = f"{ORDERS}/{order['id']}"
    run.call(SALES, "PATCH", path, json={"quantity": 150})
    run.call(SALES, "POST", f"{path}/actions/submit")
    order = confirm_promise(run, SALES, wait_state(run, order["id"], "stock_checked"))
    run.expect(True, Text("changed, checked and sent again", "修改后重新校验并再次提交审批"))
    decide(run, FINANCE, order["id"], "reject", "客户信用额度不足 / over the credit limit")
    wait_state(run, order["id"], "rejected")
    run.expect(True, Text("{no} rejected", "{no} 已驳回").format(no=order["order_no"]))


def customer_messages(run: Run) -> None:
    for order_id in orders_made(run):
        order = get_order(run, order_id)
        sent = run.wait(
            lambda o=order: len(chat_about(run, 0, "wecom", o["order_no"])) >= 2 and True,
            Text("progress messages for {no}", "{no} 的进度消息").format(no=order["order_no"]),
        )
        run.expect(
            sent,
            Text(
                "{no}: the customer got WeCom progress messages (stock checked, approved)",
                "{no}：客户已在企业微信收到进度消息（库存已校验、已审批）",
            ).format(no=order["order_no"]),
        )


def dashboards_after(run: Run) -> None:
    before = run.memo["before"]
    after = kpi_values(run, "outcomes")
    still_open = len(orders_made(run)) - 1  # all but the rejected one
    run.expect(
        after["open_orders"] == (before["open_orders"] or 0) + still_open,
        Text(
            "open orders {a} → {b} (+{n})",
            "在途订单 {a} → {b}（+{n}）",
        ).format(a=str(before["open_orders"]), b=str(after["open_orders"]), n=str(still_open)),
    )
    run.expect(
        (after["order_amount"] or 0) > (before["order_amount"] or 0),
        Text("this month's amount {a} → {b}", "本月订单金额 {a} → {b}").format(
            a=str(before["order_amount"]), b=str(after["order_amount"])
        ),
    )
    health = kpi_values(run, "order_health")
    run.expect(
        health["first_response_hours"] is not None,
        Text(
            "order health: first response {h} h (median, 30 days)",
            "订单健康度：首次响应 {h} 小时（中位数，近 30 天）",
        ).format(h=str(health["first_response_hours"])),
    )


STEPS = [
    Step(Text("Dashboards before the day", "今天开始前的看板"), dashboards_before),
    Step(Text("Three regular orders: stock check", "三张常规单：库存校验"), regular_orders),
    Step(Text("Regular orders: promise and approval", "常规单：承诺与审批"), regular_approvals),
    Step(
        Text("VIP rush order with a stock shortage", "VIP 加急单，库存不足"),
        vip_rush_with_shortage,
    ),
    Step(Text("The promise-date gate", "承诺交付日闸门"), promise_gate),
    Step(Text("VIP rush order: approval route", "VIP 加急单：审批路线"), vip_route),
    Step(Text("A trial order needs engineering", "试产单需要技术部会签"), trial_order),
    Step(
        Text("An order returned, changed, then rejected", "一张订单被退回、修改后被驳回"),
        returned_then_rejected,
    ),
    Step(Text("The customers' progress messages", "客户收到的进度消息"), customer_messages),
    Step(Text("Dashboards after the day", "今天结束后的看板"), dashboards_after),
]
