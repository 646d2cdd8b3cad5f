"""Fixtures of the probe tests: a fake server, and the packages importable before installation."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[2]

for _name, _folder in (
    ("synapse_native", _ROOT / "native"),
    ("synapse_probe", _ROOT / "probe" / "synapse_probe"),
):
    if importlib.util.find_spec(_name) is None:  # pragma: no cover - pre-install only
        _spec = importlib.util.spec_from_file_location(
            _name, _folder / "__init__.py", submodule_search_locations=[str(_folder)]
        )
        assert _spec is not None and _spec.loader is not None
        _module = importlib.util.module_from_spec(_spec)
        sys.modules[_name] = _module
        _spec.loader.exec_module(_module)

from probe_fakes import FakeServer  # noqa: E402


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()
