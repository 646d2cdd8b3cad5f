"""Thinning a long recording: sparse frames and attention patterns at a lower rate."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .._wire import HeaderFlag, MsgType

SPARSE_TYPES = frozenset({int(MsgType.SPARSE_ACTIVATIONS)})
PATTERN_TYPES = frozenset({int(MsgType.ATTENTION), int(MsgType.RESIDUAL)})


class Thinner:
    """Keeps the sparse frames (``sparse_hz``) and the attention patterns with their residual
    tokens (``pattern_hz``) of at most that many steps per second of log time, per rank; every
    other frame passes. A step is kept or left out whole; a frame flagged END_OF_STEP is always
    kept, so the step still ends. None: keep every frame of that kind."""

    def __init__(self, sparse_hz: float | None = None, pattern_hz: float | None = None) -> None:
        for name, hz in (("sparse_hz", sparse_hz), ("pattern_hz", pattern_hz)):
            if hz is not None and not hz > 0:
                raise ValueError(f"{name} must be > 0, got {hz}")
        self._periods: dict[frozenset[int], int] = {}
        if sparse_hz is not None:
            self._periods[SPARSE_TYPES] = int(1e9 / sparse_hz)
        if pattern_hz is not None:
            self._periods[PATTERN_TYPES] = int(1e9 / pattern_hz)
        # (kind, rank) -> (step decided, kept?, log time of the last kept step)
        self._state: dict[tuple[frozenset[int], int], tuple[int, bool, int]] = {}
        self.left_out = 0

    @property
    def active(self) -> bool:
        return bool(self._periods)

    def keep(self, frame: bytes) -> bool:
        """Whether to record ``frame`` (a whole wire frame)."""
        msg_type = frame[6] | frame[7] << 8
        for kind, period in self._periods.items():
            if msg_type in kind:
                return self._decide(kind, period, frame)
        return True

    def filter(self, frames: Iterable[bytes]) -> Iterator[bytes]:
        return (f for f in frames if self.keep(f))

    def _decide(self, kind: frozenset[int], period: int, frame: bytes) -> bool:
        step = int.from_bytes(frame[24:28], "little")
        rank = frame[28] | frame[29] << 8
        t = int.from_bytes(frame[16:24], "little")
        key = (kind, rank)
        last = self._state.get(key)
        if last is not None and last[0] == step:
            kept = last[1]
        else:
            kept = last is None or t - last[2] >= period
            self._state[key] = (step, kept, t if kept or last is None else last[2])
        if kept or (frame[30] | frame[31] << 8) & HeaderFlag.END_OF_STEP:
            return True
        self.left_out += 1
        return False
