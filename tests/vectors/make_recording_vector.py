"""Write ``recording_v1.mcap`` and ``recording_v1.json``: the golden recording of docs/RECORDING.md.

A fixed run of two ranks (HELLO, MODEL_META, then three frames per step for six steps, the
ranks' frames interleaved and rank 1's clock 3 ms behind, so log times do not increase in file
order), written with small zstd chunks so that it has several. The JSON lists what a reader
must return: the metadata, each frame's log time, topic and SHA-256 in log-time order, and the
step index. Tests only read the two files; rerun this only when the format changes:

    python tests/vectors/make_recording_vector.py          # rewrite both files
    python tests/vectors/make_recording_vector.py --check  # fail if the JSON is stale
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from synapse_native.protocol import (
    HeaderFlag,
    Hello,
    LayerSummaryBatch,
    ModelMeta,
    Role,
    SiteInfo,
    SiteKind,
    TrainingMetrics,
    encode,
    summary_records,
)
from synapse_native.recording import RecordingWriter, open_recording, topic

HERE = Path(__file__).parent
MCAP_OUT = HERE / "recording_v1.mcap"
JSON_OUT = HERE / "recording_v1.json"
T0 = 1_700_000_000_000_000_000
METADATA = {
    "model": "golden-model",
    "probe": "golden-probe",
    "protocol_version": "1",
    "host": "golden-host",
    "start_time": "2023-11-14T22:13:20+00:00",
    "writer": "make_recording_vector.py",
}
SITES = (
    SiteInfo(0, 0, SiteKind.ATTN, "layers.0.attn", 16, 4, 4),
    SiteInfo(1, 0, SiteKind.MLP, "layers.0.mlp", 16, 4, 4),
)


def frames_of(rank: int) -> list[bytes]:
    """Rank ``rank``'s frames in the order it sent them."""
    skew = -3_000_000 * rank
    out = [
        encode(
            Hello(Role.TRAINER, "golden-probe", rank=rank, world_size=2), rank=rank, timestamp_ns=T0
        ),
        encode(ModelMeta("golden-model", 1, SITES), rank=rank, timestamp_ns=T0 + 1),
    ]
    for step in range(6):
        t = T0 + (step + 1) * 10_000_000 + skew
        records = summary_records(2)
        records["site_id"] = (0, 1)
        records["count"] = 1024
        records["mean"] = (step + rank, -step - rank)
        records["hist"][:] = step
        metrics = TrainingMetrics({"loss": 4.0 - step / 2, "rank": float(rank)})
        out += [
            encode(
                LayerSummaryBatch(records), seq=2 * step + 1, step=step, rank=rank, timestamp_ns=t
            ),
            encode(
                metrics,
                seq=2 * step + 2,
                step=step,
                rank=rank,
                timestamp_ns=t + 1000,
                flags=int(HeaderFlag.END_OF_STEP),
            ),
        ]
    return out


def written_order() -> list[bytes]:
    """Both ranks' frames interleaved as a recorder would receive them."""
    a, b = frames_of(0), frames_of(1)
    return [f for pair in zip(a, b, strict=True) for f in pair]


def expected() -> dict[str, object]:
    frames = written_order()
    entries = []
    for frame in frames:
        rank = int.from_bytes(frame[28:30], "little")
        msg_type = int.from_bytes(frame[6:8], "little")
        entries.append(
            {
                "log_time_ns": int.from_bytes(frame[16:24], "little"),
                "topic": topic(rank, msg_type),
                "sha256": hashlib.sha256(frame).hexdigest(),
            }
        )
    entries.sort(key=lambda e: e["log_time_ns"])  # stable: ties keep file order
    firsts: dict[int, int] = {}
    for frame in frames:
        if int.from_bytes(frame[6:8], "little") in (3, 32):
            step = int.from_bytes(frame[24:28], "little")
            t = int.from_bytes(frame[16:24], "little")
            firsts[step] = min(t, firsts.get(step, t))
    return {
        "metadata": METADATA,
        "frames": entries,
        "step_index": [[s, firsts[s]] for s in sorted(firsts)],
    }


def main(argv: list[str]) -> int:
    text = json.dumps(expected(), indent=1) + "\n"
    if "--check" in argv:
        stale = JSON_OUT.read_text() != text
        with open_recording(MCAP_OUT) as rec:
            got = [hashlib.sha256(f).hexdigest() for _, f in rec.frames()]
        stale |= got != [e["sha256"] for e in expected()["frames"]]  # type: ignore[index]
        print("stale" if stale else "up to date")
        return int(stale)
    with RecordingWriter(MCAP_OUT, metadata=METADATA, chunk_size=4096) as writer:
        writer.write_frames(written_order())
    JSON_OUT.write_text(text)
    print(f"wrote {MCAP_OUT.name} ({MCAP_OUT.stat().st_size} bytes) and {JSON_OUT.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
