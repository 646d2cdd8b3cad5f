"""synapse_probe: hooks a PyTorch model and streams its activation statistics to Synapse.

Runs inside the training process and never imports Qt or VisPy. Importing the package does not
import torch (the simulator lives here too): ``attach``, ``log_activation``, ``log_metrics`` and
``Probe`` and ``ProbeOptions`` load the torch side on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .options import ProbeOptions
    from .probe import Probe, attach, log_activation, log_metrics

__version__ = "0.1.0"
__all__ = ["Probe", "ProbeOptions", "__version__", "attach", "log_activation", "log_metrics"]

_LAZY = {"Probe", "attach", "log_activation", "log_metrics"}


def __getattr__(name: str) -> Any:
    if name == "ProbeOptions":
        return importlib.import_module(".options", __name__).ProbeOptions
    if name in _LAZY:
        return getattr(importlib.import_module(".probe", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
