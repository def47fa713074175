"""Domain functions for expressions, beside the language's own (``engine.expressions``).

They reach expressions through the ``extra_functions`` seam of
:func:`engine.expressions.compile_expression`: the compile stage passes
:data:`DOMAIN_FUNCTIONS` for every expression of an app, ``seamline eval`` and config tests
likewise. A new domain function is a :class:`~engine.expressions.FunctionSpec` added here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from engine.expressions import FunctionSpec
from engine.expressions.functions import FunctionDoc
from engine.functions.atp import ATP_DOCS, ATP_FUNCTIONS

__all__ = ["DOMAIN_FUNCTIONS", "DOMAIN_FUNCTION_DOCS"]

DOMAIN_FUNCTIONS: Mapping[str, FunctionSpec] = MappingProxyType({**ATP_FUNCTIONS})
# signature and example of each, for `seamline functions` and docs/functions.md
DOMAIN_FUNCTION_DOCS: Mapping[str, FunctionDoc] = MappingProxyType({**ATP_DOCS})
