"""Reading a connector's settings from the environment (never from YAML)."""

from __future__ import annotations

from collections.abc import Mapping

from engine.model.i18n import Text

from .errors import ConnectorNotConfigured

PURPOSE_URL = Text("the webhook URL", "Webhook 地址")
PURPOSE_BASE_URL = Text("the base URL of the system", "对方系统的基础地址")
PURPOSE_TOKEN = Text("the access token", "访问令牌")
PURPOSE_SECRET = Text("the signing secret", "签名密钥")
PURPOSE_SMTP = Text(
    "the SMTP URL, e.g. smtps://user:password@host:465",
    "SMTP 地址，例如 smtps://用户:密码@主机:465",
)


def lookup(environ: Mapping[str, str], variable: str | None) -> str | None:
    """The variable's value, or None when it is not named, not set or blank."""
    if not variable:
        return None
    value = environ.get(variable, "").strip()
    return value or None


def require(
    environ: Mapping[str, str],
    connector: str,
    variable: str | None,
    setting: str,
    purpose: Text,
) -> str:
    """The variable's value; :class:`ConnectorNotConfigured` names it when unset.

    ``setting`` is the YAML key that names the variable (``url_env``, ``token_env`` …).
    """
    value = lookup(environ, variable)
    if value is None:
        raise ConnectorNotConfigured(connector, variable, purpose, setting)
    return value
