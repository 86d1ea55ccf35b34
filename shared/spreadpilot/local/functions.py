"""Loads the real functions/<name>/main.py entry points, so local runs exercise
exactly what Cloud Functions deploys."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

FUNCTIONS_DIR = Path(__file__).resolve().parents[3] / "functions"


def available_functions() -> list[str]:
    return sorted(p.parent.name for p in FUNCTIONS_DIR.glob("*/main.py"))


def load_function(name: str) -> Callable[[Any], Any]:
    path = FUNCTIONS_DIR / name / "main.py"
    if not path.is_file():
        raise FileNotFoundError(f"function {name!r}: {path} not found")
    module_name = f"spreadpilot_function_{name}"
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    handler: Callable[[Any], Any] = getattr(module, name)
    return handler
