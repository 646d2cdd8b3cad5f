"""synapse_desktop: the Synapse desktop app (PySide6 + VisPy) and the ``synapse`` command."""

__version__ = "0.1.0"
