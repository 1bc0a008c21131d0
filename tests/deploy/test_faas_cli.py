"""faas-cli itself reads stack.yml: shrink-wrapped build contexts and generated CRDs.

Everything here runs offline. ``faas-cli up`` would pull the python3-http-debian
template from its git source (declared under ``configuration.templates``); this
machine has no network, so the tests write a stand-in template folder of their
own (template.yml, Dockerfile, index.py, function/). faas-cli then takes the
template as already pulled, exactly as after a ``faas-cli template pull``, and
the build context it assembles around it is the real one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
FUNCTIONS = [
    "split", "transcode-segment", "checksum", "thumbnail", "merge", "orchestrate",
    "orchestrate-tick",
]  # fmt: skip
STAND_IN_DOCKERFILE = "FROM scratch\n# stand-in written by tests/deploy/test_faas_cli.py\n"


def run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def project_copy(root: Path) -> Path:
    """The files faas-cli reads, copied to ``root`` with a stand-in template."""
    work = root / "project"
    work.mkdir()
    shutil.copy(REPO / "stack.yml", work)
    shutil.copytree(
        REPO / "functions", work / "functions",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"),
    )  # fmt: skip
    shutil.copytree(
        REPO / "shared", work / "shared",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
    )  # fmt: skip
    template = work / "template" / "python3-http-debian"
    (template / "function").mkdir(parents=True)
    (template / "template.yml").write_text(
        "language: python3-http-debian\nfprocess: python index.py\n"
    )
    (template / "Dockerfile").write_text(STAND_IN_DOCKERFILE)
    (template / "index.py").write_text("# stand-in\n")
    (template / "function" / "handler.py").write_text("# the template's placeholder\n")
    (template / "function" / "requirements.txt").write_text("")
    return work


@pytest.fixture(scope="module")
def shrinkwrapped(faas_cli: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = project_copy(tmp_path_factory.mktemp("faas"))
    result = run([faas_cli, "build", "--shrinkwrap", "-f", "stack.yml"], work)
    assert result.returncode == 0, result.stdout + result.stderr
    return work / "build"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_build_context_holds_handler_and_shared_package(shrinkwrapped: Path, name: str) -> None:
    context = shrinkwrapped / name
    function = context / "function"
    # The function folder replaces the template's placeholder handler.
    handler = (function / "handler.py").read_text()
    assert handler == (REPO / "functions" / name / "handler.py").read_text()
    assert (function / "requirements.txt").read_text() == (
        REPO / "functions" / name / "requirements.txt"
    ).read_text()
    # configuration.copy puts ./shared beside the handler: /home/app/function/shared
    # in the image, the PYTHONPATH entry stack.yml sets.
    shared = function / "shared"
    assert (shared / "pyproject.toml").read_text() == (REPO / "shared/pyproject.toml").read_text()
    for module in ("__init__.py", "config.py", "errors.py", "metrics.py"):
        assert (shared / "kinoit" / module).is_file(), module
    assert (context / "Dockerfile").read_text() == STAND_IN_DOCKERFILE
    assert (context / "index.py").is_file()


def test_orchestrate_image_gets_the_built_web_page(shrinkwrapped: Path) -> None:
    """configuration.copy brings scripts/build-ui's output (package data, not in git)
    into orchestrate's build context, so the image serves /ui/."""
    built = REPO / "shared" / "kinoit" / "service" / "webapp"
    if not (built / "index.html").is_file():
        pytest.skip("the web page is not built: run scripts/build-ui (scripts/install does)")
    webapp = shrinkwrapped / "orchestrate" / "function" / "shared" / "kinoit" / "service" / "webapp"
    for name in ("index.html", "app.js", "hls.mjs"):
        assert (webapp / name).read_bytes() == (built / name).read_bytes(), name


