"""Typed handles on the two compiled cffi modules: ``synapse_native._native`` (the ring, the pumps
and the grid kernels) and ``synapse_native._stats`` (the statistics kernel).

The C functions are typed loosely here (``Any``); ``ring``, ``sender``, ``receiver``, ``grid``,
``stats`` and ``errors`` wrap every call and give the public API its types. Only those modules
import this one, and no other module imports the compiled modules.
"""

from __future__ import annotations

import importlib
from typing import Any

_native = importlib.import_module("._native", __package__)
_stats = importlib.import_module("._stats", __package__)

ffi: Any = _native.ffi
lib: Any = _native.lib
stats_ffi: Any = _stats.ffi
stats_lib: Any = _stats.lib
