"""Fixtures of the deployment tests: the repository's deploy files and the Go-built tools.

faas-cli and helm are installed by ``scripts/install`` (through
``scripts/install-deploy-tools``); a test that needs one skips with the reason
when it is missing instead of failing at import. helm comes from the Go module
proxy as a tagged release; faas-cli may not (the proxy refuses its versions), so
its tests run only where a faas-cli binary is already on PATH or in $GOPATH/bin.
"""

from __future__ import annotations

import pytest

from tests.conftest import find_binary


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
