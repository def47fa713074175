"""Connector failures, each classified once: transient (retry later) or permanent (dead letter).

The outbox worker never inspects exception types from httpx or smtplib; it only reads
``transient`` (and ``retry_after``) from the :class:`ConnectorError` raised here.
"""

from __future__ import annotations

from typing import Any

from engine.model.i18n import Text


class ConnectorError(Exception):
    """One failed attempt. ``transient``: the same call may succeed later (retry with backoff);
    otherwise it will fail again until someone changes the configuration or the data."""

    def __init__(
        self,
        message: Text,
        *,
        transient: bool,
        status: int | None = None,
        connector: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message.en)
        self.message = message
        self.transient = transient
        self.status = status
        self.connector = connector
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self.message.en

    def __reduce__(self) -> tuple[Any, ...]:  # keep every field when pickled or copied
        return (_restore, (type(self), self.args, dict(self.__dict__)))

    def __repr__(self) -> str:
        kind = "transient" if self.transient else "permanent"
        return f"{type(self).__name__}({self.message.en!r}, {kind}, status={self.status})"


class ConnectorNotConfigured(ConnectorError):
    """A setting the connector needs is missing: usually an environment variable.

    Permanent until an administrator fixes it. ``variable`` names the missing environment
    variable; it is None when app.yaml does not even name one (``setting`` is then missing).
    """

    def __init__(self, connector: str, variable: str | None, purpose: Text, setting: str) -> None:
        params = {
            "connector": connector,
            "setting": setting,
            "p_en": purpose.en,
            "p_zh": purpose.zh,
        }
        if variable:
            message = Text(
                "Connector '{connector}' is not configured: set the environment variable "
                "{variable} ({p_en}) and restart.",
                "连接器“{connector}”尚未配置：请设置环境变量 {variable}（{p_zh}）后重启。",
            ).format(variable=variable, **params)
        else:
            message = Text(
                "Connector '{connector}' is not configured: app.yaml gives it no `{setting}` "
                "naming the environment variable that holds {p_en}.",
                "连接器“{connector}”尚未配置：app.yaml 中缺少 `{setting}`，"
                "它应指明存放{p_zh}的环境变量。",
            ).format(**params)
        super().__init__(message, transient=False, connector=connector)
        self.variable = variable
        self.setting = setting


def _restore(cls: type[ConnectorError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error
