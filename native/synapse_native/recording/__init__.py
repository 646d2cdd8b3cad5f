"""Recordings: wire frames in MCAP files (``docs/RECORDING.md`` is the specification).

Each MCAP message is one wire frame exactly as received, on one channel per (rank, message
type), logged at the frame's timestamp. ``RecordingWriter`` writes them (thread-confined);
``open_recording`` reads them back in log-time order, whole or damaged, with a step index
for seeking.
"""

from __future__ import annotations

from .._wire import STEP_TYPES
from ._format import topic
from ._reader import Recording, StepIndex, open_recording
from ._scan import RecordingError
from ._thin import Thinner
from ._writer import RecordingWriter, part_path

__all__ = [
    "STEP_TYPES",
    "Recording",
    "RecordingError",
    "RecordingWriter",
    "StepIndex",
    "Thinner",
    "open_recording",
    "part_path",
    "topic",
]
