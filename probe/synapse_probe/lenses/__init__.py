"""Lenses: per-step work of their own beside the site statistics (docs/PROBE.md).

Each lens hooks what it reads, copies its results off the device without a host sync, and
hands them to the encoder with the step's frames: attention (with the residual tokens), MoE
routing, the optimizer. ``lens.py`` holds what they share.
"""
