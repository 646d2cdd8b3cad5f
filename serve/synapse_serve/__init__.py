"""synapse_serve: the trainer side's TCP server, and the simulator that streams through it.

Torch-free, Qt-free: the probe (``synapse_probe``) serves its frames through ``Server``, and so
does ``synapse sim`` (``synapse_serve.sim``), which the desktop app runs without torch. Only
``synapse_native`` lies below it.
"""

from __future__ import annotations

from synapse_native import __version__

__all__ = ["__version__"]
