"""The anchors of a Markdown file's headings, as GitHub renders them."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["heading_anchors"]

_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")


def heading_anchors(markdown: Path) -> frozenset[str]:
    """``#anchor`` of every heading: lower case, punctuation dropped, spaces to dashes."""
    anchors = set()
    in_code = False
    for line in markdown.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        match = None if in_code else _HEADING.match(line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).lower())
            anchors.add(text.replace(" ", "-"))
    return frozenset(anchors)
