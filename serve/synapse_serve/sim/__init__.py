"""The simulator: a synthetic training run (numpy only) served like a real probe's stream.

``synapse sim`` runs it; the app's tests and benchmarks use it as a trainer that needs no torch.
"""

from __future__ import annotations

from .simulator import SimOptions, Simulator

__all__ = ["SimOptions", "Simulator"]
