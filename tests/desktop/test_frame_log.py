"""The live frame log: whatever the frames' sizes, it holds the newest exactly, in order, within
its bound, and a window of steps is those steps' frames."""

from __future__ import annotations

import numpy as np
import pytest

from synapse_desktop.models.frame_log import FrameLog
from synapse_native.protocol import encode

from .frames import summaries


def _frames(count: int, seed: int) -> list[bytes]:
    """``count`` SUMMARY frames of steps 0, 1, ... with 1 to 40 records each (uneven sizes)."""
    sizes = np.random.default_rng(seed).integers(1, 40, count)
    return [
        encode(summaries(list(range(int(n))), float(step)), seq=step + 1, step=step)
        for step, n in enumerate(sizes)
    ]


def _held(log: FrameLog) -> list[bytes]:
    steps = log.steps()
    return log.window(steps[0], steps[-1]) if steps else []


@pytest.mark.parametrize("seed", range(6))
def test_the_ring_holds_the_newest_frames_exactly_within_its_bound(seed: int) -> None:
    frames = _frames(400, seed)
    bound = int(np.random.default_rng(seed).integers(5, 30)) * max(map(len, frames))
    log = FrameLog(max_bytes=bound)
    for start in range(0, len(frames), 7):  # batches of 7, as the reader hands them over
        log.append(frames[start : start + 7])
        held = _held(log)
        newest = frames[min(start + 7, len(frames)) - len(held) : start + 7]
        assert held == newest  # byte for byte, in order: a suffix of the stream
        assert log.nbytes == sum(map(len, held)) <= bound
        if sum(map(len, frames[: start + 7])) > bound:  # full: only the end gap is wasted
            assert log.nbytes >= bound - 2 * max(map(len, frames))
        last = min(start + 7, len(frames))
        assert list(log.steps()) == list(range(last - len(held), last))


def test_a_window_of_steps_is_those_steps_frames() -> None:
    frames = _frames(50, 7)
    log = FrameLog(max_bytes=10**6)
    log.append(frames)
    assert log.window(10, 12) == frames[10:13]
    assert log.window(49, 99) == frames[49:]
