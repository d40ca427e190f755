"""Reading the Kubernetes manifests of k8s/: files, resources, and the kustomization."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

__all__ = ["build_kustomization", "kustomize_command", "load_resources"]


def load_resources(path: Path) -> list[dict[str, Any]]:
    """The resources of one YAML file (several documents allowed, empty ones skipped)."""
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def kustomize_command() -> list[str] | None:
    """How to build a kustomization here: ``kustomize build``, ``kubectl kustomize``, or None."""
    if (kustomize := shutil.which("kustomize")) is not None:
        return [kustomize, "build"]
    if (kubectl := shutil.which("kubectl")) is not None:
        return [kubectl, "kustomize"]
    return None


def build_kustomization(command: list[str], directory: Path) -> list[dict[str, Any]]:
    """The resources ``directory``'s kustomization renders (offline: local files only)."""
    result = subprocess.run(
        [*command, str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]