def test_shared_package_imports_from_the_build_context(shrinkwrapped: Path) -> None:
    """With PYTHONPATH as stack.yml sets it, the copied package is the one imported."""
    shared = shrinkwrapped / "split" / "function" / "shared"
    result = subprocess.run(
        [sys.executable, "-c", "import kinoit, kinoit.metrics; print(kinoit.__file__)"],
        env={**os.environ, "PYTHONPATH": str(shared)},
        cwd=shrinkwrapped,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(shared)


def generate(faas_cli: str, stack: Path, env: dict[str, str] | None = None) -> list[Any]:
    result = run([faas_cli, "generate", "-f", stack.name], stack.parent, env)
    assert result.returncode == 0, result.stdout + result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_generate_function_resources_with_substituted_settings(
    faas_cli: str, tmp_path: Path
) -> None:
    work = project_copy(tmp_path)
    docs = generate(
        faas_cli,
        work / "stack.yml",
        {"REGISTRY": "registry.local:5000/kinoit", "TAG": "0.1.0",
         "KINOIT_REDIS_URL": "redis://redis.example:6379/2"},
    )  # fmt: skip
    by_name = {d["metadata"]["name"]: d for d in docs}
    assert set(by_name) == set(FUNCTIONS)
    for name, doc in by_name.items():
        assert doc["apiVersion"] == "openfaas.com/v1"
        assert doc["kind"] == "Function"
        assert doc["metadata"]["namespace"] == "openfaas-fn"
        assert doc["spec"]["image"] == f"registry.local:5000/kinoit/{name}:0.1.0"
        assert doc["spec"]["environment"]["KINOIT_REDIS_URL"] == "redis://redis.example:6379/2"
        # Unset variables fall back to the in-cluster defaults.
        assert doc["spec"]["environment"]["KINOIT_IPFS_API"].startswith("http://kinoit-kubo.")
    transcode = by_name["transcode-segment"]["spec"]
    assert transcode["constraints"] == ["kinoit.io/tier=datacenter"]
    assert transcode["environment"]["exec_timeout"] == "120s"
    assert "constraints" not in by_name["thumbnail"]["spec"]
    assert by_name["orchestrate-tick"]["spec"]["annotations"] == {
        "topic": "cron-function",
        "schedule": "*/1 * * * *",
    }
    assert set(by_name["orchestrate"]["spec"]["secrets"]) == {
        "kinoit-api-token",
        "kinoit-webhook-secret",
        "kinoit-stage-secret",
    }


def test_merged_pro_stack_is_accepted(faas_cli: str, tmp_path: Path) -> None:
    work = project_copy(tmp_path)
    rendered = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "render-stack"), "stack.yml",
         str(REPO / "stack.pro.yml")],
        cwd=work, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    (work / "stack.pro.full.yml").write_text(rendered.stdout)
    docs = generate(faas_cli, work / "stack.pro.full.yml")
    transcode = next(d for d in docs if d["metadata"]["name"] == "transcode-segment")["spec"]
    assert transcode["labels"]["com.openfaas.scale.type"] == "capacity"
    assert transcode["annotations"]["com.openfaas.retry.attempts"] == "5"
    assert transcode["environment"]["max_inflight"] == "1"


BROKEN = {
    "provider": ("provider:\n  name: openfaas", "provider:\n  name: faas-swarm", "provider.name"),
    "version": ("version: 1.0", "version: 2.0", "valid versions"),
    "yaml": ("functions:\n", "functions:\n  - [unclosed\n", "yaml"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_stack_file_is_rejected(faas_cli: str, tmp_path: Path, case: str) -> None:
    work = project_copy(tmp_path)
    old, new, message = BROKEN[case]
    text = (work / "stack.yml").read_text()
    assert old in text
    (work / "stack.yml").write_text(text.replace(old, new, 1))
    result = run([faas_cli, "generate", "-f", "stack.yml"], work)
    assert result.returncode != 0
    assert message.lower() in (result.stdout + result.stderr).lower()


def test_missing_handler_folder_fails_the_build(faas_cli: str, tmp_path: Path) -> None:
    work = project_copy(tmp_path)
    shutil.rmtree(work / "functions" / "thumbnail")
    result = run([faas_cli, "build", "--shrinkwrap", "-f", "stack.yml"], work)
    assert result.returncode != 0
    assert "thumbnail" in result.stdout + result.stderr
