"""Training metrics (loss, learning rate, gradient norm...) on their way to TRAINING_METRICS.

``stage`` runs on the training thread and never waits for a device: Python numbers are written
straight into a slot's host buffer; tensors are copied on their own device into the slot's
staging tensor, then moved with one non-blocking copy per device into the host buffer (pinned
when a GPU is involved), and a CUDA event marks when that copy has landed. The encoder thread
waits for the event and reads the host buffer through a numpy view made when the buffer was
allocated, so no ``Tensor`` method that syncs runs on either thread.

Slots come from a small ring; when every slot is in use (the encoder is behind) the call is
dropped and counted, never waited on.
"""

from __future__ import annotations

import numbers
import threading
from collections import deque
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from synapse_native.protocol import MAX_METRICS, METRIC_NAME_SIZE, TrainingMetrics

RING_SIZE = 64  # metric calls waiting for or inside the encoder, at most
_U32_LIMIT = 1 << 32

MetricValue = float | int | torch.Tensor


class MetricsSlot:
    """One logging call: its step, its names, and where each value lands on the host."""

    def __init__(self, ring: MetricsRing, index: int) -> None:
        self.ring = ring
        self.index = index  # the slot's row in the ring's buffers
        self.step = 0
        self.names: tuple[str, ...] = ()
        self.positions: list[int] = []  # host index of each name's value
        self.pinned = False
        self.host, self.values = ring.host_row(index, pinned=False)  # ``values`` aliases it
        self._events: dict[torch.device, Any] = {}
        self.pending: list[Any] = []  # CUDA events of this call's copies

    def host_buffer(self, pinned: bool) -> torch.Tensor:
        """The host row (``MAX_METRICS`` values), in pinned memory from the first GPU value on."""
        if pinned and not self.pinned:
            self.host, self.values = self.ring.host_row(self.index, pinned=True)
            self.pinned = True
        return self.host

    def staging(self, device: torch.device) -> torch.Tensor:
        """This slot's float64 staging row on ``device``."""
        return self.ring.staging_row(self.index, device)

    def mark_copy(self, device: torch.device) -> None:
        """Record, on ``device``'s current stream, the event the encoder waits for."""
        event = self._events.get(device)
        if event is None:
            new_event: Any = torch.cuda.Event
            event = self._events[device] = new_event()
        event.record(torch.cuda.current_stream(device))
        self.pending.append(event)

    def wait(self) -> None:
        """Block (the calling thread only) until every copy off a device has landed."""
        for event in self.pending:
            event.synchronize()

    def message(self) -> TrainingMetrics:
        """The logged values, in the order they were passed (read from numpy, not torch)."""
        values = self.values
        return TrainingMetrics(
            {name: float(values[at]) for name, at in zip(self.names, self.positions, strict=True)}
        )

    def release(self) -> None:
        """Give the slot back to its ring."""
        self.pending.clear()
        self.ring.release(self)


class MetricsRing:
    """A fixed number of slots; ``acquire`` never waits (None when all are in use).

    Each slot owns one row of ``MAX_METRICS`` values in buffers allocated once: plain host
    memory, pinned host memory from the first GPU value on, and a staging buffer per device.
    """

    def __init__(self, size: int = RING_SIZE) -> None:
        self._plain = np.zeros((size, MAX_METRICS), np.float64)
        self._plain_tensor = torch.from_numpy(self._plain)
        self._pinned: tuple[torch.Tensor, npt.NDArray[np.float64]] | None = None
        self._staging: dict[torch.device, torch.Tensor] = {}
        self._free = deque(MetricsSlot(self, i) for i in range(size))
        self._lock = threading.Lock()
        self.dropped = 0  # calls dropped because every slot was in use

    def acquire(self) -> MetricsSlot | None:
        with self._lock:
            return self._free.popleft() if self._free else None

    def release(self, slot: MetricsSlot) -> None:
        with self._lock:
            self._free.append(slot)

    def host_row(self, index: int, *, pinned: bool) -> tuple[torch.Tensor, npt.NDArray[np.float64]]:
        """Row ``index`` of the host buffer as a tensor and as the numpy array it aliases."""
        if not pinned:
            return self._plain_tensor[index], self._plain[index]
        if self._pinned is None:
            tensor = torch.empty(self._plain.shape, dtype=torch.float64, pin_memory=True)
            self._pinned = tensor, tensor.numpy()  # made now: the encoder only reads numpy
        tensor, array = self._pinned
        return tensor[index], array[index]

    def staging_row(self, index: int, device: torch.device) -> torch.Tensor:
        """Row ``index`` of the staging buffer on ``device`` (allocated on first use)."""
        buffer = self._staging.get(device)
        if buffer is None:
            buffer = torch.empty(self._plain.shape, dtype=torch.float64, device=device)
            self._staging[device] = buffer
        return buffer[index]


def check(step: int, values: dict[str, Any]) -> None:
    """Raise ValueError or TypeError for what TRAINING_METRICS cannot carry (before any work)."""
    if not 0 <= step < _U32_LIMIT:
        raise ValueError(f"step must be in [0, 2**32), got {step}")
    if len(values) > MAX_METRICS:
        raise ValueError(f"at most {MAX_METRICS} metrics per call, got {len(values)}")
    for name, value in values.items():
        try:
            size = len(name.encode("utf-8"))
        except UnicodeEncodeError:
            size = 0
        if not 0 < size <= METRIC_NAME_SIZE or "\0" in name:
            raise ValueError(
                f"metric name {name!r} must be 1 to {METRIC_NAME_SIZE} bytes of UTF-8 without NUL"
            )
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ValueError(
                    f"metric {name!r} is a tensor of {value.numel()} elements; pass a scalar"
                )
            if value.is_complex():
                raise TypeError(f"metric {name!r} is a complex tensor")
        elif not isinstance(value, numbers.Real):
            raise TypeError(
                f"metric {name!r} must be a number or a one-element tensor, "
                f"got {type(value).__name__}"
            )


def stage(slot: MetricsSlot, step: int, values: dict[str, Any]) -> None:
    """Fill ``slot`` with ``values`` (checked by ``check``) without waiting for any device.

    Host layout: the Python numbers first, then the tensors grouped by device, so that each
    device's values leave it in one copy.
    """
    slot.step = step
    slot.names = tuple(values)
    slot.pending.clear()
    plain: list[tuple[int, float]] = []
    by_device: dict[torch.device, list[tuple[int, torch.Tensor]]] = {}
    for i, value in enumerate(values.values()):
        if isinstance(value, torch.Tensor):
            by_device.setdefault(value.device, []).append((i, value))
        else:
            plain.append((i, float(value)))
    on_gpu = any(device.type == "cuda" for device in by_device)
    host = slot.host_buffer(pinned=on_gpu)
    positions = [0] * len(values)
    for at, (i, number) in enumerate(plain):
        slot.values[at] = number
        positions[i] = at
    at = len(plain)
    with torch.no_grad():
        for device, tensors in by_device.items():
            n = len(tensors)
            on_host = device.type == "cpu"
            target = host[at : at + n] if on_host else slot.staging(device)[:n]
            for j, (i, tensor) in enumerate(tensors):
                target[j : j + 1].copy_(tensor.detach().reshape(1))
                positions[i] = at + j
            if device.type == "cuda":
                host[at : at + n].copy_(target, non_blocking=True)
                slot.mark_copy(device)
            elif device.type != "cpu":
                host[at : at + n].copy_(target)  # other accelerators: a plain (waiting) copy
            at += n
    slot.positions = positions
