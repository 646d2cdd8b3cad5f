"""Typed handle on the compiled cffi module ``synapse_native._native``.

The C functions are typed loosely here (``Any``); ``ring``, ``sender``, ``receiver`` and
``errors`` wrap every call and give the public API its types. Nothing else imports this module.
"""

from __future__ import annotations

import importlib
from typing import Any

_compiled = importlib.import_module("._native", __package__)

ffi: Any = _compiled.ffi
lib: Any = _compiled.lib
