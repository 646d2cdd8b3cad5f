"""The probe's TCP server: one code path for the real probe and the simulator.

Threads: an accept thread, one short-lived thread per connection being greeted, and an event
thread that reads what clients send (through the sender pump). The owner's thread (the training
loop, or the simulator's) only calls ``broadcast``, ``poll_control``, ``report_stats`` and
``set_meta``; none of them waits on a client. See docs/PROBE.md, "Server and security".
"""

from __future__ import annotations

import collections
import contextlib
import logging
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence

from synapse_native.errors import NativeError
from synapse_native.protocol import (
    HEADER_SIZE,
    NO_FULL_RANK,
    ActionList,
    ActionRequest,
    ActionResult,
    ActionStatus,
    AuthMode,
    Capability,
    CaptureDone,
    CaptureRequest,
    CaptureStatus,
    Control,
    ControlAck,
    ControlState,
    ErrorCode,
    ErrorReport,
    HeaderFlag,
    Hello,
    Message,
    ModelMeta,
    MsgType,
    ProbeStats,
    ProtocolError,
    Role,
    decode_frame,
    new_challenge,
    probe_client_records,
)
from synapse_native.pumps import SenderPump, SenderStats

from . import __version__, handshake, listener
from .auth_throttle import AuthThrottle
from .backlog import DEFAULT_BACKLOG_BYTES, Backlog, flagged
from .control import DEFAULT_STATE, apply, full_rank_errors, request_errors, state_errors
from .control_throttle import RATE_HZ as CONTROL_RATE_HZ
from .control_throttle import ControlThrottle
from .handshake import Refused, clip_text
from .listener import DEFAULT_HOST, DEFAULT_PORT, PortInUseError
from .publisher import Publisher

__all__ = ["PortInUseError", "Server"]

log = logging.getLogger(__name__)

DEFAULT_CAPABILITIES = (
    Capability.SUMMARIES
    | Capability.SPARSE
    | Capability.CONTROL
    | Capability.PROBE_STATS
    | Capability.THRESHOLD_MODES
)
_RING_BYTES = 1 << 25  # frames waiting for the pump thread
CLIENT_QUEUE_BYTES = 1 << 23  # per client, and the longest frame: a client this far behind
# loses frames
_MAX_INBOUND_PAYLOAD = 4096  # viewers send HELLO, CONTROL, CAPTURE_REQUEST, ACTION_REQUEST
_EVENT_WAIT_S = 0.1
_ERROR_FLUSH_S = 1.0  # how long a client being closed has to read its ERROR
_JOIN_S = 5.0
_MAX_GREETERS = 64  # connections being greeted at once; beyond, new ones are closed at once
BACKLOG_SEND_S = 30.0  # a viewer slower than this to read the backlog gets the rest left out
_BACKLOG_BATCH = 1 << 20  # backlog bytes per sendall
_MAX_PENDING = 256  # CONTROL requests waiting for a step boundary; beyond, they are rejected
_CONTROL_TYPE = int(MsgType.CONTROL).to_bytes(2, "little")  # at header offset 6
_FLOOD_LOG_S = 60.0  # CONTROL requests dropped from floods: one log line at most this often


