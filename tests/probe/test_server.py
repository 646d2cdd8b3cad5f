"""The probe's TCP server: greeting, fan-out, slow clients, CONTROL, bad input, security."""

from __future__ import annotations

import contextlib
import math
import socket
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from synapse_native.client import PeerError, StreamClient
from synapse_native.protocol import (
    Control,
    ControlAck,
    ControlState,
    Decoder,
    ErrorCode,
    ErrorReport,
    Frame,
    HeaderFlag,
    Hello,
    LayerSummaryBatch,
    ModelMeta,
    MsgType,
    ProbeStats,
    ProtocolError,
    Role,
    SiteInfo,
    SiteKind,
    SparseActivations,
    ThresholdMode,
    encode,
    summary_records,
)
from synapse_serve.listener import PortInUseError
from synapse_serve.server import Server

TIMEOUT = 10.0
META = ModelMeta(
    "tiny",
    2,
    tuple(SiteInfo(i, i // 2, SiteKind.MLP, f"layers.{i // 2}.mlp", 64, 8, 8) for i in range(4)),
)
STATE = ControlState(0.5, 10.0, 0b1110, False, 64)


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def sparse(n: int, site_id: int = 0) -> SparseActivations:
    indices = np.arange(n, dtype=np.uint32)
    return SparseActivations(site_id, 0.5, n, indices, np.ones(n, np.float32))


def start(**kwargs: Any) -> Server:
    options: dict[str, Any] = {"port": 0, "announce": False, "control": STATE}
    options.update(kwargs)
    return Server(META, **options).start()


@pytest.fixture
def live() -> Iterator[Server]:
    server = start()
    yield server
    server.close()


def connect(server: Server, token: str | None = None) -> StreamClient:
    host, port = server.address
    return StreamClient.connect(host, port, token=token, timeout=TIMEOUT)


def greeted(server: Server, count: int = 1, token: str | None = None) -> list[StreamClient]:
    """Clients that got HELLO, META and the initial ACK, and that the server has registered."""
    clients = [connect(server, token) for _ in range(count)]
    for client in clients:
        client.wait_for(MsgType.MODEL_META, TIMEOUT)
        client.wait_for(MsgType.CONTROL_ACK, TIMEOUT)
    wait_until(lambda: server.client_count >= count)
    return clients


def raw_connect(server: Server) -> socket.socket:
    sock = socket.create_connection(server.address, timeout=TIMEOUT)
    return sock


def read_until_closed(sock: socket.socket, timeout: float = TIMEOUT) -> list[Frame]:
    """Every frame until the server closes the connection."""
    decoder = Decoder()
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return frames
        if not data:
            return frames
        frames += decoder.feed(data)


def error_of(frames: list[Frame]) -> ErrorReport:
    errors = [f.message for f in frames if isinstance(f.message, ErrorReport)]
    assert len(errors) == 1, frames
    return errors[0]


# -- greeting and fan-out ---------------------------------------------------------------------


def test_each_client_gets_hello_meta_ack_and_the_same_stream(live: Server) -> None:
    clients = greeted(live, 9)
    try:
        for client in clients:
            hello = client.hello.message
            assert isinstance(hello, Hello) and hello.role == Role.TRAINER
            assert client.hello.header.seq == 0
        records = summary_records(4)
        records["site_id"] = np.arange(4)
        sent = [LayerSummaryBatch(records)] + [sparse(n, n % 4) for n in range(1, 20)]
        for step, message in enumerate(sent):
            assert live.broadcast(message, step=step)
        streams = []
        for client in clients:
            frames = [client.wait_for(MsgType.LAYER_SUMMARY_BATCH, TIMEOUT)]
            frames += [client.wait_for(MsgType.SPARSE_ACTIVATIONS, TIMEOUT) for _ in range(19)]
            streams.append([(f.header.seq, f.header.step, _payload(f)) for f in frames])
        assert all(stream == streams[0] for stream in streams)
        seqs = [seq for seq, _, _ in streams[0]]
        assert seqs == list(range(seqs[0], seqs[0] + 20)) and seqs[0] > 0
    finally:
        for client in clients:
            client.close()


def _payload(frame: Frame) -> bytes:
    message = frame.message
    if isinstance(message, SparseActivations):
        return bytes(message.indices.tobytes() + message.values.tobytes())
    assert isinstance(message, LayerSummaryBatch)
    return bytes(message.records.tobytes())


def test_initial_meta_and_state_are_the_current_ones(live: Server) -> None:
    (first,) = greeted(live)
    with first:
        new_meta = ModelMeta("bigger", 3, META.sites)
        live.set_meta(new_meta)
        frame = first.wait_for(MsgType.MODEL_META, TIMEOUT)
        assert isinstance(frame.message, ModelMeta) and frame.message.model_name == "bigger"
    with connect(live) as late:
        # The backlog comes first (flagged): the meta it started under, then the new one.
        replayed = late.wait_for(MsgType.MODEL_META, TIMEOUT)
        assert replayed.header.flags & HeaderFlag.BACKLOG
        assert isinstance(replayed.message, ModelMeta) and replayed.message.model_name == "tiny"
        meta_frame = late.wait_for(MsgType.MODEL_META, TIMEOUT)
        while meta_frame.header.flags & HeaderFlag.BACKLOG:
            meta_frame = late.wait_for(MsgType.MODEL_META, TIMEOUT)
        meta = meta_frame.message
        ack = late.wait_for(MsgType.CONTROL_ACK, TIMEOUT)
        assert isinstance(meta, ModelMeta) and meta.model_name == "bigger"
        assert ack.header.seq == 0 and ack.message == _ack(0, True, STATE)


def _ack(request_id: int, applied: bool, state: ControlState, error: str = "") -> ControlAck:
    return ControlAck(request_id, applied, state, error)


def test_stalled_client_loses_frames_without_slowing_anyone() -> None:
    server = start(client_queue_bytes=1 << 20)
    stalled = raw_connect(server)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        (reader,) = greeted(server)
        wait_until(lambda: server.client_count == 2)
        message = sparse(16384)  # 128 KiB a frame
        durations = []
        for step in range(200):  # 25 MiB: far more than the stalled client's queue and buffers
            started = time.perf_counter()
            assert server.broadcast(message, step=step)
            durations.append(time.perf_counter() - started)
            reader.wait_for(MsgType.SPARSE_ACTIVATIONS, TIMEOUT)  # the reader keeps up
        assert max(durations) < 0.25 and sorted(durations)[100] < 0.01
        server.report_stats(probe_ns=5, steps_sampled=6, steps_seen=7)
        stats = reader.wait_for(MsgType.PROBE_STATS, TIMEOUT).message
        assert isinstance(stats, ProbeStats)
        assert (stats.probe_ns, stats.steps_sampled, stats.steps_seen) == (5, 6, 7)
        assert stats.frames_dropped == 0 and stats.frames_encoded >= 200
        drops = sorted(int(d) for d in stats.clients["frames_dropped"])
        assert len(drops) == 2 and drops[0] == 0 and drops[1] > 50
        reader.close()
    finally:
        stalled.close()
        server.close()


# -- CONTROL ----------------------------------------------------------------------------------


def test_valid_control_is_applied_at_the_next_poll_and_acked_to_all(live: Server) -> None:
    first, second = greeted(live, 2)
    with first, second:
        assert live.poll_control() is None
        assert first.send(Control(7, threshold=2.5, top_k=9))
        wait_until(lambda: bool(live._pending))  # queued, not applied
        assert live.control == STATE
        state = live.poll_control()
        assert state == ControlState(2.5, 10.0, 0b1110, False, 9) == live.control
        assert live.poll_control() is None
        for client in (first, second):
            ack = client.wait_for(MsgType.CONTROL_ACK, TIMEOUT).message
            assert ack == _ack(7, True, state)


@pytest.mark.parametrize(
    ("request_", "needle"),
    [
        (Control(3, threshold=math.nan), "threshold"),
        (Control(3, rate_hz=5000.0), "rate_hz"),
        (Control(3, top_k=0), "top_k"),
        (Control(3, site_kinds=0), "site_kinds"),
        (Control(3, threshold=1.0, unknown_fields=1 << 9), "unknown CONTROL field"),
    ],
)
def test_bad_control_is_rejected_to_all_and_changes_nothing(
    live: Server, request_: Control, needle: str
) -> None:
    first, second = greeted(live, 2)
    with first, second:
        assert first.send(request_)
        for client in (first, second):
            ack = client.wait_for(MsgType.CONTROL_ACK, TIMEOUT).message
            assert isinstance(ack, ControlAck) and not ack.applied and ack.request_id == 3
            assert needle in ack.error and ack.state == STATE
        assert live.poll_control() is None and live.control == STATE


def test_a_control_valid_alone_but_not_with_the_state_in_force_is_refused_when_applied(
    live: Server,
) -> None:
    """A top fraction of 2.5 (the sigma threshold in force, kept because the request names
    only the mode) selects nothing meaningful: refused at the step boundary, with the reason."""
    (viewer,) = greeted(live)
    with viewer:
        assert viewer.send(Control(4, threshold=2.5))
        wait_until(lambda: bool(live._pending))
        applied = live.poll_control()
        assert applied is not None and applied.threshold == 2.5
        viewer.wait_for(MsgType.CONTROL_ACK, TIMEOUT)
        assert viewer.send(Control(5, threshold_mode=ThresholdMode.TOP_FRACTION))
        wait_until(lambda: bool(live._pending))
        assert live.poll_control() == applied == live.control  # nothing changed
        ack = viewer.wait_for(MsgType.CONTROL_ACK, TIMEOUT).message
        assert isinstance(ack, ControlAck) and ack.request_id == 5 and not ack.applied
        assert "top-fraction threshold must be in [0, 1], got 2.5" in ack.error
        assert ack.state == applied


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        b"XXXX" + bytes(60),  # bad magic: the pump closes the connection
        encode(Control(1, threshold=1.0))[:-4],  # truncated; then the header lies about it
        struct.pack("<4sHHIIQIHH", b"SYNP", 1, 5, 4, 0, 0, 0, 0, 0) + bytes(4),  # short CONTROL
        encode(ErrorReport(1, "x")).replace(b"\x08\x00", b"\x03\x00", 1),  # ERROR as a summary
    ],
)
def test_malformed_input_closes_that_client_only(live: Server, garbage: bytes) -> None:
    (good,) = greeted(live)
    bad = raw_connect(live)
    try:
        wait_until(lambda: live.client_count == 2)
        with contextlib.suppress(OSError):  # the server may close it first
            bad.sendall(garbage)
            bad.shutdown(socket.SHUT_WR)  # EOF completes the truncated case
        read_until_closed(bad)
        wait_until(lambda: live.client_count == 1)
        assert live.broadcast(sparse(3), step=1)
        assert good.wait_for(MsgType.SPARSE_ACTIVATIONS, TIMEOUT).header.step == 1
    finally:
        bad.close()
        good.close()


