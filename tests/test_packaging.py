"""What a fresh clone installs: the lock, the extras, the licence, the bench extra's message."""

from __future__ import annotations

import importlib.util
import tomllib
from collections import deque
from pathlib import Path
from typing import Any

import pytest

from whispr import cli
from whispr.bench import BENCH_EXTRA_MODULES, MissingBenchExtra

ROOT = Path(__file__).resolve().parent.parent

#: Tools that a runtime install (``make run``, the Docker image) must not carry.
NOT_AT_RUNTIME = {"mypy", "ruff", "pytest", "hypothesis", "grpcio-tools", "matplotlib", "picows"}


def _lock() -> dict[str, Any]:
    return tomllib.loads((ROOT / "uv.lock").read_text())


def _closure(packages: dict[str, dict[str, Any]], roots: list[dict[str, Any]]) -> set[str]:
    """Every package name reachable from ``roots`` through the lock's dependency lists."""
    seen: set[str] = set()
    todo = deque(roots)
    while todo:
        dependency = todo.popleft()
        name = dependency["name"]
        extras = dependency.get("extra", [])
        key = f"{name}[{','.join(extras)}]"
        if key in seen:
            continue
        seen.add(key)
        package = packages[name]
        todo.extend(package.get("dependencies", []))
        for extra in extras:
            todo.extend(package.get("optional-dependencies", {}).get(extra, []))
    return {key.partition("[")[0] for key in seen}


def test_the_runtime_install_carries_no_dev_or_bench_tool() -> None:
    packages = {package["name"]: package for package in _lock()["package"]}
    runtime = _closure(packages, list(packages["whispr"]["dependencies"]))
    assert "msgspec" in runtime
    assert "websockets" in runtime
    assert not runtime & NOT_AT_RUNTIME
    dev = _closure(packages, [{"name": "whispr", "extra": ["dev"]}])
    assert dev >= NOT_AT_RUNTIME


def test_every_locked_package_is_pinned_with_hashes() -> None:
    for package in _lock()["package"]:
        if package["name"] == "whispr":
            continue
        files = [package.get("sdist", {}), *package.get("wheels", [])]
        hashed = [entry for entry in files if entry.get("hash", "").startswith("sha256:")]
        assert hashed, f"{package['name']} has no hashed file in uv.lock"
        assert package["version"], package["name"]


def test_the_licence_file_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License")
    assert "Version 2.0, January 2004" in text


def test_whispr_bench_without_the_bench_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name in {"picows", "matplotlib"} else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(MissingBenchExtra) as info:
        cli.main(["bench", "--help"])
    message = str(info.value)
    assert "'bench' extra" in message
    assert "picows, matplotlib" in message
    assert "whispr[bench]" in message
    assert set(BENCH_EXTRA_MODULES) >= {"picows", "matplotlib"}
