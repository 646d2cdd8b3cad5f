"""What a sampled step hands to the encoder thread: host buffers, and which rows hold what.

Host buffers come from a small pool and go back to it once encoded, so a slow encoder shows as
steps that are not measured (counted), never as a training thread that waits.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from synapse_native.protocol import SUMMARY_DTYPE

from .governor import CostReport
from .lenses.lens import LensCapture
from .slots import TOP


class HostBuffer:
    """Host memory for one step: slot copies (pinned when the slots live on a GPU), records
    written by the native CPU kernel, and per-neuron means for its sparse view."""

    def __init__(self) -> None:
        self.pinned = False
        self.slots: npt.NDArray[np.float64] = np.zeros(0, np.float64)
        self._slots_tensor: torch.Tensor | None = None
        self.records: npt.NDArray[np.void] = np.zeros(0, SUMMARY_DTYPE)
        self.neurons: dict[tuple[int, bool], npt.NDArray[np.float32]] = {}
        self.event: Any = None  # a torch.cuda.Event recorded after this step's copy, if any
        self._cuda_event: Any = None

    def slots_tensor(self, size: int, pinned: bool) -> torch.Tensor:
        """A host tensor of ``size`` float64 that aliases ``slots[:size]`` (pinned if asked)."""
        if self.slots.size < size or self.pinned != pinned:
            self.pinned = pinned
            if pinned:
                tensor = torch.empty(size, dtype=torch.float64, pin_memory=True)
                self.slots = tensor.numpy()
            else:
                self.slots = np.zeros(size, np.float64)
                tensor = torch.from_numpy(self.slots)
            self._slots_tensor = tensor
        assert self._slots_tensor is not None
        return self._slots_tensor[:size]

    def mark_copy(self, on_gpu: bool) -> None:
        """Record (on the current stream) the event that tells when the copy has landed."""
        if not on_gpu:
            self.event = None
            return
        if self._cuda_event is None:
            new_event: Any = torch.cuda.Event
            self._cuda_event = new_event()
        self._cuda_event.record()
        self.event = self._cuda_event

    def record(self, index: int) -> npt.NDArray[np.void]:
        """Record ``index`` (grown as needed) for the native kernel to write into."""
        if index >= self.records.size:
            grown = np.zeros(max(2 * self.records.size, index + 1, 16), SUMMARY_DTYPE)
            grown[: self.records.size] = self.records
            self.records = grown
        return self.records[index : index + 1]

    def neuron_means(self, key: tuple[int, bool], cols: int) -> npt.NDArray[np.float32]:
        """A float32 array of ``cols`` for one row's per-neuron mean |x| (reused across steps)."""
        array = self.neurons.get(key)
        if array is None or array.size != cols:
            array = self.neurons[key] = np.empty(cols, np.float32)
        return array


class HostPool:
    """A fixed number of host buffers; ``acquire`` never waits (None when all are in use)."""

    def __init__(self, size: int) -> None:
        self._free = [HostBuffer() for _ in range(size)]
        self._lock = threading.Lock()

    def acquire(self) -> HostBuffer | None:
        with self._lock:
            return self._free.pop() if self._free else None

    def release(self, buffer: HostBuffer) -> None:
        with self._lock:
            self._free.append(buffer)


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """A slot filled on the device (or by the torch fallback on CPU)."""

    site_id: int  # also the slot's row in its table
    gradient: bool
    count: int  # elements in the tensor
    k: int  # top-k entries written (0 for gradients)
    neurons: int = 1  # width of the neuron axis
    total: int = 0  # token-sampled: elements of the whole tensor (``count``: of the sample)


@dataclass(frozen=True, slots=True)
class NativeRow:
    """A record written by the native CPU kernel, with its per-neuron means."""

    site_id: int
    gradient: bool
    record: int  # index into HostBuffer.records
    top_k: int


@dataclass(slots=True)
class Snapshot:
    """One measured step, ready to encode once ``event`` (if any) has completed.

    ``buffer.slots`` holds a copy of the slot buffer: ``n_sites`` activation slots of ``width``
    entries, ``n_sites`` gradient slots of ``TOP`` entries, then ``n_norms`` block norms.
    """

    step: int
    buffer: HostBuffer
    pool: HostPool
    threshold: float
    mode: int = 0  # the ``ThresholdMode`` in force
    n_sites: int = 0
    width: int = 0
    device_rows: list[DeviceRow] = field(default_factory=list)
    native_rows: list[NativeRow] = field(default_factory=list)
    n_norms: int = 0  # 0 when this step measured no parameter gradients
    probe_ns: int = 0
    steps_sampled: int = 0
    steps_seen: int = 0
    captures: list[LensCapture] = field(default_factory=list)  # the lenses' share of the step
    cost: CostReport | None = None  # the governor's estimates, sent as PROBE_COST

    def wait(self) -> None:
        """Block (the calling thread only) until the copy off the device has landed."""
        if self.buffer.event is not None:
            self.buffer.event.synchronize()

    def activation_slots(self) -> npt.NDArray[np.float64]:
        """The copied activation slots, one row per site."""
        n = self.n_sites * self.width
        return self.buffer.slots[:n].reshape(self.n_sites, self.width)

    def gradient_slots(self) -> npt.NDArray[np.float64]:
        """The copied gradient slots, one row per site."""
        start = self.n_sites * self.width
        return self.buffer.slots[start : start + self.n_sites * TOP].reshape(self.n_sites, TOP)

    def block_grad_norms(self) -> npt.NDArray[np.float64] | None:
        """The per-block parameter-gradient L2 norms, when this step measured them."""
        if not self.n_norms:
            return None
        start = self.n_sites * (self.width + TOP)
        return self.buffer.slots[start : start + self.n_norms].copy()

    def release(self) -> None:
        """Give the host buffer back to its pool, and the lenses' captures to their lenses."""
        self.pool.release(self.buffer)
        for capture in self.captures:
            capture.release()
        self.captures = []
