"""The probe behind the real TCP server, read by a real client, changed live by CONTROL."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from probe_models import batch, llama_like, lm_loss

import synapse_probe

pytest.importorskip("synapse_native.client")
from synapse_native.client import StreamClient
from synapse_native.protocol import (
    BlockGradNorms,
    Capability,
    Control,
    ControlAck,
    Hello,
    LayerSummaryBatch,
    ModelMeta,
    MsgType,
    SparseActivations,
)


def test_frames_reach_a_client_and_control_changes_the_stream() -> None:
    model = llama_like(n_layers=2)
    probe = synapse_probe.attach(model, port=0, rate_hz=1000.0, threshold=0.5, top_k=4)
    try:
        host, port = probe.address
        with StreamClient.connect(host, port) as client:
            hello = client.hello.message
            assert isinstance(hello, Hello) and not hello.capabilities & Capability.GRAD_NORMS
            meta = client.wait_for(MsgType.MODEL_META, timeout=5).message
            assert isinstance(meta, ModelMeta)
            assert [s.name for s in meta.sites][:3] == [
                "model.layers.0.self_attn",
                "model.layers.0.mlp",
                "model.layers.0",
            ]
            client.send(Control(request_id=7, threshold=0.25, top_k=2))
            seen = {}
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not {"ack", "after"} <= seen.keys():
                with torch.no_grad():
                    lm_loss(model, *batch())
                time.sleep(0.01)  # the rate limit is 1000 Hz: each step is measured
                for frame in client.frames(timeout=0.05):
                    message = frame.message
                    if isinstance(message, ControlAck) and message.request_id == 7:
                        seen["ack"] = message
                    elif isinstance(message, LayerSummaryBatch) and "ack" in seen:
                        if (message.records["threshold"] == 0.25).all():
                            seen["after"] = message
                    elif isinstance(message, SparseActivations) and "after" in seen:
                        assert len(message.indices) <= 2
            assert seen["ack"].applied and seen["ack"].state.top_k == 2
            assert "after" in seen
    finally:
        probe.close()
    assert probe.control.threshold == 0.25


def block_norms_f64(blocks: torch.nn.ModuleList) -> np.ndarray:
    """Float64 reference: L2 norm of each block's parameter gradients, from their ``.grad``."""
    return np.array(
        [
            math.sqrt(sum(p.grad.double().square().sum().item() for p in block.parameters()))
            for block in blocks
        ]
    )


def test_block_grad_norms_reach_a_client_and_match_the_gradients() -> None:
    model = llama_like(n_layers=2)
    probe = synapse_probe.attach(model, port=0, rate_hz=1000.0, grads=True)
    try:
        host, port = probe.address
        with StreamClient.connect(host, port) as client:
            hello = client.hello.message
            assert isinstance(hello, Hello) and hello.capabilities & Capability.GRAD_NORMS
            client.wait_for(MsgType.MODEL_META, timeout=5)
            expected: dict[int, np.ndarray] = {}
            received = None
            seed = 0
            deadline = time.monotonic() + 20
            while received is None and time.monotonic() < deadline:
                model.zero_grad()
                lm_loss(model, *batch(seed=seed)).backward()
                expected[probe.current_step] = block_norms_f64(model.model.layers)
                seed += 1
                time.sleep(0.01)  # the rate limit is 1000 Hz: each step is measured
                received = next(
                    (
                        f
                        for f in client.frames(timeout=0.05)
                        if isinstance(f.message, BlockGradNorms)
                    ),
                    None,
                )
            assert received is not None and isinstance(received.message, BlockGradNorms)
            norms = received.message.norms
            assert norms.dtype == np.float32 and norms.shape == (2,)
            np.testing.assert_allclose(norms, expected[received.header.step], rtol=1e-5)
    finally:
        probe.close()
