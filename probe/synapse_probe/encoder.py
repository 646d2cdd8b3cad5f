"""The encoder thread: snapshots and metrics in (bounded, never blocking), protocol messages out.

The training thread only calls ``submit`` and ``submit_metrics``; waiting for the copy off the
GPU, turning slots into records, selecting sparse neurons and handing messages to the server all
happen here. Snapshots and metric calls share one queue, so they go out in the order submitted.
The lenses' captures (``lens.py``) ride with their step's snapshot: their frames join the step's
frames, and a dropped snapshot releases them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from synapse_native.protocol import (
    SUMMARY_DTYPE,
    BlockGradNorms,
    LayerSummaryBatch,
    Message,
    ProbeCost,
    SparseActivations,
    SummaryFlag,
)
from synapse_serve.selection import host_cut, relative

from .governor import CostReport
from .kernels.cpu_kernel import CpuKernel
from .metrics import MetricsSlot
from .records import sparse_message, summary_records
from .slots import ALL_INF, ALL_NAN, TOP
from .snapshot import DeviceRow, Snapshot

log = logging.getLogger(__name__)

QUEUE_SIZE = 2  # snapshots waiting (metric calls are bounded by their ring instead)


class Broadcaster(Protocol):
    """The part of the server the encoder talks to."""

    def broadcast_step(self, messages: Sequence[Message], *, step: int) -> int: ...

    def broadcast(self, message: Message, *, step: int, flags: int = 0) -> bool: ...

    def report_stats(self, probe_ns: int, steps_sampled: int, steps_seen: int) -> None: ...


class Encoder:
    """Owns the encoder thread. ``submit`` drops (and counts) when the queue is full."""

    def __init__(
        self,
        server: Broadcaster,
        cpu_kernel: CpuKernel | None,
        on_cost: Callable[[int, int], None] | None = None,
    ) -> None:
        self._server = server
        self._cpu_kernel = cpu_kernel
        self._on_cost = on_cost  # (step, CPU ns this thread spent encoding it)
        self._queue: queue.Queue[Snapshot | MetricsSlot | None] = queue.Queue()
        self._waiting = 0  # snapshots in the queue, at most QUEUE_SIZE
        self._waiting_lock = threading.Lock()
        self.dropped = 0  # snapshots refused because the queue was full
        self.encoded = 0  # snapshots turned into messages
        self._grad_norms: tuple[int, npt.NDArray[np.float64]] | None = None
        self._on_step: Callable[[int], None] | None = None
        # Runs on this thread after each item (the probe's recording drains its frames here).
        self.after_item: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._run, name="synapse-encoder", daemon=True)
        self._thread.start()

    def submit(self, snapshot: Snapshot) -> bool:
        """Queue a snapshot for encoding; False (snapshot released, drop counted) when full."""
        with self._waiting_lock:
            full = self._waiting >= QUEUE_SIZE
            if not full:
                self._waiting += 1
        if full:
            snapshot.release()
            self.dropped += 1
            return False
        self._queue.put_nowait(snapshot)
        return True

    def submit_metrics(self, slot: MetricsSlot) -> None:
        """Queue a filled metrics slot (its ring bounds how many can wait)."""
        self._queue.put_nowait(slot)

    def latest_block_grad_norms(self) -> tuple[int, npt.NDArray[np.float64]] | None:
        """(step, per-block parameter-gradient L2 norms) of the last step that measured them.

        The same norms go on the wire as BLOCK_GRAD_NORMS (in float32) with that step.
        """
        return self._grad_norms

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every submitted snapshot and metric call is sent; False on timeout."""
        done = threading.Event()

        def wait_for_queue() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait_for_queue, daemon=True).start()
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Encode what is queued, then stop the thread."""
        self._queue.put_nowait(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("synapse encoder did not drain in %.1f s; stopping it", timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if isinstance(item, MetricsSlot):
                    self._send_metrics(item)
                else:
                    with self._waiting_lock:
                        self._waiting -= 1
                    start = time.thread_time_ns()
                    self._encode(item)
                    if self._on_cost is not None:
                        self._on_cost(item.step, time.thread_time_ns() - start)
            except Exception:  # one bad step must not end the stream
                log.exception("synapse encoder failed on a step")
            finally:
                if item is not None:
                    item.release()
                self._after_item()
                self._queue.task_done()

    def _after_item(self) -> None:
        if self.after_item is not None:
            try:
                self.after_item()
            except Exception:
                log.exception("synapse encoder failed after a step")

    def _send_metrics(self, slot: MetricsSlot) -> None:
        slot.wait()
        self._server.broadcast(slot.message(), step=slot.step)

    def _encode(self, snapshot: Snapshot) -> None:
        snapshot.wait()
        messages: list[Message] = [LayerSummaryBatch(self._records(snapshot))]
        norms = snapshot.block_grad_norms()
        if norms is not None:
            with np.errstate(over="ignore"):  # beyond the f32 range: +inf, as on the wire
                messages.append(BlockGradNorms(norms.astype(np.float32)))
        if snapshot.cost is not None:
            messages.append(_cost_message(snapshot.cost))
        messages.extend(self._sparse(snapshot))
        messages.extend(self._lens_messages(snapshot))
        self._server.broadcast_step(messages, step=snapshot.step)
        if norms is not None:
            self._grad_norms = (snapshot.step, norms)
        self.encoded += 1
        self._server.report_stats(snapshot.probe_ns, snapshot.steps_sampled, snapshot.steps_seen)

    def _lens_messages(self, snapshot: Snapshot) -> list[Message]:
        """The frames of the step's lens captures (a capture that fails is left out, logged)."""
        messages: list[Message] = []
        for capture in snapshot.captures:
            try:
                capture.wait()
                messages.extend(capture.messages())
            except Exception:
                log.exception("synapse encoder failed on a lens capture")
        return messages

    def _records(self, snapshot: Snapshot) -> npt.NDArray[np.void]:
        parts = []
        if snapshot.native_rows:
            native = snapshot.buffer.records[[row.record for row in snapshot.native_rows]]
            if relative(snapshot.mode):
                self._select_native(snapshot, native)
            parts.append(native)
        if snapshot.device_rows:
            rows = snapshot.device_rows
            activations = snapshot.activation_slots()[:, :TOP]
            gradients = snapshot.gradient_slots()
            slots = np.stack([(gradients if r.gradient else activations)[r.site_id] for r in rows])
            parts.append(
                summary_records(
                    slots,
                    [r.site_id for r in rows],
                    [r.count for r in rows],
                    [r.gradient for r in rows],
                    snapshot.threshold,
                    snapshot.mode,
                    [r.neurons for r in rows],
                )
            )
            _mark_sampled(parts[-1], rows, slots)
        return np.concatenate(parts) if parts else np.zeros(0, SUMMARY_DTYPE)

    @staticmethod
    def _select_native(snapshot: Snapshot, records: npt.NDArray[np.void]) -> None:
        """A relative threshold mode on the native kernel's records: ``frac_above`` becomes the
        fraction of each site's neurons above its cut (the kernel counted elements against the
        threshold itself)."""
        for i, row in enumerate(snapshot.native_rows):
            means = snapshot.buffer.neurons[(row.site_id, row.gradient)]
            cut = host_cut(means, snapshot.mode, snapshot.threshold)
            if np.isfinite(records["mean"][i]):
                records["frac_above"][i] = np.count_nonzero(means > cut) / max(means.size, 1)

    def _sparse(self, snapshot: Snapshot) -> list[SparseActivations]:
        messages = []
        if snapshot.device_rows:
            activations = snapshot.activation_slots()
            for row in snapshot.device_rows:
                if not row.gradient:
                    slot = activations[row.site_id]
                    messages.append(
                        sparse_message(slot, row.site_id, row.k, snapshot.threshold, snapshot.mode)
                    )
        kernel = self._cpu_kernel
        for native in snapshot.native_rows:
            if native.gradient or kernel is None:
                continue
            means = snapshot.buffer.neurons[(native.site_id, False)]
            cut = host_cut(means, snapshot.mode, snapshot.threshold)
            messages.append(kernel.select(means, native.site_id, cut, native.top_k))
        return messages


def _cost_message(cost: CostReport) -> ProbeCost:
    return ProbeCost(
        budget=cost.budget,
        cost=cost.cost,
        interval=cost.interval,
        lens_interval=cost.lens_interval,
        step_ns=cost.step_ns,
        stats_ns=cost.stats_ns,
        lens_ns=cost.lens_ns,
    )


def _mark_sampled(
    records: npt.NDArray[np.void], rows: Sequence[DeviceRow], slots: npt.NDArray[np.float64]
) -> None:
    """Token-sampled rows: the whole tensor's element, NaN and inf counts, and SAMPLED."""
    sampled = np.array([r.total > 0 for r in rows])
    if not sampled.any():
        return
    records["count"][sampled] = [r.total for r in rows if r.total > 0]
    records["nan_count"][sampled] = slots[sampled, ALL_NAN]
    records["inf_count"][sampled] = slots[sampled, ALL_INF]
    records["flags"][sampled] |= int(SummaryFlag.SAMPLED)
