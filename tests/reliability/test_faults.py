"""Faults injected between and inside the parts: a trainer killed mid-stream, a network that
stalls, trickles or resets mid-frame, the probe's own threads failing, and a viewer that
announces a payload over the limit. In each case: whole frames or a clear end, never a hang,
never a stalled training step, and the counters still add up."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from synapse_native.client import ConnectionClosed, StreamClient
from synapse_native.protocol import (
    HEADER,
    Decoder,
    ErrorCode,
    ErrorReport,
    MsgType,
    SparseActivations,
)
from synapse_native.pumps import SenderPump
from synapse_serve.server import Server
from synapse_serve.sim.model import SimModel
from synapse_serve.sim.simulator import model_meta

from .faulty_proxy import FaultyProxy

TIMEOUT = 10.0
META = model_meta(SimModel(2, "residual", seed=0))


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def sparse(n: int) -> SparseActivations:
    return SparseActivations(0, 0.5, n, np.arange(n, dtype=np.uint32), np.ones(n, np.float32))


@pytest.fixture
def server() -> Iterator[Server]:
    probe = Server(META, port=0, announce=False, client_queue_bytes=1 << 20).start()
    yield probe
    probe.close()


def connect(address: tuple[str, int]) -> StreamClient:
    client = StreamClient.connect(*address, timeout=TIMEOUT)
    client.wait_for(MsgType.CONTROL_ACK, TIMEOUT)
    return client


def read_all(client: StreamClient, timeout: float = 2.0) -> list[int]:
    """Sequence numbers of the broadcast frames read until none comes for ``timeout``."""
    return [f.header.seq for f in client.frames(timeout) if f.header.seq]


class Trainer:
    """A training loop stand-in: broadcasts one frame per 'step' and times every step."""

    def __init__(self, server: Server, message: SparseActivations, period: float) -> None:
        self.server, self.message, self.period = server, message, period
        self.steps: list[float] = []  # duration of each broadcast call
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        step = 0
        while not self.stop.is_set():
            started = time.perf_counter()
            self.server.broadcast(self.message, step=step)
            self.steps.append(time.perf_counter() - started)
            step += 1
            time.sleep(self.period)

    def finish(self) -> list[float]:
        self.stop.set()
        self.thread.join(TIMEOUT)
        return self.steps


# -- the trainer dies -----------------------------------------------------------------------------


def test_a_trainer_killed_mid_stream_ends_the_viewer_s_stream_promptly() -> None:
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "synapse_desktop",
            "sim",
            "--port",
            "0",
            "--layers",
            "8",
            "--fps",
            "50",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert sim.stderr is not None
        line = sim.stderr.readline()
        port = int(re.search(r"listening on [\d.]+:(\d+)", line).group(1))  # type: ignore[union-attr]
        with connect(("127.0.0.1", port)) as client:
            client.wait_for(MsgType.SPARSE_ACTIVATIONS, TIMEOUT)
            time.sleep(0.3)  # frames in flight: the kill lands inside a busy stream
            os.kill(sim.pid, signal.SIGKILL)
            killed = time.monotonic()
            frames = 0
            with pytest.raises(ConnectionClosed):
                while True:
                    if client.next_frame(TIMEOUT) is not None:
                        frames += 1  # every frame delivered is whole: it decoded
            assert time.monotonic() - killed < 2.0
            assert frames > 0
    finally:
        sim.kill()
        sim.wait(TIMEOUT)


# -- a misbehaving network between probe and viewer -----------------------------------------------


def test_a_stalled_link_costs_its_viewer_frames_counted_and_nobody_else_anything(
    server: Server,
) -> None:
    with FaultyProxy(server.address) as proxy:
        behind, direct = connect(proxy.address), connect(server.address)
        with behind, direct:
            wait_until(lambda: server.client_count == 2)
            proxy.mode = "stall"
            trainer = Trainer(server, sparse(2048), period=0.002)  # 16 KiB frames, ~8 MiB/s
            time.sleep(2.0)
            proxy.mode = "pass"
            steps = trainer.finish()
            stats = server.sender_stats()
            assert stats is not None
            got_direct, got_behind = read_all(direct), read_all(behind)
    assert len(got_direct) == len(steps)  # the direct viewer lost nothing
    assert np.median(steps) < 0.005 and max(steps) < 0.25  # the loop never waited
    behind_stats, direct_stats = sorted(stats.clients, key=lambda c: c.client_id)
    assert direct_stats.frames_dropped == 0
    missing = set(got_direct) - set(got_behind)
    assert behind_stats.frames_dropped > 0
    assert len(missing) == behind_stats.frames_dropped  # each drop counted, each one a gap


def test_a_trickling_link_delivers_whole_frames(server: Server) -> None:
    with FaultyProxy(server.address, trickle_gap=0.0001) as proxy:
        proxy.mode = "trickle"
        with connect(proxy.address) as client:
            wait_until(lambda: server.client_count == 1)
            for step in range(20):
                server.broadcast(sparse(16 + step), step=step)
            frames = [
                client.wait_for(MsgType.SPARSE_ACTIVATIONS, TIMEOUT).message for _ in range(20)
            ]
    assert [len(f.indices) for f in frames] == [16 + s for s in range(20)]


def test_a_reset_in_the_middle_of_a_frame_ends_the_stream_as_a_fault(server: Server) -> None:
    with FaultyProxy(server.address) as proxy:
        client = connect(proxy.address)
        with client:
            wait_until(lambda: server.client_count == 1)
            proxy.reset_after(32 + 100)  # inside the first sparse frame's payload
            trainer = Trainer(server, sparse(4096), period=0.001)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    client.next_frame(TIMEOUT)
            assert not closed.value.clean
            wait_until(lambda: server.client_count == 0, 5.0)  # the probe let it go
            steps = trainer.finish()
    assert max(steps) < 0.25


# -- the probe's own threads fail -----------------------------------------------------------------


def test_a_failing_network_thread_never_stops_training_and_close_stays_prompt(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = {"events": 3, "accept": 1}
    real_next_event, real_admit = SenderPump.next_event, server._admit

    def failing_next_event(pump: SenderPump, timeout: float) -> object:
        if failures["events"]:
            failures["events"] -= 1
            raise RuntimeError("injected fault in the event thread")
        return real_next_event(pump, timeout)

    def failing_admit(sock: socket.socket, peer: object) -> None:
        if failures["accept"]:
            failures["accept"] -= 1
            raise RuntimeError("injected fault in the accept thread")
        real_admit(sock, peer)

    monkeypatch.setattr(SenderPump, "next_event", failing_next_event)
    monkeypatch.setattr(server, "_admit", failing_admit)
    trainer = Trainer(server, sparse(256), period=0.001)
    with pytest.raises((ConnectionError, TimeoutError)):
        connect(server.address)  # met the failing accept: closed, not left hanging
    wait_until(lambda: failures["events"] == 0)
    with connect(server.address) as viewer:  # the server still takes viewers and serves them
        viewer.wait_for(MsgType.SPARSE_ACTIVATIONS, TIMEOUT)
    steps = trainer.finish()
    assert failures == {"events": 0, "accept": 0}
    assert len(steps) > 100 and max(steps) < 0.25
    started = time.monotonic()
    server.close()
    assert time.monotonic() - started < 2.0


# -- a viewer over the limit ----------------------------------------------------------------------


def test_a_payload_over_the_limit_gets_error_malformed_before_the_close(server: Server) -> None:
    with socket.create_connection(server.address, timeout=TIMEOUT) as sock:
        decoder = Decoder()
        frames = []
        while not any(f.header.msg_type == MsgType.CONTROL_ACK for f in frames):
            frames += decoder.feed(sock.recv(65536))
        wait_until(lambda: server.client_count == 1)
        # SYNP, version 1, CONTROL, 0xFFFFFFFF payload bytes: nothing more is sent.
        sock.sendall(HEADER.pack(b"SYNP", 1, MsgType.CONTROL, 0xFFFFFFFF, 0, 0, 0, 0, 0))
        frames = []
        while data := sock.recv(65536):
            frames += decoder.feed(data)
    errors = [f.message for f in frames if isinstance(f.message, ErrorReport)]
    assert len(errors) == 1 and errors[0].code == ErrorCode.MALFORMED
    assert "exceeds" in errors[0].text
    wait_until(lambda: server.client_count == 0)
