"""``synapse record``: record one or several ranks to an MCAP file, headless (no Qt needed).

One thread per rank reads its connection (the native receiver pump's C thread does the socket
reads) and hands whole frames, undecoded, to the main thread, which alone writes the file. The
hand-off queue is bounded: a writer that falls behind stops the readers, TCP pushes back, and
the trainer drops (and counts) frames for this client, which shows here as lost frames (seq
gaps), so nothing the socket delivered is ever lost silently. A connection that drops is
retried with the app's backoff; the backlog a probe replays on reconnect is recorded once.
"""

from __future__ import annotations

import argparse
import queue
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

from synapse_desktop.net.backoff import Backoff
from synapse_desktop.net.endpoint import Endpoint, parse_endpoints
from synapse_serve.signals import restore, set_on_signals

_QUEUE_BATCHES = 256  # batches (up to 4096 frames each) between the readers and the writer
_WAIT_S = 0.2
_STATUS_S = 2.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "endpoints",
        metavar="HOST:PORT[,...]",
        nargs="+",
        help="the probes to record, as `synapse app --connect` takes them "
        "(HOST:9000,HOST2:9000 or HOST:9000-9003 for several ranks)",
    )
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="the .mcap file")
    parser.add_argument("--token", default=None, help="the probes' token, if they require one")
    parser.add_argument(
        "--max-mb", type=float, default=None, help="rotate to FILE-0002.mcap... at this size (MiB)"
    )
    parser.add_argument(
        "--sparse-hz",
        type=float,
        default=None,
        help="keep the sparse frames of at most this many steps per second (default: all)",
    )
    parser.add_argument(
        "--pattern-hz",
        type=float,
        default=None,
        help="keep attention patterns and residual tokens of at most this many steps per second",
    )
    parser.add_argument(
        "--compression", choices=("zstd", "lz4", "none"), default="zstd", help="chunk compression"
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: Ctrl-C)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the final summary")


@dataclass
class RankTally:
    """What one rank sent: frames recorded, broadcast frames missing (seq gaps)."""

    last_seq: int | None = None
    last_time_ns: int = 0
    lost: int = 0
    duplicates: int = 0


@dataclass
class Tally:
    ranks: dict[int, RankTally] = field(default_factory=dict)

    def admit(self, frame: bytes) -> bool:
        """Count ``frame``; False for a backlog frame already recorded (a reconnect's replay)."""
        seq = int.from_bytes(frame[12:16], "little")
        time_ns = int.from_bytes(frame[16:24], "little")
        rank = self.ranks.setdefault(frame[28] | frame[29] << 8, RankTally())
        if seq == 0:
            return True
        backlog = bool((frame[30] | frame[31] << 8) & 2)
        if rank.last_seq is not None:
            if (
                backlog
                and time_ns <= rank.last_time_ns
                and (rank.last_seq - seq) % (1 << 32) < 1 << 31
            ):
                rank.duplicates += 1
                return False
            gap = (seq - rank.last_seq - 1) % (1 << 32)
            if 0 < gap < 1 << 31:
                rank.lost += gap
        rank.last_seq = seq
        rank.last_time_ns = max(rank.last_time_ns, time_ns)
        return True

    @property
    def lost(self) -> int:
        return sum(r.lost for r in self.ranks.values())


class _Reader(threading.Thread):
    """Connects to one endpoint (again and again) and queues what it reads."""

    def __init__(
        self,
        endpoint: Endpoint,
        token: str | None,
        out: queue.Queue[list[bytes]],
        stop: threading.Event,
        log: TextIO,
    ) -> None:
        super().__init__(name=f"synapse-record-{endpoint}", daemon=True)
        self.endpoint, self.token, self.out, self.stop, self.log = endpoint, token, out, stop, log
        self.fatal: str | None = None

    def run(self) -> None:
        from synapse_native.client import PeerError, StreamClient
        from synapse_native.protocol import ErrorCode

        backoff = Backoff()
        while not self.stop.is_set():
            try:
                client = StreamClient.connect(
                    self.endpoint.host, self.endpoint.port, token=self.token, name="synapse-record"
                )
            except PermissionError as exc:
                self.fatal = str(exc)
                return
            except PeerError as exc:
                if exc.code in (ErrorCode.AUTH, ErrorCode.VERSION):
                    self.fatal = f"{self.endpoint}: {exc.text}"
                    return
                self._retry(backoff, str(exc))
                continue
            except (OSError, ValueError) as exc:
                self._retry(backoff, str(exc))
                continue
            backoff.reset()
            print(f"synapse record: recording {self.endpoint}", file=self.log, flush=True)
            with client:
                self._put([client.hello_bytes])
                while not self.stop.is_set():
                    frames = client.raw_frames(_WAIT_S)
                    if frames:
                        self._put(frames)
                    elif client.closed:
                        break
            if not self.stop.is_set():
                self._retry(backoff, "the probe closed the connection")

    def _put(self, frames: list[bytes]) -> None:
        while not self.stop.is_set():
            try:
                self.out.put(frames, timeout=_WAIT_S)  # blocks while the writer is behind
                return
            except queue.Full:
                continue

    def _retry(self, backoff: Backoff, reason: str) -> None:
        delay = backoff.next()
        print(
            f"synapse record: {self.endpoint}: {reason}; retrying in {delay:.1f} s",
            file=self.log,
            flush=True,
        )
        self.stop.wait(delay)


