"""charts/kinoit: linted and rendered by helm; required values refused with a clear message."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import CHART, REPO, find, helm_run, render

DASHBOARD = CHART / "dashboards" / "kinoit.json"
TOKEN = "0123456789abcdef0123456789abcdef"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CLUSTER_SECRET = "ab" * 32
STAGE_SECRET = "fedcba9876543210fedcba9876543210"
REQUIRED = [
    "--set",
    f"secrets.apiToken={TOKEN}",
    "--set",
    f"secrets.webhookSecret={WEBHOOK_SECRET}",
    "--set",
    f"secrets.stageSecret={STAGE_SECRET}",
]
GATEWAY_SERIES = {"gateway_function_invocation_total", "gateway_functions_seconds"}


def test_chart_lints(helm: str) -> None:
    result = helm_run(helm, "lint", "--strict", str(CHART), *REQUIRED)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_default_render_has_redis_kubo_secrets_and_dashboard(helm: str) -> None:
    docs = render(helm, *REQUIRED)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("StatefulSet", "kinoit-redis") in kinds
    assert ("StatefulSet", "kinoit-kubo") in kinds
    assert ("Service", "kinoit-redis") in kinds and ("Service", "kinoit-kubo") in kinds
    # Off by default: IPFS Cluster and the Pro Function resources.
    assert not any(kind == "Function" for kind, _ in kinds)
    assert ("Service", "kinoit-cluster") not in kinds

    for name, key, value in [
        ("kinoit-api-token", "kinoit-api-token", TOKEN),
        ("kinoit-webhook-secret", "kinoit-webhook-secret", WEBHOOK_SECRET),
        ("kinoit-stage-secret", "kinoit-stage-secret", STAGE_SECRET),
    ]:
        secret = find(docs, "Secret", name)
        assert secret["metadata"]["namespace"] == "openfaas-fn"
        assert secret["stringData"] == {key: value}


def test_redis_persists_with_aof_on_a_volume(helm: str) -> None:
    docs = render(helm, *REQUIRED)
    config = find(docs, "ConfigMap", "kinoit-redis")["data"]["redis.conf"]
    assert re.search(r"^appendonly yes$", config, re.M)
    assert re.search(r"^maxmemory-policy noeviction$", config, re.M)
    statefulset = find(docs, "StatefulSet", "kinoit-redis")["spec"]
    assert statefulset["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    mounts = statefulset["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "data", "mountPath": "/data"} in mounts


def test_kubo_is_a_closed_cluster(helm: str) -> None:
    docs = render(helm, *REQUIRED)
    script = find(docs, "ConfigMap", "kinoit-kubo")["data"]["001-closed-cluster.sh"]
    for line in [
        "ipfs config --json Bootstrap '[]'",
        "ipfs config --json AutoConf.Enabled false",
        "ipfs config --json Routing.DelegatedRouters '[]'",
        "ipfs config Routing.Type none",
        "ipfs config --json Provide.Enabled false",
        "ipfs config --json Discovery.MDNS.Enabled false",
    ]:
        assert line in script
    peers = find(docs, "Service", "kinoit-kubo-peers")["spec"]
    assert peers["clusterIP"] == "None"
    statefulset = find(docs, "StatefulSet", "kinoit-kubo")["spec"]
    assert statefulset["serviceName"] == "kinoit-kubo-peers"
    containers = {c["name"]: c for c in statefulset["template"]["spec"]["containers"]}
    assert set(containers) == {"kubo", "peering"}
    env = {e["name"]: e.get("value") for e in containers["peering"]["env"]}
    assert env["KUBO_PEERS_SERVICE"] == "kinoit-kubo-peers"
    assert env["KUBO_REPLICAS"] == str(statefulset["replicas"])
    assert statefulset["template"]["spec"]["nodeSelector"] == {"kinoit.io/tier": "datacenter"}


def test_dhtclient_routing_and_cluster_render(helm: str) -> None:
    docs = render(
        helm, *REQUIRED,
        "--set", "kubo.routingType=dhtclient",
        "--set", "cluster.enabled=true", "--set", f"cluster.secret={CLUSTER_SECRET}",
    )  # fmt: skip
    script = find(docs, "ConfigMap", "kinoit-kubo")["data"]["001-closed-cluster.sh"]
    assert "ipfs config Routing.Type dhtclient" in script
    pod = find(docs, "StatefulSet", "kinoit-kubo")["spec"]["template"]["spec"]
    cluster = next(c for c in pod["containers"] if c["name"] == "cluster")
    env = {e["name"]: e for e in cluster["env"]}
    assert env["CLUSTER_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "kinoit-cluster"
    assert env["CLUSTER_IPFSHTTP_NODEMULTIADDRESS"]["value"] == "/ip4/127.0.0.1/tcp/5001"
    assert find(docs, "Secret", "kinoit-cluster")["stringData"] == {
        "cluster-secret": CLUSTER_SECRET
    }
    assert find(docs, "Service", "kinoit-cluster")["spec"]["ports"][0]["port"] == 9094


def test_existing_secrets_need_no_values(helm: str) -> None:
    docs = render(helm, "--set", "secrets.create=false")
    assert not any(d["kind"] == "Secret" for d in docs)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([], "secrets.apiToken is required"),
        (["--set", f"secrets.apiToken={TOKEN}"], "secrets.webhookSecret is required"),
        (
            ["--set", f"secrets.apiToken={TOKEN}", "--set", "secrets.webhookSecret=plain"],
            "must start with whsec_",
        ),
        (
            ["--set", "secrets.apiToken=short", "--set", f"secrets.webhookSecret={WEBHOOK_SECRET}"],
            "secrets.apiToken is too short",
        ),
        (REQUIRED[:4], "secrets.stageSecret is required"),
        ([*REQUIRED[:4], "--set", "secrets.stageSecret=short"], "secrets.stageSecret is too short"),
        ([*REQUIRED, "--set", "cluster.enabled=true"], "cluster.secret is required"),
        (
            [*REQUIRED, "--set", "cluster.enabled=true", "--set", "cluster.secret=nothex"],
            "64 lowercase hex",
        ),
        ([*REQUIRED, "--set", "kubo.routingType=dht"], "must be none or dhtclient"),
    ],
)
def test_missing_or_bad_values_are_refused(helm: str, values: list[str], message: str) -> None:
    result = helm_run(helm, "template", "kinoit", str(CHART), *values)
    assert result.returncode != 0
    assert message in result.stderr


def test_lint_reports_missing_secrets(helm: str) -> None:
    # helm lint renders in lenient mode (a missing `required` value is reported,
    # not fatal); `helm install` and `helm template` fail, as tested above.
    result = helm_run(helm, "lint", str(CHART))
    assert "secrets.apiToken is required" in result.stdout + result.stderr
    assert "secrets.webhookSecret is required" in result.stdout + result.stderr


def test_network_policies_admit_only_the_functions(helm: str) -> None:
    docs = render(helm, *REQUIRED)
    redis = find(docs, "NetworkPolicy", "kinoit-redis")["spec"]
    sources = redis["ingress"][0]["from"]
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "openfaas-fn"}}
    } in sources
    kubo = find(docs, "NetworkPolicy", "kinoit-kubo")["spec"]["ingress"]
    swarm = next(rule for rule in kubo if {"port": 4001} in rule["ports"])
    assert all("podSelector" in source for source in swarm["from"])


def test_dashboard_configmap_carries_the_json(helm: str) -> None:
    docs = render(helm, *REQUIRED)
    configmap = find(docs, "ConfigMap", "kinoit-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["kinoit.json"]) == json.loads(DASHBOARD.read_text())


def _metric_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_strings)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_ranges))
    return {w for w in words if w.startswith(("kinoit_", "gateway_"))}


def test_dashboard_queries_only_metrics_that_exist(redis_url: str) -> None:
    """Every kinoit series the dashboard asks for is one that metrics.py emits."""
    import redis
    from kinoit.metrics import MetricsRecorder, Snapshot, render_metrics
    from prometheus_client.parser import text_string_to_metric_families

    client = redis.Redis.from_url(redis_url)
    try:
        MetricsRecorder(client).task_finished("transcode", "done", 1.0)
        text = render_metrics(client, Snapshot(jobs={"running": 1}))
    finally:
        client.close()
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
    emitted = {
        family.name + suffix
        for family in text_string_to_metric_families(text.decode())
        for suffix in suffixes[family.type]
    }

    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    queried = set().union(*(_metric_names(e) for e in exprs))
    kinoit = {name for name in queried if name.startswith("kinoit_")}
    assert kinoit, "the dashboard shows no kinoit metric"
    assert kinoit <= emitted, f"not emitted by kinoit.metrics: {sorted(kinoit - emitted)}"
    # Each family metrics.py emits has a panel.
    families = {re.sub(r"_(bucket|count|sum|total)$", "", n) for n in emitted}
    shown = {re.sub(r"_(bucket|count|sum|total)$", "", n) for n in kinoit}
    assert families <= shown, f"no panel for {sorted(families - shown)}"
    # Beside the OpenFaaS gateway's own series, per function.
    gateway = {re.sub(r"_(bucket|count|sum)$", "", n) for n in queried - kinoit}
    assert gateway == GATEWAY_SERIES
    assert all("function_name" in e for e in exprs if "gateway_" in e)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def _generated_stack(faas_cli: str, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """faas-cli's Function resources of stack.yml merged with stack.pro.yml."""
    merged = subprocess.run(
        [sys.executable, str(REPO / "scripts/render-stack"), str(REPO / "stack.yml"),
         str(REPO / "stack.pro.yml")],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    (tmp_path / "stack.yml").write_text(merged)
    # The chart's defaults are the stack's defaults: no overrides from outside.
    env = {k: v for k, v in os.environ.items() if k not in {"REGISTRY", "TAG"}}
    env = {k: v for k, v in env.items() if not k.startswith("KINOIT_")}
    result = subprocess.run(
        [faas_cli, "generate", "-f", "stack.yml"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return {d["metadata"]["name"]: d["spec"] for d in yaml.safe_load_all(result.stdout) if d}


def test_operator_mode_functions_match_the_pro_stack(
    helm: str, faas_cli: str, tmp_path: Path
) -> None:
    """The chart's Function resources say what faas-cli generates from the stack files."""
    docs = render(helm, *REQUIRED, "--set", "functions.enabled=true")
    chart = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Function"}
    stack = _generated_stack(faas_cli, tmp_path)
    assert set(chart) == set(stack)
    for name, doc in chart.items():
        assert doc["apiVersion"] == "openfaas.com/v1"
        assert doc["metadata"]["namespace"] == "openfaas-fn"
        spec, expected = doc["spec"], stack[name]
        for key in ("image", "environment", "requests", "limits"):
            assert spec[key] == expected[key], (name, key)
        assert sorted(spec["secrets"]) == sorted(expected["secrets"]), name
        assert spec.get("constraints") == expected.get("constraints"), name
        # The chart may leave out a Pro tuning knob, never contradict one.
        for key in ("labels", "annotations"):
            chart_values, stack_values = spec.get(key) or {}, expected.get(key) or {}
            for label, value in chart_values.items():
                assert stack_values.get(label) == value, (name, key, label)
        assert expected.get("annotations", {}).get("topic") == spec.get("annotations", {}).get(
            "topic"
        )
