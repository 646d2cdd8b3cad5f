"""The probe's own health: PROBE_STATS (7) and PROBE_COST (20), layout and codec.

PROBE_STATS counts the probe's frames, queue and time on the training thread, with one record
per connected client; PROBE_COST is what the overhead governor measures the probe to cost.
``docs/PROTOCOL.md`` sections 5.7 and 5.7a specify the bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from ._layout import Payload, as_records, check_fixed, fail_size, field_codes, pack_fields
from ._wire import HEADER_SIZE, MsgType

P = HEADER_SIZE  # payload offset inside the frame

PROBE_STATS_FIXED = struct.Struct("<IIQQQQQQQ")  # then the client records
PROBE_STATS_FIELDS = (
    "n_clients",
    "reserved",
    "frames_encoded",
    "frames_dropped",
    "queue_bytes",
    "queue_capacity",
    "probe_ns",
    "steps_sampled",
    "steps_seen",
)
PROBE_CLIENT_DTYPE = np.dtype(
    [
        ("client_id", "<u4"),
        ("reserved", "<u4"),
        ("frames_sent", "<u8"),
        ("frames_dropped", "<u8"),
        ("bytes_sent", "<u8"),
    ],
    align=True,
)

PROBE_COST_FIXED = struct.Struct("<ffIIQQQ")
PROBE_COST_FIELDS = (
    "budget",
    "cost",
    "interval",
    "lens_interval",
    "step_ns",
    "stats_ns",
    "lens_ns",
)

assert len(field_codes(PROBE_STATS_FIXED)) == len(PROBE_STATS_FIELDS)
assert len(field_codes(PROBE_COST_FIXED)) == len(PROBE_COST_FIELDS)
assert PROBE_STATS_FIXED.size == 64 and PROBE_CLIENT_DTYPE.itemsize == 32
assert PROBE_COST_FIXED.size == 40


def probe_client_records(n: int) -> npt.NDArray[np.void]:
    """``n`` zeroed ``PROBE_CLIENT_DTYPE`` records for a producer to fill."""
    return np.zeros(n, PROBE_CLIENT_DTYPE)


def _no_clients() -> npt.NDArray[np.void]:
    return np.zeros(0, PROBE_CLIENT_DTYPE)


@dataclass(frozen=True, slots=True, eq=False)
class ProbeStats:
    """The probe's own health: queue, drops, time spent on the training thread, per client."""

    TYPE: ClassVar[MsgType] = MsgType.PROBE_STATS

    frames_encoded: int
    frames_dropped: int
    queue_bytes: int
    queue_capacity: int
    probe_ns: int
    steps_sampled: int
    steps_seen: int
    clients: npt.NDArray[np.void] = field(default_factory=_no_clients)


@dataclass(frozen=True, slots=True)
class ProbeCost:
    """PROBE_COST: what the probe costs the training step, as its overhead governor sees it."""

    TYPE: ClassVar[MsgType] = MsgType.PROBE_COST

    budget: float  # share of the step time allowed (0: governor off)
    cost: float  # estimated share of the step time the probe spends at its current plan
    interval: int  # statistics measured every ``interval`` steps
    lens_interval: int  # lenses every ``lens_interval`` steps (0: no lens)
    step_ns: int  # step time without the probe
    stats_ns: int  # cost of one measured step (training thread, encoder, GPU)
    lens_ns: int  # cost of the lenses on a step they run


def encode_probe_stats(m: ProbeStats) -> Payload:
    """PROBE_STATS payload: its size and the pieces to join."""
    clients = as_records(m.clients, PROBE_CLIENT_DTYPE, "PROBE_STATS clients")
    fixed_values = (
        *(len(clients), 0, m.frames_encoded, m.frames_dropped, m.queue_bytes),
        *(m.queue_capacity, m.probe_ns, m.steps_sampled, m.steps_seen),
    )
    fixed = pack_fields(PROBE_STATS_FIXED, "PROBE_STATS", PROBE_STATS_FIELDS, fixed_values)
    return PROBE_STATS_FIXED.size + clients.nbytes, [fixed, clients.data]


def encode_probe_cost(m: ProbeCost) -> Payload:
    """PROBE_COST payload: its size and the pieces to join."""
    fixed_values = (m.budget, m.cost, m.interval, m.lens_interval, m.step_ns, m.stats_ns, m.lens_ns)
    return PROBE_COST_FIXED.size, [
        pack_fields(PROBE_COST_FIXED, "PROBE_COST", PROBE_COST_FIELDS, fixed_values)
    ]


def decode_probe_stats(frame: memoryview, size: int) -> ProbeStats:
    """PROBE_STATS from a whole frame whose payload is ``size`` bytes."""
    check_fixed("PROBE_STATS", size, PROBE_STATS_FIXED.size)
    n_clients, _, encoded, dropped, queued, capacity, probe_ns, sampled, seen = (
        PROBE_STATS_FIXED.unpack_from(frame, P)
    )
    if size != PROBE_STATS_FIXED.size + n_clients * PROBE_CLIENT_DTYPE.itemsize:
        raise fail_size("PROBE_STATS", size, f"64 + {n_clients} x 32")
    clients = np.frombuffer(frame, PROBE_CLIENT_DTYPE, n_clients, P + PROBE_STATS_FIXED.size)
    return ProbeStats(encoded, dropped, queued, capacity, probe_ns, sampled, seen, clients)


def decode_probe_cost(frame: memoryview, size: int) -> ProbeCost:
    """PROBE_COST from a whole frame whose payload is ``size`` bytes."""
    if size != PROBE_COST_FIXED.size:
        raise fail_size("PROBE_COST", size, "40")
    return ProbeCost(*PROBE_COST_FIXED.unpack_from(frame, P))
