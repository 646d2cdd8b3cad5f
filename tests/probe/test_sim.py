"""``synapse sim``: well-formed frames from the probe's server, Llama shapes, CONTROL honoured."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from synapse_native.client import StreamClient
from synapse_native.protocol import (
    BlockGradNorms,
    Capability,
    ControlAck,
    Frame,
    Hello,
    LayerSummaryBatch,
    ModelMeta,
    MsgType,
    ProbeCost,
    ProbeStats,
    SiteKind,
    SparseActivations,
)
from synapse_native.protocol import Control as ControlRequest
from synapse_serve.control import kind_bit
from synapse_serve.sim import SimOptions, Simulator
from synapse_serve.sim.model import SimModel
from synapse_serve.sim.simulator import MEASURED_STEP_SHARE

TIMEOUT = 10.0


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    options = SimOptions(port=0, layers=4, announce=False, top_k=256, threshold=0.5)
    simulator = Simulator(dataclasses.replace(options, threshold_mode="absolute"))
    simulator.start()
    yield simulator
    simulator.close()


def join(simulator: Simulator, count: int = 1) -> list[StreamClient]:
    host, port = simulator.server.address
    clients = [StreamClient.connect(host, port, timeout=TIMEOUT) for _ in range(count)]
    for client in clients:
        client.wait_for(MsgType.CONTROL_ACK, TIMEOUT)
    wait_until(lambda: simulator.server.client_count >= count)
    return clients


def summary_of(frame: Frame) -> LayerSummaryBatch:
    assert isinstance(frame.message, LayerSummaryBatch)
    return frame.message


def sparse_of(frame: Frame) -> SparseActivations:
    assert isinstance(frame.message, SparseActivations)
    return frame.message


def one_step(client: StreamClient) -> list[Frame]:
    """The frames of the next whole step (a summary batch, the block gradient norms, then sparse
    frames up to the end)."""
    frames = [client.wait_for(MsgType.LAYER_SUMMARY_BATCH, TIMEOUT)]
    while not frames[-1].header.end_of_step:
        frame = client.next_frame(TIMEOUT)
        assert frame is not None
        frames.append(frame)
    return frames


def sparse_frames(frames: list[Frame]) -> list[SparseActivations]:
    """The sparse frames of a step from ``one_step``: after its summary batch, norms and cost
    (the probe's order), before the attention (and routing) frames."""
    assert isinstance(frames[1].message, BlockGradNorms)
    assert isinstance(frames[2].message, ProbeCost)
    sparse = [f for f in frames[3:] if f.header.msg_type == MsgType.SPARSE_ACTIVATIONS]
    assert frames[3 : 3 + len(sparse)] == sparse
    return [sparse_of(f) for f in sparse]


def control(simulator: Simulator, client: StreamClient, request: ControlRequest) -> ControlAck:
    """Send a CONTROL, let the simulator reach a step boundary, return the ACK."""
    assert client.send(request)
    wait_until(lambda: bool(simulator.server._pending))
    simulator.apply_control()
    ack = client.wait_for(
        MsgType.CONTROL_ACK, TIMEOUT, lambda f: f.message.request_id == request.request_id
    ).message
    assert isinstance(ack, ControlAck)
    return ack


def test_importing_the_simulator_does_not_import_torch() -> None:
    code = "import sys, synapse_serve.sim; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "False"


def test_metadata_has_llama_8b_shapes() -> None:
    simulator = Simulator(SimOptions(port=0, announce=False))
    simulator.start()
    try:
        (client,) = join(simulator)
        with client:
            host, port = simulator.server.address
            with StreamClient.connect(host, port, timeout=TIMEOUT) as other:
                meta = other.wait_for(MsgType.MODEL_META, TIMEOUT).message
        assert isinstance(meta, ModelMeta) and meta.n_layers == 32 and len(meta.sites) == 96
        by_kind = {(s.kind, s.neurons, s.grid_rows, s.grid_cols) for s in meta.sites}
        assert by_kind == {
            (SiteKind.ATTN, 4096, 32, 128),
            (SiteKind.MLP, 14336, 112, 128),
            (SiteKind.RESIDUAL, 4096, 64, 64),
        }
        assert [s.layer for s in meta.sites] == [i // 3 for i in range(96)]
    finally:
        simulator.close()


def test_a_step_is_well_formed_and_follows_the_control_state(sim: Simulator) -> None:
    (client,) = join(sim)
    with client:
        sim.tick()
        frames = one_step(client)
        summary = summary_of(frames[0])
        assert summary.records["site_id"].tolist() == list(range(12))
        assert (summary.records["threshold"] == np.float32(0.5)).all()
        np.testing.assert_allclose(summary.records["hist"].sum(axis=1), 1.0, rtol=1e-4)
        sparse = sparse_frames(frames)
        assert [m.site_id for m in sparse] == list(range(12))
        assert {f.header.step for f in frames} == {0}
        assert [f.header.end_of_step for f in frames].count(True) == 1
        for message in sparse:
            assert len(message.indices) <= 256 and len(message.indices) <= message.n_above
            assert (message.values > 0.5).all()
        assert any(len(m.indices) == 256 for m in sparse)


def test_block_grad_norms_are_plausible_and_announced(sim: Simulator) -> None:
    (client,) = join(sim)
    with client:
        hello = client.hello.message
        assert isinstance(hello, Hello) and hello.capabilities & Capability.GRAD_NORMS
        steps = []
        for _ in range(20):
            sim.tick()
            summary, norms = one_step(client)[:2]
            assert isinstance(norms.message, BlockGradNorms)
            assert norms.header.step == summary.header.step
            steps.append(norms.message.norms.copy())
    all_norms = np.array(steps)
    assert all_norms.shape == (20, 4) and all_norms.dtype == np.float32
    assert np.isfinite(all_norms).all() and (all_norms > 0).all()
    assert not np.array_equal(all_norms[0], all_norms[-1])


def test_statistics_evolve_and_residual_grows_with_depth() -> None:
    simulator = Simulator(SimOptions(port=0, layers=16, announce=False))
    simulator.start()
    try:
        (client,) = join(simulator)
        with client:
            summaries = []
            for _ in range(40):
                simulator.tick()
                summaries.append(summary_of(one_step(client)[0]).records.copy())
        first, last = summaries[0], summaries[-1]
        assert not np.array_equal(first["mean_abs"], last["mean_abs"])
        residual = last[2::3]  # attn, mlp, residual per block
        rms = residual["rms"].astype(np.float64)
        assert rms[-1] > 5 * rms[0] and np.corrcoef(np.arange(rms.size), np.log(rms))[0, 1] > 0.9
        assert (residual["max"][3:-1] > 50 * residual["rms"][3:-1]).all()  # massive channels
    finally:
        simulator.close()


def test_threshold_top_k_and_site_filter_apply_from_the_next_step(sim: Simulator) -> None:
    first, second = join(sim, 2)
    with first, second:
        ack = control(sim, first, ControlRequest(1, threshold=1.5, top_k=5))
        assert ack.applied and ack.state.threshold == 1.5
        assert second.wait_for(MsgType.CONTROL_ACK, TIMEOUT).message == ack
        sim.tick()
        for client in (first, second):
            for message in sparse_frames(one_step(client)):
                assert message.threshold == 1.5
                assert len(message.indices) <= 5 and (message.values > 1.5).all()
        mlp_only = kind_bit(SiteKind.MLP)
        assert control(sim, first, ControlRequest(2, site_kinds=mlp_only)).applied
        sim.tick()
        frames = one_step(first)
        assert summary_of(frames[0]).records["site_id"].tolist() == [1, 4, 7, 10]
        assert [m.site_id for m in sparse_frames(frames)] == [1, 4, 7, 10]


def test_a_smaller_budget_thins_the_measured_steps_and_the_cost_stays_within_it(
    sim: Simulator,
) -> None:
    """The simulated probe governs itself as the real one: at the default budget it measures
    every step; at under a ninth of its per-step cost it measures every 10th step, the loss still
    coming every step, and PROBE_COST says what it does."""
    (client,) = join(sim)
    with client:
        sim.tick()
        cost = one_step(client)[2].message
        assert isinstance(cost, ProbeCost) and cost.interval == 1 and cost.cost <= cost.budget
        budget = MEASURED_STEP_SHARE / 9.5  # needs every 10th step
        assert control(sim, client, ControlRequest(3, budget=budget)).applied
        for _ in range(29):
            sim.tick()
        frames: list[Frame] = []
        while not frames or frames[-1].header.step < 29:  # the loss of step 29 comes last
            frame = client.next_frame(TIMEOUT)
            assert frame is not None
            frames.append(frame)
    steps_of = {
        kind: [f.header.step for f in frames if f.header.msg_type == kind]
        for kind in (MsgType.LAYER_SUMMARY_BATCH, MsgType.TRAINING_METRICS)
    }
    assert steps_of[MsgType.LAYER_SUMMARY_BATCH] == [10, 20]
    assert steps_of[MsgType.TRAINING_METRICS][-19:] == list(range(11, 30))
    cost = sim.cost()
    assert (cost.interval, cost.budget) == (10, pytest.approx(budget))
    assert cost.cost <= cost.budget


def test_bad_control_changes_nothing(sim: Simulator) -> None:
    (client,) = join(sim)
    with client:
        assert client.send(ControlRequest(5, threshold=float("nan")))
        ack = client.wait_for(MsgType.CONTROL_ACK, TIMEOUT).message
        assert isinstance(ack, ControlAck) and not ack.applied and "threshold" in ack.error
        sim.apply_control()
        assert sim.state.threshold == 0.5


def test_pause_stops_frames_and_rate_sets_the_pace(sim: Simulator) -> None:
    (client,) = join(sim)
    stop = threading.Event()
    runner = threading.Thread(target=sim.run, args=(stop,))
    runner.start()
    try:
        client.wait_for(MsgType.LAYER_SUMMARY_BATCH, TIMEOUT)
        assert client.send(ControlRequest(1, paused=True))
        client.wait_for(MsgType.CONTROL_ACK, TIMEOUT, lambda f: f.message.request_id == 1)
        # Paused, the loss keeps coming (TRAINING_METRICS every step), the statistics do not.
        until = time.monotonic() + 0.5
        types = []
        while time.monotonic() < until:
            frame = client.next_frame(0.5)
            if frame is not None:
                types.append(frame.header.msg_type)
        assert MsgType.LAYER_SUMMARY_BATCH not in types and MsgType.SPARSE_ACTIVATIONS not in types
        assert client.send(ControlRequest(2, paused=False, rate_hz=200.0))
        client.wait_for(MsgType.CONTROL_ACK, TIMEOUT, lambda f: f.message.request_id == 2)
        sampled = sim.steps_sampled
        time.sleep(0.5)
        assert sim.steps_sampled - sampled >= 15  # 10 Hz would give 5
        stats = client.wait_for(MsgType.PROBE_STATS, TIMEOUT).message
        assert isinstance(stats, ProbeStats) and stats.steps_seen >= stats.steps_sampled > 0
        assert stats.probe_ns > 0 and len(stats.clients) == 1
    finally:
        stop.set()
        runner.join(TIMEOUT)
        client.close()
    assert not runner.is_alive()


def test_several_clients_get_well_framed_streams(sim: Simulator) -> None:
    clients = join(sim, 3)
    try:
        for _ in range(3):
            sim.tick()
        streams = [[(f.header.seq, f.header.msg_type) for f in three_steps(c)] for c in clients]
        assert streams[0] == streams[1] == streams[2]
        seqs = [seq for seq, _ in streams[0]]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    finally:
        for client in clients:
            client.close()


def three_steps(client: StreamClient) -> list[Frame]:
    """Every frame (metrics, summaries, norms, sparse) up to the third end of a step."""
    frames: list[Frame] = []
    while sum(f.header.end_of_step for f in frames) < 3:
        frame = client.next_frame(TIMEOUT)
        assert frame is not None
        if frame.header.msg_type not in (MsgType.HELLO, MsgType.MODEL_META, MsgType.CONTROL_ACK):
            frames.append(frame)
    return frames


def test_steps_option_ends_the_run() -> None:
    simulator = Simulator(SimOptions(port=0, layers=2, announce=False, steps=3, fps=1000.0))
    simulator.start()
    try:
        assert simulator.run() == 3
    finally:
        simulator.close()


def test_every_step_carries_training_metrics_even_when_paused(sim: Simulator) -> None:
    """A falling loss, the learning-rate warm-up and a gradient norm, one frame per step."""
    (client,) = join(sim)
    with client:
        assert client.hello.message.capabilities & Capability.METRICS
        for _ in range(3):
            sim.tick()
        sim.state = dataclasses.replace(sim.state, paused=True)
        sim.tick()
        frames = [client.wait_for(MsgType.TRAINING_METRICS, TIMEOUT) for _ in range(4)]
    assert [f.header.step for f in frames] == [0, 1, 2, 3]
    values = [f.message.values for f in frames]
    assert all(set(v) == {"loss", "lr", "grad_norm"} for v in values)
    assert all(np.isfinite(list(v.values())).all() for v in values)
    assert values[0]["lr"] < values[1]["lr"] < values[2]["lr"]  # warm-up
    model = SimModel(4, seed=0)
    early = np.mean([model.metrics(s)["loss"] for s in range(20)])
    late = np.mean([model.metrics(s)["loss"] for s in range(2000, 2020)])
    assert late < early - 1.0


@pytest.mark.parametrize("mode", ["sigma", "top"])
def test_relative_thresholds_light_about_one_percent_of_every_site(mode: str) -> None:
    simulator = Simulator(SimOptions(port=0, layers=4, announce=False, threshold_mode=mode))
    try:
        messages = simulator.site_messages(step=50)
        records = summary_of_message(messages[0])
        sparse = [m for m in messages if isinstance(m, SparseActivations)]
        for message, record in zip(sparse, records, strict=True):
            width = simulator.model.sites[message.site_id].neurons
            lit = message.n_above / width
            assert 0 < lit < 0.05  # each site by its own scale: a few neurons, never all
            assert record["frac_above"] == pytest.approx(lit)
            assert record["max"] >= message.values.max()
            assert (message.values > message.threshold).all()
    finally:
        simulator.close()


def summary_of_message(message: object) -> np.ndarray:
    assert isinstance(message, LayerSummaryBatch)
    return message.records
