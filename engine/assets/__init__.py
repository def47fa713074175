"""The files Seamline ships beside its code, found the same way in a checkout and in a wheel.

In the repository they live where people edit them — ``templates/`` (the page templates),
``configs/`` (the starter app) and ``examples/manufacturing_pack/`` — and this folder links to
them (``templates``, ``starter``, ``packs/manufacturing``), so the wheel carries them as package
data under ``engine/assets/`` and the code never looks outside the package.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["PACKS", "PAGE_TEMPLATES", "STARTER", "pack_dir"]

HERE = Path(__file__).resolve().parent

PAGE_TEMPLATES = HERE / "templates"
"""The engine's page templates (an app overrides any of them by name in its ``templates/``)."""

STARTER = HERE / "starter"
"""The starter app: a small order form, one flow, one dashboard (``seamline init``)."""

PACKS: dict[str, Path] = {"manufacturing": HERE / "packs" / "manufacturing"}
"""The packs ``seamline init --pack NAME`` copies out; ``manufacturing`` runs ``seamline demo``."""


def pack_dir(name: str) -> Path:
    """The folder of pack ``name`` (KeyError for a pack that is not shipped)."""
    return PACKS[name]
