"""Logging: one ``seamline`` logger hierarchy, one handler, text or JSON lines.

Every module logs through ``log = logger(__name__)``: ``engine.outbox.worker`` logs as
``seamline.outbox.worker``, ``engine.deploy.apply`` as ``seamline.deploy.apply`` … so
``seamline`` (or ``seamline.outbox``) selects a whole floor. Standard library only: any floor
may import it, and the CLI and the ASGI factory (``engine.web.asgi``) call
:func:`configure_logging` once at start.

* ``fmt="text"``: ``2026-05-01T08:00:00.123Z INFO seamline.deploy.apply: deployed … key=value``
* ``fmt="json"``: one object per line — ``time``, ``level``, ``logger``, ``message``, then the
  record's extra fields (``log.info("…", extra={"job_id": 7})``) and ``exc`` for a traceback.

The chosen level applies to ``seamline.*`` and uvicorn's loggers (``uvicorn.error``,
``uvicorn.access``, through :func:`uvicorn_log_config`); every other library stays at WARNING,
so httpx never logs a webhook URL (with its key) and SQLAlchemy never logs SQL or parameters.
Log lines never carry secrets: callers log names (connector, job, deployment), not URLs,
passwords or keys.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any, TextIO

__all__ = [
    "FORMATS",
    "LEVELS",
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
    "env_log_format",
    "env_log_level",
    "logger",
    "uvicorn_log_config",
]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS = ("text", "json")
ROOT = "seamline"
# loggers that follow the chosen level; everything else stays at WARNING or above
FOLLOW = (ROOT, "uvicorn", "uvicorn.error", "uvicorn.access", "procrastinate")
QUIET = ("httpx", "httpcore", "sqlalchemy", "urllib3", "asyncio")

# attributes every LogRecord has: whatever else is on a record came in through ``extra``
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's coloured copy of the message
    "taskName",
}


def logger(module: str) -> logging.Logger:
    """The logger of an engine module: ``engine.x.y`` -> ``seamline.x.y``."""
    return logging.getLogger(ROOT + module.removeprefix("engine"))


def env_log_level() -> str:
    raw = os.environ.get("SEAMLINE_LOG_LEVEL", "INFO").strip().upper()
    return raw if raw in LEVELS else "INFO"


def env_log_format() -> str:
    raw = os.environ.get("SEAMLINE_LOG_FORMAT", "text").strip().lower()
    return raw if raw in FORMATS else "text"


def _time(record: logging.LogRecord) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{stamp}.{int(record.msecs):03d}Z"


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extra(record).items():
            out.setdefault(key, value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value …`` (a traceback on the lines after)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_time(record)} {record.levelname} {record.name}: {record.getMessage()}"
        extra = _extra(record)
        if extra:
            line += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is logged (test runners swap it)."""

    _seamline = True

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(level: str | None = None, fmt: str | None = None) -> logging.Handler:
    """Route ``seamline.*``, uvicorn's and procrastinate's loggers through one handler on the
    root logger; ``level``/``fmt`` default to SEAMLINE_LOG_LEVEL / SEAMLINE_LOG_FORMAT. Calling
    it again replaces the handler it installed (never anyone else's)."""
    name = (level or env_log_level()).upper()
    if name not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}")
    chosen = fmt or env_log_format()
    if chosen not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}")
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_seamline", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    number = logging.getLevelName(name)
    root.setLevel(max(number, logging.WARNING))
    for follower in FOLLOW:
        found = logging.getLogger(follower)
        found.setLevel(number)
        found.handlers = []  # e.g. uvicorn's own, when it was started as `uvicorn --factory`
        found.propagate = True  # one handler, on the root
    for quiet in QUIET:
        logging.getLogger(quiet).setLevel(max(number, logging.WARNING))
    return handler


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's ``log_config``: its loggers keep no handler of their own and propagate to the
    root handler :func:`configure_logging` installed (uvicorn applies this in every worker
    process it spawns, so the same dict works for ``--workers N``)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
        },
    }
