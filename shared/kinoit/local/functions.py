"""Finding and loading the function handlers the local gateway serves.

The gateway loads ``functions/<name>/handler.py`` by file path: the very files
that go into the function images, so local runs and OpenFaaS run the same code.
The directory is ``$KINOIT_FUNCTIONS_DIR`` or the ``functions/`` folder of the
checkout the kinoit package is installed from.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kinoit.config import Settings
from kinoit.errors import NotFound

Handler = Callable[[Any, Any], Any]

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_lock = threading.Lock()
_loaded: dict[Path, Handler] = {}


def find_functions_dir(settings: Settings) -> Path:
    """The folder holding ``<name>/handler.py`` for every function."""
    if settings.functions_dir is not None:
        path = settings.functions_dir
    else:
        path = _checkout_functions_dir()
    if not path.is_dir():
        raise NotFound(
            f"functions directory {path} not found; set KINOIT_FUNCTIONS_DIR to the "
            "repository's functions/ folder"
        )
    return path


def _checkout_functions_dir() -> Path:
    """``functions/`` of the checkout this package is installed from (editable install):
    the nearest folder above the package that has one; else where it would be."""
    package = Path(__file__).resolve().parent
    for folder in package.parents:
        if (folder / "functions").is_dir() and (folder / "shared").is_dir():
            return folder / "functions"
    return package.parents[2] / "functions"


def handler_path(functions_dir: Path, name: str) -> Path:
    """The handler file of function ``name`` (NotFound for unknown names)."""
    if not _NAME.match(name):
        raise NotFound(f"no such function: {name!r}")
    path = functions_dir / name / "handler.py"
    if not path.is_file():
        raise NotFound(f"no such function: {name!r}")
    return path


def load_handler(functions_dir: Path, name: str) -> Handler:
    """Import ``functions/<name>/handler.py`` once and return its ``handle``."""
    path = handler_path(functions_dir, name)
    with _lock:
        cached = _loaded.get(path)
        if cached is not None:
            return cached
        module_name = "kinoit_function_" + name.replace("-", "_")
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise NotFound(f"cannot load function {name!r} from {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        handle: Handler = module.handle
        _loaded[path] = handle
        return handle
