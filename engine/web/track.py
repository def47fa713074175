"""/track — the public tracking page: a phone number, a proof, then the visitor's records.

GET  /track          the phone form (with the number-suffix box in ``order_suffix`` mode)
POST /track/code     ask for a one-time code; the same answer whether the number is known
POST /track/verify   the code (or the suffix); success sets the tracking cookie
GET  /track/orders   the records of the verified contact, masked and whitelisted
                     (``?page=N``: the next ``limit`` records; the page says how many more)
POST /track/logout   end the visit
GET  /track/qr.svg   a QR code of /track (``?no=``: of /track?no=…) for staff to print

``?no=SO-…`` (the link in customer messages, engine.flows.links) only fills in: the page names
the record, the suffix box holds the number's last characters, and after the proof the record
is shown first — if it is one of the visitor's own. It never skips the phone and its proof.

The visit is its own short-lived cookie (``seamline_track``: signed, HttpOnly, SameSite=Strict,
path /track, Secure on HTTPS), holding a random visit id, the verified contact ids, the phone
key and an expiry on the engine's clock; the visit itself lives on the server
(engine.tracking.visits), so leaving ends it there and a copied cookie is refused after.
Every POST carries the site's CSRF token (engine.web.security).
Nothing here needs an account; without ``tracking:`` in app.yaml every address is a 404.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from engine.accounts.secret import session_secret
from engine.flows.links import MAX_NUMBER, public_url, track_path
from engine.model import clock
from engine.model.i18n import Lang, Text
from engine.model.spec import TrackingSpec
from engine.tracking.codes import Outcome, request_code, verify_code, verify_suffix
from engine.tracking.limits import normalise_phone
from engine.tracking.qr import qr_svg
from engine.tracking.read import read_tracked
from engine.tracking.visits import end_visit, start_visit, visit_is_live
from engine.web.current import live, request_lang
from engine.web.page_kit import not_found_page, post_text, read_post
from engine.web.security import check_csrf, secure_cookies
from engine.web.templating import Formatter, render, translate

__all__ = ["TRACK_COOKIE", "TRACK_TEXTS", "track_routes"]

TRACK_COOKIE = "seamline_track"
MAX_POST = 4_096
MAX_PAGE = 1_000

TRACK_TEXTS: dict[str, Text] = {
    "track_title": Text("Track your orders", "订单查询"),
    "track_phone": Text("Mobile number", "手机号"),
    "track_phone_hint": Text("The number you gave us", "下单时登记的手机号"),
    "track_send_code": Text("Send me a code", "获取验证码"),
    "track_code": Text("Verification code", "验证码"),
    "track_code_sent": Text(
        "If this number is registered with us, a code has been sent to it. It is valid for "
        "{minutes} minutes.",
        "如果该号码已登记，验证码已发送，{minutes} 分钟内有效。",
    ),
    "track_suffix": Text("Last {n} characters of an order number", "任一订单号的后 {n} 位"),
    "track_verify": Text("Show my orders", "查看我的订单"),
    "track_other_number": Text("Use another number", "换一个号码"),
    "track_bad_phone": Text("Please enter a valid mobile number.", "请输入正确的手机号。"),
    "track_wrong_code": Text("The code is wrong or has expired.", "验证码不正确或已过期。"),
    "track_wrong_suffix": Text(
        "The number and the order number do not match.", "手机号与订单号不匹配。"
    ),
    "track_limited": Text(
        "Too many requests. Please try again later.", "请求过于频繁，请稍后再试。"
    ),
    "track_locked": Text(
        "Too many wrong tries. Please try again in {minutes} minutes.",
        "错误次数过多，请 {minutes} 分钟后再试。",
    ),
    "track_expired": Text("Your visit has ended. Please verify again.", "查询已超时，请重新验证。"),
    "track_hello": Text("Orders for {phone}", "{phone} 的订单"),
    "track_none": Text("No orders to show.", "暂无可查询的订单。"),
    "track_more": Text("{n} more orders", "还有 {n} 单"),
    "track_show_more": Text("Show more", "查看更多"),
    "track_newer": Text("Newer orders", "上一页"),
    "track_page": Text("Page {n}", "第 {n} 页"),
    "track_bad_page": Text("There is no such page.", "没有这一页。"),
    "track_state": Text("Status", "当前状态"),
    "track_chain": Text("Progress", "进度"),
    "track_created": Text("Created", "已创建"),
    "track_logout": Text("Leave", "退出查询"),
    "track_valid_for": Text(
        "For your privacy this page closes after {minutes} minutes.",
        "为保护您的隐私，本页面 {minutes} 分钟后失效。",
    ),
    "track_for_number": Text(
        "Order {number}: please confirm your mobile number to see it.",
        "查询订单 {number}：请先验证手机号。",
    ),
    "track_bad_number": Text("This is not an order number.", "订单号格式不正确。"),
    "track_focus": Text("The order you asked about", "您查询的订单"),
    "track_focus_missing": Text(
        "Order {number} is not among the orders of this mobile number.",
        "订单 {number} 不在该手机号名下的订单中。",
    ),
    "track_all": Text("All your orders", "全部订单"),
    "track_progress": Text("Stages", "阶段"),
    "track_step_done": Text("done", "已完成"),
    "track_step_current": Text("now", "当前"),
    "track_step_todo": Text("to come", "未开始"),
}


def _t(lang: Lang, key: str, **params: Any) -> str:
    text = TRACK_TEXTS.get(key)
    return translate(lang, text if text is not None else key, **params)


def _spec(request: Request) -> TrackingSpec | None:
    return live(request).app.tracking


def _minutes(value: float) -> str:
    return f"{value:g}"


def _number(raw: str | None) -> str | None:
    """``?no=`` / the posted ``no``: "" when absent, the number when it can be one (printable,
    at most MAX_NUMBER characters), None when it cannot."""
    text = (raw or "").strip()
    if len(text) > MAX_NUMBER or not text.isprintable():
        return None
    return text


def _bad_number(request: Request, spec: TrackingSpec) -> Response:
    """The phone form again (400), saying ``?no=`` is not an order number."""
    error = _t(request_lang(request), "track_bad_number")
    return _page(request, spec, "track.html", 400, error=error, number="")


def _with_number(path: str, number: str) -> str:
    """``path`` carrying ``?no=`` when there is a number."""
    return track_path(number).replace("/track", path, 1) if number else path


def _page(
    request: Request, spec: TrackingSpec, name: str, status: int = 200, **context: Any
) -> Response:
    lang = request_lang(request)
    base = {
        "t": partial(_t, lang),
        "spec": spec,
        "title": spec.title or _t(lang, "track_title"),
        "company": spec.company or live(request).app.title,
        "code_minutes": _minutes(spec.code_minutes),
        "lock_minutes": _minutes(spec.lockout_minutes),
        "session_minutes": _minutes(spec.session_minutes),
        "number": "",  # the record number a message's link named (?no=), carried to the end
    }
    return render(request, name, {**base, **context}, status)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# ---------------------------------------------------------------------------- the visit cookie


def _signer() -> URLSafeSerializer:
    return URLSafeSerializer(session_secret(), salt="seamline.track")


async def _start_visit(
    request: Request, spec: TrackingSpec, outcome: Outcome, number: str
) -> Response:
    engine = live(request).records.engine
    visit_id, ends = await run_in_threadpool(
        start_visit, engine, outcome.contacts, outcome.phone_key, spec.session_minutes
    )
    value = _signer().dumps(
        {"v": visit_id, "c": list(outcome.contacts), "p": outcome.phone_key, "e": ends}
    )
    response = RedirectResponse(_with_number("/track/orders", number), 303)
    response.set_cookie(
        TRACK_COOKIE,
        value,
        max_age=int(spec.session_minutes * 60),
        path="/track",
        httponly=True,
        samesite="strict",
        secure=secure_cookies() or request.url.scheme == "https",
    )
    return response


def _cookie(request: Request) -> tuple[str, list[int], str] | None:
    """The visit id, contact ids and phone key of a well-signed, unexpired cookie."""
    raw = request.cookies.get(TRACK_COOKIE)
    if not raw or len(raw) > 4096:
        return None
    try:
        data = _signer().loads(raw)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("e"), int):
        return None
    if data["e"] <= clock.now().timestamp():
        return None
    visit_id, ids, key = data.get("v"), data.get("c"), data.get("p")
    if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids) or not ids:
        return None
    if not isinstance(visit_id, str) or not isinstance(key, str):
        return None
    return visit_id, ids, key


async def _visit(request: Request) -> tuple[list[int], str] | None:
    """The contact ids and phone key of a live visit: the cookie checked against the server's
    record (ended by leaving, expired, or made for other contacts: None)."""
    found = _cookie(request)
    if found is None:
        return None
    visit_id, ids, key = found
    engine = live(request).records.engine
    if not await run_in_threadpool(visit_is_live, engine, visit_id, ids, key):
        return None
    return ids, key


def _end_visit(response: Response) -> Response:
    response.delete_cookie(TRACK_COOKIE, path="/track", httponly=True, samesite="strict")
    return response


# ---------------------------------------------------------------------------- pages


async def track_home(request: Request) -> Response:
    spec = _spec(request)
    if spec is None:
        return not_found_page(request)
    number = _number(request.query_params.get("no"))
    if number is None:
        return _bad_number(request, spec)
    if await _visit(request) is not None:
        return RedirectResponse(_with_number("/track/orders", number), 303)
    return _page(request, spec, "track.html", number=number)


async def track_qr(request: Request) -> Response:
    """The QR code of the page's public address (SEAMLINE_PUBLIC_URL, else the address this
    request came to), with ``?no=`` when given."""
    spec = _spec(request)
    if spec is None:
        return not_found_page(request)
    number = _number(request.query_params.get("no"))
    if number is None:
        return _bad_number(request, spec)
    base = public_url() or str(request.base_url).rstrip("/")
    svg = await run_in_threadpool(qr_svg, base + track_path(number))
    return Response(
        svg, media_type="image/svg+xml", headers={"Cache-Control": "private, max-age=300"}
    )


async def _form(request: Request, spec: TrackingSpec) -> tuple[dict[str, str], Response | None]:
    """The posted fields, or the response refusing the post (too large, CSRF)."""
    length = request.headers.get("content-length", "")
    post = None if length.isdecimal() and int(length) > MAX_POST else await read_post(request)
    lang = request_lang(request)
    if post is None:
        return {}, _page(request, spec, "track.html", 413, error=translate(lang, "too_large"))
    if not check_csrf(request, post_text(post, "csrf_token")):
        return {}, _page(request, spec, "track.html", 403, error=translate(lang, "csrf"))
    return {k: post_text(post, k)[:64] for k in ("phone", "code", "suffix", "no")}, None


async def track_code(request: Request) -> Response:
    spec = _spec(request)
    if spec is None or spec.verify != "code":
        return not_found_page(request)
    fields, refused = await _form(request, spec)
    if refused is not None:
        return refused
    phone = normalise_phone(fields["phone"])
    lang = request_lang(request)
    number = _number(fields["no"]) or ""
    if phone is None:
        error = _t(lang, "track_bad_phone")
        return _page(request, spec, "track.html", 400, error=error, number=number)
    status = await run_in_threadpool(request_code, live(request), spec, phone, _client(request))
    if status == "sent":
        return _page(request, spec, "track_code.html", phone=phone, number=number)
    key = "track_locked" if status == "locked" else "track_limited"
    error = _t(lang, key, minutes=_minutes(spec.lockout_minutes))
    return _page(request, spec, "track.html", 429, error=error, phone=phone, number=number)


async def track_verify(request: Request) -> Response:
    spec = _spec(request)
    if spec is None:
        return not_found_page(request)
    fields, refused = await _form(request, spec)
    if refused is not None:
        return refused
    lang = request_lang(request)
    phone = normalise_phone(fields["phone"])
    number = _number(fields["no"]) or ""
    again = "track_code.html" if spec.verify == "code" else "track.html"
    if phone is None:
        error = _t(lang, "track_bad_phone")
        return _page(request, spec, "track.html", 400, error=error, number=number)
    current, ip = live(request), _client(request)
    if spec.verify == "code":
        outcome = await run_in_threadpool(verify_code, current, spec, phone, fields["code"], ip)
    else:
        outcome = await run_in_threadpool(verify_suffix, current, spec, phone, fields["suffix"], ip)
    if outcome.status == "ok":
        return await _start_visit(request, spec, outcome, number)
    if outcome.status == "locked":
        error = _t(lang, "track_locked", minutes=_minutes(spec.lockout_minutes))
        return _page(request, spec, "track.html", 429, error=error, phone=phone, number=number)
    wrong = "track_wrong_code" if spec.verify == "code" else "track_wrong_suffix"
    return _page(request, spec, again, 400, error=_t(lang, wrong), phone=phone, number=number)


async def track_orders(request: Request) -> Response:
    spec = _spec(request)
    if spec is None:
        return not_found_page(request)
    number = _number(request.query_params.get("no"))
    if number is None:
        return _bad_number(request, spec)
    visit = await _visit(request)
    if visit is None:
        error = _t(request_lang(request), "track_expired")
        response = _page(request, spec, "track.html", 401, error=error, number=number)
        return _end_visit(response) if TRACK_COOKIE in request.cookies else response
    ids, key = visit
    page = _page_number(request.query_params.get("page"))
    if page is None:
        error = _t(request_lang(request), "track_bad_page")
        return _page(request, spec, "track.html", 400, error=error)
    tracked = await run_in_threadpool(
        read_tracked,
        live(request),
        spec,
        ids,
        key,
        Formatter(live(request).app, request_lang(request)),
        page,
        number if page == 1 else None,
    )
    if tracked is None:
        return _end_visit(RedirectResponse("/track", 303))
    return _page(request, spec, "track_orders.html", tracked=tracked, number=number)


def _page_number(raw: str | None) -> int | None:
    """``?page=``: 1 when absent, a whole number 1..MAX_PAGE, else None."""
    if raw is None:
        return 1
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 4 or not 1 <= int(raw) <= MAX_PAGE:
        return None
    return int(raw)


async def track_logout(request: Request) -> Response:
    spec = _spec(request)
    if spec is None:
        return not_found_page(request)
    _fields, refused = await _form(request, spec)
    if refused is not None:
        return refused
    found = _cookie(request)
    if found is not None:  # ended on the server: a copy of the cookie is refused from now on
        await run_in_threadpool(end_visit, live(request).records.engine, found[0])
    return _end_visit(RedirectResponse("/track", 303))


def track_routes() -> list[BaseRoute]:
    return [
        Route("/track", track_home),
        Route("/track/code", track_code, methods=["POST"]),
        Route("/track/verify", track_verify, methods=["POST"]),
        Route("/track/orders", track_orders),
        Route("/track/logout", track_logout, methods=["POST"]),
        Route("/track/qr.svg", track_qr),
    ]