def record(
    endpoints: Sequence[Endpoint],
    output: str,
    *,
    token: str | None = None,
    max_mb: float | None = None,
    sparse_hz: float | None = None,
    pattern_hz: float | None = None,
    compression: str = "zstd",
    stop: threading.Event | None = None,
    duration: float | None = None,
    log: TextIO = sys.stderr,
    quiet: bool = False,
) -> dict[str, float]:
    """Record until ``stop`` is set or ``duration`` has passed; returns the figures printed."""
    from synapse_native.recording import RecordingWriter, Thinner

    stop = stop if stop is not None else threading.Event()
    metadata = {"source": "synapse record", "endpoints": ",".join(str(e) for e in endpoints)}
    if sparse_hz is not None:
        metadata["sparse_hz"] = str(sparse_hz)
    if pattern_hz is not None:
        metadata["pattern_hz"] = str(pattern_hz)
    thinner = Thinner(sparse_hz, pattern_hz)
    tally = Tally()
    inbox: queue.Queue[list[bytes]] = queue.Queue(_QUEUE_BATCHES)
    max_bytes = None if max_mb is None else int(max_mb * (1 << 20))
    writer = RecordingWriter(
        output, metadata=metadata, compression=compression, max_bytes=max_bytes
    )
    readers = [_Reader(e, token, inbox, stop, log) for e in endpoints]
    for reader in readers:
        reader.start()
    started = time.monotonic()
    cpu_started = time.process_time()
    received = 0
    next_status = started + _STATUS_S
    failure: OSError | None = None
    try:
        while True:
            now = time.monotonic()
            if duration is not None and now - started >= duration:
                stop.set()
            if stop.is_set() and all(not r.is_alive() for r in readers) and inbox.empty():
                break
            fatal = [r.fatal for r in readers if r.fatal]
            if fatal:
                print(f"synapse record: {fatal[0]}", file=log)
                stop.set()
            try:
                frames = inbox.get(timeout=_WAIT_S)
            except queue.Empty:
                frames = []
            received += len(frames)
            admitted = [f for f in frames if tally.admit(f)]
            if admitted:
                writer.write_frames(thinner.filter(admitted))
            if not quiet and now >= next_status:
                next_status = now + _STATUS_S
                _status(log, writer.bytes_written, received, now - started, tally.lost)
    except OSError as exc:  # a full disk, a file over RLIMIT_FSIZE: stop, keep what was written
        failure = exc
    finally:
        stop.set()
        for reader in readers:
            reader.join(5.0)
        try:
            writer.close()
        except OSError as exc:
            failure = failure or exc
    if failure is not None:
        raise OSError(failure.errno, failure.strerror or str(failure), str(writer.path))
    elapsed = max(time.monotonic() - started, 1e-9)
    figures = {
        "bytes": float(writer.bytes_written),
        "frames_received": float(received),
        "frames_written": float(writer.frames_written),
        "frames_thinned": float(thinner.left_out),
        "frames_lost": float(tally.lost),
        "seconds": elapsed,
        "mb_per_s": writer.bytes_written / 1e6 / elapsed,
        "cpu_s_per_mb": (time.process_time() - cpu_started) / max(writer.bytes_written / 1e6, 1e-9),
    }
    files = ", ".join(str(p) for p in writer.paths)
    print(
        f"synapse record: {files}: {writer.bytes_written / 1e6:.1f} MB, "
        f"{writer.frames_written} frames in {elapsed:.1f} s ({figures['mb_per_s']:.2f} MB/s); "
        f"{tally.lost} lost before reaching the recorder, {thinner.left_out} thinned out",
        file=log,
        flush=True,
    )
    return figures


def _status(log: TextIO, nbytes: int, frames: int, seconds: float, lost: int) -> None:
    print(
        f"synapse record: {nbytes / 1e6:.1f} MB, {frames} frames, "
        f"{nbytes / 1e6 / max(seconds, 1e-9):.2f} MB/s, {lost} lost",
        file=log,
        flush=True,
    )


def run(args: argparse.Namespace) -> int:
    try:
        endpoints = parse_endpoints(args.endpoints)
    except ValueError as exc:
        print(f"synapse record: {exc}", file=sys.stderr)
        return 2
    for name in ("sparse_hz", "pattern_hz", "max_mb", "duration"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            print(f"synapse record: --{name.replace('_', '-')} must be > 0", file=sys.stderr)
            return 2
    stop = threading.Event()
    previous = set_on_signals(stop, (signal.SIGINT, signal.SIGTERM))
    try:
        record(
            endpoints,
            args.output,
            token=args.token,
            max_mb=args.max_mb,
            sparse_hz=args.sparse_hz,
            pattern_hz=args.pattern_hz,
            compression=args.compression,
            stop=stop,
            duration=args.duration,
            quiet=args.quiet,
        )
    except OSError as exc:  # the output file cannot be created, or written to the end
        print(f"synapse record: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    except ValueError as exc:  # a --max-mb under two chunks
        print(f"synapse record: {exc}", file=sys.stderr)
        return 1
    finally:
        restore(previous)
    return 0
