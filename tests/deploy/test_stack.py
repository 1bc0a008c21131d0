"""The structure of stack.yml and its Pro overlay: what faas-cli cannot check for us."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "stack.yml"
PRO_OVERLAY = REPO / "stack.pro.yml"

STAGES = ["split", "transcode-segment", "checksum", "thumbnail", "merge", "orchestrate"]
TICK = "orchestrate-tick"
MEDIA = {"split", "transcode-segment", "checksum", "thumbnail", "merge"}
HEAVY = {"split", "transcode-segment", "merge"}
DATACENTER = "kinoit.io/tier=datacenter"
ENDPOINTS = ["KINOIT_REDIS_URL", "KINOIT_IPFS_API", "KINOIT_CLUSTER_API", "KINOIT_GATEWAY_URL"]
# Labels and annotations that OpenFaaS CE refuses (they belong in stack.pro.yml).
PRO_ONLY = re.compile(
    r"^com\.openfaas\.(scale\.(target|target-proportion|type|zero|zero-duration)|retry\.)"
)
CE_MAX_REPLICAS = 5


def load_stack(path: Path = STACK) -> dict[str, Any]:
    """A stack file as faas-cli reads it, before environment substitution."""
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict)
    return document


def seconds(duration: str) -> float:
    """A Go duration as used by of-watchdog and the gateway ('65s', '2m', '1h30m')."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", duration)
    assert match and duration, f"not a Go duration: {duration!r}"
    hours, minutes, secs = match.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(secs or 0)


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    return load_stack()


