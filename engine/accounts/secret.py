"""The server's secret key: it signs session cookies and keys the tracking page's phone hashes.

Only from the environment (``SEAMLINE_SECRET_KEY``); without it a random key for this process,
with a warning.
"""

from __future__ import annotations

import os
import secrets

from engine.model.logs import logger

__all__ = ["session_secret"]

log = logger(__name__)
_generated_secret: str | None = None


def session_secret() -> str:
    """``SEAMLINE_SECRET_KEY``, or a random key for this process only (with a warning)."""
    global _generated_secret
    configured = os.environ.get("SEAMLINE_SECRET_KEY", "").strip()
    if configured:
        if len(configured) < 32:
            log.warning("SEAMLINE_SECRET_KEY is short; use at least 32 random characters")
        return configured
    if _generated_secret is None:
        _generated_secret = secrets.token_urlsafe(48)
        log.warning(
            "SEAMLINE_SECRET_KEY is not set: using a random key for this process. Sessions "
            "will not survive a restart and will not work across several web processes."
        )
    return _generated_secret