def test_undecodable_frame_gets_error_malformed(live: Server) -> None:
    bad = raw_connect(live)
    try:
        bad.sendall(struct.pack("<4sHHIIQIHH", b"SYNP", 1, 5, 4, 0, 0, 0, 0, 0) + bytes(4))
        assert error_of(read_until_closed(bad)).code == ErrorCode.MALFORMED
    finally:
        bad.close()


def test_unexpected_message_type_from_a_viewer_is_refused(live: Server) -> None:
    bad = raw_connect(live)
    try:
        bad.sendall(encode(META))
        error = error_of(read_until_closed(bad))
        assert error.code == ErrorCode.MALFORMED and "ModelMeta" in error.text
    finally:
        bad.close()


def test_wrong_version_hello_gets_error_version(live: Server) -> None:
    bad = raw_connect(live)
    try:
        bad.sendall(encode(Hello(Role.VIEWER, "future", version_min=2, version_max=3)))
        error = error_of(read_until_closed(bad))
        assert error.code == ErrorCode.VERSION
        assert "2..3" in error.text and "1..1" in error.text
    finally:
        bad.close()


def test_compatible_hello_is_accepted_once(live: Server) -> None:
    client = raw_connect(live)
    try:
        client.sendall(encode(Hello(Role.VIEWER, "ok", version_min=1, version_max=4)))
        client.sendall(encode(Control(1, paused=True)))
        wait_until(lambda: bool(live._pending))
        client.sendall(encode(Hello(Role.VIEWER, "again")))
        assert "twice" in error_of(read_until_closed(client)).text
    finally:
        client.close()


