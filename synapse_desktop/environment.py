"""What this machine gives Synapse: OpenGL (and whether it is software), the C core's SIMD path,
and the probe side's torch, CUDA and Triton.

Qt and torch are asked in child processes (``python -m synapse_desktop.qt.gl_info``,
``python -m synapse_probe.environment``): Qt aborts the whole process when it cannot open a
display, and the app side never imports torch. Both print one JSON object.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

# Renderer strings of the rasterisers that draw on the CPU (Mesa, Google, Microsoft, VMware).
SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast", "software rasterizer", "swiftshader")
SOFTWARE_HINT = "software rendering: the 3D view will be slow (no GPU driver in use)"
CHILD_TIMEOUT_S = 60.0


def is_software(renderer: str) -> bool:
    """Whether an OpenGL renderer string names a CPU rasteriser."""
    lowered = renderer.lower()
    return any(name in lowered for name in SOFTWARE_RENDERERS)


@dataclass(frozen=True)
class GlInfo:
    """The OpenGL context Qt gives the app, and the platform plugin it came through."""

    platform: str
    version: str
    vendor: str
    renderer: str

    @property
    def software(self) -> bool:
        return is_software(self.renderer)

    def describe(self) -> str:
        kind = "SOFTWARE (slow)" if self.software else "hardware"
        return f"{self.version}; {self.renderer} ({self.vendor}); {kind}"


def module_command(module: str) -> list[str]:
    """The command line that runs ``python -m module`` with this interpreter (in the bundle,
    its executable understands ``-m`` too)."""
    return [sys.executable, "-m", module]


def run_json(module: str, timeout_s: float = CHILD_TIMEOUT_S) -> dict[str, Any]:
    """``python -m module``'s JSON object; ``{"error": ...}`` when it fails, whatever the cause."""
    try:
        done = subprocess.run(
            module_command(module), capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": str(exc)}
    lines = done.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        result = None
    if isinstance(result, dict) and (done.returncode == 0 or "error" in result):
        return result
    # Qt's own abort (no display): its first line names the cause.
    return {"error": (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[0]}


def gl_info() -> GlInfo | str:
    """The OpenGL a new window would get, or why there is none (no display, no Qt)."""
    if importlib.util.find_spec("PySide6") is None:
        return "PySide6 not installed (the app extra)"
    found = run_json("synapse_desktop.qt.gl_info")
    if "error" in found:
        return str(found["error"])
    return GlInfo(
        **{key: str(found.get(key, "")) for key in ("platform", "version", "vendor", "renderer")}
    )


def native_core() -> str:
    """Whether the C core is built, and which statistics kernel this CPU runs."""
    try:
        importlib.import_module("synapse_native._native")
        stats = importlib.import_module("synapse_native.stats")
    except ImportError as exc:
        return f"not built ({exc})"
    return f"built; statistics kernel: {stats.active_impl()}"


def probe_side() -> list[tuple[str, str]]:
    """Rows for torch, CUDA and Triton as the training process would see them."""
    if importlib.util.find_spec("torch") is None:
        return [("torch (probe)", "not installed (only the training process needs it)")]
    found = run_json("synapse_probe.environment")
    if "error" in found:
        return [("torch (probe)", f"unusable: {found['error']}")]
    return [
        ("torch (probe)", str(found["torch"])),
        ("CUDA", str(found["cuda"])),
        ("Triton", str(found["triton"])),
    ]
