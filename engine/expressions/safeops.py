"""Arithmetic with limits, so that no expression can hang the engine or exhaust memory.

Builds on simpleeval's own guards (``safe_add``, ``safe_mult``, ``safe_power``, ``MAX_POWER``,
``MAX_STRING_LENGTH``) and adds two that simpleeval lacks:

* integers may not grow beyond ``MAX_INT_BITS`` through ``*`` or ``**`` (simpleeval lets
  ``10 ** 4000000`` through, which takes over a second; ``4000000 ** 4000000`` takes ~20 s);
* a list or tuple may only be repeated with ``*`` while its total "weight" (text lengths
  plus other elements) stays under ``MAX_STRING_LENGTH`` and it holds no nested lists,
  so that ``[[1] * 9999] * 9999 == …`` cannot trigger 10⁸ element comparisons.

Each function has a fast path for plain ``int``/``float`` operands; anything else goes through
simpleeval's function, so results and exceptions are the same as simpleeval's.
"""

from __future__ import annotations

from typing import Any

from simpleeval import (
    MAX_POWER,
    MAX_STRING_LENGTH,
    IterableTooLong,
    NumberTooHigh,
    safe_add,
    safe_mult,
    safe_power,
)

__all__ = [
    "MAX_INT_BITS",
    "MAX_POWER",
    "MAX_STRING_LENGTH",
    "IterableTooLong",
    "NumberTooHigh",
    "check_int",
    "limited_add",
    "limited_mult",
    "limited_power",
]

MAX_INT_BITS = 65_536  # ≈ 19,700 decimal digits: far beyond any business number

_SEQUENCES = (list, tuple)
_CONTAINERS = (list, tuple, dict, set, frozenset)


def check_int(value: int) -> int:
    if value.bit_length() > MAX_INT_BITS:
        raise NumberTooHigh(f"Sorry! That number is too large ({value.bit_length()} bits).")
    return value


def limited_add(a: Any, b: Any) -> Any:
    ta = type(a)
    if (ta is int or ta is float) and type(b) in (int, float):
        return a + b
    return safe_add(a, b)


def limited_mult(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is float and (tb is float or tb is int):
        return a * b
    if tb is float and ta is int:
        return a * b
    if ta is int and tb is int:
        if a.bit_length() + b.bit_length() > MAX_INT_BITS + 1:
            raise NumberTooHigh("Sorry! I don't want to evaluate a product that large.")
        return a * b
    if isinstance(a, _SEQUENCES):
        _check_repeat(a, b)
    elif isinstance(b, _SEQUENCES):
        _check_repeat(b, a)
    result = safe_mult(a, b)
    if type(result) is int:
        check_int(result)
    return result


def _check_repeat(seq: list[Any] | tuple[Any, ...], times: Any) -> None:
    if not isinstance(times, int) or times <= 0:
        return
    weight = 0
    for item in seq:
        if isinstance(item, _CONTAINERS):
            raise IterableTooLong("Sorry, I will not repeat a list that contains lists.")
        weight += len(item) if isinstance(item, str) else 1
    if weight * times > MAX_STRING_LENGTH:
        raise IterableTooLong("Sorry, I will not evaluate something that long.")


def limited_power(a: Any, b: Any) -> Any:
    if abs(a) > MAX_POWER or abs(b) > MAX_POWER:  # as safe_power, without printing a or b
        raise NumberTooHigh("Sorry! I don't want to evaluate a power that large.")
    # (bit_length(a) - 1) * b is a lower bound of the size of a ** b in bits
    if (
        type(a) is int
        and type(b) is int
        and 1 < b <= MAX_POWER
        and (abs(a).bit_length() - 1) * b > MAX_INT_BITS
    ):
        raise NumberTooHigh("Sorry! I don't want to evaluate a power that large.")
    return safe_power(a, b)
