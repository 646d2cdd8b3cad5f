"""The job stream's own messages: RANK_SKEW (36) and JOB_STATUS (37), layout and codec.

A job's serving rank sends them next to the merged LAYER_SUMMARY_BATCH (header flag ``JOB``);
``docs/PROTOCOL.md`` sections 5.16 and 5.17 specify the bytes. The codec functions follow the
same rules as the others (``_encode``/``_decode`` dispatch to them): sizes checked before any
read, arrays decoded as read-only views on the frame.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from ._layout import decode_text, encode_text, padded, zero_padded
from ._wire import HEADER_SIZE, MAX_SITES, MAX_TEXT, MsgType, ProtocolError

NO_RANK = 0xFFFF  # a rank field that names no rank

SKEW_FIXED = struct.Struct("<IHH")  # then n_sites records
SKEW_FIELDS = ("n_sites", "world_size", "reserved")
SKEW_DTYPE = np.dtype(
    [
        ("site_id", "<u4"),
        ("rank", "<u2"),
        ("statistic", "u1"),
        ("flags", "u1"),
        ("z", "<f4"),
        ("value", "<f4"),
        ("others_mean", "<f4"),
        ("others_std", "<f4"),
    ],
    align=True,
)

JOB_STATUS_FIXED = struct.Struct("<HBBHHIIQHHI")  # then the text, zero-padded to 8
JOB_STATUS_FIELDS = (
    "world_size",
    "state",
    "reserved",
    "serve_rank",
    "rank",
    "last_step",
    "ranks_reporting",
    "since_ns",
    "text_len",
    "full_rank",
    "reserved",
)

assert SKEW_FIXED.size == 8 and SKEW_DTYPE.itemsize == 24
assert JOB_STATUS_FIXED.size == 32


class SkewStatistic(IntEnum):
    """Which per-rank statistic a RANK_SKEW record measures. Decoders keep unknown numbers."""

    RMS = 0  # root mean square of the site's finite elements
    MAX_ABS = 1  # largest |x|
    NONFINITE = 2  # share of NaN and infinite elements


class JobState(IntEnum):
    """JOB_STATUS ``state``. Decoders keep unknown numbers as plain ints."""

    RUNNING = 0  # every rank takes part in the reductions
    RANK_LOST = 1  # a rank stopped answering (``rank``, since ``since_ns``): the probe is off
    OUT_OF_STEP = 2  # the ranks disagreed on the measured steps or fell behind: the probe is off


@dataclass(frozen=True, slots=True, eq=False)
class RankSkew:
    """RANK_SKEW: per site, the rank farthest from the others and by how many of their spreads.

    ``records`` is a ``SKEW_DTYPE`` array: ``z = (value - others_mean) / others_std`` for the
    rank ``rank`` whose ``|z|`` is the largest over the ranks and the statistics, where
    ``others_*`` are the mean and standard deviation of that statistic over the *other* ranks.
    """

    TYPE: ClassVar[MsgType] = MsgType.RANK_SKEW

    world_size: int
    records: npt.NDArray[np.void]


@dataclass(frozen=True, slots=True)
class JobStatus:
    """JOB_STATUS: the health of a job's reductions, from its serving rank."""

    TYPE: ClassVar[MsgType] = MsgType.JOB_STATUS

    world_size: int
    state: JobState | int
    serve_rank: int
    rank: int = NO_RANK  # the rank concerned (the lost one), NO_RANK for none
    last_step: int = 0  # the last step merged over every rank
    ranks_reporting: int = 0  # ranks with data in that step
    since_ns: int = 0  # wall clock (ns since the epoch) when ``rank`` last answered; 0: unknown
    text: str = ""
    full_rank: int = NO_RANK  # the rank whose full frames are relayed (CONTROL FULL_RANK)


def skew_records(n: int) -> npt.NDArray[np.void]:
    """``n`` zeroed ``SKEW_DTYPE`` records for a producer to fill."""
    return np.zeros(n, SKEW_DTYPE)


