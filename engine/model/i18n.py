"""Bilingual text for the engine's own messages (English and Chinese).

Every message the engine shows a person is a :class:`Text` carrying both languages; the
caller picks the language at render time (``--lang``, ``SEAMLINE_LANG`` or the app's locale).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

Lang = Literal["en", "zh"]
LANGS: tuple[Lang, ...] = ("en", "zh")


@dataclass(frozen=True, slots=True)
class Text:
    """One message in English and Chinese."""

    en: str
    zh: str

    def __call__(self, lang: Lang = "en") -> str:
        return self.zh if lang == "zh" else self.en

    def format(self, **params: object) -> Text:
        return Text(self.en.format(**params), self.zh.format(**params))

    def __add__(self, other: Text) -> Text:
        return Text(self.en + other.en, self.zh + other.zh)


def lang_from_locale(locale: str | None) -> Lang:
    """Map a locale such as ``zh-CN`` / ``en`` / ``zh_CN.UTF-8`` to a message language."""
    if locale and locale.lower().replace("_", "-").startswith("zh"):
        return "zh"
    return "en"


def default_lang(app_locale: str | None = None) -> Lang:
    """``SEAMLINE_LANG`` wins, then the app's locale, then English."""
    env = os.environ.get("SEAMLINE_LANG")
    if env:
        return lang_from_locale(env)
    return lang_from_locale(app_locale)


def counted(n: int, one: str, zh_unit: str, many: str | None = None) -> Text:
    """``n`` things, with the English plural right ("1 form", "3 forms"; ``many`` when the
    plural is not ``one + "s"``) and the Chinese measure word (``zh_unit``, e.g. "个表单")."""
    return Text(f"{n} {one if n == 1 else many or one + 's'}", f"{n} {zh_unit}")
