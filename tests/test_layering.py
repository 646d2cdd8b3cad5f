"""The layering rule (docs/ARCHITECTURE.md): the app never imports torch or the probe; probe, serve
and native never import Qt or VisPy; serve and native import nothing above them.

Checked twice: statically by import-linter's contracts (every import statement, including those
inside functions) and at run time by importing every module in a fresh interpreter and looking at
``sys.modules`` (which also catches imports made by importlib or by third-party code).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "synapse_desktop": ["torch", "synapse_probe"],
    "synapse_desktop.models": ["PySide6", "vispy"],
    "synapse_desktop.scene": ["PySide6", "vispy"],
    "synapse_probe": ["PySide6", "vispy", "synapse_desktop"],
    "synapse_serve": ["torch", "PySide6", "vispy", "synapse_desktop", "synapse_probe"],
    "synapse_native": ["torch", "PySide6", "vispy", "synapse_desktop", "synapse_probe"],
}

_LOADED_AFTER_IMPORT = """
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    if info.name.endswith("__main__"):
        continue
    importlib.import_module(info.name)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_import_linter_contracts_hold() -> None:
    lint_imports = shutil.which("lint-imports", path=os.path.dirname(sys.executable))
    assert lint_imports, "import-linter is part of the test extras"
    result = subprocess.run(
        [lint_imports], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_importing_every_module_loads_nothing_forbidden(package: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _LOADED_AFTER_IMPORT, package],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    assert package.split(".")[0] in loaded
    assert loaded.isdisjoint(FORBIDDEN[package]), loaded & set(FORBIDDEN[package])