def _check_u16(what: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or not 0 <= int(value) <= 0xFFFF:
        raise ProtocolError(f"{what} must be an integer in 0..65535, got {value!r}")
    return int(value)


def encode_rank_skew(m: RankSkew) -> tuple[int, list[bytes | memoryview]]:
    """RANK_SKEW payload: its size and the pieces to join."""
    records = np.ascontiguousarray(m.records)
    if records.dtype != SKEW_DTYPE:
        raise ProtocolError(f"RANK_SKEW records must have SKEW_DTYPE, got {records.dtype}")
    n = len(records)
    if n > MAX_SITES:
        raise ProtocolError(f"RANK_SKEW has {n} records (limit {MAX_SITES})")
    fixed = SKEW_FIXED.pack(n, _check_u16("RANK_SKEW world_size", m.world_size), 0)
    return SKEW_FIXED.size + records.nbytes, [fixed, records.tobytes()]


def encode_job_status(m: JobStatus) -> tuple[int, list[bytes | memoryview]]:
    """JOB_STATUS payload: its size and the pieces to join."""
    text = encode_text(m.text, "JOB_STATUS text", MAX_TEXT)
    state = int(m.state)
    if not 0 <= state <= 0xFF:
        raise ProtocolError(f"JOB_STATUS state must fit a u8, got {state}")
    try:
        fixed = JOB_STATUS_FIXED.pack(
            _check_u16("JOB_STATUS world_size", m.world_size),
            state,
            0,
            _check_u16("JOB_STATUS serve_rank", m.serve_rank),
            _check_u16("JOB_STATUS rank", m.rank),
            m.last_step,
            m.ranks_reporting,
            m.since_ns,
            len(text),
            _check_u16("JOB_STATUS full_rank", m.full_rank),
            0,
        )
    except struct.error as exc:
        raise ProtocolError(f"JOB_STATUS field out of range: {exc}") from None
    return JOB_STATUS_FIXED.size + padded(len(text)), [fixed, zero_padded(text)]


def decode_rank_skew(frame: memoryview, size: int) -> RankSkew:
    """RANK_SKEW from a whole frame whose payload is ``size`` bytes."""
    if size < SKEW_FIXED.size:
        raise ProtocolError(f"RANK_SKEW payload is {size} bytes, at least 8 expected")
    n, world_size, _ = SKEW_FIXED.unpack_from(frame, HEADER_SIZE)
    if n > MAX_SITES:
        raise ProtocolError(f"RANK_SKEW announces {n} records (limit {MAX_SITES})")
    if size != SKEW_FIXED.size + SKEW_DTYPE.itemsize * n:
        raise ProtocolError(f"RANK_SKEW payload is {size} bytes, 8 + 24 x {n} expected")
    records = np.frombuffer(frame, SKEW_DTYPE, n, HEADER_SIZE + SKEW_FIXED.size)
    return RankSkew(world_size, records)


_STATES = {int(s): s for s in JobState}


def decode_job_status(frame: memoryview, size: int) -> JobStatus:
    """JOB_STATUS from a whole frame whose payload is ``size`` bytes."""
    if size < JOB_STATUS_FIXED.size:
        raise ProtocolError(f"JOB_STATUS payload is {size} bytes, at least 32 expected")
    (world, state, _, serve, rank, last, reporting, since, text_len, full_rank, _) = (
        JOB_STATUS_FIXED.unpack_from(frame, HEADER_SIZE)
    )
    if text_len > MAX_TEXT:
        raise ProtocolError(f"JOB_STATUS text_len is {text_len} (limit {MAX_TEXT})")
    if size != JOB_STATUS_FIXED.size + padded(text_len):
        raise ProtocolError(f"JOB_STATUS payload is {size} bytes, 32 + {padded(text_len)} expected")
    text = decode_text(frame, HEADER_SIZE + JOB_STATUS_FIXED.size, text_len, "JOB_STATUS text")
    state = _STATES.get(state, state)
    return JobStatus(world, state, serve, rank, last, reporting, since, text, full_rank)
