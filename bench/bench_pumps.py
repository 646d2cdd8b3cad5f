"""Loopback throughput of the native pumps against plain Python sockets, 64 KiB frames.

Both sides run in this process, in one run (the machine is noisy, so read the ratio):

- pumps: a Python thread calls ``SenderPump.broadcast``; the sender's C thread writes to a
  loopback TCP socket, the ``ReceiverPump``'s C thread reads and checks the frames, and the main
  thread takes them with ``wait`` + ``drain``. The pump drops frames for a client whose queue
  is full (by design, it never waits), so the producer keeps at most WINDOW frames in flight to
  measure a lossless transfer.
- C pumps: the same pipeline with a C producer thread and a C consumer (``syn_bench_pumps``):
  what the pumps do with no Python in the loop.
- sockets: a Python thread calls ``sendall`` per frame; the main thread ``recv_into``s a buffer
  and cuts it into the same list of whole frames (``bytes``) that ``drain`` returns.

Each link is set up once and warmed up (the rings' pages touched, TCP windows opened) before the
timed transfers, as in a long-running stream. Run: ``python bench/bench_pumps.py`` (``--quick``
for a short run).
"""

from __future__ import annotations

import argparse
import socket
import struct
import threading
import time
from functools import partial

from synapse_native._bench import c_pumps_seconds
from synapse_native.pumps import ReceiverPump, SenderPump

PAYLOAD = 64 * 1024
HEADER = struct.Struct("<4sHHI20s")
QUEUE_BYTES = 1 << 24  # the client queue: 16 MiB, as a high-rate stream would configure
WINDOW = 192  # frames in flight: 12 MiB, less than the client queue
WARM_UP = 1024  # frames: 64 MiB, more than every ring on the path


def make_frame(payload: int) -> bytes:
    return HEADER.pack(b"SYNP", 1, 3, payload, bytes(20)) + bytes(payload)


def loopback_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
    return accepted, client


class PumpLink:
    """SenderPump -> loopback TCP -> ReceiverPump."""

    def __init__(self) -> None:
        sending, receiving = loopback_pair()
        self.sender = SenderPump(client_queue_bytes=QUEUE_BYTES)
        self.sender.add_client(sending)
        sending.close()
        self.receiver = ReceiverPump(receiving)
        receiving.close()

    def transfer(self, frame: bytes, count: int) -> float:
        sender, receiver = self.sender, self.receiver
        received = [0]
        drained = threading.Condition()

        def arrived_more_than(floor: int) -> bool:
            return received[0] > floor

        def produce() -> None:
            for sent in range(count):
                if sent - received[0] >= WINDOW:
                    with drained:
                        drained.wait_for(partial(arrived_more_than, sent - WINDOW), timeout=10)
                while not sender.broadcast(frame):  # the ring is larger than WINDOW
                    time.sleep(0.0001)

        start = time.perf_counter()
        producer = threading.Thread(target=produce)
        producer.start()
        deadline = time.monotonic() + 60
        frames: list[bytes] = []
        while received[0] < count and time.monotonic() < deadline:
            receiver.wait(1.0)
            frames = receiver.drain()
            with drained:
                received[0] += len(frames)
                drained.notify()
        elapsed = time.perf_counter() - start
        producer.join()
        assert received[0] == count, f"only {received[0]} of {count} frames arrived"
        assert frames[-1] == frame and sender.stats().clients[0].frames_dropped == 0
        return elapsed

    def close(self) -> None:
        self.receiver.close()
        self.sender.close()


class SocketLink:
    """sendall -> loopback TCP -> recv_into, cut into frames."""

    def __init__(self) -> None:
        self.sending, self.receiving = loopback_pair()
        self.buffer = bytearray(4 << 20)

    def transfer(self, frame: bytes, count: int) -> float:
        sending, receiving, buffer = self.sending, self.receiving, self.buffer
        view = memoryview(buffer)

        def produce() -> None:
            for _ in range(count):
                sending.sendall(frame)

        start = time.perf_counter()
        producer = threading.Thread(target=produce)
        producer.start()
        received, have, last = 0, 0, b""
        while received < count:
            have += receiving.recv_into(view[have:])
            at = 0
            while have - at >= HEADER.size:  # cut whole frames out, as drain() returns them
                end = at + HEADER.size + HEADER.unpack_from(buffer, at)[3]
                if end > have:
                    break
                last = bytes(view[at:end])
                received += 1
                at = end
            buffer[: have - at] = buffer[at:have]
            have -= at
        elapsed = time.perf_counter() - start
        producer.join()
        assert last == frame
        return elapsed

    def close(self) -> None:
        self.sending.close()
        self.receiving.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames, one repeat")
    args = parser.parse_args()
    count = 2048 if args.quick else 8192
    repeats = 1 if args.quick else 3
    frame = make_frame(PAYLOAD)
    megabytes = count * len(frame) / 1e6

    best: dict[str, float] = {}
    for name, link_type in (("pumps", PumpLink), ("sockets", SocketLink)):
        link = link_type()
        link.transfer(frame, WARM_UP)
        best[name] = min(link.transfer(frame, count) for _ in range(repeats))
        link.close()
    best["C pumps"] = min(c_pumps_seconds(PAYLOAD, count) for _ in range(repeats))
    print(f"{count} frames of {len(frame)} bytes ({megabytes:.0f} MB), best of {repeats}")
    for name, seconds in best.items():
        print(f"  {name:8} {megabytes / seconds / 1e3:6.2f} GB/s  {count / seconds:9.0f} frames/s")
    print(f"  pumps / sockets: {best['sockets'] / best['pumps']:.2f}x")
    print(f"  C pumps / sockets: {best['sockets'] / best['C pumps']:.2f}x")


if __name__ == "__main__":
    main()
