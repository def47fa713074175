"""What a request runs on: the configuration it was started on (:func:`live`) and the language
its answer speaks (:func:`request_lang`, the one language rule of the web floor).

The bottom of the web floor: it imports no other module of ``engine.web``.
"""

from __future__ import annotations

from starlette.requests import Request

from engine.model.i18n import Lang, default_lang, lang_from_locale
from engine.runtime import LiveApp

__all__ = ["live", "request_lang"]


def live(request: Request) -> LiveApp:
    """The configuration this request runs on (taken once, at its start)."""
    current = request.scope.get("seamline.live")
    if current is None:
        current = request.app.state.deployments.current
        request.scope["seamline.live"] = current
    return current


def request_lang(
    request: Request, *, accept_language: bool = False, app_locale: bool = True
) -> Lang:
    """The language to answer ``request`` in, taking the first of these that applies:

    1. with ``accept_language``, the first language of the caller's ``Accept-Language``
       header, when it sends one — JSON answers (the API, /api/files, the 404/405 answers
       under /api, security refusals);
    2. with ``app_locale`` (the default), the language of the app's ``locale`` in the
       configuration the request runs on — every HTML page stops here: the signed-in pages
       and the public /track page alike speak the app's language, whatever the browser asks;
    3. ``SEAMLINE_LANG``, then English — for security refusals (``app_locale=False``): they
       are raised below the configuration, also in apps that serve none.
    """
    if accept_language:
        asked = request.headers.get("accept-language", "").split(",")[0].strip()
        if asked:
            return lang_from_locale(asked)
    if app_locale:
        return lang_from_locale(live(request).app.locale)
    return default_lang()
