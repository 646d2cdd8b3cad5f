"""The native kernels of the grid's busy tick against numpy references: sparse-run scanning and
point placement (slots, intensities, atlas texels, stale slots, per-site fading)."""

from __future__ import annotations

import numpy as np
import pytest

from synapse_native.errors import InvalidArgumentError
from synapse_native.grid import GRID_SITE, SPARSE_HEAD, place_points, scan_sparse
from synapse_native.protocol import MAX_PAYLOAD, SparseActivations, encode


def _intensity(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The numpy reference: log2 of value over threshold / 3, clamped to 0.05..1 (NaN -> 1)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log2(values.astype(np.float32) / thresholds.astype(np.float32))
    return np.fmax(np.fmin(ratio * np.float32(1 / 3), 1.0), 0.05).astype(np.float32)


def _table(shapes: list[tuple[int, int]], width: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Sites of (rows, cols) stacked down an atlas ``width`` wide, one row of padding apart."""
    table = np.zeros(len(shapes), GRID_SITE)
    top = 0
    for i, (rows, cols) in enumerate(shapes):
        table[i]["origin"] = (float(i), 0.5 - cols / 2.0, -0.5 - 3.0 * i)
        table[i]["cols"], table[i]["limit"] = cols, rows * cols
        table[i]["corner"] = top * width + 1
        top += rows + 1
    return table, np.zeros((top, width), np.uint8)


def _place(table, atlas, sites, counts, thresholds, indices, values, rows, held, faded, fades=0):  # type: ignore[no-untyped-def]
    return place_points(
        table,
        np.asarray(sites, np.int64),
        np.asarray(counts, np.int64),
        np.asarray(thresholds, np.float32),
        np.asarray(indices, np.uint32),
        np.asarray(values, np.float32),
        rows,
        held,
        atlas,
        faded,
        fades,
    )


def test_placement_matches_the_numpy_reference() -> None:
    rng = np.random.default_rng(7)
    shapes = [(64, 64), (112, 128), (3, 5), (1, 7)]
    table, atlas = _table(shapes)
    capacity = 512
    rows = np.full((len(shapes) * capacity, 2), 9.0, np.float32)
    held = np.full(len(shapes), capacity, np.int64)  # every slot held before: stale ones clear
    faded = np.zeros(len(shapes), np.int64)
    sites, counts, thresholds, indices, values = [3, 0, 1, 2], [], [], [], []
    for site in sites:
        r, c = shapes[site]
        n = min(r * c + 4, 300)
        chosen = np.sort(rng.choice(r * c + 10, n, replace=False))  # some past the grid
        v = rng.uniform(0.0, 6.0, n).astype(np.float32)
        v[:4] = (np.nan, 0.0, -1.0, np.inf)[: min(4, n)]
        counts.append(n)
        thresholds.append(rng.uniform(0.2, 1.0))
        indices.append(chosen)
        values.append(v)
    placed = _place(
        table,
        atlas,
        sites,
        counts,
        thresholds,
        np.concatenate(indices),
        np.concatenate(values),
        rows,
        held,
        faded,
    )
    expected_atlas = np.zeros_like(atlas)
    total = 0
    for site, t, idx, v in zip(sites, thresholds, indices, values, strict=True):
        r, c = shapes[site]
        inside = idx < r * c
        row, col = np.divmod(idx[inside], c)
        level = _intensity(v[inside], np.float32(t))
        got = rows[site * capacity : site * capacity + int(inside.sum())]
        np.testing.assert_array_equal(got[:, 0], idx[inside].astype(np.float32))
        np.testing.assert_allclose(got[:, 1], level, rtol=3e-7, atol=0)
        assert (rows[site * capacity + len(got) : (site + 1) * capacity, 1] == -1).all()
        assert held[site] == len(got)
        top, left = divmod(int(table[site]["corner"]), atlas.shape[1])
        expected_atlas[top + row, left + col] = (level * np.float32(255)).astype(np.uint8)
        total += len(got)
    assert placed == total
    assert np.abs(atlas.astype(int) - expected_atlas).max() <= 1  # an ulp of log2 may round
    assert (atlas != expected_atlas).mean() < 1e-3


def test_wide_grids_take_the_division_path() -> None:
    table, atlas = _table([(2, 70000)], width=70001)
    rows = np.zeros((4, 2), np.float32)
    held, faded = np.zeros(1, np.int64), np.zeros(1, np.int64)
    indices = [0, 69999, 70000, 139999]
    _place(table, atlas, [0], [4], [1.0], indices, [8.0] * 4, rows, held, faded)
    np.testing.assert_array_equal(rows[:, 0], indices)
    lit = np.flatnonzero(atlas.reshape(-1)).tolist()  # texels: row 0 and row 1, both ends
    assert lit == [1, 1 + 69999, 70001 + 1, 70001 + 1 + 69999]


def test_blocks_fade_by_the_steps_they_missed() -> None:
    table, atlas = _table([(4, 9), (4, 9)])
    rows = np.zeros((2 * 64, 2), np.float32)
    held, faded = np.zeros(2, np.int64), np.zeros(2, np.int64)
    everything = np.arange(36)
    for site in (0, 1):
        _place(table, atlas, [site], [36], [1.0], everything, [8.0] * 36, rows, held, faded, 0)
    assert (atlas[table["corner"][0] // 1024 :][:4, 1:10] == 255).all()
    # Three steps later site 0 gets one point: its block is halved three times first; site 1,
    # untouched, keeps its bytes (the shader halves it by fades - faded).
    _place(table, atlas, [0], [1], [1.0], [0], [8.0], rows, held, faded, 3)
    block0, block1 = atlas[0:4, 1:10], atlas[5:9, 1:10]
    assert block0[0, 0] == 255 and (block0.reshape(-1)[1:] == 255 >> 3).all()
    assert (block1 == 255).all() and faded.tolist() == [3, 0]
    assert (atlas[:, 0] == 0).all() and (atlas[:, 10:] == 0).all()  # nothing outside a block
    _place(table, atlas, [1], [0], [1.0], [], [], rows, held, faded, 11)  # 8 and more: dark
    assert (block1 == 0).all() and faded.tolist() == [3, 11] and held.tolist() == [1, 0]


@pytest.mark.parametrize("what", ["site", "capacity", "held", "total", "atlas", "dtype"])
def test_bad_arguments_raise_and_write_nothing(what: str) -> None:
    table, atlas = _table([(4, 4), (4, 4)])
    rows = np.zeros((2 * 4, 2), np.float32)
    held, faded = np.zeros(2, np.int64), np.zeros(2, np.int64)
    args = {"sites": [1], "counts": [2], "indices": [1, 2], "values": [8.0, 8.0]}
    if what == "site":
        args["sites"] = [2]
    elif what == "capacity":
        args.update(counts=[5], indices=list(range(5)), values=[8.0] * 5)
    elif what == "held":
        held[1] = 5
    elif what == "total":
        args["counts"] = [3]
    elif what == "atlas":
        atlas = atlas[:-2]
    before = (rows.copy(), atlas.copy(), held.copy(), faded.copy())
    error = TypeError if what == "dtype" else InvalidArgumentError
    with pytest.raises(error):
        if what == "dtype":
            place_points(
                table,
                np.array([1]),
                np.array([2]),
                np.ones(1, np.float32),
                np.array([1, 2], np.int64),  # not uint32
                np.ones(2, np.float32),
                rows,
                held,
                atlas,
                faded,
                1,
            )
        else:
            _place(
                table,
                atlas,
                args["sites"],
                args["counts"],
                [1.0],
                args["indices"],
                args["values"],
                rows,
                held,
                faded,
                1,
            )
    for was, now in zip(before, (rows, atlas, held, faded), strict=True):
        np.testing.assert_array_equal(was, now)


def _run(n: int) -> list[bytes]:
    rng = np.random.default_rng(n)
    frames = []
    for site in range(n):
        idx = np.sort(rng.choice(4096, site % 5, replace=False)).astype(np.uint32)
        values = rng.uniform(0, 3, len(idx)).astype(np.float32)
        message = SparseActivations(site, 0.25 * site, 9, idx, values)
        frames.append(encode(message, seq=site + 1, step=3, rank=1, timestamp_ns=10 + site))
    return frames


def test_scanning_a_run_reads_every_header() -> None:
    frames = _run(12)
    heads = np.zeros(12, SPARSE_HEAD)
    lengths = np.array([len(f) for f in frames], np.uint64)
    assert scan_sparse(b"".join(frames), lengths, heads, MAX_PAYLOAD) == 12
    assert heads["seq"].tolist() == list(range(1, 13))
    assert heads["n"].tolist() == [s % 5 for s in range(12)]
    assert (heads["rank"] == 1).all() and (heads["step"] == 3).all()
    np.testing.assert_array_equal(heads["threshold"], np.float32(0.25) * np.arange(12))
    assert heads["timestamp_ns"].tolist() == list(range(10, 22))


def test_scanning_stops_at_the_first_bad_frame() -> None:
    frames = _run(6)
    lengths = np.array([len(f) for f in frames], np.uint64)
    heads = np.zeros(6, SPARSE_HEAD)
    bad = bytearray(frames[4])
    bad[48:52], bad[52:56] = bad[52:56], bad[48:52]  # indices 4 frames in: not ascending
    assert (
        scan_sparse(b"".join([*frames[:4], bytes(bad), frames[5]]), lengths, heads, MAX_PAYLOAD)
        == 4
    )
    short = lengths.copy()
    short[2] -= 8  # the lengths do not match the frames' own
    assert scan_sparse(b"".join(frames), short, heads, MAX_PAYLOAD) == 2
    # Over the payload limit: the first frame (no neuron) has 16 bytes, the next 24.
    assert scan_sparse(b"".join(frames), lengths, heads, 16) == 1
    assert scan_sparse(b"".join(frames[:3]), lengths, heads, MAX_PAYLOAD) == 3  # buffer ends
