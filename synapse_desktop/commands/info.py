"""``synapse info``: versions, and which parts of Synapse this installation can run."""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def _installed(module: str) -> str:
    spec = importlib.util.find_spec(module)
    if spec is None:
        return "not installed"
    from importlib.metadata import PackageNotFoundError, version

    for dist in (module, module.lower(), f"{module}-Essentials"):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return "installed"


def run(args: argparse.Namespace) -> int:
    del args
    from synapse_desktop import __version__

    rows = [
        ("synapse", __version__),
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("numpy", _installed("numpy")),
        ("native core", _native_status()),
        ("PySide6 (app)", _installed("PySide6")),
        ("vispy (app)", _installed("vispy")),
        ("torch (probe)", _installed("torch")),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


def _native_status() -> str:
    try:
        importlib.import_module("synapse_native._native")
        importlib.import_module("synapse_native._stats")
    except ImportError as exc:
        return f"not built ({exc})"
    return "built"
