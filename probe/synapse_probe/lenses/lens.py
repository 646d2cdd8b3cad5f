"""Lenses: extra per-step work (attention patterns, MoE routing...) plugged into the probe.

A lens hooks what it needs when it is built and does nothing until ``begin`` says the coming
step is measured. ``finish`` runs on the training thread at the end of a measured step: it starts
the non-blocking copies off the device and returns a capture; the encoder thread waits for the
capture, turns it into frames sent with the step's other frames, then releases it.

``HostMirror`` is the shared piece of plumbing: host copies (pinned when the source is on a GPU)
of a few device tensors, a CUDA event recorded after the copies, and numpy views on the host
memory made when it was allocated, so the encoder reads numpy only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

import numpy as np
import numpy.typing as npt
import torch

from synapse_native.protocol import Message

Hook = TypeVar("Hook", bound=Callable[..., None])


class LensCapture(Protocol):
    """One lens's share of a measured step, on its way to the encoder thread."""

    def wait(self) -> None:
        """Encoder thread: block until the copies off the device have landed."""
        ...

    def messages(self) -> list[Message]:
        """Encoder thread: the frames, built from host memory (arrays the frames may keep)."""
        ...

    def release(self) -> None:
        """Give the host memory back (called once, whether or not the capture was encoded)."""
        ...


class Lens(Protocol):
    """Per-step work of its own, driven by the probe's step boundaries."""

    def begin(self, step: int, measured: bool) -> None:
        """At a step boundary, once the sampler has decided whether ``step`` is measured."""
        ...

    def finish(self) -> LensCapture | None:
        """Training thread, end of a measured step: start the copies off the device."""
        ...

    def close(self) -> None:
        """Remove the lens's hooks."""
        ...


class HostMirror:
    """Host copies of named device tensors, reused from one step to the next.

    Each name owns a flat host buffer that grows as needed; ``copy`` writes into its front with
    ``non_blocking=True`` when the source is on a GPU, ``mark`` records the event the encoder
    waits for, ``array`` returns the numpy view of what was copied.
    """

    def __init__(self) -> None:
        self._host: dict[str, tuple[torch.Tensor, npt.NDArray[Any], bool]] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._events: dict[torch.device, Any] = {}
        self.pending: list[Any] = []  # events of this round's copies

    def copy(self, name: str, tensor: torch.Tensor) -> None:
        """Start copying ``tensor`` (any device) into the host buffer of ``name``."""
        on_gpu = tensor.device.type == "cuda"
        flat = self._buffer(name, tensor.numel(), tensor.dtype, pinned=on_gpu)
        flat[: tensor.numel()].view(tensor.shape).copy_(tensor, non_blocking=on_gpu)
        self._shapes[name] = tuple(tensor.shape)
        if on_gpu and tensor.device not in self._events:
            new_event: Any = torch.cuda.Event
            self._events[tensor.device] = new_event()

    def mark(self) -> None:
        """Record, on each used GPU's current stream, the event that tells the copies landed."""
        self.pending.clear()
        for device, event in self._events.items():
            event.record(torch.cuda.current_stream(device))
            self.pending.append(event)

    def wait(self) -> None:
        """Block (the calling thread only) until the copies have landed."""
        for event in self.pending:
            event.synchronize()

    def array(self, name: str) -> npt.NDArray[Any]:
        """What the last ``copy`` of ``name`` wrote, as a numpy view (shape of the source)."""
        shape = self._shapes[name]
        size = int(np.prod(shape, dtype=np.int64))
        return self._host[name][1][:size].reshape(shape)

    def _buffer(self, name: str, size: int, dtype: torch.dtype, pinned: bool) -> torch.Tensor:
        found = self._host.get(name)
        if found is not None:
            tensor, _, was_pinned = found
            if tensor.numel() >= size and tensor.dtype == dtype and was_pinned == pinned:
                return tensor
        tensor = torch.empty(max(size, 1), dtype=dtype, pin_memory=pinned)
        self._host[name] = (tensor, tensor.numpy(), pinned)
        return tensor


class MirrorPool:
    """A fixed number of host mirrors; ``acquire`` never waits (None when all are in use)."""

    def __init__(self, size: int) -> None:
        self._free = [HostMirror() for _ in range(size)]
        self._lock = threading.Lock()

    def acquire(self) -> HostMirror | None:
        with self._lock:
            return self._free.pop() if self._free else None

    def release(self, mirror: HostMirror) -> None:
        with self._lock:
            self._free.append(mirror)


def outside_graphs(hook: Hook) -> Hook:
    """``hook`` wrapped so that torch.compile never traces it: it always runs in eager Python
    and reads the probe's flags at run time (a graph break per call, see docs/PROBE.md)."""
    disable: Any = torch.compiler.disable
    return cast(Hook, disable(hook))
