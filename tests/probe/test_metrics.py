"""``log_metrics``: training scalars reach the viewers as TRAINING_METRICS, without a host sync."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch
from probe_models import batch, llama_like, lm_loss

import synapse_probe
from synapse_native.protocol import ControlState, TrainingMetrics
from synapse_probe.metrics import RING_SIZE

RARELY = 1e-3  # Hz: only the first step is measured
SYNCING = ("item", "cpu", "tolist", "numpy", "__bool__", "__float__", "__int__")


def train_and_log(model: torch.nn.Module, steps: int, probe) -> list[dict[str, torch.Tensor]]:
    """SGD steps that log loss, lr and the clipped gradient norm; the tensors logged."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    logged = []
    for i in range(steps):
        opt.zero_grad()
        loss = lm_loss(model, *batch(seed=i))
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        probe.log_metrics(loss=loss.detach(), lr=0.05, grad_norm=norm)
        logged.append({"loss": loss.detach().clone(), "grad_norm": norm.clone()})
    return logged


def test_every_step_arrives_with_its_step_whatever_the_sampling(server) -> None:
    model = llama_like(n_layers=2)
    probe = synapse_probe.attach(model, server=server, rate_hz=RARELY)
    logged = train_and_log(model, 3, probe)
    probe.set_control(ControlState(1.0, RARELY, probe.control.site_kinds, True, 8))  # paused
    logged += train_and_log(model, 2, probe)
    probe.close()
    assert server.steps() == [0]  # one measured step...
    sent = server.metrics()
    assert [step for step, _ in sent] == [0, 1, 2, 3, 4]  # ...but every step's metrics
    for (_, values), expected in zip(sent, logged, strict=True):
        assert list(values) == ["loss", "lr", "grad_norm"]
        assert values["loss"] == expected["loss"].item()  # float32 -> float64 is exact
        assert values["grad_norm"] == expected["grad_norm"].item()
        assert values["lr"] == 0.05
    assert probe.stats().metrics_dropped == 0


def test_values_keep_their_exact_value_whatever_their_kind(server) -> None:
    probe = synapse_probe.attach(llama_like(), server=server)
    bf16 = torch.tensor(3.140625, dtype=torch.bfloat16)
    probe.log_metrics(
        step=12,
        bf16=bf16,
        f64=torch.tensor(0.1, dtype=torch.float64),
        one=torch.tensor([2.5]),
        tokens=torch.tensor(2**40, dtype=torch.int64),
        ints=7,
        flag=True,
        np32=np.float32(0.75),
        nan=torch.tensor(float("nan")),
        inf=-math.inf,
    )
    probe.close()
    ((step, values),) = server.metrics()
    assert step == 12
    assert {k: v for k, v in values.items() if k != "nan"} == {
        "bf16": 3.140625,
        "f64": 0.1,
        "one": 2.5,
        "tokens": 2.0**40,
        "ints": 7.0,
        "flag": 1.0,
        "np32": 0.75,
        "inf": -math.inf,
    }
    assert math.isnan(values["nan"])
    assert list(values) == ["bf16", "f64", "one", "tokens", "ints", "flag", "np32", "nan", "inf"]


def test_no_host_sync_on_either_thread(server, monkeypatch) -> None:
    """Logging and encoding run with every syncing Tensor method disabled, on every thread."""
    model = llama_like(n_layers=2)
    probe = synapse_probe.attach(model, server=server, rate_hz=math.inf, grads=True)

    def forbidden(*args, **kwargs):
        raise AssertionError("host sync while logging metrics")

    with monkeypatch.context() as patch:
        for name in SYNCING:
            patch.setattr(torch.Tensor, name, forbidden)
        logged = train_and_log(model, 3, probe)
        assert probe.flush()
    probe.close()
    sent = server.metrics()
    assert [step for step, _ in sent] == [0, 1, 2]
    for (_, values), expected in zip(sent, logged, strict=True):
        assert values["loss"] == expected["loss"].item()
        assert values["grad_norm"] == expected["grad_norm"].item()


def test_a_stalled_encoder_drops_and_counts_calls_and_never_blocks(server) -> None:
    gate = threading.Event()
    broadcast = server.broadcast

    def stalled(message, *, step, flags=0):
        gate.wait(10)
        return broadcast(message, step=step, flags=flags)

    server.broadcast = stalled
    probe = synapse_probe.attach(llama_like(), server=server)
    calls = RING_SIZE + 36
    for i in range(calls):
        probe.log_metrics(step=i, loss=torch.tensor(float(i)))
    dropped = probe.stats().metrics_dropped
    gate.set()
    probe.close()
    assert dropped == calls - RING_SIZE
    assert server.metrics() == [(i, {"loss": float(i)}) for i in range(RING_SIZE)]


def test_the_ring_is_reused_once_the_encoder_catches_up(server) -> None:
    probe = synapse_probe.attach(llama_like(), server=server)
    for i in range(3 * RING_SIZE):
        probe.log_metrics(step=i, loss=torch.tensor(float(i)), lr=1.0 / (i + 1))
        if i % RING_SIZE == RING_SIZE - 1:
            assert probe.flush()
    probe.close()
    sent = server.metrics()
    assert [step for step, _ in sent] == list(range(3 * RING_SIZE))
    assert all(values == {"loss": step, "lr": 1.0 / (step + 1)} for step, values in sent)
    assert probe.stats().metrics_dropped == 0