@pytest.fixture(scope="module")
def functions(stack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    fns = stack["functions"]
    assert isinstance(fns, dict)
    return fns


def test_header_is_what_faas_cli_expects(stack: dict[str, Any]) -> None:
    assert str(stack["version"]) == "1.0"
    assert stack["provider"] == {
        "name": "openfaas",
        "gateway": "${OPENFAAS_URL:-http://127.0.0.1:8080}",
    }
    (template,) = stack["configuration"]["templates"]
    assert template["name"] == "python3-http-debian"
    # Pinned to a full commit: faas-cli clones the repository and checks it out.
    url, _, ref = template["source"].partition("#")
    assert url == "https://github.com/openfaas/python-flask-template"
    assert re.fullmatch(r"[0-9a-f]{40}", ref), ref
    assert stack["configuration"]["copy"] == ["./shared"]


def test_every_function_is_present_with_its_handler(functions: dict[str, Any]) -> None:
    assert set(functions) == {*STAGES, TICK}
    for name, fn in functions.items():
        assert fn["lang"] == "python3-http-debian", name
        assert fn["handler"] == f"./functions/{name}"
        assert (REPO / "functions" / name / "handler.py").is_file(), name
        assert (REPO / "functions" / name / "requirements.txt").is_file(), name
        assert fn["image"] == f"${{REGISTRY:-ghcr.io/kinoit}}/{name}:${{TAG:-latest}}"


def test_ffmpeg_only_in_the_images_that_run_it(functions: dict[str, Any]) -> None:
    for name, fn in functions.items():
        args = fn.get("build_args", {})
        assert (args.get("ADDITIONAL_PACKAGE") == "ffmpeg") == (name in MEDIA), name
        # Tests run in CI, not during the image build (the template would run tox).
        assert args.get("TEST_ENABLED") == "false", name


def test_environment_names_every_endpoint_and_the_shared_package(
    functions: dict[str, Any],
) -> None:
    for name, fn in functions.items():
        env = fn["environment"]
        for key in ENDPOINTS:
            assert env[key].startswith(f"${{{key}:-"), (name, key)
        assert env["PYTHONPATH"] == "/home/app/function/shared", name


def test_timeouts_are_sized_per_stage_and_ordered(functions: dict[str, Any]) -> None:
    exec_timeout = {n: seconds(fn["environment"]["exec_timeout"]) for n, fn in functions.items()}
    for name, fn in functions.items():
        env = fn["environment"]
        # The watchdog must be able to read the request and write the answer for as
        # long as the handler may run.
        assert seconds(env["read_timeout"]) >= exec_timeout[name], name
        assert seconds(env["write_timeout"]) >= exec_timeout[name], name
    # A segment is short; split and merge see the whole source.
    assert exec_timeout["transcode-segment"] < exec_timeout["split"]
    assert exec_timeout["transcode-segment"] < exec_timeout["merge"]
    assert exec_timeout["thumbnail"] <= exec_timeout["transcode-segment"]
    assert exec_timeout["checksum"] <= exec_timeout["transcode-segment"]
    assert exec_timeout["split"] >= 600
    assert exec_timeout["transcode-segment"] <= 300


def test_gateway_settings_in_the_docs_cover_every_timeout(functions: dict[str, Any]) -> None:
    """docs/deploy.md installs OpenFaaS with timeouts above every function's."""
    docs = (REPO / "docs" / "deploy.md").read_text()
    stack_text = STACK.read_text()

    def setting(name: str) -> float:
        values = set(re.findall(rf"{re.escape(name)}=(\w+)", docs))
        assert len(values) == 1, f"docs/deploy.md must set {name} to one value, found {values}"
        value = values.pop()
        assert f"{name}={value}" in stack_text, f"stack.yml's header must say {name}={value}"
        return seconds(value)

    longest_write = max(seconds(fn["environment"]["write_timeout"]) for fn in functions.values())
    longest_exec = max(seconds(fn["environment"]["exec_timeout"]) for fn in functions.values())
    upstream = setting("gateway.upstreamTimeout")
    assert longest_exec < upstream
    assert setting("gateway.writeTimeout") > upstream
    assert setting("gateway.readTimeout") > upstream
    assert longest_write <= setting("gateway.writeTimeout")
    # The CE queue-worker redelivers a call that outlives ack_wait.
    assert setting("queueWorker.ackWait") > longest_exec


def test_scale_labels_stay_within_community_edition(functions: dict[str, Any]) -> None:
    for name, fn in functions.items():
        labels = fn["labels"]
        low, high = int(labels["com.openfaas.scale.min"]), int(labels["com.openfaas.scale.max"])
        assert 1 <= low <= high <= CE_MAX_REPLICAS, name
        for key in [*labels, *(fn.get("annotations") or {})]:
            assert not PRO_ONLY.match(key), f"{name}: {key} is Pro-only; put it in stack.pro.yml"
    assert int(functions["transcode-segment"]["labels"]["com.openfaas.scale.max"]) == 5


def test_requests_and_limits_per_stage(functions: dict[str, Any]) -> None:
    def cpu(value: str) -> float:
        return float(value[:-1]) / 1000 if value.endswith("m") else float(value)

    def memory(value: str) -> int:
        units = {"Mi": 2**20, "Gi": 2**30}
        return int(value[:-2]) * units[value[-2:]]

    for name, fn in functions.items():
        req, lim = fn["requests"], fn["limits"]
        assert cpu(req["cpu"]) <= cpu(lim["cpu"]), name
        assert memory(req["memory"]) <= memory(lim["memory"]), name
    assert memory(functions["merge"]["limits"]["memory"]) > memory(
        functions["thumbnail"]["limits"]["memory"]
    )


def test_secrets(functions: dict[str, Any]) -> None:
    assert set(functions["orchestrate"]["secrets"]) == {
        "kinoit-api-token",
        "kinoit-webhook-secret",
        "kinoit-stage-secret",
    }
    assert functions[TICK]["secrets"] == ["kinoit-api-token"]
    for name in STAGES:
        assert "kinoit-api-token" in functions[name]["secrets"], name
        # orchestrate signs stage requests with it, every stage verifies with it
        assert "kinoit-stage-secret" in functions[name]["secrets"], name


def test_heavy_stages_are_pinned_to_datacenter_nodes(functions: dict[str, Any]) -> None:
    for name, fn in functions.items():
        constraints = fn.get("constraints", [])
        # faas-netes splits each constraint on "=" into one nodeSelector entry:
        # anything but exactly key=value is silently dropped.
        for constraint in constraints:
            assert re.fullmatch(r"[A-Za-z0-9./_-]+=[A-Za-z0-9._-]+", constraint), constraint
        assert (DATACENTER in constraints) == (name in HEAVY), name
        if name not in HEAVY:
            assert constraints == [], f"{name} should be free to run on edge nodes"


def test_tick_is_wired_to_the_cron_connector(functions: dict[str, Any]) -> None:
    annotations = functions[TICK]["annotations"]
    assert annotations["topic"] == "cron-function"
    assert annotations["schedule"] == "*/1 * * * *"
    for name in STAGES:
        assert "topic" not in (functions[name].get("annotations") or {}), name


def test_requirements_carry_the_shared_dependencies() -> None:
    """python3-http-debian installs requirements.txt before it copies function/shared."""
    pyproject = tomllib.loads((REPO / "shared" / "pyproject.toml").read_text())
    wanted = {re.sub(r"\s+", "", d) for d in pyproject["project"]["dependencies"]}
    for name in [*STAGES, TICK]:
        lines = (REPO / "functions" / name / "requirements.txt").read_text().splitlines()
        listed = {re.sub(r"\s+", "", line) for line in lines if line and not line.startswith("#")}
        missing = wanted - listed
        assert not missing, f"functions/{name}/requirements.txt lacks {sorted(missing)}"
        # A path to ./shared does not exist when pip reads the file in the image.
        assert not any("shared" in line for line in listed), name
        # The one-machine extra (RQ) stays out of the function images.
        local = {
            re.sub(r"\s+", "", d) for d in pyproject["project"]["optional-dependencies"]["local"]
        }
        assert not listed & local, (
            f"functions/{name}/requirements.txt ships {sorted(listed & local)}"
        )


# Run in a fresh interpreter where importing rq fails, as in a function image.
IMPORT_WITHOUT_LOCAL_EXTRA = """
import importlib.util, sys
sys.modules["rq"] = None
spec = importlib.util.spec_from_file_location("handler", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
assert callable(module.handle)
"""


@pytest.mark.parametrize("name", [*STAGES, TICK])
def test_handlers_import_without_the_local_extra(name: str) -> None:
    handler = REPO / "functions" / name / "handler.py"
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_WITHOUT_LOCAL_EXTRA, str(handler)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def render_pro() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "render-stack"), str(STACK), str(PRO_OVERLAY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_pro_overlay_only_adds_pro_settings_to_known_functions(
    functions: dict[str, Any],
) -> None:
    overlay = load_stack(PRO_OVERLAY)
    assert set(overlay["functions"]) <= set(functions)
    result = render_pro()
    assert result.returncode == 0, result.stderr
    merged = yaml.safe_load(result.stdout)["functions"]
    transcode = merged["transcode-segment"]
    assert transcode["labels"]["com.openfaas.scale.type"] == "capacity"
    assert int(transcode["labels"]["com.openfaas.scale.max"]) > CE_MAX_REPLICAS
    assert transcode["annotations"]["com.openfaas.retry.codes"] == "429,502,503,504"
    # Base settings survive the merge.
    assert (
        transcode["environment"]["KINOIT_REDIS_URL"]
        == functions["transcode-segment"]["environment"]["KINOIT_REDIS_URL"]
    )
    assert transcode["environment"]["max_inflight"] == "1"
    assert transcode["constraints"] == [DATACENTER]


def test_render_stack_refuses_an_overlay_for_an_unknown_function(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("functions:\n  trancode-segment:\n    labels: {a: b}\n")
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "render-stack"), str(STACK), str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "trancode-segment" in result.stderr
