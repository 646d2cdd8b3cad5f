"""``synapse info``: versions, and what this machine gives each part of Synapse: the OpenGL the
app will get (and whether it is software rendering), the Qt platform plugin, the C core and its
SIMD path, torch, CUDA and Triton on the probe side."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import platform
import sys

from synapse_desktop import environment


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
    # No distribution metadata (the bundled app): the package's own version attribute.
    return str(getattr(importlib.import_module(module), "__version__", "installed"))


def run(args: argparse.Namespace) -> int:
    del args
    from synapse_desktop import __version__

    gl = environment.gl_info()
    frozen = " (bundled app)" if getattr(sys, "frozen", False) else ""
    rows = [
        ("synapse", __version__ + frozen),
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("numpy", _installed("numpy")),
        ("native core", environment.native_core()),
        ("PySide6 (app)", _installed("PySide6")),
        ("vispy (app)", _installed("vispy")),
        ("Qt platform", gl.platform if isinstance(gl, environment.GlInfo) else "-"),
        ("OpenGL", gl.describe() if isinstance(gl, environment.GlInfo) else f"none: {gl}"),
        *environment.probe_side(),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if isinstance(gl, environment.GlInfo) and gl.software:
        print(f"\nwarning: {environment.SOFTWARE_HINT}; see docs/INSTALL.md")
    return 0
