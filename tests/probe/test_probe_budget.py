"""The probe under its overhead budget: PROBE_COST with every measured step, measured steps as a
function of the step number, the budget changed live by CONTROL and acknowledged."""

from __future__ import annotations

import math
import time

import pytest
import torch
from probe_models import batch, llama_like, lm_loss

import synapse_probe
from synapse_probe.governor import EPOCH

pytest.importorskip("synapse_native.client")
from synapse_native.client import StreamClient
from synapse_native.protocol import Capability, Control, ControlAck, Hello, MsgType, ProbeCost

EVERY_STEP = math.inf


def train(model: torch.nn.Module, steps: int, probe: synapse_probe.Probe | None = None) -> None:
    for step in range(steps):
        with torch.no_grad():
            lm_loss(model, *batch(seed=step))
        if probe is not None:
            assert probe.flush()  # a tiny model outruns the encoder: no step skipped for that


def test_a_tight_budget_thins_measured_steps_by_step_number(server) -> None:
    model = llama_like(n_layers=2)
    with synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP, budget=1e-4) as probe:
        train(model, 4 * EPOCH, probe)
        cost = probe.cost()
    steps = server.steps()
    assert steps[:EPOCH] == list(range(EPOCH))  # calibration: every step at rate_hz
    # The statistics of a tiny model cost far more than 0.01 % of its step: measured rarely,
    # and only on multiples of the interval in force (each step's PROBE_COST says which).
    intervals = {s: m.interval for s, _, m in server.messages if isinstance(m, ProbeCost)}
    later = [s for s in steps if s >= EPOCH]
    assert cost.interval >= 8 and len(later) <= EPOCH // 2
    assert all(s % intervals[s] == 0 and intervals[s] > 1 for s in later)
    assert cost.budget == pytest.approx(1e-4) and cost.step_ns > 0 and cost.stats_ns > 0


def test_probe_cost_rides_with_each_measured_step(server) -> None:
    model = llama_like(n_layers=2)
    with synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP) as probe:
        train(model, 3, probe)
    costs = [(s, m) for s, _, m in server.messages if isinstance(m, ProbeCost)]
    assert [s for s, _ in costs] == [0, 1, 2]
    last = costs[-1][1]
    assert last.budget == pytest.approx(0.01) and last.interval == 1
    assert last.lens_interval == 0  # llama_like has no lens that applies
    assert probe.budget == pytest.approx(0.01)


def test_without_a_budget_every_step_is_measured(server) -> None:
    model = llama_like(n_layers=2)
    with synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP, budget=None) as probe:
        train(model, 3 * EPOCH, probe)
        assert probe.budget is None and probe.cost().budget == 0.0
    assert server.steps() == list(range(3 * EPOCH))


def test_a_bad_budget_is_refused() -> None:
    model = llama_like(n_layers=1)
    with pytest.raises(ValueError, match="budget"):
        synapse_probe.attach(model, server=None, port=0, budget=0.0)


def test_the_budget_changes_live_by_control_and_is_acknowledged() -> None:
    model = llama_like(n_layers=2)
    probe = synapse_probe.attach(model, port=0, rate_hz=1000.0)
    try:
        host, port = probe.address
        with StreamClient.connect(host, port) as client:
            hello = client.hello.message
            assert isinstance(hello, Hello) and hello.capabilities & Capability.GOVERNOR
            client.wait_for(MsgType.MODEL_META, timeout=5)
            client.send(Control(request_id=3, budget=0.25))
            client.send(Control(request_id=4, budget=2.0))
            acks: dict[int, ControlAck] = {}
            budgets: list[float] = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not (len(acks) == 2 and budgets):
                train(model, 1)
                for frame in client.frames(timeout=0.05):
                    message = frame.message
                    if isinstance(message, ControlAck) and message.request_id in (3, 4):
                        acks[message.request_id] = message
                    elif isinstance(message, ProbeCost) and message.budget == 0.25:
                        budgets.append(message.budget)
            assert acks[3].applied and not acks[4].applied
            assert "budget" in acks[4].error
            assert budgets
    finally:
        probe.close()
    assert probe.budget == 0.25


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_governor_never_syncs_and_counts_gpu_time_on_cuda(server) -> None:
    model = llama_like(n_layers=2).cuda()
    probe = synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP, grads=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ids, targets = (t.cuda() for t in batch(seed=0))
    lm_loss(model, ids, targets).backward()  # warm-up: first-use allocations, kernel compiles
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:  # calibration, decisions, event pairs read with query(): none of it may sync
        for _ in range(3 * EPOCH):
            opt.zero_grad()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = lm_loss(model, ids, targets)
            loss.backward()
            opt.step()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    cost = probe.cost()
    probe.close()
    assert cost.step_ns > 0 and cost.stats_ns > 0  # GPU and host time of a measured step
    assert len(server.summaries()) >= 3
