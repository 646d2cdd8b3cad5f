"""The optimizer lens: per block, what each measured optimizer step did, matching a reference
computed by hand; nothing on steps that are not measured."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from probe_fakes import FakeServer

from synapse_native.protocol import Capability, OptimizerStats
from synapse_probe import attach
from synapse_probe.demo.model import DemoForCausalLM, preset


def _model() -> DemoForCausalLM:
    torch.manual_seed(0)
    return DemoForCausalLM(preset("tiny", n_layers=3))


def _stats(server: FakeServer) -> list[tuple[int, OptimizerStats]]:
    return [(s, m) for s, _, m in server.messages if isinstance(m, OptimizerStats)]


def _train(model: DemoForCausalLM, optimizer: torch.optim.Optimizer, probe, steps: int):  # type: ignore[no-untyped-def]
    """Runs ``steps`` steps; returns the reference (update ratio, grad norm, v < g^2) of each."""
    tokens = torch.randint(0, 256, (2, 33), generator=torch.Generator().manual_seed(1))
    reference = []
    for step in range(1, steps + 1):
        probe.step(step)
        model.loss(tokens[:, :-1], tokens[:, 1:]).backward()
        rows = []
        for layer in model.model.layers:
            params = list(layer.parameters())
            before = [p.detach().clone() for p in params]
            grad = math.sqrt(sum(float(p.grad.square().sum()) for p in params))
            below, counted = 0, 0
            for p in params:
                state = optimizer.state.get(p)
                if state and "exp_avg_sq" in state:
                    correction = 1 - 0.999 ** float(state["step"])
                    below += int((state["exp_avg_sq"] < p.grad.square() * correction).sum())
                    counted += p.numel()
            rows.append((params, before, grad, below / counted if counted else math.nan))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step_rows = []
        for params, before, grad, below in rows:
            update = math.sqrt(
                sum(
                    float((p.detach() - b).square().sum())
                    for p, b in zip(params, before, strict=True)
                )
            )
            norm = math.sqrt(sum(float(b.square().sum()) for b in before))
            step_rows.append((update / norm, grad, below))
        reference.append(step_rows)
    probe.flush()
    return reference


def test_each_measured_step_reports_every_block_as_computed_by_hand() -> None:
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    server = FakeServer()
    probe = attach(model, server=server, optimizer=optimizer, rate_hz=math.inf, budget=None)
    try:
        assert probe._lens_capabilities() & Capability.OPTIMIZER
        reference = _train(model, optimizer, probe, 3)
    finally:
        probe.close()
    stats = _stats(server)
    assert [s for s, _ in stats] == [1, 2, 3]
    for (_, message), expected in zip(stats, reference, strict=True):
        assert message.layers.tolist() == [0, 1, 2]
        ratio, grad, below = (np.array(column) for column in zip(*expected, strict=True))
        np.testing.assert_allclose(message.update_ratio, ratio, rtol=1e-4)
        np.testing.assert_allclose(message.grad_norm, grad, rtol=1e-4)
        np.testing.assert_allclose(message.v_below_g2, below, rtol=1e-6)
    assert np.isnan(stats[0][1].v_below_g2).all()  # Adam has no second moment before step 1
    below = stats[2][1].v_below_g2
    assert (below > 0).all() and (below < 1).all()


def test_other_optimizers_get_no_second_moment_and_unmeasured_steps_no_frame() -> None:
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    server = FakeServer()
    probe = attach(model, server=server, optimizer=optimizer, rate_hz=0.0, budget=None)
    try:
        _train(model, optimizer, probe, 2)
        assert _stats(server) == []  # rate 0: no step measured
        probe.set_control(replace(probe.control, rate_hz=1e6))
        _train(model, optimizer, probe, 2)
    finally:
        probe.close()
    stats = _stats(server)
    assert stats and all(np.isnan(m.v_below_g2).all() for _, m in stats)
    assert all((m.update_ratio > 0).all() for _, m in stats)


def test_an_optimizer_of_other_parameters_is_refused() -> None:
    model = _model()
    other = torch.optim.SGD([torch.nn.Parameter(torch.zeros(3))], lr=0.1)
    with pytest.raises(ValueError, match="none of the optimizer's parameters"):
        attach(model, server=FakeServer(), optimizer=other)
