"""The generated stubs in whispr/grpc/gen match the .proto files (``make proto``)."""

from __future__ import annotations

import filecmp
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _files(directory: Path) -> dict[str, Path]:
    return {
        str(path.relative_to(directory)): path
        for path in directory.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.mark.skipif(
    importlib.util.find_spec("grpc_tools") is None, reason="grpcio-tools (a dev dependency)"
)
def test_the_committed_stubs_are_current(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import protoc  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    out = tmp_path / "whispr" / "grpc" / "gen"
    protoc.generate(ROOT / "proto", out, "whispr.grpc.gen")
    committed, fresh = _files(ROOT / "whispr" / "grpc" / "gen"), _files(out)
    assert sorted(committed) == sorted(fresh), "run `make proto` and commit the result"
    stale = [name for name in fresh if not filecmp.cmp(committed[name], fresh[name], shallow=False)]
    assert not stale, f"stale stubs {stale}: run `make proto` and commit the result"