def test_too_many_clients_get_an_error() -> None:
    server = start(max_clients=2)
    clients = greeted(server, 2)
    extra = raw_connect(server)
    try:
        assert error_of(read_until_closed(extra)).code == ErrorCode.TOO_MANY_CLIENTS
        assert server.client_count == 2
    finally:
        extra.close()
        for client in clients:
            client.close()
        server.close()


# -- where it listens -------------------------------------------------------------------------


def test_port_in_use_is_a_clear_error_and_fallback_takes_the_next() -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        with pytest.raises(PortInUseError, match=f"port {port} on 127.0.0.1 is in use.*fallback"):
            start(port=port)
        server = start(port=port, port_fallback=True)
        try:
            assert port < server.address[1] <= port + 32
            (client,) = greeted(server)
            client.close()
        finally:
            server.close()
    finally:
        holder.close()


def test_beyond_loopback_requires_a_token() -> None:
    with pytest.raises(ValueError, match="requires a token"):
        Server(META, host="0.0.0.0")
    with pytest.raises(ValueError, match="requires a token"):
        Server(META, host="my-gpu-node.example")
    Server(META, host="::1")  # loopback: fine without a token
    Server(META, host="0.0.0.0", token="secret-secret-secret")


def test_startup_line_explains_the_ssh_tunnel(capsys: pytest.CaptureFixture[str]) -> None:
    server = start(announce=True)
    port = server.address[1]
    server.close()
    line = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in line
    assert f"ssh -N -L {port}:127.0.0.1:{port}" in line and f"localhost:{port}" in line


