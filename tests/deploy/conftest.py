"""Fixtures of the deployment files' tests: tools they run, and a live scrape of a node.

A missing tool (promtool) skips the tests that run it, or fails them under
``WHISPR_REQUIRE_SERVICES=1``, as a missing PostgreSQL or Redis does (``tests/services.py``):
CI installs it (``scripts/services.sh``) and must never go green without running it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import NoReturn

import pytest

from tests import services
from tests.deploy.metric_names import exposed_names, scrape_node

ROOT = Path(__file__).resolve().parents[2]


def _unavailable(reason: str) -> NoReturn:
    if services.services_required():
        pytest.fail(f"{reason} (required: WHISPR_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def promtool() -> str:
    """The path of promtool (Debian's prometheus package ships it)."""
    path = shutil.which("promtool")
    if path is None:
        _unavailable("promtool is not installed (make services installs it as root)")
    return path


@pytest.fixture(scope="session")
def known_metrics() -> frozenset[str]:
    """Series names a node exposes (live scrape) or will expose (agreed), and ``up``."""
    return exposed_names(scrape_node())
