"""A deployable bundle: the text files of an app folder, keyed by their path inside it.

``seamline deploy`` stores the bundle in the database; every ``seamline serve`` compiles the
newest bundle, so all web processes, on any machine, run the same configuration.
"""

from __future__ import annotations

from pathlib import Path

TEXT_SUFFIXES = {".yaml", ".yml", ".csv", ".txt", ".md", ".html", ".j2", ".json"}
SKIP_FOLDERS = {"schemas", ".git", "__pycache__"}
MAX_BUNDLE_BYTES = 20_000_000


def read_bundle(root: Path, people: str | None = None) -> dict[str, str]:
    """The configuration files and templates of ``root``; of ``data/`` only the org chart
    (``people``) — sample data for import stays out of every deployment."""
    out: dict[str, str] = {}
    total = 0
    for file in sorted(root.rglob("*")):
        rel = file.relative_to(root)
        if (
            not file.is_file()
            or file.suffix not in TEXT_SUFFIXES
            or SKIP_FOLDERS & set(rel.parts[:-1])
            or (rel.parts[0] == "data" and rel.as_posix() != people)
            or (len(rel.parts) == 1 and rel.name != "app.yaml")
        ):
            continue
        text = file.read_text(encoding="utf-8", errors="replace")
        total += len(text)
        if total > MAX_BUNDLE_BYTES:
            raise ValueError(f"the app folder holds more than {MAX_BUNDLE_BYTES} bytes of text")
        out[rel.as_posix()] = text
    return out
