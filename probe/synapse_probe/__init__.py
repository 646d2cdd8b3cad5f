"""synapse_probe: hooks a PyTorch model and streams its activation statistics to Synapse.

Runs inside the training process. Never imports Qt or VisPy.
"""

__version__ = "0.1.0"
