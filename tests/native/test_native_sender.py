"""The sender pump through its Python wrapper, over loopback TCP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from native_helpers import (
    FrameReader,
    frame_seq,
    is_closed_by_peer,
    make_frame,
    read_frame,
    socket_pair,
)

from synapse_native.errors import (
    ClosedError,
    InvalidArgumentError,
    RecordTooLargeError,
    UnknownClientError,
)
from synapse_native.pumps import InboundEvent, ReceiverPump, SenderPump

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
def pump() -> Iterator[SenderPump]:
    with SenderPump(ring_capacity=1 << 22, client_queue_bytes=1 << 20) as sender:
        yield sender


def connect(pump: SenderPump) -> tuple[int, socket.socket]:
    """A new client of the pump: its id and our end of the connection."""
    ours, peer = socket_pair()
    client_id = pump.add_client(ours)
    ours.close()  # the pump holds its own duplicate
    return client_id, peer


def client_stats(pump: SenderPump, client_id: int) -> dict[str, int]:
    (stats,) = [c for c in pump.stats().clients if c.client_id == client_id]
    return {
        "sent": stats.frames_sent,
        "dropped": stats.frames_dropped,
        "received": stats.frames_received,
    }


def test_every_client_receives_identical_whole_frames(pump: SenderPump) -> None:
    clients = [connect(pump) for _ in range(3)]
    frames = [make_frame(seq, (seq * 997) % 20000) for seq in range(300)]
    readers = [FrameReader(peer, len(frames)) for _, peer in clients]
    for frame in frames:
        while not pump.broadcast(frame):  # the ring is large enough; this is a safety net
            time.sleep(0.001)
    for reader in readers:
        assert reader.join() == frames
    for _, peer in clients:
        peer.close()


def test_stalled_client_loses_only_its_own_frames_and_broadcast_never_blocks() -> None:
    frame_count, payload = 1500, 16384
    with SenderPump(ring_capacity=1 << 22, client_queue_bytes=1 << 17) as pump:
        stalled_ours, stalled = socket_pair()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        stalled_ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        stalled_id = pump.add_client(stalled_ours)
        stalled_ours.close()
        live_id, live = connect(pump)
        reader = FrameReader(live, frame_count)

        slowest_call = 0.0
        for seq in range(frame_count):
            while seq - len(reader.frames) > 4:  # keep pace with the live reader only
                time.sleep(0.0005)
            frame = make_frame(seq, payload)
            start = time.perf_counter()
            assert pump.broadcast(frame)
            slowest_call = max(slowest_call, time.perf_counter() - start)

        received = reader.join()
        assert [frame_seq(f) for f in received] == list(range(frame_count))
        assert client_stats(pump, live_id)["dropped"] == 0
        stalled_stats = client_stats(pump, stalled_id)
        assert stalled_stats["dropped"] > frame_count // 2
        # A call that waited for the stalled client would take until the test timed out.
        assert slowest_call < 0.5
        # Whatever the stalled client does get is whole frames, in order.
        seqs = []
        while len(seqs) + stalled_stats["dropped"] < frame_count:
            frame = read_frame(stalled)
            assert frame is not None and frame == make_frame(frame_seq(frame), payload)
            seqs.append(frame_seq(frame))
        assert seqs == sorted(seqs)
        live.close()
        stalled.close()


def test_full_ring_drops_are_counted_not_waited_for() -> None:
    # The ring holds two of these frames: pushing faster than the pump thread wakes up fills it.
    with SenderPump(ring_capacity=1 << 14, client_queue_bytes=1 << 16) as pump:
        _, peer = connect(pump)
        frame = make_frame(0, 8000)
        results = [pump.broadcast(frame) for _ in range(2000)]
        assert not all(results)
        assert any(results)
        assert pump.stats().ring_drops == results.count(False)
        peer.close()


def test_broadcast_many_reaches_every_client_in_order(pump: SenderPump) -> None:
    clients = [connect(pump) for _ in range(2)]
    frames = [make_frame(seq, (seq * 997) % 5000) for seq in range(400)]
    readers = [FrameReader(peer, len(frames)) for _, peer in clients]
    done = 0
    while done < len(frames):
        batch = frames[done : done + 1 + done % 37]
        queued = pump.broadcast_many(batch)
        done += queued
        if queued < len(batch):  # the ring is large enough; this is a safety net
            time.sleep(0.001)
    for reader in readers:
        assert reader.join() == frames
    for _, peer in clients:
        peer.close()


def test_broadcast_many_queues_the_prefix_that_fits_and_counts_the_rest() -> None:
    # The 16 KiB ring holds two records of these frames (8 + 8032 bytes each). The pump sees
    # nothing of a batch until the call returns, so an empty ring takes exactly two of five.
    with SenderPump(ring_capacity=1 << 14, client_queue_bytes=1 << 16) as pump:
        _, peer = connect(pump)
        frames = [make_frame(seq, 8000) for seq in range(5)]
        assert pump.broadcast_many(frames) == 2
        assert pump.stats().ring_drops == 3
        assert [read_frame(peer), read_frame(peer)] == frames[:2]
        while pump.stats().ring_used_bytes:
            time.sleep(0.001)
        assert pump.broadcast_many(frames[2:4]) == 2  # the rest, later
        assert [read_frame(peer), read_frame(peer)] == frames[2:4]
        assert pump.stats().ring_drops == 3
        peer.close()


def test_broadcast_many_checks_every_frame_before_queueing_any(pump: SenderPump) -> None:
    _, peer = connect(pump)
    too_big = bytes(pump.max_frame + 1)
    with pytest.raises(RecordTooLargeError, match=f"a frame of {pump.max_frame + 1} bytes"):
        pump.broadcast_many([make_frame(0, 10), too_big])
    with pytest.raises(TypeError):
        pump.broadcast_many([make_frame(0, 10), "text"])  # type: ignore[list-item]
    assert pump.broadcast_many([]) == 0
    marker = make_frame(1, 10)
    assert pump.broadcast_many([marker]) == 1
    assert read_frame(peer) == marker  # nothing of the refused batches went out
    assert pump.stats().ring_drops == 0
    pump.close()
    with pytest.raises(ClosedError):
        pump.broadcast_many([marker])
    peer.close()


def test_garbage_from_one_client_closes_it_with_a_reason(pump: SenderPump) -> None:
    bad_id, bad = connect(pump)
    good_id, good = connect(pump)
    bad.sendall(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
    event = pump.next_event(timeout=5)
    assert event == InboundEvent(bad_id, None, 'bad magic 47 45 54 20 (expected "SYNP")')
    assert is_closed_by_peer(bad)
    assert [c.client_id for c in pump.stats().clients] == [good_id]
    frame = make_frame(1, 10)
    assert pump.broadcast(frame)
    assert read_frame(good) == frame
    bad.close()
    good.close()


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (make_frame(0, 0, version=7), "unsupported protocol version 7 (this build speaks 1)"),
        (
            make_frame(0, 0, declared_len=99_999_999),
            "payload of 99999999 bytes exceeds the 65536-byte limit",
        ),
        (b"", "peer closed the connection"),
    ],
)
def test_bad_headers_and_hang_ups_are_reported(pump: SenderPump, frame: bytes, reason: str) -> None:
    client_id, peer = connect(pump)
    if frame:
        peer.sendall(frame)
    else:
        peer.close()
    assert pump.next_event(timeout=5) == InboundEvent(client_id, None, reason)
    peer.close()


def test_control_frames_from_a_receiver_arrive_as_events(pump: SenderPump) -> None:
    ours, peer = socket_pair()
    client_id = pump.add_client(ours)
    ours.close()
    with ReceiverPump(peer, ring_capacity=1 << 20, max_payload=1 << 16) as receiver:
        peer.close()
        controls = [make_frame(seq, 40 * seq, msg_type=9) for seq in range(5)]
        for control in controls:
            assert receiver.send(control)
        events = [pump.next_event(timeout=5) for _ in controls]
        assert events == [InboundEvent(client_id, control, None) for control in controls]
        assert client_stats(pump, client_id)["received"] in (4, 5)  # counted just after


def test_send_to_reaches_a_just_added_client_and_no_one_else(pump: SenderPump) -> None:
    _, bystander = connect(pump)
    for seq in range(30):
        client_id, peer = connect(pump)
        frame = make_frame(seq, 64)
        assert pump.send_to(client_id, frame)  # right after add_client returned
        assert read_frame(peer) == frame
        pump.remove_client(client_id)
        assert is_closed_by_peer(peer)
        peer.close()
    marker = make_frame(999, 1)
    assert pump.broadcast(marker)
    assert read_frame(bystander) == marker  # none of the unicasts reached it
    with pytest.raises(UnknownClientError):
        pump.send_to(12345, marker)
    with pytest.raises(UnknownClientError):
        pump.remove_client(0)
    bystander.close()


def test_next_event_waits_then_times_out(pump: SenderPump) -> None:
    assert pump.next_event() is None
    start = time.monotonic()
    assert pump.next_event(timeout=0.3) is None
    assert 0.25 < time.monotonic() - start < 3


def test_close_with_clients_connected_returns_and_hangs_up() -> None:
    pump = SenderPump()
    peers = [connect(pump)[1] for _ in range(4)]
    waiter_result: list[InboundEvent | None] = []
    waiter = threading.Thread(target=lambda: waiter_result.append(pump.next_event(timeout=None)))
    waiter.start()
    time.sleep(0.05)
    assert pump.broadcast(make_frame(0, 100))
    start = time.monotonic()
    pump.close()
    assert time.monotonic() - start < 2
    waiter.join(timeout=5)
    assert not waiter.is_alive()
    assert waiter_result == [None]
    for peer in peers:
        assert is_closed_by_peer(peer)
        peer.close()
    with pytest.raises(ClosedError):
        pump.broadcast(b"x")
    pump.close()  # twice is fine


def test_arguments_are_checked(pump: SenderPump) -> None:
    with pytest.raises(InvalidArgumentError, match="powers of two"):
        SenderPump(ring_capacity=1000)
    with pytest.raises(RecordTooLargeError, match="exceeds"):
        pump.broadcast(bytes(pump.max_frame + 1))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        with pytest.raises(InvalidArgumentError):
            pump.add_client(udp)
        assert udp.fileno() >= 0  # the caller's socket is left alone


def test_a_client_joining_mid_stream_gets_exactly_the_broadcasts_after_it_joined() -> None:
    """What a joining client is greeted with (the probe's backlog) ends where add_client
    returns: broadcasts still in the ring then are not sent to it twice, and none pushed after
    is missed, however far the pump lags behind the producer."""
    total, joins_at = 3000, (400, 1100, 1900, 2600)
    with SenderPump(ring_capacity=1 << 24, client_queue_bytes=1 << 24) as pump:
        _, first = connect(pump)
        readers = {0: FrameReader(first, total)}
        for seq in range(total):
            if seq in joins_at:  # the ring holds a burst the pump has not routed yet
                _, peer = connect(pump)
                readers[seq] = FrameReader(peer, total - seq)
            while not pump.broadcast(make_frame(seq, 4096)):
                time.sleep(0.0005)
        for start, reader in readers.items():
            assert [frame_seq(frame) for frame in reader.join()] == list(range(start, total))
