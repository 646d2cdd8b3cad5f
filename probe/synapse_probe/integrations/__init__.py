"""Integrations with training frameworks, each importing its framework only when used.

``from synapse_probe.integrations import SynapseCallback`` (Hugging Face ``Trainer``) imports
``transformers``; importing this package alone does not.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .hf import SynapseCallback

__all__ = ["SynapseCallback"]


def __getattr__(name: str) -> Any:
    if name == "SynapseCallback":
        return importlib.import_module(".hf", __name__).SynapseCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
