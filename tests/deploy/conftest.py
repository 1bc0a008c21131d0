"""Fixtures of the deployment tests: the repository's deploy files and the Go-built tools.

faas-cli and helm are installed by ``scripts/install`` (through
``scripts/install-deploy-tools``); a test that needs one skips with the reason
when it is missing instead of failing at import. helm comes from the Go module
proxy as a tagged release; faas-cli may not (the proxy refuses its versions), so
its tests run only where a faas-cli binary is already on PATH or in $GOPATH/bin.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import find_binary

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kinoit"


def helm_run(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "HELM_CACHE_HOME": "/tmp/kinoit-helm-cache"},
    )


def render(helm: str, *values: str) -> list[dict[str, Any]]:
    """The chart's manifests as ``helm template`` renders them with ``values``."""
    result = helm_run(helm, "template", "kinoit", str(CHART), "--namespace", "kinoit", *values)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(
        f"no {kind} {name} in {[(d['kind'], d['metadata']['name']) for d in docs]}"
    )


@pytest.fixture(scope="session")
def faas_cli() -> str:
    binary = find_binary("faas-cli")
    if binary is None:
        pytest.skip(
            "faas-cli not found on PATH or in $GOPATH/bin: scripts/install-deploy-tools runs"
            " `go install github.com/openfaas/faas-cli@<commit>`, which a Go module proxy may"
            " refuse (faas-cli's tags have no leading v); put a faas-cli 0.18 binary on PATH"
        )
    return binary


@pytest.fixture(scope="session")
def helm() -> str:
    binary = find_binary("helm")
    if binary is None:
        pytest.skip("helm not installed (scripts/install-deploy-tools installs it)")
    return binary


@pytest.fixture(scope="session")
def kubo_binary() -> str:
    binary = find_binary("ipfs")
    if binary is None:
        pytest.skip("Kubo (ipfs) not installed (scripts/install installs it)")
    return binary
