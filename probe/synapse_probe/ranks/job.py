"""One stream for a whole torch.distributed job: the ranks' records reduced, one rank serving.

Every rank's probe hands its measured steps to a ``Job`` instead of a server. The ``Job``
reduces them with collectives on a process group of its own (gloo on CPU, NCCL when the job
runs NCCL), issued with ``async_op=True`` and waited on by the job's own thread, never by the
training thread. The serving rank (``serve_rank``) runs the one server of the job and sends,
per measured step, the merged LAYER_SUMMARY_BATCH (header flag ``JOB``), RANK_SKEW and
JOB_STATUS, then its own other frames (sparse, lenses, metrics).

**One rank in full.** A viewer's CONTROL ``FULL_RANK`` names a rank; the plan carries it, so
from the same step on every rank that rank (when it is not the serving rank) sends its step
frames (sparse, lenses), encoded, to the serving rank with point-to-point ops on the job's
group (size, then bytes), and the serving rank broadcasts them with that rank in the header
(flag ``JOB``). The other ranks send nothing more.

**The same steps on every rank.** Step ``s`` is measured when ``s % interval == 0``. The plan
(interval, threshold, top-k, site kinds, paused) is the serving rank's: it rides in every
reduction (a max-reduction where the other ranks put -inf), and a plan reduced with step ``s``
takes effect at step ``apply_at(s)``, the second multiple of ``EPOCH`` after ``s``, on every
rank. A rank whose reductions are still unfinished at that step turns its probe off rather than
guess (``OUT_OF_STEP``), and every reduction checks that the ranks agree on the step.

**A capture on every rank.** A viewer's CAPTURE_REQUEST to the serving rank (``propose_capture``)
rides in the reductions too: a serial, the request id and the site ids (-1 padding), max-reduced
like the plan, so every rank arms the same capture at the same step ``apply_at(s)``
(``capture_due``) and writes its own file.

**A rank that dies or stalls.** Each wait has a deadline (``timeout``). When a collective
fails or times out, the probe turns itself off on every rank (its rank's reductions stop, so
the others fail too), logs why, and the serving rank names the lost rank in JOB_STATUS: the
live ranks write a key in the job's store, and the first rank that wrote none within the
timeout and two seconds is the lost one.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from synapse_native.protocol import (
    NO_FULL_RANK,
    NO_RANK,
    SUMMARY_DTYPE,
    ControlState,
    HeaderFlag,
    JobState,
    JobStatus,
    LayerSummaryBatch,
    Message,
    ModelMeta,
    RankSkew,
)
from synapse_serve import job_merge
from synapse_serve.job_merge import Rows

from ..capture import DEFAULT_MAX_SITES
from . import relay_frames

log = logging.getLogger(__name__)

EPOCH = 16  # plans change only at multiples of this step number
DEFAULT_TIMEOUT = 60.0
MAX_INTERVAL = 1 << 16
NAMING_WAIT_S = 2.0  # past the timeout, how long the serving rank waits for the live ranks
STATUS_EVERY_S = 2.0  # JOB_STATUS repeated this often once the job's probe is off
_PLAN = 9  # plan fields in the max-reduced head: version, interval, ControlState (6), relay
CAPTURE_SITES = DEFAULT_MAX_SITES  # site ids one capture carries
_CAPTURE = _PLAN  # capture fields: serial, request id, CAPTURE_SITES site ids
_STEP = _CAPTURE + 2 + CAPTURE_SITES
_NEG_STEP = _STEP + 1
_HEAD_MAX = _STEP + 2
_jobs_made = 0  # every rank makes its jobs in the same order: a per-process count names them


def apply_at(step: int) -> int:
    """The step from which a plan reduced with ``step`` is in force on every rank."""
    return (step // EPOCH + 2) * EPOCH


def wanted_interval(rate_hz: float, step_ns: float) -> int:
    """The power-of-two interval that keeps measured steps at most ``rate_hz`` a second."""
    if not step_ns > 0 or math.isinf(rate_hz):
        return 1
    if not rate_hz > 0:
        return MAX_INTERVAL
    x = 1e9 / (rate_hz * step_ns)
    return 1 if x <= 1 else min(MAX_INTERVAL, 1 << math.ceil(math.log2(x)))


@dataclass(frozen=True, slots=True)
class Plan:
    """What every rank measures, from a step on."""

    version: int
    interval: int
    control: ControlState
    relay: int = NO_RANK  # the rank whose full frames the serving rank relays

    def row(self) -> list[float]:
        c = self.control
        return [
            float(self.version),
            float(self.interval),
            float(c.threshold),
            float(c.rate_hz),
            float(c.site_kinds),
            float(c.paused),
            float(c.top_k),
            float(c.threshold_mode),
            float(self.relay),
        ]

    @staticmethod
    def of(row: Sequence[float]) -> Plan:
        version, interval, threshold, rate, kinds, paused, top_k, mode, relay = row
        control = ControlState(threshold, rate, int(kinds), bool(paused), int(top_k), int(mode))
        return Plan(int(version), max(1, int(interval)), control, int(relay))


@dataclass(frozen=True, slots=True)
class JobCapture:
    """A capture every rank takes at the same step (the serving rank's viewer asked for it)."""

    serial: int
    request_id: int
    site_ids: tuple[int, ...]

    def row(self) -> list[float]:
        ids = [float(i) for i in self.site_ids[:CAPTURE_SITES]]
        ids += [-1.0] * (CAPTURE_SITES - len(ids))
        return [float(self.serial), float(self.request_id), *ids]

    @staticmethod
    def of(row: Sequence[float]) -> JobCapture:
        serial, request_id, *ids = row
        return JobCapture(int(serial), int(request_id), tuple(int(i) for i in ids if i >= 0))


class JobStopped(Exception):
    """The job's reductions cannot go on (a rank lost, the ranks out of step)."""

    def __init__(self, state: JobState, text: str) -> None:
        super().__init__(text)
        self.state = state


class Job:
    """A rank's part of the job stream; what the probe sees of it is a server (``ServerLike``)
    plus ``due`` and ``no_data`` at step boundaries."""

    def __init__(
        self,
        *,
        meta: ModelMeta,
        control: ControlState,
        grads: bool,
        serve_rank: int = 0,
        timeout: float = DEFAULT_TIMEOUT,
        start_server: Callable[[], Any] | None = None,
        interval_source: Callable[[], int] | None = None,
    ) -> None:
        global _jobs_made
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError("a job stream needs torch.distributed initialised")
        if not timeout > 0:
            raise ValueError(f"job_timeout must be > 0 seconds, got {timeout}")
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        if not 0 <= serve_rank < self.world_size:
            raise ValueError(f"serve_rank {serve_rank} is not a rank of this job")
        self.serve_rank = serve_rank
        self.serving = self.rank == serve_rank
        self.timeout = timeout
        self.rows = Rows(_capacity(len(meta.sites)), grads)
        _jobs_made += 1
        self._tag = f"synapse/job/{_jobs_made}"
        nccl = dist.get_backend() == "nccl" and torch.cuda.is_available()
        self._device = torch.device("cuda", torch.cuda.current_device()) if nccl else None
        # A collective itself: every rank attaches its probe, in the same order.
        self._group: Any = dist.new_group(
            backend="nccl" if nccl else "gloo", timeout=timedelta(seconds=timeout)
        )
        self._store = _default_store()
        self.server: Any = start_server() if self.serving and start_server else None
        self._interval_source = interval_source
        self._plan = Plan(0, 1, control)  # in force on this rank
        self._proposed = control  # the serving rank's control state, sent with each reduction
        self._adopted: ControlState | None = None  # to hand to the probe at its next poll
        self._version = 0  # of the plans this (serving) rank proposed
        self._sent: tuple[int, ControlState, int] | None = None
        self._last_version = 0  # of the last plan reduced
        self._capture_wanted: JobCapture | None = None  # the serving rank's, set by its server
        self._last_capture = 0  # serial of the last capture reduced
        self._captures: deque[tuple[int, JobCapture]] = deque()  # (at step, capture), job thread
        self.state = JobState.RUNNING
        self.status = JobStatus(self.world_size, JobState.RUNNING, serve_rank)
        self.rounds = 0  # reductions completed
        self.round_ns = 0  # time they took, summed (job thread)
        self.off = False  # read by the training thread: once True, nothing is measured
        self._cv = threading.Condition()
        self._planned: deque[tuple[int, bool, int]] = deque()  # (step, sync only, relay)
        self._waiting: deque[int] = deque()  # planned steps not yet reduced, training thread's
        self._data: dict[int, Sequence[Message] | None] = {}
        self._plans: deque[tuple[int, Plan]] = deque()  # (from step, plan), from the job thread
        self._done_through = -1
        self._last_good_ns = time.time_ns()
        self._boundaries: deque[int] = deque(maxlen=EPOCH)
        self._last_boundary: int | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="synapse-job", daemon=True)
        self._thread.start()

    # -- training thread ------------------------------------------------------------------------

    def due(self, step: int) -> bool:
        """At the boundary before ``step``: whether it is measured (the same on every rank)."""
        now = time.perf_counter_ns()
        if self._last_boundary is not None:
            self._boundaries.append(now - self._last_boundary)
        self._last_boundary = now
        if self.off:
            return False
        while self._plans and self._plans[0][0] <= step:
            _, plan = self._plans.popleft()
            if plan.control != self._plan.control:
                self._adopted = plan.control
            self._plan = plan
        while self._waiting and self._waiting[0] <= self._done_through:
            self._waiting.popleft()
        if self._waiting and apply_at(self._waiting[0]) <= step:
            self._stop_here(
                JobState.OUT_OF_STEP,
                f"the reductions of step {self._waiting[0]} were still running at step {step}",
            )
            return False
        plan = self._plan
        if step % plan.interval:
            return False
        paused = plan.control.paused
        self._waiting.append(step)
        with self._cv:
            self._planned.append((step, paused, plan.relay))  # paused: reduce the plan only
            self._cv.notify()
        return not paused

    @property
    def relayed(self) -> bool:
        """Whether this rank's full frames are relayed at the step in force (not the serving
        rank's: its own frames are sent anyway)."""
        return self._plan.relay == self.rank and not self.serving

    def propose_capture(self, request_id: int, site_ids: Sequence[int]) -> None:
        """The serving rank's server accepted a capture: it rides with the next reduction."""
        if len(site_ids) > CAPTURE_SITES:
            raise ValueError(f"a job capture carries at most {CAPTURE_SITES} sites")
        serial = self._capture_wanted.serial + 1 if self._capture_wanted is not None else 1
        self._capture_wanted = JobCapture(serial, request_id, tuple(site_ids))

    def capture_due(self, step: int) -> JobCapture | None:
        """At the boundary before ``step``: the capture to arm for it (the same on every rank)."""
        due = None
        while self._captures and self._captures[0][0] <= step:
            _, due = self._captures.popleft()  # a step skipped: the first boundary past it
        return None if self.off else due

    def no_data(self, step: int) -> None:
        """A measured step that will send nothing here (skipped or dropped): reduce it empty."""
        with self._cv:
            self._data[step] = None
            self._cv.notify()

    def poll_control(self) -> ControlState | None:
        """At a boundary: the plan's control state when it changed (the same step on every
        rank); on the serving rank, CONTROL requests are taken for the next reduction."""
        if self.server is not None:
            state = self.server.poll_control()
            if state is not None:
                self._proposed = state
        adopted, self._adopted = self._adopted, None
        return adopted

    def set_meta(self, meta: ModelMeta) -> None:
        if self.server is not None:
            self.server.set_meta(meta)

    def take_budget(self) -> float | None:
        """The serving rank's budget request (its governor sets the job's interval)."""
        take = getattr(self.server, "take_budget", None)
        return take() if take is not None else None

    def add_tap(self, tap: Callable[[Sequence[bytes]], None]) -> None:
        """Record the job stream (on the serving rank; nothing on the others)."""
        if self.server is not None:
            self.server.add_tap(tap)

    def remove_tap(self, tap: Callable[[Sequence[bytes]], None]) -> None:
        if self.server is not None:
            self.server.remove_tap(tap)

    # -- encoder thread -------------------------------------------------------------------------

    def broadcast_step(self, messages: Sequence[Message], *, step: int) -> int:
        """A measured step's frames: reduced (the summaries), then sent by the serving rank."""
        with self._cv:
            self._data[step] = list(messages)
            self._cv.notify()
        return len(messages)

    def broadcast(self, message: Message, *, step: int, flags: int = 0) -> bool:
        """Frames outside the step (training metrics): the serving rank's own are sent."""
        return bool(
            self.server is not None and self.server.broadcast(message, step=step, flags=flags)
        )

    def report_stats(self, probe_ns: int, steps_sampled: int, steps_seen: int) -> Any:
        if self.server is not None:
            return self.server.report_stats(probe_ns, steps_sampled, steps_seen)
        return None

    # -- owner ----------------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int] | None:
        address = getattr(self.server, "address", None)
        return address if isinstance(address, tuple) else None

    @property
    def client_count(self) -> int:
        count = getattr(self.server, "client_count", 0)
        return count if isinstance(count, int) else 0

    def close(self, timeout: float = 2.0) -> None:
        """Stop reducing (steps not yet reduced are left) and close the server."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join(timeout)
        if self.server is not None:
            self.server.close()

    # -- job thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._planned and not self._closing:
                    self._cv.wait(STATUS_EVERY_S if self.off else None)
                    if self.off and not self._planned:
                        self._send_status()
                if self._closing:
                    return
                step, sync_only, relay = self._planned.popleft()
                deadline = time.monotonic() + self.timeout / 4
                while step not in self._data and not sync_only and not self._closing:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
                messages = self._data.pop(step, None)
                for old in [s for s in self._data if s < step]:
                    del self._data[old]
            if self.off:
                continue
            start = time.perf_counter_ns()
            try:
                self._reduce(step, sync_only, messages, relay)
            except JobStopped as stop:
                self._stopped(stop.state, str(stop), step)
            except Exception as exc:  # a collective that failed: a rank died or left
                self._stopped(JobState.RANK_LOST, f"a reduction failed: {exc}", step)
            else:
                self.rounds += 1
                self.round_ns += time.perf_counter_ns() - start
                self._last_good_ns = time.time_ns()
            self._done_through = step

    def _reduce(
        self, step: int, sync_only: bool, messages: Sequence[Message] | None, relay: int
    ) -> None:
        """One measured step's reductions (see the module docstring for what goes where)."""
        rows, rank = self.rows, self.rank
        deadline = time.monotonic() + self.timeout
        summary = messages[0] if messages and isinstance(messages[0], LayerSummaryBatch) else None
        records = summary.records if summary is not None else np.zeros(0, SUMMARY_DTYPE)
        sums, extremes, values = job_merge.pack(records, rows)
        head = np.full(_HEAD_MAX, -np.inf)
        if self.serving:
            interval = self._wanted_interval(self._proposed.rate_hz)
            wanted = (interval, self._proposed, self._wanted_relay())
            if wanted != self._sent:
                self._sent, self._version = wanted, self._version + 1
            head[:_PLAN] = Plan(self._version, *wanted).row()
            if self._capture_wanted is not None:
                head[_CAPTURE:_STEP] = self._capture_wanted.row()
        head[_STEP], head[_NEG_STEP] = step, -step
        added = np.concatenate([[float(summary is not None)], job_merge.skew_sums(values).ravel()])
        largest = np.concatenate([head, extremes.ravel()])
        a = self._start(added, dist.ReduceOp.SUM)
        b = self._start(largest, dist.ReduceOp.MAX)
        c = None if sync_only else self._start(sums.ravel(), dist.ReduceOp.SUM, reduce=True)
        added, largest = self._wait(a, deadline), self._wait(b, deadline)
        if largest[_STEP] != step or -largest[_NEG_STEP] != step:
            raise JobStopped(
                JobState.OUT_OF_STEP,
                f"ranks reduced different steps ({-largest[_NEG_STEP]:.0f}..{largest[_STEP]:.0f})",
            )
        plan = Plan.of(largest[:_PLAN].tolist())
        if plan.version != self._last_version:
            self._last_version = plan.version
            self._plans.append((apply_at(step), plan))
        if largest[_CAPTURE] > self._last_capture:
            capture = JobCapture.of(largest[_CAPTURE:_STEP].tolist())
            self._last_capture = capture.serial
            self._captures.append((apply_at(step), capture))
        if c is None:
            return
        totals = added[1:].reshape(rows.count, job_merge.SKEW_COLS)
        keys = job_merge.skew_keys(job_merge.local_z(values, totals), rank)
        keys = self._wait(self._start(keys, dist.ReduceOp.MAX), deadline)
        won = job_merge.winner_value(keys, values, rank)
        e = self._start(won, dist.ReduceOp.SUM, reduce=True)
        summed, won = self._wait(c, deadline), self._wait(e, deadline)
        relayed: list[Message] = []
        if relay not in (NO_RANK, self.serve_rank):
            if rank == relay:
                self._relay_send(relay_frames.pack(messages or (), step=step, rank=rank), deadline)
            elif self.serving:
                relayed = relay_frames.unpack(self._relay_receive(relay, deadline))
        if not self.serving:
            return
        summed = summed.reshape(rows.count, job_merge.SUM_COLS)
        extremes = largest[_HEAD_MAX:].reshape(rows.count, 2)
        threshold = self._plan.control.threshold
        merged = job_merge.merged_records(summed, extremes, rows, threshold)
        present = np.flatnonzero(summed[:, job_merge.RANKS] > 0)
        skew = job_merge.skew_message_records(keys, won, totals, rows, present)
        reporting = int(added[0])
        self.status = JobStatus(
            self.world_size,
            self.state,
            self.serve_rank,
            last_step=step,
            ranks_reporting=reporting,
            full_rank=relay,
        )
        self._send(step, merged, skew, messages)
        if relayed:
            self.server.relay_step(relayed, step=step, rank=relay)

    def _send(
        self,
        step: int,
        merged: np.ndarray,
        skew: np.ndarray,
        messages: Sequence[Message] | None,
    ) -> None:
        server = self.server
        if server is None:
            return
        job = int(HeaderFlag.JOB)
        rest = list(messages[1:]) if messages else []
        if len(merged):
            server.broadcast(LayerSummaryBatch(merged), step=step, flags=job)
        server.broadcast(self.status, step=step)
        last = int(HeaderFlag.END_OF_STEP) if not rest else 0
        server.broadcast(RankSkew(self.world_size, skew), step=step, flags=job | last)
        if rest:
            server.broadcast_step(rest, step=step)

    def _relay_send(self, data: bytes, deadline: float) -> None:
        """This rank's full frames to the serving rank: their size, then (if any) the bytes."""
        size = torch.tensor([len(data)], dtype=torch.int64)
        self._wait(self._p2p(size, self.serve_rank, send=True), deadline)
        if data:
            tensor = torch.frombuffer(bytearray(data), dtype=torch.uint8)
            self._wait(self._p2p(tensor, self.serve_rank, send=True), deadline)

    def _relay_receive(self, source: int, deadline: float) -> bytes:
        """The relayed rank's full frames, as it sent them (empty: it had none)."""
        size = self._wait(self._p2p(torch.zeros(1, dtype=torch.int64), source), deadline)
        n = int(size[0])
        if not 0 <= n <= relay_frames.MAX_BYTES:
            raise JobStopped(JobState.OUT_OF_STEP, f"rank {source} relayed {n} bytes")
        if not n:
            return b""
        data = self._wait(self._p2p(torch.empty(n, dtype=torch.uint8), source), deadline)
        return data.tobytes()

    def _p2p(self, tensor: torch.Tensor, peer: int, *, send: bool = False) -> tuple[Any, Any]:
        if self._device is not None:
            tensor = tensor.to(self._device)
        op = dist.isend if send else dist.irecv
        return op(tensor, peer, group=self._group), tensor

    def _start(
        self, array: np.ndarray, op: Any, *, reduce: bool = False
    ) -> tuple[Any, torch.Tensor]:
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if self._device is not None:
            tensor = tensor.to(self._device)
        if reduce:
            work = dist.reduce(tensor, self.serve_rank, op=op, group=self._group, async_op=True)
        else:
            work = dist.all_reduce(tensor, op=op, group=self._group, async_op=True)
        return work, tensor

    def _wait(self, started: tuple[Any, torch.Tensor], deadline: float) -> np.ndarray:
        """The reduced array once its collective is done; JobStopped past the deadline."""
        work, tensor = started
        left = deadline - time.monotonic()
        if self._device is None and left > 0:  # gloo: wait on the work itself, bounded
            try:
                work.wait(timedelta(seconds=left))
            except RuntimeError as exc:
                if self._closing:
                    raise JobStopped(JobState.RUNNING, "the probe is closing") from None
                if time.monotonic() >= deadline:
                    raise JobStopped(
                        JobState.RANK_LOST, f"a reduction took longer than {self.timeout:g} s"
                    ) from None
                raise exc
            return tensor.numpy()
        pause = 5e-5  # NCCL: its wait does not block the host; poll the work
        while not work.is_completed():
            if self._closing:
                raise JobStopped(JobState.RUNNING, "the probe is closing")
            if time.monotonic() > deadline:
                raise JobStopped(
                    JobState.RANK_LOST, f"a reduction took longer than {self.timeout:g} s"
                )
            time.sleep(pause)
            pause = min(2 * pause, 0.005)
        work.wait()  # raises the collective's own error, if it failed
        return tensor.cpu().numpy() if self._device is not None else tensor.numpy()

    def _wanted_relay(self) -> int:
        """The rank a viewer asked to see in full (the serving rank's server keeps it)."""
        full_rank = getattr(self.server, "full_rank", NO_FULL_RANK)
        return full_rank if 0 <= full_rank < self.world_size else int(NO_RANK)

    def _wanted_interval(self, rate_hz: float) -> int:
        governed = self._interval_source() if self._interval_source is not None else 0
        if governed > 0:  # the governor's choice, once it has one; else the rate's
            return min(MAX_INTERVAL, int(governed))
        boundaries = sorted(self._boundaries)
        step_ns = boundaries[len(boundaries) // 2] if boundaries else 0
        interval = wanted_interval(rate_hz, step_ns)
        if step_ns > 0 and self.rounds:  # never more reductions than they can keep up with
            round_ns = self.round_ns / self.rounds
            interval = max(interval, wanted_interval(1e9 / (2 * round_ns), step_ns))
        return interval

    # -- stopping -------------------------------------------------------------------------------

    def _stop_here(self, state: JobState, text: str) -> None:
        """The training thread found this rank out of step: off here; the others follow."""
        self.off = True
        self.state = state
        log.error(
            "synapse: the job stream stopped on rank %d: %s; the probe is off", self.rank, text
        )
        with self._cv:
            self._cv.notify_all()

    def _stopped(self, state: JobState, text: str, step: int) -> None:
        if self._closing:
            return
        self.off = True
        self.state = state
        log.error(
            "synapse: the job stream stopped at step %d on rank %d: %s; the probe turns itself "
            "off (training goes on)",
            step,
            self.rank,
            text,
        )
        lost = self._name_lost_rank(state) if state == JobState.RANK_LOST else NO_RANK
        if lost != NO_RANK:
            text = f"rank {lost} stopped answering ({text})"
        self.status = JobStatus(
            self.world_size,
            state,
            self.serve_rank,
            rank=lost,
            last_step=self.status.last_step,
            ranks_reporting=self.status.ranks_reporting,
            since_ns=self._last_good_ns,
            text=text[:1000],
        )
        self._send_status()

    def _name_lost_rank(self, state: JobState) -> int:
        """Every live rank says so in the store; the serving rank names the first silent one."""
        store = self._store
        if store is None:
            return int(NO_RANK)
        try:
            store.set(f"{self._tag}/alive/{self.rank}", str(int(state)))
            if not self.serving:
                return int(NO_RANK)
            end = time.monotonic() + self.timeout + NAMING_WAIT_S  # the others' waits end too
            while True:
                silent = [
                    r for r in range(self.world_size) if not store.check([f"{self._tag}/alive/{r}"])
                ]
                if not silent or time.monotonic() > end:
                    return silent[0] if silent else int(NO_RANK)
                time.sleep(0.05)
        except Exception:  # the store went with the lost rank
            log.debug("synapse: cannot name the lost rank", exc_info=True)
            return int(NO_RANK)

    def _send_status(self) -> None:
        if self.server is not None:
            self.server.broadcast(self.status, step=self.status.last_step)


def _capacity(n_sites: int) -> int:
    """Rows per kind: the sites known at attach time and room for 64 more, to a multiple of 64."""
    return (n_sites + 64 + 63) // 64 * 64


def _default_store() -> Any:
    try:
        return dist.distributed_c10d._get_default_store()
    except Exception:
        return None
