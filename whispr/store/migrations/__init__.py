"""Versioned SQL migrations, one folder per backend, applied in file-name order."""

from __future__ import annotations

from importlib import resources

__all__ = ["load"]


def load(backend: str) -> list[tuple[int, str]]:
    """``(version, sql)`` for every migration of ``backend``, oldest first."""
    folder = resources.files(__package__).joinpath(backend)
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text()))
    return sorted(found)
