"""The probe end to end on CPU, with a fake server: steps, sampling, control, sites, close."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch
from probe_fakes import FakeServer
from probe_models import batch, llama_like, lm_loss

import synapse_probe
import synapse_probe.encoder as probe_encoder
from synapse_native.protocol import ControlState, HeaderFlag, SiteKind, ThresholdMode
from synapse_serve.control import ALL_KINDS, kind_bit

EVERY_STEP = math.inf


def train(model: torch.nn.Module, steps: int, probe=None, start: int = 0) -> list[float]:
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for i in range(steps):
        if probe is not None and start is not None and start >= 0 and probe._manual:
            probe.step(start + i)
        ids, targets = batch(seed=i)
        opt.zero_grad()
        loss = lm_loss(model, ids, targets)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if probe is not None:  # the previous step sent before the next: no drop under load
            assert probe._encoder.flush(10)
    return losses


def test_each_sampled_step_sends_one_summary_batch_then_sparse_frames(server) -> None:
    model = llama_like(n_layers=2)
    with synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP) as probe:
        train(model, 3, probe)
    assert server.metas[0].n_layers == 2 and len(server.metas[0].sites) == 6
    assert server.steps() == [0, 1, 2]
    for _, records in server.summaries():
        assert records["site_id"].tolist() == list(range(6))
        assert (records["count"] == 2 * 8 * 16).all()
        assert np.isfinite(records["std"]).all()
    sparse = server.sparse()
    assert len(sparse) == 3 * 6
    assert all((m.values > m.threshold).all() for _, m in sparse)  # each site's own cut
    # The last frame of every step, and only it, carries END_OF_STEP.
    assert server.end_of_step_flags() == [0, 1, 2]
    last_of_step = [f for s, f, _ in server.messages if f & HeaderFlag.END_OF_STEP]
    assert len(last_of_step) == 3
    stats = probe.stats()
    assert (stats.steps_seen, stats.steps_sampled, stats.snapshots_encoded) == (3, 3, 3)
    assert stats.probe_ns > 0
    assert server.stats[-1][1:] == (3, 3)


def test_default_threshold_lights_a_small_fraction_of_every_site(server) -> None:
    model = llama_like(n_layers=2)
    with synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP) as probe:
        train(model, 2)
    assert probe.control.threshold_mode == ThresholdMode.SIGMA
    widths = {site.site_id: site.neurons for site in server.metas[0].sites}
    _, records = server.summaries()[-1]
    for _, message in server.sparse()[-6:]:
        lit = message.n_above / widths[message.site_id]
        assert lit < 0.1  # a few neurons, never the whole plane
        record = records[records["site_id"] == message.site_id][0]
        assert record["frac_above"] == pytest.approx(lit)


def test_steps_follow_explicit_step_calls(server) -> None:
    model = llama_like()
    probe = synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP)
    for n in (100, 101, 105):
        probe.step(n)
        lm_loss(model, *batch()).backward()
        lm_loss(model, *batch()).backward()  # gradient accumulation: still one step
    probe.close()
    assert server.steps() == [100, 101, 105]
    assert probe.current_step == 105


def test_rate_limits_the_measured_steps(server) -> None:
    model = llama_like()
    with synapse_probe.attach(model, server=server, rate_hz=1e-3) as probe:
        train(model, 4)
    assert server.steps() == [0]
    assert probe.stats().steps_seen == 4 and probe.stats().steps_sampled == 1


def test_live_control_pauses_filters_and_changes_threshold_and_top_k(server) -> None:
    model = llama_like(n_layers=2)
    probe = synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP, top_k=4)
    only_residual = kind_bit(SiteKind.RESIDUAL)
    states = [
        ControlState(0.0, EVERY_STEP, only_residual, False, 2),  # applied at step 1
        ControlState(0.0, EVERY_STEP, only_residual, True, 2),  # step 2: paused
        ControlState(0.25, EVERY_STEP, ALL_KINDS, False, 3),  # step 3
    ]
    for step in range(4):
        if step >= 1:
            server.push_control(states[step - 1])
        lm_loss(model, *batch(seed=step)).backward()
        assert probe._encoder.flush(10)  # each step sent before the next: no drop under load
    probe.close()
    summaries = dict(server.summaries())
    assert sorted(summaries) == [0, 1, 3]
    assert summaries[1]["site_id"].tolist() == [2, 5]  # residual sites only
    assert (summaries[1]["threshold"] == 0.0).all()
    assert (summaries[3]["threshold"] == 0.25).all() and len(summaries[3]) == 6
    by_step: dict[int, list] = {}
    for step, message in server.sparse():
        by_step.setdefault(step, []).append(message)
    assert max(len(m.indices) for m in by_step[0]) <= 4
    assert all(len(m.indices) == 2 for m in by_step[1])  # threshold 0: everything, capped
    assert max(len(m.indices) for m in by_step[3]) <= 3
    assert probe.control.threshold == 0.25


class GatedServer(FakeServer):
    """Holds the first broadcast until ``gate`` opens; ``entered`` is set once it is held."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.gate = threading.Event(), threading.Event()

    def broadcast_step(self, messages: list, *, step: int) -> int:
        self.entered.set()
        self.gate.wait(10)
        return super().broadcast_step(messages, step=step)


