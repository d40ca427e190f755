"""Generate the gRPC stubs: ``proto/**/*.proto`` -> ``whispr/grpc/gen`` (``make proto``).

Why a script rather than one protoc line: protoc writes imports between
generated modules as top-level imports (``import common_pb2``), which only
work when the output directory is itself on ``sys.path``. The stubs live
inside the ``whispr`` package, so this rewrites those imports into absolute
ones (``from whispr.grpc.gen import common_pb2``), for the ``_pb2``,
``_pb2_grpc`` and ``.pyi`` files alike. Imports of modules that are not
generated here (``google.protobuf``...) are left alone. The proto files keep
the usual layout: imports relative to ``proto/`` (``import "common.proto";``).

With no ``.proto`` file it says so and does nothing.
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import resources
from pathlib import Path


def _module(proto: Path, root: Path) -> str:
    """``sub/common.proto`` -> ``sub.common_pb2``."""
    relative = proto.relative_to(root).with_suffix("")
    return ".".join((*relative.parent.parts, relative.name + "_pb2"))


def rewrite_imports(source: str, modules: set[str], package: str) -> str:
    """Make the imports of generated ``modules`` absolute under ``package``."""

    def plain(match: re.Match[str]) -> str:
        name, rest = match.group(1), match.group(2)
        if name in modules:
            return f"from {package} import {name}{rest}"
        return match.group(0)

    def dotted(match: re.Match[str]) -> str:
        parent, name, rest = match.group(1), match.group(2), match.group(3)
        if f"{parent}.{name}" in modules:
            return f"from {package}.{parent} import {name}{rest}"
        return match.group(0)

    source = re.sub(r"^import (\w+_pb2)((?: as \w+)?)$", plain, source, flags=re.M)
    return re.sub(r"^from ([\w.]+) import (\w+_pb2)((?: as \w+)?)$", dotted, source, flags=re.M)


def generate(proto_dir: Path, out_dir: Path, package: str) -> int:
    """Regenerate ``out_dir`` from ``proto_dir``; return the number of .proto files."""
    protos = sorted(proto_dir.rglob("*.proto")) if proto_dir.is_dir() else []
    if not protos:
        print(f"make proto: no .proto files under {proto_dir}/, nothing to generate")
        return 0

    # A dev dependency, untyped: imported only when there is something to do.
    from grpc_tools import protoc  # type: ignore[import-untyped]

    well_known = resources.files("grpc_tools") / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    # No stale stubs of deleted .proto files; only generated names are removed.
    for stale in out_dir.rglob("*_pb2*.py*"):
        stale.unlink()
    args = [
        "grpc_tools.protoc",
        f"-I{proto_dir}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(p) for p in protos),
    ]
    status = protoc.main(args)
    if status != 0:
        print(f"make proto: protoc failed with status {status}", file=sys.stderr)
        raise SystemExit(status)

    modules = {_module(p, proto_dir) for p in protos}
    for generated in sorted(out_dir.rglob("*")):
        if generated.suffix in {".py", ".pyi"}:
            text = generated.read_text(encoding="utf-8")
            fixed = rewrite_imports(text, modules, package)
            if fixed != text:
                generated.write_text(fixed, encoding="utf-8")
    # Regular packages, not namespace ones: setuptools' find_packages (used
    # by pyproject.toml) ships only directories that have an __init__.py.
    for directory in [out_dir, *(d for d in out_dir.rglob("*") if d.is_dir())]:
        (directory / "__init__.py").touch()
    # The packages above it, as many as ``package`` names (whispr.grpc.gen: 2), no further.
    for parent in list(out_dir.parents)[: package.count(".")]:
        if not (parent / "__init__.py").exists():
            (parent / "__init__.py").write_text('"""gRPC: the API for sibling services."""\n')
    print(f"make proto: generated {len(protos)} .proto file(s) into {out_dir}")
    return len(protos)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python scripts/protoc.py [--proto-dir proto] [--out ...]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proto-dir", type=Path, default=Path("proto"))
    parser.add_argument("--out", type=Path, default=Path("whispr/grpc/gen"))
    parser.add_argument("--package", default="whispr.grpc.gen")
    args = parser.parse_args(argv)
    generate(args.proto_dir, args.out, args.package)
    return 0


if __name__ == "__main__":
    sys.exit(main())