class Server:
    """Streams frames to viewers and takes their CONTROL requests.

    Listens on 127.0.0.1 unless told otherwise; any other address requires ``token``. With a
    token, every viewer must answer the HELLO challenge within ``auth_timeout`` seconds.
    """

    def __init__(
        self,
        meta: ModelMeta,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        token: str | None = None,
        port_fallback: bool = False,
        rank: int = 0,
        world_size: int = 1,
        control: ControlState = DEFAULT_STATE,
        max_clients: int = 16,
        name: str = f"synapse-probe/{__version__}",
        capabilities: Capability = DEFAULT_CAPABILITIES,
        auth_timeout: float = 5.0,
        announce: bool = True,
        client_queue_bytes: int = CLIENT_QUEUE_BYTES,
        backlog_bytes: int = DEFAULT_BACKLOG_BYTES,
    ) -> None:
        listener.check_exposure(host, token)
        errors = state_errors(control)
        if errors:
            raise ValueError(f"invalid initial control state: {'; '.join(errors)}")
        if max_clients < 1:
            raise ValueError(f"max_clients must be at least 1, got {max_clients}")
        self.host = host
        self.port = port
        self.rank = rank
        self.world_size = world_size
        self.max_clients = max_clients
        self.name = name
        self.capabilities = capabilities | (Capability.BACKLOG if backlog_bytes > 0 else 0)
        self._backlog = Backlog(backlog_bytes) if backlog_bytes > 0 else None
        self.auth_timeout = auth_timeout
        self.client_queue_bytes = client_queue_bytes
        self._token = token
        self._throttle = AuthThrottle()
        self.controls_dropped = 0  # CONTROL requests dropped unread: their viewer sent too many
        self._flood_logged = (-_FLOOD_LOG_S, 0)  # (when, controls_dropped then)
        self._port_fallback = port_fallback
        self._announce = announce
        self._meta = meta
        self._meta_version = 0
        self._state = control
        self._state_version = 0
        self._pending: collections.deque[Control] = collections.deque()
        self._budget: float | None = None  # set by a CONTROL, taken by the probe
        self._capture_handler: Callable[[int, CaptureRequest], CaptureDone | None] | None = None
        self._actions: ActionList | None = None  # None: this trainer takes no actions
        self._action_handler: Callable[[int, ActionRequest], ActionResult | None] | None = None
        self.full_rank = NO_FULL_RANK  # the rank a viewer wants relayed (a job's serving rank)
        self._lock = threading.Lock()  # guards the client bookkeeping below
        self._clients: dict[int, _Client] = {}
        self._greeting: set[socket.socket] = set()
        self._closing: dict[int, float] = {}  # client id -> deadline to read its ERROR
        self._stop = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self._event_thread: threading.Thread | None = None
        self._workers: list[threading.Thread] = []  # greeting or refusing one connection each
        self._listener: socket.socket | None = None
        self._pump: SenderPump | None = None
        self._publisher: Publisher | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._started = False
        self._closed = False

    # -- life cycle -----------------------------------------------------------------------------

    def start(self) -> Server:
        """Bind, start the threads, print where to connect. Raises PortInUseError."""
        if self._started:
            raise RuntimeError("server already started")
        self._started = True
        self._listener = listener.bind(self.host, self.port, port_fallback=self._port_fallback)
        try:
            self._pump = SenderPump(_RING_BYTES, self.client_queue_bytes, _MAX_INBOUND_PAYLOAD)
        except BaseException:
            self._listener.close()
            raise
        self._publisher = Publisher(self._pump, rank=self.rank)
        if self._backlog is not None:
            self.add_tap(self._backlog.tap)
        self._wake_r, self._wake_w = socket.socketpair()
        self._accept_thread = self._spawn(self._accept_loop, "synapse-accept")
        self._event_thread = self._spawn(self._event_loop, "synapse-events")
        host, port = self.address
        line = listener.startup_line(host, port, token=self._token is not None)
        log.info("%s", line)
        if self._announce:
            print(line, file=sys.stderr, flush=True)
        return self

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server listens on (the real port when 0 or a fallback was used)."""
        if self._listener is None:
            raise RuntimeError("server not started")
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    def close(self) -> None:
        """Stop accepting, close every connection, join the threads. Idempotent, bounded."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._publisher is not None:
            self._publisher.close()
        deadline = time.monotonic() + _JOIN_S
        if self._wake_w is not None:
            _quietly(self._wake_w.send, b"x")
        if self._accept_thread is not None:
            self._accept_thread.join(_JOIN_S)  # after this, no new workers
        with self._lock:
            threads = [*self._workers, self._event_thread]
            for sock in self._greeting:
                _quietly(sock.shutdown, socket.SHUT_RDWR)  # wakes workers blocked on a peer
        for thread in threads:
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
        if self._pump is not None:
            self._pump.close()
        for owned in (self._listener, self._wake_r, self._wake_w):
            if owned is not None:
                owned.close()

    def __enter__(self) -> Server:
        return self if self._started else self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the owner's side -----------------------------------------------------------------------

    def broadcast(self, message: Message, *, step: int, flags: int = 0) -> bool:
        """Queue a frame for every client; False if dropped (ring full, counted) or not running."""
        publisher = self._publisher
        if publisher is None:
            return False
        return publisher.broadcast(message, step=step, flags=flags)

    def broadcast_step(self, messages: Sequence[Message], *, step: int) -> int:
        """A measured step's frames in one push into the pump, END_OF_STEP on the last; how
        many were queued (the rest were dropped and counted)."""
        publisher = self._publisher
        if publisher is None or not messages:
            return 0
        flags = [0] * (len(messages) - 1) + [int(HeaderFlag.END_OF_STEP)]
        return publisher.broadcast_many(messages, step=step, flags=flags)

    def relay_step(self, messages: Sequence[Message], *, step: int, rank: int) -> int:
        """Another rank's step frames (a job's relay): ``rank`` in their headers, flag JOB on
        each, END_OF_STEP on the last; how many were queued."""
        publisher = self._publisher
        if publisher is None or not messages:
            return 0
        job = int(HeaderFlag.JOB)
        flags = [job] * (len(messages) - 1) + [job | int(HeaderFlag.END_OF_STEP)]
        return publisher.broadcast_many(messages, step=step, flags=flags, rank=rank)

    def send_to(self, client_id: int, message: Message) -> bool:
        """Send ``message`` to one client only (e.g. the answer to its request)."""
        publisher = self._publisher
        return publisher is not None and publisher.send_to(client_id, message)

    def set_capture_handler(
        self, handler: Callable[[int, CaptureRequest], CaptureDone | None] | None
    ) -> None:
        """Let ``handler`` take CAPTURE_REQUESTs (called on the event thread with the client's
        id); it returns the answer to send at once, or None when it answers later. Without a
        handler, requests are refused (the trainer did not opt in)."""
        self._capture_handler = handler

    def set_actions(
        self, names: Sequence[str], handler: Callable[[int, ActionRequest], ActionResult | None]
    ) -> None:
        """Offer the actions ``names`` (ACTION_LIST, now to every client and to each new one);
        ``handler`` takes ACTION_REQUESTs on the event thread and returns the answer to send
        at once, or None when it answers later."""
        actions = ActionList(tuple(names))
        publisher = self._publisher
        self._action_handler = handler
        if publisher is None:
            self._actions = actions
            return
        with publisher.lock:  # to each client, not broadcast: no stale list in the backlog
            self._actions = actions
            with self._lock:
                clients = list(self._clients)
            for client_id in clients:
                publisher.send_to(client_id, actions)

    def set_meta(self, meta: ModelMeta) -> None:
        """Replace the site table: sent to every client now and to each new one."""
        publisher = self._publisher
        if publisher is None:
            self._meta = meta
            return
        with publisher.lock:
            self._meta = meta
            self._meta_version += 1
            publisher.broadcast(meta)

    def add_tap(self, tap: Callable[[Sequence[bytes]], None]) -> None:
        """Hand ``tap`` every frame broadcast from now on, led by the HELLO, MODEL_META and
        CONTROL_ACK a new client would get. It runs under the publisher's lock on whichever
        thread broadcasts (the training thread included): it must only queue the frames."""
        publisher = self._publisher
        if publisher is None:
            raise RuntimeError("server not started")
        with publisher.lock:
            hello, meta = publisher.frame(self._hello(None)), publisher.frame(self._meta)
            tap([hello, meta, publisher.frame(ControlAck(0, True, self._state))])
            publisher.taps.append(tap)

    def remove_tap(self, tap: Callable[[Sequence[bytes]], None]) -> None:
        """Stop handing frames to ``tap`` (no-op if it has none)."""
        publisher = self._publisher
        if publisher is not None:
            with publisher.lock:
                if tap in publisher.taps:
                    publisher.taps.remove(tap)

    @property
    def control(self) -> ControlState:
        """The control state in force."""
        return self._state

    def poll_control(self) -> ControlState | None:
        """Apply the CONTROL requests received since the last call; None when there were none.

        Each applied request is acknowledged to every client with the state then in force.
        """
        if not self._pending:
            return None
        publisher = self._publisher
        if publisher is None:  # pragma: no cover - requests arrive only while running
            return None
        with publisher.lock:
            while self._pending:
                request = self._pending.popleft()
                try:  # each field was checked on arrival; together with the state, checked here
                    self._state = apply(self._state, request)
                except ValueError as exc:  # e.g. TOP_FRACTION over a sigma threshold of 2.5
                    text = clip_text(str(exc))
                    publisher.broadcast(ControlAck(request.request_id, False, self._state, text))
                    continue
                if request.budget is not None:
                    self._budget = request.budget
                if request.full_rank is not None:
                    self.full_rank = request.full_rank
                self._state_version += 1
                publisher.broadcast(ControlAck(request.request_id, True, self._state))
            return self._state

    def take_budget(self) -> float | None:
        """The overhead budget of the last applied CONTROL that set one, once; else None."""
        budget, self._budget = self._budget, None
        return budget

    def report_stats(self, probe_ns: int, steps_sampled: int, steps_seen: int) -> bool:
        """Broadcast PROBE_STATS: frames encoded and dropped, queue fill, per-client counters."""
        pump, publisher = self._pump, self._publisher
        if pump is None or publisher is None or self._closed:
            return False
        try:
            stats = pump.stats()
        except NativeError:  # closed meanwhile
            return False
        clients = stats.clients
        records = probe_client_records(len(clients))
        for record, client in zip(records, clients, strict=True):
            record["client_id"] = client.client_id
            record["frames_sent"] = client.frames_sent
            record["frames_dropped"] = client.frames_dropped
            record["bytes_sent"] = client.bytes_sent
        message = ProbeStats(
            frames_encoded=publisher.frames_encoded,
            frames_dropped=publisher.frames_dropped,
            queue_bytes=stats.ring_used_bytes,
            queue_capacity=stats.ring_capacity,
            probe_ns=probe_ns,
            steps_sampled=steps_sampled,
            steps_seen=steps_seen,
            clients=records,
        )
        return publisher.broadcast(message)

    @property
    def client_count(self) -> int:
        """Connected clients that completed their greeting."""
        with self._lock:
            return len(self._clients)

    def sender_stats(self) -> SenderStats | None:
        """The pump's counters (per client: frames sent and dropped); None when not running."""
        pump = self._pump
        if pump is None or self._closed:
            return None
        try:
            return pump.stats()
        except NativeError:  # closed meanwhile
            return None

    @property
    def auth_failures(self) -> int:
        """Failed token proofs, plus attempts refused while their peer had to wait."""
        return self._throttle.failures + self._throttle.refused

    @property
    def frames_dropped_at_source(self) -> int:
        """Frames dropped before any client saw them (the pump's ring was full)."""
        publisher = self._publisher
        return 0 if publisher is None else publisher.frames_dropped

    # -- accepting and greeting -----------------------------------------------------------------

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        return thread

    def _spawn_worker(self, target: Callable[..., None], name: str, *args: object) -> None:
        with self._lock:
            self._workers = [t for t in self._workers if t.is_alive()]
            self._workers.append(self._spawn(target, name, *args))

    def _accept_loop(self) -> None:
        assert self._listener is not None and self._wake_r is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stop.is_set():
                if not selector.select():
                    continue
                if self._stop.is_set():
                    break
                try:
                    sock, peer = self._listener.accept()
                except OSError:
                    continue
                try:
                    self._admit(sock, peer)
                except Exception:  # a fault here must not stop the server taking viewers
                    log.exception("failed to admit a connection from %s", peer)
                    with self._lock:
                        self._greeting.discard(sock)
                    sock.close()

    def _admit(self, sock: socket.socket, peer: object) -> None:
        host = _host_of(peer)
        wait = self._throttle.wait_left(host) if self._token is not None else 0.0
        if wait > 0:  # backing off: refused here, no thread, no greeting slot, no challenge
            text = f"too many failed token attempts from {host}; retry in {wait:.1f} s"
            handshake.refuse(sock, Refused(ErrorCode.AUTH, text, linger=False), rank=self.rank)
            return
        with self._lock:
            busy = len(self._clients) + len(self._greeting)
            if len(self._greeting) >= _MAX_GREETERS or self._stop.is_set():
                sock.close()
                return
            self._greeting.add(sock)
        if busy >= self.max_clients:
            refusal = Refused(
                ErrorCode.TOO_MANY_CLIENTS, f"this probe serves at most {self.max_clients} clients"
            )
            self._spawn_worker(self._refuse, "synapse-refuse", sock, refusal)
        else:
            self._spawn_worker(self._greet, f"synapse-greet-{peer}", sock, host)

    def _refuse(self, sock: socket.socket, refusal: Refused) -> None:
        try:
            handshake.refuse(sock, refusal, rank=self.rank)
        finally:
            with self._lock:
                self._greeting.discard(sock)

    def _greet(self, sock: socket.socket, peer: str) -> None:
        """Say HELLO, check the answer when a token is set, send META and the control state,
        then hand the socket to the pump."""
        publisher = self._publisher
        assert publisher is not None
        challenge = new_challenge() if self._token is not None else None
        added = False
        try:
            sock.settimeout(self.auth_timeout)
            sock.sendall(publisher.frame(self._hello(challenge)))
            hello_seen = False
            if challenge is not None:
                deadline = time.monotonic() + self.auth_timeout
                hello = handshake.read_hello(sock, deadline)
                problem = handshake.viewer_hello_problem(
                    hello, token=self._token, challenge=challenge
                )
                if problem is not None:
                    if problem.code == ErrorCode.AUTH:
                        self._throttle.failed(peer)
                    raise problem
                self._throttle.succeeded(peer)
                hello_seen = True
            mark = self._send_backlog(sock)
            meta, meta_version = self._meta, self._meta_version
            state, state_version = self._state, self._state_version
            sock.sendall(publisher.frame(meta) + publisher.frame(ControlAck(0, True, state)))
            added = self._register(sock, hello_seen, meta_version, state_version, mark)
        except Refused as refusal:
            # Token failures are summed by the throttle, once a minute: a flood logs nothing more.
            quiet = refusal.code == ErrorCode.AUTH
            log.log(logging.DEBUG if quiet else logging.INFO, "refused a viewer: %s", refusal.text)
            handshake.refuse(sock, refusal, rank=self.rank)
        except (OSError, NativeError) as exc:
            log.debug("greeting failed: %s", exc)
        finally:
            with self._lock:
                self._greeting.discard(sock)
            if not added:
                sock.close()

    def _hello(self, challenge: bytes | None) -> Hello:
        auth = AuthMode.NONE if challenge is None else AuthMode.HMAC_SHA256
        return Hello(
            role=Role.TRAINER,
            name=self.name,
            capabilities=self.capabilities,
            rank=self.rank,
            world_size=self.world_size,
            auth=auth,
            auth_data=challenge if challenge is not None else bytes(32),
        )

    def _send_backlog(self, sock: socket.socket) -> int | None:
        """Replay the backlog to a client being greeted (this worker's thread, never the
        owner's); returns the backlog's mark for ``_register``, None without a backlog."""
        backlog, publisher = self._backlog, self._publisher
        if backlog is None or publisher is None:
            return None
        with publisher.lock:
            frames, mark = backlog.snapshot()
        deadline = time.monotonic() + BACKLOG_SEND_S
        batch: list[bytes] = []
        size = 0
        for i, frame in enumerate(frames):
            batch.append(flagged(frame))
            size += len(frame)
            if size >= _BACKLOG_BATCH or i == len(frames) - 1:
                if time.monotonic() > deadline:
                    log.info("backlog cut short for a slow viewer: %d frames left", len(frames) - i)
                    break
                sock.sendall(b"".join(batch))
                batch, size = [], 0
        return mark

    def _register(
        self,
        sock: socket.socket,
        hello_seen: bool,
        meta_version: int,
        state_version: int,
        backlog_mark: int | None = None,
    ) -> bool:
        """Give the socket to the pump; resend META or state if they changed meanwhile, and
        the backlog's frames broadcast since it was replayed."""
        pump, publisher = self._pump, self._publisher
        assert pump is not None and publisher is not None
        if self._stop.is_set():
            return False
        with publisher.lock:
            with self._lock:  # known before the event thread can see its first frame
                client_id = pump.add_client(sock)
                self._clients[client_id] = _Client(hello_seen)
                self._greeting.discard(sock)  # counted once towards max_clients, never twice
            if self._backlog is not None and backlog_mark is not None:
                for frame in self._backlog.since(backlog_mark):
                    publisher.send_frame_to(client_id, flagged(frame))
            if self._meta_version != meta_version:
                publisher.send_to(client_id, self._meta)
            if self._state_version != state_version:
                publisher.send_to(client_id, ControlAck(0, True, self._state))
            if self._actions is not None:
                publisher.send_to(client_id, self._actions)
        sock.close()  # the pump holds its own descriptor
        return True

    # -- what clients send ----------------------------------------------------------------------

    def _event_loop(self) -> None:
        pump = self._pump
        assert pump is not None
        while not self._stop.is_set():
            try:
                self._event_step(pump)
            except Exception:  # a fault here must not end the thread (nor touch training)
                log.exception("the probe's event thread failed; carrying on")
                self._stop.wait(_EVENT_WAIT_S)

    def _event_step(self, pump: SenderPump) -> None:
        """Handle one event from the pump (or none within the wait), then finish closings."""
        wait = 0.02 if self._closing else _EVENT_WAIT_S
        event = pump.next_event(wait)
        if event is not None and event.frame is None:
            self._on_closed(event.client_id, event.closed_reason or "")
        elif event is not None and event.frame is not None:
            try:
                self._on_frame(event.client_id, event.frame)
            except Exception:  # a bug here must not end the thread: drop the one client
                log.exception("failed to handle a frame from client %d", event.client_id)
                self._drop(event.client_id, ErrorCode.INTERNAL, "internal error in the probe")
        if self._closing:
            self._finish_closing()

    def _on_closed(self, client_id: int, reason: str) -> None:
        log.debug("client %d closed: %s", client_id, reason)
        with self._lock:
            self._clients.pop(client_id, None)
            self._closing.pop(client_id, None)

    def _on_frame(self, client_id: int, raw: bytes) -> None:
        with self._lock:
            client = self._clients.get(client_id)
        if client is None or client_id in self._closing:
            return
        if raw[6:8] == _CONTROL_TYPE and not client.controls.admit():
            self._on_flood(client_id, raw, answer=client.controls.answer_due())
            return
        try:
            frame = decode_frame(raw, max_payload=_MAX_INBOUND_PAYLOAD)
        except ProtocolError as exc:
            self._drop(client_id, ErrorCode.MALFORMED, str(exc))
            return
        if frame is None:
            return  # a type this version does not know: skipped by length
        message = frame.message
        if isinstance(message, Control):
            self._on_control(message)
        elif isinstance(message, CaptureRequest):
            handler = self._capture_handler
            answer = _disabled(message) if handler is None else handler(client_id, message)
            if answer is not None:
                self.send_to(client_id, answer)
        elif isinstance(message, ActionRequest):
            act = self._action_handler
            result = _no_actions(message) if act is None else act(client_id, message)
            if result is not None:
                self.send_to(client_id, result)
        elif isinstance(message, Hello):
            self._on_hello(client_id, client, message)
        elif isinstance(message, ErrorReport):
            self._drop(client_id, None, "")
        else:
            name = type(message).__name__
            self._drop(client_id, ErrorCode.MALFORMED, f"a viewer may not send {name}")

    def _on_hello(self, client_id: int, client: _Client, hello: Hello) -> None:
        if client.hello_seen:
            self._drop(client_id, ErrorCode.MALFORMED, "HELLO sent twice")
            return
        client.hello_seen = True
        problem = handshake.viewer_hello_problem(hello, token=None, challenge=None)
        if problem is not None:
            self._drop(client_id, problem.code, problem.text)

    def _on_control(self, request: Control) -> None:
        errors = request_errors(request)
        if request.full_rank is not None:
            relay = Capability.RANK_RELAY in self.capabilities
            errors += full_rank_errors(request.full_rank, self.world_size if relay else 0)
        if len(self._pending) >= _MAX_PENDING:
            errors.append("too many CONTROL requests waiting for the next step; try again")
        if not errors:
            self._pending.append(request)
            return
        publisher = self._publisher
        assert publisher is not None
        with publisher.lock:
            ack = ControlAck(request.request_id, False, self._state, clip_text("; ".join(errors)))
            publisher.broadcast(ack)

    def _on_flood(self, client_id: int, raw: bytes, *, answer: bool) -> None:
        """Count a CONTROL dropped unread; ``answer``: refuse it, to its viewer alone."""
        self.controls_dropped += 1
        publisher = self._publisher
        if answer and publisher is not None and len(raw) >= HEADER_SIZE + 4:
            request_id = int.from_bytes(raw[HEADER_SIZE : HEADER_SIZE + 4], "little")
            text = (
                f"more than {CONTROL_RATE_HZ:g} CONTROL requests a second: "
                "the rest are dropped unanswered"
            )
            publisher.send_to(client_id, ControlAck(request_id, False, self._state, text))
        now = time.monotonic()
        when, logged = self._flood_logged
        if now - when >= _FLOOD_LOG_S:
            self._flood_logged = (now, self.controls_dropped)
            log.warning(
                "a viewer sends more than %g CONTROL requests a second: dropping them unread "
                "(%d since the last line)",
                CONTROL_RATE_HZ,
                self.controls_dropped - logged,
            )

    def _drop(self, client_id: int, code: ErrorCode | None, text: str) -> None:
        """Close one client, after sending it ERROR(code, text) when a code is given."""
        pump, publisher = self._pump, self._publisher
        assert pump is not None and publisher is not None
        log.info("closing client %d: %s", client_id, text or "it reported an error")
        if code is not None and publisher.send_to(client_id, ErrorReport(code, clip_text(text))):
            with self._lock:
                self._closing[client_id] = time.monotonic() + _ERROR_FLUSH_S
            return
        self._remove(client_id)

    def _finish_closing(self) -> None:
        """Remove the clients being closed whose ERROR has gone out (or whose time is up)."""
        pump = self._pump
        assert pump is not None
        stats = pump.stats()
        flushed = {c.client_id for c in stats.clients if c.bytes_queued == 0}
        now = time.monotonic()
        with self._lock:
            done = [
                cid
                for cid, deadline in self._closing.items()
                if now >= deadline or (stats.ring_used_bytes == 0 and cid in flushed)
            ]
        for client_id in done:
            self._remove(client_id)

    def _remove(self, client_id: int) -> None:
        pump = self._pump
        assert pump is not None
        with self._lock:
            self._clients.pop(client_id, None)
            self._closing.pop(client_id, None)
        _quietly(pump.remove_client, client_id)


class _Client:
    """What the server remembers of a connected viewer."""

    __slots__ = ("controls", "hello_seen")

    def __init__(self, hello_seen: bool) -> None:
        self.hello_seen = hello_seen
        self.controls = ControlThrottle()


def _disabled(request: CaptureRequest) -> CaptureDone:
    """The answer of a trainer that did not opt in to captures."""
    text = "capture is off in this trainer: attach(model, capture=True) to allow it"
    return CaptureDone(request.request_id, CaptureStatus.DISABLED, text=text)


def _no_actions(request: ActionRequest) -> ActionResult:
    """The answer of a trainer whose script registered no actions."""
    text = "this trainer offers no actions (probe.on_request registers them)"
    return ActionResult(request.request_id, ActionStatus.REFUSED, text=text)


def _host_of(peer: object) -> str:
    """The address part of an ``accept`` peer (what failed proofs are counted against)."""
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)


def _quietly(call: Callable[..., object], *args: object) -> None:
    with contextlib.suppress(OSError, NativeError):
        call(*args)
