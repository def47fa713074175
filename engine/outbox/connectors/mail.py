"""``type: email`` connectors: one SMTP session per message.

The SMTP URL comes from the variable named by ``smtp_url_env``:
``smtp://user:password@host:25``, ``smtp://…:587?starttls=1`` or ``smtps://…:465``.
"""

from __future__ import annotations

import hashlib
import html
import re
import smtplib
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from urllib.parse import parse_qs, unquote, urlsplit

from engine.model.i18n import Text
from engine.model.logs import logger
from engine.model.spec import ConnectorSpec

from . import env
from .errors import ConnectorError
from .model import Message

log = logger(__name__)

TRUE = {"1", "true", "yes", "on"}
IDEMPOTENCY_HEADER = "X-Seamline-Idempotency-Key"


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    host: str
    port: int
    user: str | None
    password: str | None
    implicit_tls: bool
    starttls: bool


def parse_smtp_url(connector: str, variable: str | None, url: str) -> SmtpTarget:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    starttls = any(v.lower() in TRUE for v in query.get("starttls", []))
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname or port == -1:
        message = Text(
            "Connector '{c}': {var} must hold an SMTP URL such as "
            "smtps://user:password@mail.example.com:465 or smtp://host:587?starttls=1.",
            "连接器“{c}”：{var} 应为 SMTP 地址，例如 smtps://用户:密码@mail.example.com:465 "
            "或 smtp://主机:587?starttls=1。",
        ).format(c=connector, var=variable or "smtp_url_env")
        raise ConnectorError(message, transient=False, connector=connector)
    implicit = parts.scheme == "smtps"
    default_port = 465 if implicit else 587 if starttls else 25
    return SmtpTarget(
        host=parts.hostname,
        port=port or default_port,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        implicit_tls=implicit,
        starttls=starttls and not implicit,
    )


