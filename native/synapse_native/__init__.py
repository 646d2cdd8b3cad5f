"""synapse_native: the low-level core shared by the probe and the desktop app.

- ``protocol``: the wire codec (frames as dataclasses; a decoder that does no I/O).
- ``ring``, ``pumps``: the lock-free record ring and the socket pumps (C threads, no GIL).
- ``stats``: the fused single-pass statistics kernel for CPU tensors.

This package imports neither torch nor Qt nor VisPy.
"""

__version__ = "0.1.0"
