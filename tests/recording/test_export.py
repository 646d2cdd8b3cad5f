"""``synapse export``: DuckDB reads the Parquet tables and finds the frames' own values."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from recording_helpers import SITES, STATISTICS, STEP_NS, T0, run_frames, summaries

from synapse_desktop.cli import main
from synapse_native.histogram import bin_edges
from synapse_native.protocol import HeadStats, MoeRouting, decode_frame, encode
from synapse_native.recording import RecordingWriter

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("pyarrow")

STEPS = 40
NAN_STEP = 30


def _recording(path: Path) -> list[bytes]:
    frames = []
    for rank in (0, 1):
        for frame in run_frames(STEPS, rank=rank):
            if frame[6] == 3 and int.from_bytes(frame[24:28], "little") == NAN_STEP and rank == 1:
                records = summaries(NAN_STEP, rank)
                records["nan_count"][2] = 5  # layer 1's attention goes NaN on rank 1
                frame = encode(
                    decode_frame(frame).message.__class__(records),
                    seq=int.from_bytes(frame[12:16], "little"),
                    step=NAN_STEP,
                    rank=rank,
                    timestamp_ns=int.from_bytes(frame[16:24], "little"),
                )
            frames.append(frame)
    head = HeadStats(
        np.array([0, 1], np.uint16),
        np.arange(6, dtype=np.float32).reshape(2, 3),
        np.ones((2, 3), np.float32),
        16,
    )
    routing = MoeRouting(
        np.array([1], np.uint16),
        np.array([[5, 0, 7, 1]], np.uint32),
        np.full((1, 4), 0.25, np.float32),
        np.array([2], np.uint32),
        top_k=2,
    )
    t = T0 + 13 * STEP_NS
    frames += [encode(head, step=12, timestamp_ns=t), encode(routing, step=12, timestamp_ns=t + 1)]
    with RecordingWriter(path) as writer:
        writer.write_frames(frames)
    return frames


def test_duckdb_reads_the_parquet_tables_with_the_frames_values(tmp_path: Path) -> None:
    _recording(tmp_path / "run.mcap")
    out = tmp_path / "tables"
    assert main(["export", str(tmp_path / "run.mcap"), "--format", "parquet", "-o", str(out)]) == 0
    db = duckdb.connect()

    def q(sql: str) -> list[tuple]:
        return db.execute(sql.replace("T(", f"'{out}/").replace(")T", ".parquet'")).fetchall()

    assert q("SELECT count(*) FROM T(summaries)T") == [(2 * STEPS * len(SITES),)]
    # Every statistic of one record, against the values the frame was built from.
    for rank, step, site_id in [(0, 0, 0), (1, 17, 3), (0, STEPS - 1, 2)]:
        expected = summaries(step, rank)[site_id]
        cols = ", ".join(STATISTICS)
        (row,) = q(
            f"SELECT layer, site, kind, count, {cols} FROM T(summaries)T "
            f"WHERE rank = {rank} AND step = {step} AND site_id = {site_id}"
        )
        assert row[:4] == (
            SITES[site_id].layer,
            SITES[site_id].name,
            ("attn", "mlp")[site_id % 2],
            65536,
        )
        assert row[4:] == pytest.approx([float(expected[s]) for s in STATISTICS], rel=1e-6)
    (hist,) = q(
        "SELECT list(fraction ORDER BY bin), min(lower), max(upper), count(*) FROM T(histograms)T "
        "WHERE rank = 1 AND step = 5 AND site_id = 1"
    )
    assert hist[0] == pytest.approx(summaries(5, 1)["hist"][1].tolist())
    assert (hist[1], hist[2], hist[3]) == (bin_edges()[0], bin_edges()[-1], 64)
    loss = q("SELECT step, value FROM T(metrics)T WHERE name = 'loss' AND rank = 0 ORDER BY step")
    assert loss == [(s, pytest.approx(10.0 / (s + 1))) for s in range(STEPS)]
    assert q("SELECT norm FROM T(grad_norms)T WHERE rank = 1 AND step = 9 ORDER BY layer") == [
        (9.0,),
        (10.0,),
    ]
    assert q("SELECT layer, head, entropy FROM T(head_stats)T WHERE layer = 1 ORDER BY head") == [
        (1, 0, 3.0),
        (1, 1, 4.0),
        (1, 2, 5.0),
    ]
    assert q("SELECT expert, tokens, dropped, top_k FROM T(routing)T ORDER BY expert") == [
        (0, 5, 2, 2),
        (1, 0, 2, 2),
        (2, 7, 2, 2),
        (3, 1, 2, 2),
    ]
    alerts = q("SELECT step, rank, kind, layer FROM T(alerts)T")
    assert (NAN_STEP, 1, "nonfinite", 1) in alerts
    # time is the frame's own timestamp, as a UTC timestamp
    (first,) = q("SELECT epoch_ns(time) FROM T(summaries)T WHERE rank = 0 AND step = 0 LIMIT 1")
    assert first[0] == int.from_bytes(run_frames(1)[2][16:24], "little")


def test_the_readme_names_every_column_of_every_table(tmp_path: Path) -> None:
    _recording(tmp_path / "run.mcap")
    out = tmp_path / "csv"
    assert main(["export", str(tmp_path / "run.mcap"), "--format", "csv", "-o", str(out)]) == 0
    readme = (out / "README.md").read_text()
    db = duckdb.connect()
    for table in (
        "summaries",
        "histograms",
        "metrics",
        "grad_norms",
        "head_stats",
        "routing",
        "alerts",
    ):
        columns = [
            r[0]
            for r in db.execute(f"DESCRIBE SELECT * FROM read_csv('{out}/{table}.csv')").fetchall()
        ]
        section = readme.split(f"## {table}.csv")[1].split("\n## ")[0]
        assert columns == re.findall(r"^\| `(\w+)` \|", section, re.M), table
    assert db.execute(f"SELECT count(*) FROM read_csv('{out}/metrics.csv')").fetchone() == (
        2 * STEPS * 2,
    )


def test_export_says_what_is_wrong_with_a_file_that_is_not_a_recording(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.mcap"
    bad.write_text("not a recording")
    assert main(["export", str(bad), "-o", str(tmp_path / "out")]) == 1
    assert "not an MCAP recording (offset 0" in capsys.readouterr().err
