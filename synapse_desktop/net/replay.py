"""Seeking in a run: the session is made to show the state at any step from frames alone.

A replay is a live session read back: to show step S the session forgets its data
(``Session.rewind``) and is fed again, as one batch, the MODEL_META in force and the frames of
the ``window_steps`` steps up to S. The stores behind the docks are bounded windows themselves
(history, heatmaps), so a window of steps rebuilds what they show; the sparse points fade by
half at each step, so sparse frames are applied for the last ``sparse_steps`` steps only. The
alert detectors do not watch the replayed frames (``detect``): the alerts of a run come from
its index. Playing forward applies the frames of the new steps to the state already there.
``bench/bench_replay.py`` measures a seek; its cost is about linear in ``window_steps``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from synapse_desktop.models.frame_log import frame_step, frame_type
from synapse_desktop.models.session import Session
from synapse_desktop.net.batch import Item, decode_batch
from synapse_native.protocol import HEADER_SIZE, ProtocolError, decode_frame, header_fields

WINDOW_STEPS = 64
SPARSE_STEPS = 4
_SPARSE = 4  # MsgType.SPARSE_ACTIVATIONS


class FrameSource(Protocol):
    """Whole frames of one run by step: a recording on disk, or what a live session kept."""

    def steps(self) -> Sequence[int]:
        """The steps that have frames, ascending."""
        ...

    def window(self, first: int, last: int) -> Iterable[bytes]:
        """The frames of steps ``first`` to ``last`` (both held), in stream order."""
        ...

    def meta(self, step: int) -> bytes | None:
        """The MODEL_META frame in force before the first frame of ``step``."""
        ...

    def rate(self) -> float:
        """Steps per second as the trainer sent them (0: unknown): playback's 1x."""
        ...


class Replay:
    """Shows the steps of ``source`` in ``session``: ``seek`` anywhere, ``advance`` forward."""

    def __init__(
        self,
        session: Session,
        source: FrameSource,
        *,
        window_steps: int = WINDOW_STEPS,
        sparse_steps: int = SPARSE_STEPS,
        detect: bool = False,
    ) -> None:
        if window_steps < 1 or not 1 <= sparse_steps <= window_steps:
            raise ValueError("need window_steps >= 1 and 1 <= sparse_steps <= window_steps")
        self.session = session
        self.source = source
        self.window_steps = window_steps
        self.sparse_steps = sparse_steps
        self.detect = detect  # run the alert detectors over the frames replayed
        self.position = -1  # the step shown (-1: none yet)
        self.bad_frames = 0  # frames that failed to decode, left out

    def held(self, step: int) -> int:
        """The held step shown for ``step``: the latest at or before it (else the first; -1:
        the source holds none)."""
        steps = self.source.steps()
        if not steps:
            return -1
        return steps[max(0, bisect_right(steps, step) - 1)]

    def seek(self, step: int) -> int:
        """Show ``step`` (see ``held``) from a rewound session; returns the step shown."""
        steps = self.source.steps()
        if not steps:
            return -1
        i = max(0, bisect_right(steps, step) - 1)
        target, first = steps[i], steps[max(0, i - self.window_steps + 1)]
        self.session.rewind()
        frames = list(self.source.window(first, target))
        meta = self.source.meta(first)
        if meta is not None:
            frames.insert(0, meta)
        self._apply(frames, steps[max(0, i - self.sparse_steps + 1)])
        self.position = target
        return target

    def advance(self, step: int) -> int:
        """Show ``step``: the frames after the step shown are applied to the state there
        (a seek when going back or far ahead); returns the step shown."""
        steps = self.source.steps()
        target = self.held(step)
        if target == self.position or target < 0:
            return self.position
        start = bisect_right(steps, self.position)
        end = bisect_right(steps, target)
        if self.position < 0 or target < self.position or end - start > self.window_steps // 2:
            return self.seek(target)
        frames = list(self.source.window(steps[start], target))
        self._apply(frames, steps[max(start, end - self.sparse_steps)])
        self.position = target
        return target

    def _apply(self, frames: list[bytes], sparse_from: int) -> None:
        """Apply ``frames`` as one batch, but the sparse ones of steps before ``sparse_from``
        (left out on purpose: not counted as drops)."""
        kept = [f for f in frames if frame_type(f) != _SPARSE or frame_step(f) >= sparse_from]
        items = self._decode(kept)
        newest = max((_timestamp(f) for f in frames[-4:]), default=0)
        anomalies = self.session.anomalies
        if not self.detect:
            self.session.anomalies = _UNWATCHED  # type: ignore[assignment]
        try:
            self.session.apply_frames(items, now_ns=newest or None)
        finally:
            self.session.anomalies = anomalies
        self.session.forgive_gaps(len(frames) - len(kept))
        self.session.counters.mark()
        self.session.counters.flush()

    def _decode(self, frames: list[bytes]) -> list[Item]:
        try:
            return decode_batch(frames)
        except ProtocolError:  # a damaged frame: take the others one by one
            items: list[Item] = []
            for frame in frames:
                try:
                    decoded = decode_frame(frame)
                except ProtocolError:
                    self.bad_frames += 1
                    continue
                if decoded is not None:
                    items.append(decoded)
            return items


class _Unwatched:
    """Stands in for the session's detectors while frames are replayed: on a window of steps
    they would find other alerts than over the whole run (a median needs its samples), so the
    alerts shown come from the run's index (``models.timeline.RunIndex``) instead."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return _nothing


def _nothing(*args: object) -> None:
    return None


_UNWATCHED = _Unwatched()


def _timestamp(frame: bytes) -> int:
    return header_fields(frame).timestamp_ns if len(frame) >= HEADER_SIZE else 0
