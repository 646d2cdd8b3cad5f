"""Sparse frames decoded and applied in runs: the same state, and the same errors, as frame by
frame; the colour maps' fast path; the guard for PySide6 wheels that under-count None."""

from __future__ import annotations

import struct
import sys

import numpy as np
import pytest

from synapse_desktop.models.ordering import SeqGuard, Verdict
from synapse_desktop.models.session import Session
from synapse_desktop.models.sparse import SparseRun
from synapse_desktop.net.batch import decode_batch, decode_sparse_run
from synapse_desktop.net.coalesce import coalesce
from synapse_native.protocol import (
    Hello,
    ProtocolError,
    Role,
    SparseActivations,
    decode_frame,
    encode,
)

from .frames import ack, meta, summaries

_N_AT = 32 + 8  # offset of SPARSE_ACTIVATIONS' n (n_above follows)


def _sparse_raw(site: int, indices: list[int], *, seq: int, step: int, rank: int = 0) -> bytes:
    values = np.linspace(0.6, 3.0, len(indices)).astype(np.float32)
    message = SparseActivations(site, 0.5, len(indices), np.asarray(indices, np.uint32), values)
    return bytes(encode(message, seq=seq, step=step, rank=rank, timestamp_ns=1000 + seq))


def _stream(rng: np.random.Generator) -> list[bytes]:
    """A messy stream: meta, summaries, sparse runs with gaps, duplicates, late frames, an
    unknown site, another rank, and a trainer restart (HELLO, steps going back)."""
    raw = [encode(Hello(Role.TRAINER, "sim")), encode(meta(2), seq=0)]
    seq = 1
    for step in range(1, 9):
        raw.append(encode(summaries(list(range(6)), float(step)), seq=seq, step=step))
        seq += 1
        for site in rng.permutation(6).tolist():
            picked = np.sort(rng.choice(4096, int(rng.integers(0, 40)), replace=False))
            raw.append(_sparse_raw(site, picked.tolist(), seq=seq, step=step))
            seq += 1
        if step == 3:
            seq += 2  # a gap: the trainer dropped two frames
        if step == 4:
            raw.append(raw[-2])  # a duplicate
            raw.append(_sparse_raw(2, [5, 6], seq=seq - 5, step=step))  # late
        if step == 5:
            raw.append(_sparse_raw(40, [1, 2, 3], seq=seq, step=step))  # a site not in meta
            seq += 1
            raw.append(_sparse_raw(1, [9], seq=3, step=step, rank=1))  # another source
            raw.append(encode(ack(1, 0.5), seq=0))
        if step == 6:
            raw.append(_sparse_raw(1, [7], seq=seq, step=step - 3))  # new seq, older step
            seq += 1
        if step == 7:  # a replayed run (all stale), then one that is partly stale
            raw.append(encode(ack(2, 0.5), seq=0))
            raw.extend(raw[-8:-2])
            raw.append(encode(ack(3, 0.5), seq=0))
            raw.extend(
                _sparse_raw(site, [site], seq=seq - 2 + site, step=step) for site in range(4)
            )
            seq += 2
    raw.append(encode(Hello(Role.TRAINER, "sim")))  # the trainer restarts: steps go back
    raw.append(encode(meta(2), seq=0))
    for site in range(6):
        raw.append(_sparse_raw(site, [site, 100 + site], seq=1 + site, step=1))
    return raw