def test_close_waits_for_room_to_send_the_runs_last_step(monkeypatch) -> None:
    monkeypatch.setattr(probe_encoder, "QUEUE_SIZE", 1)
    server = GatedServer()
    model = llama_like(n_layers=1)
    probe = synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP, budget=None)
    for step in range(3):
        lm_loss(model, *batch(seed=step)).backward()
        if step == 1:  # step 0 is held in the encoder; step 1 will fill the queue
            assert server.entered.wait(10)
    threading.Timer(0.3, server.gate.set).start()
    probe.close()  # step 2 finds the queue full: close waits for room instead of dropping it
    assert server.steps() == [0, 1, 2]
    assert probe.stats().snapshots_dropped == 0


def test_log_activation_adds_a_site_and_announces_it(server) -> None:
    model = llama_like(n_layers=2)
    probe = synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP, per_block="residual")
    for step in range(2):
        logits = model(batch(seed=step)[0])
        synapse_probe.log_activation(1, logits, site="logits")
        probe.log_activation(0, logits * 2, site="attn")
    probe.close()
    meta = server.metas[-1]
    added = [(s.site_id, s.layer, s.kind, s.name, s.neurons) for s in meta.sites[2:]]
    assert added == [
        (2, 1, SiteKind.OTHER, "model.layers.1.logits", 32),
        (3, 0, SiteKind.ATTN, "model.layers.0.attn", 32),
    ]
    for _, records in server.summaries():
        assert records["site_id"].tolist() == [0, 1, 2, 3]
    with pytest.raises(RuntimeError, match="attach"):
        synapse_probe.log_activation(0, torch.ones(3))


def test_close_removes_every_hook(server) -> None:
    model = llama_like()
    probe = synapse_probe.attach(model, server=server)
    probe.close()
    probe.close()  # idempotent
    assert server.closed is False  # a server passed in belongs to the caller
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks


def test_tuple_and_tensor_outputs_are_both_measured(server) -> None:
    layer = torch.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
    model = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    with synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP):
        model(torch.randn(2, 5, 16)).sum().backward()
    ((_, records),) = server.summaries()
    assert records["site_id"].tolist() == list(range(6))
    assert (records["count"] == 2 * 5 * 16).all()


def test_a_stalled_encoder_drops_steps_and_never_blocks_training(server) -> None:
    gate = threading.Event()
    broadcast_step = server.broadcast_step

    def stalled(messages, *, step):
        gate.wait(10)
        return broadcast_step(messages, step=step)

    server.broadcast_step = stalled
    model = llama_like()
    probe = synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP)
    train(model, 8)
    stats = probe.stats()
    gate.set()
    probe.close()
    # One snapshot inside the encoder, two queued, the rest skipped or dropped, none waited on.
    assert stats.steps_skipped + stats.snapshots_dropped >= 4
    assert stats.steps_seen == 8
    assert len(server.summaries()) >= 1


def test_site_hook_is_a_flag_check_on_unsampled_steps(server) -> None:
    model = llama_like()
    probe = synapse_probe.attach(model, server=server, rate_hz=1e-3)
    train(model, 2)  # the first step is measured, the second boundary sends it
    costs = []
    for _ in range(5):
        before = probe.probe_ns
        train(model, 1)
        costs.append(probe.probe_ns - before)
    probe.close()
    assert probe.stats().steps_sampled == 1
    assert min(costs) < 200_000  # a boundary and flag checks: microseconds, not statistics


def test_default_threshold_and_top_k_reach_the_records(server) -> None:
    model = llama_like()
    with synapse_probe.attach(model, server=server, rate_hz=EVERY_STEP, threshold=0.1, top_k=5):
        train(model, 1)
    ((_, records),) = server.summaries()
    assert (records["threshold"] == np.float32(0.1)).all()
    assert all(len(m.indices) <= 5 for _, m in server.sparse())