def message_id(idempotency_key: str, sender: str) -> str:
    """A Message-ID that is the same for every attempt of one effect, so receivers can
    de-duplicate a message sent twice."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:40]
    domain = sender.rpartition("@")[2] or "seamline.invalid"
    return f"<seamline.{digest}@{domain}>"


_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_BULLET = re.compile(r"^\s*[-*+]\s+(.*)$")
_BOLD = re.compile(r"\*\*(.+?)\*\*")


# a backslash-escaped character (CommonMark; message templates escape record values so): itself
_ESCAPED = re.compile(r"\\(&(?:amp|lt|gt|quot|#x27);|[!-/:-@\[-`{-~])")


def _inline(text: str) -> str:
    return _ESCAPED.sub(r"\1", _BOLD.sub(r"<strong>\1</strong>", html.escape(text)))


def markdown_html(text: str) -> str:
    """Enough markdown for notifications: headings, bullet lists, bold, paragraphs."""
    out: list[str] = []
    in_list = False
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            out.append("<p>" + "<br>\n".join(paragraph) + "</p>")
            paragraph.clear()

    for line in text.splitlines():
        heading, bullet = _HEADING.match(line), _BULLET.match(line)
        if bullet:
            flush()
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{_inline(bullet.group(1))}</li>")
            continue
        if in_list:
            out.append("</ul>")
            in_list = False
        if heading:
            flush()
            level = min(len(heading.group(1)) + 1, 6)
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif line.strip():
            paragraph.append(_inline(line))
        else:
            flush()
    if in_list:
        out.append("</ul>")
    flush()
    return "\n".join(out)


def build_email(
    spec: ConnectorSpec, message: Message, idempotency_key: str, clock: Callable[[], float]
) -> tuple[EmailMessage, list[str]]:
    sender = spec.sender
    if not sender:
        text = Text(
            "Connector '{c}' has no `sender` address in app.yaml.",
            "连接器“{c}”在 app.yaml 中没有设置发件地址 `sender`。",
        ).format(c=spec.name)
        raise ConnectorError(text, transient=False, connector=spec.name)
    with_email = [r for r in message.to if r.email]
    if not with_email:
        users = ", ".join(r.user for r in message.to) or "-"
        text = Text(
            "Connector '{c}': none of the recipients has an email address ({users}).",
            "连接器“{c}”：收件人都没有邮箱地址（{users}）。",
        ).format(c=spec.name, users=users)
        raise ConnectorError(text, transient=False, connector=spec.name)
    skipped = [r.user for r in message.to if not r.email]
    if skipped:
        log.warning("email %s: no address for %s; sent to the others", spec.name, skipped)
    mail = EmailMessage()
    mail["Subject"] = " ".join(message.title.split())
    mail["From"] = sender
    mail["To"] = ", ".join(formataddr((r.name or "", r.email or "")) for r in with_email)
    mail["Date"] = formatdate(clock(), localtime=False, usegmt=True)
    mail["Message-ID"] = message_id(idempotency_key, sender)
    mail[IDEMPOTENCY_HEADER] = idempotency_key
    mail.set_content(message.text)
    if message.markdown:
        body = markdown_html(message.text)
    else:
        body = "<pre>" + html.escape(message.text) + "</pre>"
    title = html.escape(message.title)
    mail.add_alternative(
        f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head>'
        f"<body>\n{body}\n</body></html>\n",
        subtype="html",
    )
    return mail, [r.email for r in with_email if r.email]


def send_email(
    spec: ConnectorSpec,
    message: Message,
    *,
    environ: Mapping[str, str],
    idempotency_key: str,
    clock: Callable[[], float],
) -> None:
    url = env.require(environ, spec.name, spec.smtp_url_env, "smtp_url_env", env.PURPOSE_SMTP)
    target = parse_smtp_url(spec.name, spec.smtp_url_env, url)
    mail, to = build_email(spec, message, idempotency_key, clock)
    try:
        refused = _deliver(target, mail, spec.sender or "", to, spec.timeout)
    except ConnectorError:
        raise
    except Exception as exc:
        raise classify_smtp(spec, target, exc) from exc
    if refused:
        log.warning("email %s: the server refused %s", spec.name, sorted(refused))
    log.info("email %s: sent %r to %d (key %s)", spec.name, message.title, len(to), idempotency_key)


def _deliver(
    target: SmtpTarget, mail: EmailMessage, sender: str, to: list[str], timeout: float
) -> dict[str, tuple[int, bytes]]:
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if target.implicit_tls:
        smtp = smtplib.SMTP_SSL(target.host, target.port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(target.host, target.port, timeout=timeout)
    with smtp:
        if target.starttls:
            smtp.starttls(context=context)
        if target.user:
            smtp.login(target.user, target.password or "")
        return smtp.send_message(mail, from_addr=sender, to_addrs=to)


def classify_smtp(spec: ConnectorSpec, target: SmtpTarget, exc: Exception) -> ConnectorError:
    """SMTP 4xx, timeouts and broken connections are transient; 5xx and TLS or login
    problems are permanent."""
    place = f"{target.host}:{target.port}"
    code: int | None = None
    transient = False
    hint = Text("", "")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [c for c, _ in exc.recipients.values()]
        code = min(codes) if codes else None
        transient = any(400 <= c < 500 for c in codes)
        detail = "; ".join(f"{a}: {c} {_text(m)}" for a, (c, m) in exc.recipients.items())
    elif isinstance(exc, smtplib.SMTPNotSupportedError):
        detail = str(exc)
        hint = Text(
            " Remove ?starttls=1 or use smtps:// if the server does not offer it.",
            " 如服务器不支持，请去掉 ?starttls=1 或改用 smtps://。",
        )
    elif isinstance(exc, smtplib.SMTPResponseException):
        code = exc.smtp_code
        transient = 400 <= code < 500
        detail = f"{code} {_text(exc.smtp_error)}"
        if isinstance(exc, smtplib.SMTPAuthenticationError) and not transient:
            hint = Text(
                " Check the user and password in {var}.", " 请检查 {var} 中的用户名和密码。"
            ).format(var=spec.smtp_url_env or "smtp_url_env")
    elif isinstance(exc, smtplib.SMTPServerDisconnected):
        transient, detail = True, str(exc) or "disconnected"
    elif isinstance(exc, smtplib.SMTPException):  # e.g. no common authentication method
        detail = str(exc)
    elif isinstance(exc, ssl.SSLCertVerificationError):
        detail = str(exc)
        hint = Text(" The server's TLS certificate is not trusted.", " 服务器的 TLS 证书不受信任。")
    elif isinstance(exc, ssl.SSLError) and not isinstance(exc, ssl.SSLEOFError):
        detail = f"{type(exc).__name__}: {exc}"
        hint = Text(
            " Check smtps:// (TLS from the start, port 465) against smtp://…?starttls=1 "
            "(port 587) and the port.",
            " 请核对 smtps://（端口 465，直接 TLS）与 smtp://…?starttls=1（端口 587）及端口号。",
        )
    elif isinstance(exc, OSError):  # refused, unreachable, timeouts, dropped TLS handshakes
        transient, detail = True, f"{type(exc).__name__}: {exc}"
    else:
        detail = f"{type(exc).__name__}: {exc}"
    message = (
        Text(
            "Connector '{c}': the mail server {place} did not take the message ({detail}).",
            "连接器“{c}”：邮件服务器 {place} 未接收邮件（{detail}）。",
        ).format(c=spec.name, place=place, detail=detail[:300])
        + hint
    )
    return ConnectorError(message, transient=transient, status=code, connector=spec.name)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