def test_module_level_log_metrics_logs_to_the_last_attached_probe(server) -> None:
    model = llama_like()
    with synapse_probe.attach(model, server=server, rate_hz=RARELY) as probe:
        lm_loss(model, *batch())
        lm_loss(model, *batch())
        synapse_probe.log_metrics(loss=1.5)
        synapse_probe.log_metrics(step=40, loss=2.5)
        assert probe.current_step == 1
    assert server.metrics() == [(1, {"loss": 1.5}), (40, {"loss": 2.5})]
    with pytest.raises(RuntimeError, match="attach"):
        synapse_probe.log_metrics(loss=1.0)


@pytest.mark.parametrize(
    ("step", "values", "error", "match"),
    [
        (None, {"x" * 25: 1.0}, ValueError, "1 to 24 bytes"),
        (None, {"é" * 13: 1.0}, ValueError, "1 to 24 bytes"),
        (None, {"": 1.0}, ValueError, "1 to 24 bytes"),
        (None, {"a\0b": 1.0}, ValueError, "without NUL"),
        (None, {f"m{i}": 1.0 for i in range(257)}, ValueError, "at most 256 metrics"),
        (None, {"loss": torch.ones(2)}, ValueError, "tensor of 2 elements"),
        (None, {"loss": "1.5"}, TypeError, "must be a number or a one-element tensor"),
        (None, {"z": torch.tensor(1j)}, TypeError, "complex"),
        (-1, {"loss": 1.0}, ValueError, "step must be in"),
        (2**32, {"loss": 1.0}, ValueError, "step must be in"),
    ],
)
def test_what_the_wire_cannot_carry_is_refused_at_the_call(
    server, step, values, error, match
) -> None:
    probe = synapse_probe.attach(llama_like(), server=server)
    with pytest.raises(error, match=match):
        probe.log_metrics(step, **values)
    probe.log_metrics(step=1, ok=1.0)
    probe.close()
    assert server.metrics() == [(1, {"ok": 1.0})]
    assert probe.stats().metrics_dropped == 0


def test_a_value_that_cannot_be_read_raises_and_keeps_the_ring_whole(server) -> None:
    probe = synapse_probe.attach(llama_like(), server=server)
    unreadable = torch.empty((), device="meta")
    for _ in range(RING_SIZE + 1):
        with pytest.raises((RuntimeError, NotImplementedError)):
            probe.log_metrics(step=0, x=unreadable)
    probe.log_metrics(step=1, ok=1.0)
    probe.close()
    assert server.metrics() == [(1, {"ok": 1.0})]
    assert probe.stats().metrics_dropped == 0


def test_metrics_reach_a_real_client() -> None:
    client_module = pytest.importorskip("synapse_native.client")
    from synapse_native.protocol import Capability, Hello, MsgType

    probe = synapse_probe.attach(llama_like(), port=0)
    try:
        host, port = probe.address
        with client_module.StreamClient.connect(host, port) as client:
            hello = client.hello.message
            assert isinstance(hello, Hello) and hello.capabilities & Capability.METRICS
            client.wait_for(MsgType.CONTROL_ACK, timeout=5)
            frame = None
            for _ in range(400):  # until the client has joined the broadcast stream
                probe.log_metrics(step=7, loss=torch.tensor(2.25), lr=3e-4)
                frame = next(
                    (
                        f
                        for f in client.frames(timeout=0.05)
                        if isinstance(f.message, TrainingMetrics)
                    ),
                    None,
                )
                if frame is not None:
                    break
    finally:
        probe.close()
    assert frame is not None and isinstance(frame.message, TrainingMetrics)
    assert frame.header.step == 7 and frame.header.rank == 0
    assert frame.message.values == {"loss": 2.25, "lr": 3e-4}


def test_synapse_tail_prints_the_metrics_frames(capsys: pytest.CaptureFixture[str]) -> None:
    from synapse_desktop import cli

    # No backlog: metrics logged before tail connects would otherwise lead its five frames.
    probe = synapse_probe.attach(llama_like(), port=0, backlog_mb=0)
    host, port = probe.address
    codes: list[int] = []
    tail = threading.Thread(
        target=lambda: codes.append(cli.main(["tail", f"{host}:{port}", "--count", "5"]))
    )
    tail.start()
    try:
        step = 0
        while tail.is_alive() and step < 100_000:  # until tail has read its five frames
            probe.log_metrics(step=step, loss=torch.tensor(0.5), lr=1e-3)
            step += 1
            tail.join(0.01)
    finally:
        probe.close()
        tail.join(30)
    assert codes == [0]
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [
        "HELLO",
        "MODEL_META",
        "CONTROL_ACK",
        "TRAINING_METRICS",
        "TRAINING_METRICS",
    ]
    assert all(line.endswith(" n=2 loss=0.5 lr=0.001") for line in lines[3:])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_values_leave_the_device_without_a_sync(server) -> None:
    probe = synapse_probe.attach(llama_like().cuda(), server=server)
    device = torch.device("cuda")
    steps = 2 * RING_SIZE + 4  # past the ring: slots, their buffers and events are reused
    for step in range(steps):
        loss = torch.full((), step + 0.5, device=device)
        bf16 = (loss * 2.0).to(torch.bfloat16)
        torch.cuda.synchronize()  # making the inputs may sync; logging them must not
        torch.cuda.set_sync_debug_mode("error")
        try:
            probe.log_metrics(step=step, loss=loss, bf16=bf16, lr=0.1, cpu=torch.tensor(4.0))
        finally:
            torch.cuda.set_sync_debug_mode(0)
        if step % RING_SIZE == RING_SIZE - 1:
            assert probe.flush()
    probe.close()
    sent = server.metrics()
    assert [step for step, _ in sent] == list(range(steps))
    for step, values in sent:
        bf16 = float(torch.tensor(2 * step + 1.0).to(torch.bfloat16))
        assert values == {"loss": step + 0.5, "bf16": bf16, "lr": 0.1, "cpu": 4.0}
