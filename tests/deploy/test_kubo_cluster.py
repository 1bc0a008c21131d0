"""The chart's closed-cluster Kubo configuration, applied to real Kubo daemons.

The init script is taken from the rendered chart and run against fresh
repositories exactly as the Kubo image's entrypoint runs it; then two daemons
start on loopback, peer as the chart's sidecar makes them peer, and a block
added on one is read from the other with no bootstrap, no routing and no
providing.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_for_port
from tests.deploy.conftest import find, render

pytestmark = pytest.mark.kubo

SECRETS = ["--set", "secrets.create=false"]


@dataclass
class Node:
    binary: str
    repo: Path
    api_port: int
    swarm_port: int
    process: subprocess.Popen[bytes] | None = None

    def ipfs(self, *args: str, stdin: bytes | None = None, timeout: float = 60) -> str:
        env = {**os.environ, "IPFS_PATH": str(self.repo), "IPFS_TELEMETRY": "off"}
        result = subprocess.run(
            [self.binary, *args], input=stdin, env=env, capture_output=True, timeout=timeout,
            check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"ipfs {' '.join(args)}: {result.stderr.decode()}"
        return result.stdout.decode().strip()


def closed_cluster_script(helm: str, *values: str) -> str:
    docs = render(helm, *SECRETS, *values)
    return str(find(docs, "ConfigMap", "kinoit-kubo")["data"]["001-closed-cluster.sh"])


def prepare(binary: str, root: Path, script: str) -> Node:
    node = Node(binary, root, free_port(), free_port())
    node.ipfs("init")  # what the image's entrypoint does on an empty volume
    script_path = root.parent / f"{root.name}-init.sh"
    script_path.write_text(script)
    env = {
        **os.environ,
        "IPFS_PATH": str(root),
        "PATH": f"{Path(binary).parent}:{os.environ['PATH']}",
    }
    subprocess.run(["sh", str(script_path)], env=env, check=True, capture_output=True, timeout=120)
    # The pod listens on all addresses; the test keeps everything on loopback.
    node.ipfs("config", "Addresses.API", f"/ip4/127.0.0.1/tcp/{node.api_port}")
    node.ipfs("config", "Addresses.Gateway", f"/ip4/127.0.0.1/tcp/{free_port()}")
    node.ipfs(
        "config", "--json", "Addresses.Swarm", json.dumps([f"/ip4/127.0.0.1/tcp/{node.swarm_port}"])
    )
    return node


def start(node: Node) -> None:
    env = {**os.environ, "IPFS_PATH": str(node.repo), "IPFS_TELEMETRY": "off"}
    node.process = subprocess.Popen(
        [node.binary, "daemon"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_for_port(node.api_port, timeout=60, proc=node.process)
    except RuntimeError:
        assert node.process.stderr is not None
        raise AssertionError(
            f"kubo exited: {node.process.stderr.read().decode()[-2000:]}"
        ) from None


@pytest.fixture(scope="module")
def cluster(
    helm: str, kubo_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Node, Node]]:
    """Two daemons configured by the chart's script, started once for the module."""
    tmp_path = tmp_path_factory.mktemp("kubo-cluster")
    script = closed_cluster_script(helm)
    nodes = (
        prepare(kubo_binary, tmp_path / "kubo-0", script),
        prepare(kubo_binary, tmp_path / "kubo-1", script),
    )
    try:
        for node in nodes:
            start(node)
        yield nodes
    finally:
        for node in nodes:
            if node.process is not None:
                node.process.terminate()
                try:
                    node.process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait(timeout=5)


def test_config_is_closed(cluster: tuple[Node, Node]) -> None:
    node = cluster[0]
    config = json.loads(node.ipfs("config", "show"))
    assert config["Bootstrap"] == []
    assert config["AutoConf"]["Enabled"] is False
    assert config["Routing"]["Type"] == "none"
    assert config["Routing"]["DelegatedRouters"] == []
    assert config["Provide"]["Enabled"] is False
    assert config["Discovery"]["MDNS"]["Enabled"] is False
    assert node.ipfs("bootstrap", "list") == ""


def test_peered_nodes_share_blocks_and_nothing_else(cluster: tuple[Node, Node]) -> None:
    first, second = cluster
    second_id = second.ipfs("id", "-f", "<id>")
    # What the chart's peering sidecar does, with loopback instead of pod DNS names.
    first.ipfs("swarm", "peering", "add", f"/ip4/127.0.0.1/tcp/{second.swarm_port}/p2p/{second_id}")
    payload = b"kinoit closed cluster\n" * 100
    cid = second.ipfs("add", "--cid-version=1", "-Q", stdin=payload)
    assert first.ipfs("cat", "--timeout=30s", cid, timeout=60).encode() == payload.rstrip(b"\n")
    peers = first.ipfs("swarm", "peers").splitlines()
    assert peers and all(p.endswith(second_id) for p in peers)


def test_dhtclient_routing_also_starts(helm: str, kubo_binary: str, tmp_path: Path) -> None:
    node = prepare(kubo_binary, tmp_path / "kubo-dht", closed_cluster_script(
        helm, "--set", "kubo.routingType=dhtclient"))  # fmt: skip
    try:
        start(node)
        assert node.ipfs("config", "Routing.Type") == "dhtclient"
    finally:
        assert node.process is not None
        node.process.terminate()
        node.process.wait(timeout=15)
