"""Run by test_wheel.py inside the probe-only venv: no Qt there; the probe attaches to a small
torch model and a client reads its frames."""

from __future__ import annotations

import importlib.util
import sys
import time

import torch
from torch import nn

import synapse_probe
from synapse_native.client import StreamClient
from synapse_native.protocol import LayerSummaryBatch, ModelMeta, MsgType

WANTED = 3  # summary batches

for module in ("PySide6", "vispy"):
    assert importlib.util.find_spec(module) is None, f"{module} is installed"

layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)
model = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
probe = synapse_probe.attach(model, port=0, rate_hz=1000.0)
try:
    host, port = probe.address
    with StreamClient.connect(host, port) as client:
        meta = client.wait_for(MsgType.MODEL_META, timeout=20).message
        assert isinstance(meta, ModelMeta)
        summaries = 0
        deadline = time.monotonic() + 60
        while summaries < WANTED and time.monotonic() < deadline:
            with torch.no_grad():
                model(torch.randn(2, 8, 32))
            time.sleep(0.01)
            for frame in client.frames(timeout=0.05):
                summaries += isinstance(frame.message, LayerSummaryBatch)
finally:
    probe.close()
print(f"streamed {len(meta.sites)} sites, {summaries} summary batches")
sys.exit(0 if summaries >= WANTED else 1)
