"""The demo: a small Llama-style model trained on the Python standard library's source with
the probe attached (``python -m synapse_probe.demo``, or ``synapse demo`` for the app too).

Importing the package does not import torch; ``model``, ``data`` and ``train`` do.
"""