def _state(session: Session) -> tuple[object, ...]:
    points = [
        (p.step, p.threshold, p.n_above, p.indices.tolist(), p.values.tolist())
        for p in session.sparse.points
    ]
    c = session.counters
    return (
        points,
        [s.site_id for s in session.topology.sites],
        session.stats.steps.tolist(),
        (c.stale, c.seq_gaps, c.app_dropped, c.step, c.frames),
        round(c.lag_ms, 6),
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("chunk", [1, 7, 40, 1000])
def test_runs_of_sparse_frames_leave_the_state_frame_by_frame_would(seed: int, chunk: int) -> None:
    raw = _stream(np.random.default_rng(seed))
    one, batched = Session(), Session()
    for i in range(0, len(raw), chunk):
        part = raw[i : i + chunk]
        frames = [decode_frame(f) for f in part]
        one.apply_frames([f for f in frames if f is not None], now_ns=10**6)
        items = decode_batch(part)
        if chunk > 1 and sum(isinstance(x, SparseRun) for x in items):
            assert len(items) < len(part)  # runs did form
        batched.apply_frames(items, now_ns=10**6)
    assert _state(batched) == _state(one)
    assert one.counters.stale >= 2 and one.counters.seq_gaps >= 2


def test_a_coalesced_batch_keeps_stream_order_around_the_runs() -> None:
    raw = _stream(np.random.default_rng(5))[:40]
    keep, skipped = coalesce(raw)
    items = decode_batch(raw, keep, skipped)
    reference = list(skipped)
    for i in keep:
        reference[i] = decode_frame(raw[i])
    one, batched = Session(), Session()
    one.apply_frames([f for f in reference if f is not None], now_ns=10**6)
    batched.apply_frames(items, now_ns=10**6)
    assert _state(batched) == _state(one)
    assert batched.counters.app_dropped == len(raw) - len(keep)


def _corrupt(raw: bytes, how: str) -> bytes:
    frame = bytearray(raw)
    if how == "descending":
        first, second = struct.unpack_from("<II", frame, 48)
        struct.pack_into("<II", frame, 48, second, first)
    elif how == "n_above":
        n = struct.unpack_from("<I", frame, _N_AT)[0]
        struct.pack_into("<I", frame, _N_AT + 4, n - 1)
    elif how == "trailing":
        frame += bytes(8)
    elif how == "truncated":
        del frame[-8:]
    elif how == "size":
        struct.pack_into("<I", frame, _N_AT, struct.unpack_from("<I", frame, _N_AT)[0] + 1)
    return bytes(frame)


@pytest.mark.parametrize("how", ["descending", "n_above", "trailing", "truncated", "size"])
def test_a_bad_frame_in_a_run_is_reported_as_the_codec_reports_it(how: str) -> None:
    run = [_sparse_raw(site, [1, 5, 9], seq=1 + site, step=1) for site in range(4)]
    run[2] = _corrupt(run[2], how)
    with pytest.raises(ProtocolError) as codec:
        decode_frame(run[2])
    assert decode_sparse_run(run) is None
    with pytest.raises(ProtocolError) as ours:
        decode_batch(run)
    assert str(ours.value) == str(codec.value)


def test_a_run_crossing_frames_with_falling_indices_is_fine() -> None:
    run = [
        _sparse_raw(0, [100, 200], seq=1, step=1),
        _sparse_raw(1, [], seq=2, step=1),
        _sparse_raw(2, [5], seq=3, step=1),
        _sparse_raw(3, [1, 2], seq=4, step=1),
        _sparse_raw(4, [], seq=5, step=1),
    ]
    decoded = decode_sparse_run(run)
    assert decoded is not None and len(decoded) == 5
    assert [a.tolist() for a in decoded.indices] == [[100, 200], [], [5], [1, 2], []]
    assert decoded.seq == (1, 2, 3, 4, 5) and decoded.site_id == (0, 1, 2, 3, 4)


def test_judging_a_run_of_sequence_numbers_at_once() -> None:
    one, run = SeqGuard(), SeqGuard()
    for guard in (one, run):
        guard.check(0, 10)
    assert run.check_run(0, 14, 5) is Verdict.NEW
    assert [one.check(0, s) for s in range(14, 19)] == [Verdict.NEW] * 5
    assert (run.gaps, run.check(0, 19)) == (one.gaps, one.check(0, 19))
    assert run.check_run(0, 17, 3) is Verdict.LATE  # only the first judged: the caller goes on


def test_linear_colour_maps_take_a_fast_path_with_vispys_results() -> None:
    from synapse_desktop.models.view_settings import COLORMAPS
    from synapse_desktop.views.colors import colormap, map_values

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.random(2000), np.linspace(0, 1, 1001), [0, 1, np.nan]])
    x = x.astype(np.float32)
    known = ~np.isnan(x)
    for name in COLORMAPS:  # "fire" used to fail: vispy's maps take an (n, 1) column
        expected = np.empty((len(x), 4), np.float32)
        expected[known] = colormap(name).map(x[known][:, None])
        expected[~known] = (0.1, 0.2, 0.3, 1.0)
        np.testing.assert_array_equal(map_values(name, x, (0.1, 0.2, 0.3, 1.0)), expected)


def test_the_planes_tint_from_a_table_within_a_byte_of_the_map() -> None:
    from synapse_desktop.models.view_settings import COLORMAPS
    from synapse_desktop.views.colors import map_values, tint

    x = np.concatenate([np.random.default_rng(1).random(3000), [0, 1, np.nan]]).astype(np.float32)
    for name in COLORMAPS:
        exact, table = (
            map_values(name, x, (0.1, 0.2, 0.3, 1.0)),
            tint(name, x, (0.1, 0.2, 0.3, 1.0)),
        )
        assert np.abs(exact - table).max() < 0.5 / 255
        np.testing.assert_array_equal(table[-1], np.float32((0.1, 0.2, 0.3, 1.0)))


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from 3.12 (PEP 683)")
def test_none_outlives_pyside6_calls_that_under_count_it() -> None:
    import synapse_desktop  # noqa: F401  (pins on import)

    assert sys.getrefcount(None) > 1 << 39
    from PySide6.QtCore import QTimer

    timer = QTimer()
    for _ in range(1000):
        timer.stop()  # a void method: some wheels return None without a new reference
    assert sys.getrefcount(None) > 1 << 39
