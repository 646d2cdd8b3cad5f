"""The simulator's stream obeys the invariants a real probe's does (what users learn the app on).

Checked on the frames a viewer receives, for every step and site: the summary's largest |x| is at
least every sparse value of the site (a neuron's mean |x| cannot exceed the largest element), and
``n_above > 0`` implies ``frac_above > 0`` when both are measured at the same threshold.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from synapse_native.client import StreamClient
from synapse_native.protocol import LayerSummaryBatch, MsgType, SparseActivations
from synapse_serve.sim import SimOptions, Simulator

STEPS = 40
TIMEOUT = 10.0


def stream_of(options: SimOptions) -> dict[int, tuple[LayerSummaryBatch, list[SparseActivations]]]:
    """Each step's summary batch and sparse frames, as a viewer received them."""
    simulator = Simulator(options)
    host, port = simulator.start()
    steps: dict[int, tuple[LayerSummaryBatch, list[SparseActivations]]] = {}
    try:
        client = StreamClient.connect(host, port, timeout=TIMEOUT)
        with client:
            client.wait_for(MsgType.CONTROL_ACK, TIMEOUT)
            runner = threading.Thread(target=simulator.run)
            runner.start()
            while runner.is_alive() or not client.closed:
                frame = client.next_frame(0.5)
                if frame is None:
                    if not runner.is_alive():
                        break
                    continue
                message, step = frame.message, frame.header.step
                if isinstance(message, LayerSummaryBatch):
                    steps[step] = (message, [])
                elif isinstance(message, SparseActivations):
                    steps[step][1].append(message)
            runner.join(TIMEOUT)
    finally:
        simulator.close()
    return steps


@pytest.mark.parametrize(
    "options",
    [
        SimOptions(layers=2, seed=0, steps=STEPS, fps=200.0),
        SimOptions(layers=3, seed=7, steps=STEPS, fps=200.0, threshold=1.5, top_k=64),
        SimOptions(layers=2, seed=3, steps=STEPS, fps=200.0, threshold=0.05),
    ],
    ids=["defaults", "high-threshold-top-k", "low-threshold"],
)
def test_sparse_frames_never_contradict_the_summary(options: SimOptions) -> None:
    options = SimOptions(**{**options.__dict__, "port": 0, "announce": False})
    steps = stream_of(options)
    assert len(steps) >= STEPS - 1  # the first step may precede the viewer's registration
    checked = 0
    for step, (summary, sparse) in steps.items():
        rows = {int(r["site_id"]): r for r in summary.records}
        assert sparse, f"step {step} has no sparse frames"
        for frame in sparse:
            row = rows[frame.site_id]
            largest = max(abs(float(row["min"])), abs(float(row["max"])))
            if len(frame.values):
                peak = float(np.max(frame.values))
                assert peak <= largest, (
                    f"step {step} site {frame.site_id}: sparse value {peak} > max |x| {largest}"
                )
            if frame.n_above > 0 and np.float32(frame.threshold) == row["threshold"]:
                assert row["frac_above"] > 0, (
                    f"step {step} site {frame.site_id}: n_above={frame.n_above}, frac_above=0"
                )
            checked += 1
    assert checked >= STEPS * 2 * 3 - 2 * 3
