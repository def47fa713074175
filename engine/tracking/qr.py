"""A QR code of the tracking page's address, as SVG (made with segno), for staff to print
or show on a screen: a customer scans it and lands on /track (with the order number filled in
when the code carries one)."""

from __future__ import annotations

import io

import segno

__all__ = ["qr_svg"]

DARK = "#102a43"  # the tracking page's header colour: dark enough to scan on white


def qr_svg(address: str, *, scale: int = 4) -> bytes:
    """The SVG of a QR code (error correction M, a quiet zone of 4 modules) for ``address``."""
    code = segno.make(address, error="m", micro=False)
    out = io.BytesIO()
    code.save(out, kind="svg", scale=scale, border=4, dark=DARK, light="#fff", xmldecl=False)
    return out.getvalue()
