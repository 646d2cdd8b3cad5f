"""synapse_desktop: the Synapse desktop app (PySide6 + VisPy) and the ``synapse`` command."""

from synapse_desktop import _singletons

__version__ = "0.1.0"

_singletons.pin()  # before any PySide6 call: see _singletons
