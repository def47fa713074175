"""Python files an app ships next to app.yaml (its history generator, mock warehouse, demo
scenario): loaded by path, and — for work a file hands to another process — called by path.

A file loaded by path is not importable by name, so a process started with ``spawn`` (the
only start method everywhere, and the safe one beside the demo's server threads) cannot
unpickle a function of it. :func:`call_in_file` is the importable target such a process is
given instead: it loads the file in the new process and calls the function there."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any


def load_module(name: str, source: Path) -> ModuleType | None:
    """``source`` executed as module ``name`` (registered in ``sys.modules``, so that its
    dataclasses and pickles resolve); None when it cannot be loaded."""
    spec = importlib.util.spec_from_file_location(name, source)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def call_in_file(source: str, name: str, function: str, *args: Any) -> Any:
    """``function(*args)`` of the file ``source``, loaded as module ``name`` unless a module of
    that name from that file is loaded already (in the process that started this one)."""
    module = sys.modules.get(name)
    if module is None or getattr(module, "__file__", None) != source:
        module = load_module(name, Path(source))
        if module is None:
            raise ImportError(f"cannot load {source}")
    return getattr(module, function)(*args)
