"""The layers of the code base, beyond what import-linter checks inside the package
(scripts/test runs ``lint-imports``; the contract is in pyproject.toml)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "shared" / "kinoit"
# What a function handler may import from kinoit: the layer right below it and the
# bottom one (never the local gateway, the CLI, or the engine and media directly).
HANDLER_IMPORTS = ("kinoit.service", "kinoit.stages", "kinoit.config", "kinoit.errors")


def kinoit_imports(path: Path) -> list[str]:
    """Every kinoit module ``path`` imports, at any depth of the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return [name for name in found if name == "kinoit" or name.startswith("kinoit.")]


@pytest.mark.parametrize("handler", sorted(REPO.glob("functions/*/handler.py")), ids=str)
def test_function_handlers_import_only_the_service_and_the_stages(handler: Path) -> None:
    imports = kinoit_imports(handler)
    assert imports, "a handler adapts a kinoit stage or the service"
    outside = [m for m in imports if not m.startswith(HANDLER_IMPORTS)]
    assert outside == []


def test_media_never_reads_the_environment() -> None:
    readers = []
    for path in sorted((PACKAGE / "media").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
            if name in {"load_settings", "environ", "getenv"}:
                readers.append(f"{path.name}:{node.lineno}: {name}")
    assert readers == []


def test_the_layer_contract_holds() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter not installed (the dev extra installs it)")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "1 kept, 0 broken" in result.stdout
