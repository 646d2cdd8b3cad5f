"""A TCP proxy between a probe and a viewer that misbehaves on command: it stalls, trickles one
byte at a time, or resets both sides in the middle of a frame."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time


class FaultyProxy:
    """Listens on 127.0.0.1 (any free port); each accepted viewer is joined to ``upstream``.

    ``mode`` (settable at any time) says how probe->viewer bytes move: "pass" (as they come),
    "stall" (not at all, the proxy stops reading from the probe), "trickle" (one byte at a
    time, ``trickle_gap`` apart). ``reset_after(n)``: once ``n`` more probe bytes have been
    forwarded, both connections are reset (SO_LINGER 0), wherever that falls in a frame.
    """

    def __init__(self, upstream: tuple[str, int], trickle_gap: float = 0.0005) -> None:
        self.upstream = upstream
        self.mode = "pass"
        self.trickle_gap = trickle_gap
        self.forwarded = 0  # probe bytes passed to viewers
        self._reset_at: int | None = None
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    def reset_after(self, n: int) -> None:
        self._reset_at = self.forwarded + n

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept thread
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self._threads:
            thread.join(5.0)

    def __enter__(self) -> FaultyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                viewer, _ = self._listener.accept()
            except OSError:
                return
            probe = socket.create_connection(self.upstream)
            self._sockets += [viewer, probe]
            for target, args in ((self._down, (probe, viewer)), (self._up, (viewer, probe))):
                thread = threading.Thread(target=target, args=args, daemon=True)
                thread.start()
                self._threads.append(thread)

    def _up(self, viewer: socket.socket, probe: socket.socket) -> None:
        """Viewer -> probe, as it comes."""
        with contextlib.suppress(OSError):
            while data := viewer.recv(65536):
                probe.sendall(data)

    def _down(self, probe: socket.socket, viewer: socket.socket) -> None:
        """Probe -> viewer, as the mode says."""
        try:
            while not self._stop.is_set():
                if self.mode == "stall":
                    time.sleep(0.01)
                    continue
                most = 1 if self.mode == "trickle" else 65536
                if self._reset_at is not None:
                    most = max(1, min(most, self._reset_at - self.forwarded))
                data = probe.recv(most)
                if not data:
                    viewer.shutdown(socket.SHUT_WR)
                    return
                viewer.sendall(data)
                self.forwarded += len(data)
                if self._reset_at is not None and self.forwarded >= self._reset_at:
                    for sock in (viewer, probe):
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                        # Wakes the other thread's recv: the reset goes out when both let go.
                        sock.shutdown(socket.SHUT_RD)
                        sock.close()
                    return
                if self.mode == "trickle":
                    time.sleep(self.trickle_gap)
        except OSError:
            return