# -- token ------------------------------------------------------------------------------------


def test_token_handshake_lets_the_right_viewer_in() -> None:
    server = start(host="0.0.0.0", token="s3cret-s3cret-16")
    try:
        host = "127.0.0.1"
        port = server.address[1]
        with StreamClient.connect(host, port, token="s3cret-s3cret-16", timeout=TIMEOUT) as client:
            hello = client.hello.message
            assert isinstance(hello, Hello) and hello.auth == 1 and any(hello.auth_data)
            client.wait_for(MsgType.CONTROL_ACK, TIMEOUT)
            wait_until(lambda: server.client_count == 1)
            server.broadcast(sparse(2), step=4)
            assert client.wait_for(MsgType.SPARSE_ACTIVATIONS, TIMEOUT).header.step == 4
        with pytest.raises(PermissionError, match="requires a token"):
            StreamClient.connect(host, port, timeout=TIMEOUT)
    finally:
        server.close()


def test_wrong_token_gets_error_auth_and_nothing_else() -> None:
    server = start(token="right-token-0123456789")
    try:
        with connect(server, token="wrong") as client:
            with pytest.raises(PeerError) as caught:
                client.wait_for(MsgType.MODEL_META, TIMEOUT)
            assert caught.value.code == ErrorCode.AUTH
            wait_until(lambda: client.closed)
        assert server.client_count == 0
    finally:
        server.close()


def test_silent_or_chatty_viewer_fails_authentication() -> None:
    server = start(token="right-token-0123456789", auth_timeout=0.3)
    silent, chatty = raw_connect(server), raw_connect(server)
    try:
        chatty.sendall(encode(Control(1, threshold=0.0)))
        for sock in (silent, chatty):
            frames = read_until_closed(sock)
            assert frames[0].header.msg_type == MsgType.HELLO
            assert error_of(frames).code == ErrorCode.AUTH
            assert [f.header.msg_type for f in frames] == [MsgType.HELLO, MsgType.ERROR]
        assert server.poll_control() is None
    finally:
        silent.close()
        chatty.close()
        server.close()


def test_token_server_checks_the_hello_version() -> None:
    server = start(token="right-token-0123456789")
    sock = raw_connect(server)
    try:
        sock.sendall(encode(Hello(Role.VIEWER, "old", version_min=7, version_max=9)))
        assert error_of(read_until_closed(sock)).code == ErrorCode.VERSION
    finally:
        sock.close()
        server.close()


# -- shutting down ----------------------------------------------------------------------------


def test_close_with_clients_connected_returns_promptly() -> None:
    server = start(token="t-token-0123456789")
    clients = greeted(server, 3, token="t-token-0123456789")
    pending = raw_connect(server)  # stuck in its handshake
    stalled = raw_connect(server)
    try:
        for step in range(50):
            server.broadcast(sparse(4096), step=step)
        started = time.monotonic()
        server.close()
        assert time.monotonic() - started < 2.0
        server.close()  # idempotent
        assert not server.broadcast(sparse(1), step=0)
        assert not server.report_stats(1, 1, 1)
        server.set_meta(META)
        assert server.poll_control() is None
        for client in clients:
            with pytest.raises((ConnectionError, TimeoutError, ProtocolError)):
                client.wait_for(MsgType.HELLO, TIMEOUT)
    finally:
        pending.close()
        stalled.close()
        for client in clients:
            client.close()


def test_close_before_start_and_broadcast_before_start() -> None:
    server = Server(META, port=0, announce=False)
    assert not server.broadcast(sparse(1), step=0)
    assert server.poll_control() is None
    server.close()


def test_viewers_joining_mid_stream_get_every_frame_once_backlog_then_live() -> None:
    """Viewers that connect while frames pour out get the backlog, then the live stream, with
    no frame missing at the seam and none twice (the pump's exact join)."""
    server = start()
    total = 6000
    clients: list[StreamClient] = []
    try:
        for i in range(total):
            if i in (1500, 3000, 4500):
                clients.append(connect(server))  # greeted by its own thread while this one sends
            while not server.broadcast(sparse(8), step=i):
                time.sleep(0.0005)
        last = None
        for client in clients:
            seqs = []
            deadline = time.monotonic() + 2 * TIMEOUT
            while last not in seqs and time.monotonic() < deadline:
                for frame in client.frames(timeout=0.1):
                    if isinstance(frame.message, SparseActivations):
                        seqs.append(frame.header.seq)
                        if frame.header.step == total - 1:
                            last = frame.header.seq
            assert seqs and seqs[-1] == last
            assert seqs == list(range(seqs[0], last + 1))  # in order, no gap, no repeat
            assert seqs[0] <= 1500 - 1000  # the backlog reached back before the viewer came
    finally:
        for client in clients:
            client.close()
        server.close()
