"""Make ``synapse_native`` importable from ``native/`` when the package is not installed yet."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_NATIVE = Path(__file__).resolve().parents[2] / "native"

if importlib.util.find_spec("synapse_native") is None:  # pragma: no cover - pre-install only
    _spec = importlib.util.spec_from_file_location(
        "synapse_native", _NATIVE / "__init__.py", submodule_search_locations=[str(_NATIVE)]
    )
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["synapse_native"] = _module
    _spec.loader.exec_module(_module)
