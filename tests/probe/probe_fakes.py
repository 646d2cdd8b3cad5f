"""A stand-in for ``synapse_serve.server.Server`` that records what the probe sends."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import numpy as np

from synapse_native.protocol import (
    BlockGradNorms,
    ControlState,
    HeaderFlag,
    LayerSummaryBatch,
    ModelMeta,
    SparseActivations,
    TrainingMetrics,
)


class FakeServer:
    """Keeps every broadcast; ``poll_control`` hands out states queued with ``push_control``."""

    def __init__(self) -> None:
        self.messages: list[tuple[int, int, Any]] = []  # (step, flags, message)
        self.metas: list[ModelMeta] = []
        self.stats: list[tuple[int, int, int]] = []
        self.closed = False
        self._control: deque[ControlState] = deque()
        self._lock = threading.Lock()

    def broadcast_step(self, messages: list[Any], *, step: int) -> int:
        """Like ``Server.broadcast_step``: END_OF_STEP on the step's last frame."""
        with self._lock:
            for i, message in enumerate(messages):
                last = i == len(messages) - 1
                self.messages.append((step, int(HeaderFlag.END_OF_STEP) if last else 0, message))
        return len(messages)

    def broadcast(self, message: Any, *, step: int, flags: int = 0) -> bool:
        """Like ``Server.broadcast``: one frame, on its own."""
        with self._lock:
            self.messages.append((step, flags, message))
        return True

    def set_meta(self, meta: ModelMeta) -> None:
        self.metas.append(meta)

    def poll_control(self) -> ControlState | None:
        return self._control.popleft() if self._control else None

    def push_control(self, state: ControlState) -> None:
        self._control.append(state)

    def report_stats(self, probe_ns: int, steps_sampled: int, steps_seen: int) -> bool:
        self.stats.append((probe_ns, steps_sampled, steps_seen))
        return True

    def close(self) -> None:
        self.closed = True

    # -- views for assertions -------------------------------------------------------------------

    def summaries(self) -> list[tuple[int, np.ndarray]]:
        """(step, records) of every LAYER_SUMMARY_BATCH, in order."""
        return [(s, m.records) for s, _, m in self.messages if isinstance(m, LayerSummaryBatch)]

    def sparse(self) -> list[tuple[int, SparseActivations]]:
        return [(s, m) for s, _, m in self.messages if isinstance(m, SparseActivations)]

    def grad_norms(self) -> list[tuple[int, np.ndarray]]:
        """(step, norms) of every BLOCK_GRAD_NORMS, in order."""
        return [(s, m.norms) for s, _, m in self.messages if isinstance(m, BlockGradNorms)]

    def metrics(self) -> list[tuple[int, dict[str, float]]]:
        """(step, values) of every TRAINING_METRICS, in order."""
        with self._lock:
            return [(s, m.values) for s, _, m in self.messages if isinstance(m, TrainingMetrics)]

    def steps(self) -> list[int]:
        """Steps that were sent, in order (one per LAYER_SUMMARY_BATCH)."""
        return [s for s, _ in self.summaries()]

    def end_of_step_flags(self) -> list[int]:
        return [s for s, f, _ in self.messages if f & HeaderFlag.END_OF_STEP]
