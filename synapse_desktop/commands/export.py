"""``synapse export``: a recording as tidy tables (Parquet or CSV) for pandas, DuckDB, Polars.

One streaming pass over the recording decodes each frame and appends its rows to the table it
belongs to; tables are written in row groups as they fill, so memory stays bounded whatever the
recording's length. Alerts come from the app's own detectors (``models.anomalies``), run over
the same frames. ``DIR/README.md`` names every column.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import pyarrow as pa

    from synapse_desktop.models.anomalies import Alert
    from synapse_native.protocol import Frame

ROW_GROUP = 1 << 16  # rows buffered per table before they are written
_ALERT_BATCH = 256  # frames handed to the detectors at once

# name -> (arrow type name, description); the types are resolved when pyarrow is imported.
_COMMON = (
    ("step", "int64", "training step the frame belongs to (frame header)"),
    ("time", "timestamp", "when the trainer encoded the frame (frame header timestamp, UTC)"),
    ("rank", "int32", "torch.distributed rank of the trainer"),
)
_SITE = (
    ("layer", "int32", "transformer block index (from the MODEL_META in force; -1 if unknown)"),
    ("site_id", "int32", "the site's id on the wire"),
    ("site", "string", "the hooked module's name"),
    ("kind", "string", "attn, mlp, residual, ... (SiteKind)"),
)
_STATS = (
    ("count", "int64", "elements measured"),
    ("nan_count", "int64", "NaN elements"),
    ("inf_count", "int64", "infinite elements"),
    ("mean", "float32", "mean of the finite elements"),
    ("std", "float32", "standard deviation"),
    ("rms", "float32", "root mean square"),
    ("min", "float32", "smallest finite element"),
    ("max", "float32", "largest finite element"),
    ("mean_abs", "float32", "mean of the absolute values"),
    ("skewness", "float32", "skewness"),
    ("kurtosis", "float32", "excess kurtosis"),
    ("frac_zero", "float32", "fraction of elements that are exactly 0"),
    ("frac_above", "float32", "fraction of neurons above the sparse threshold"),
    ("threshold", "float32", "the sparse threshold in force"),
)
TABLES: dict[str, tuple[str, tuple[tuple[str, str, str], ...]]] = {
    "summaries": (
        "one row per (step, rank, site, activation|gradient): every statistic of "
        "LAYER_SUMMARY_BATCH (docs/PROTOCOL.md 5.3)",
        (
            *_COMMON,
            *_SITE,
            ("gradient", "bool", "statistics of the gradient at the site's output"),
            ("sampled", "bool", "statistics of a token sample (SummaryFlag SAMPLED)"),
            *_STATS,
        ),
    ),
    "histograms": (
        "one row per (step, rank, site, bin): the 64-bin histogram of each summary",
        (
            *_COMMON,
            *_SITE,
            ("gradient", "bool", "histogram of the gradient"),
            ("bin", "int16", "bin index, 0..63 in value order"),
            ("lower", "float64", "the bin's lower edge (signed powers of two)"),
            ("upper", "float64", "the bin's upper edge"),
            ("fraction", "float32", "fraction of the finite elements in the bin"),
        ),
    ),
    "metrics": (
        "one row per (step, rank, metric): TRAINING_METRICS (log_metrics)",
        (*_COMMON, ("name", "string", "metric name"), ("value", "float64", "its value")),
    ),
    "grad_norms": (
        "one row per (step, rank, block): BLOCK_GRAD_NORMS",
        (
            *_COMMON,
            ("layer", "int32", "transformer block index"),
            ("norm", "float32", "L2 norm of the block's parameter gradients (NaN: none)"),
        ),
    ),
    "head_stats": (
        "one row per (step, rank, block, head): HEAD_STATS",
        (
            *_COMMON,
            ("layer", "int32", "transformer block index"),
            ("head", "int32", "attention head"),
            ("entropy", "float32", "mean attention entropy of the head (nats)"),
            ("max_logit", "float32", "largest attention logit"),
            ("tokens", "int32", "query tokens measured"),
        ),
    ),
    "routing": (
        "one row per (step, rank, block, expert): MOE_ROUTING",
        (
            *_COMMON,
            ("layer", "int32", "transformer block index"),
            ("expert", "int32", "expert index"),
            ("tokens", "int64", "token assignments to the expert"),
            ("prob", "float32", "mean router probability of the expert"),
            ("dropped", "int64", "assignments the block dropped (capacity), same on every row"),
            ("top_k", "int32", "experts per token"),
        ),
    ),
    "alerts": (
        "one row per alert of the app's detectors (the Alerts dock), run over the recording",
        (
            *_COMMON,
            ("kind", "string", "what was found (AlertKind)"),
            ("severity", "string", "info, warning or error"),
            ("layer", "int32", "transformer block index"),
            ("site_id", "int32", "the site's id on the wire"),
            ("site", "string", "the site's kind name"),
            ("sites", "int32", "how many sites the finding covers"),
            ("expert", "int32", "expert index (-1: none)"),
            ("message", "string", "the alert as the app shows it"),
        ),
    ),
}
_KIND_NAMES = {0: "other", 1: "attn", 2: "mlp", 3: "residual", 4: "embed", 5: "router", 6: "expert"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recording", metavar="FILE", help="the recording (.mcap)")
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="where the tables go")
    parser.add_argument(
        "--no-alerts", action="store_true", help="skip running the detectors (faster)"
    )


@dataclass
class _Site:
    layer: npt.NDArray[np.int32]
    name: npt.NDArray[np.object_]
    kind: npt.NDArray[np.object_]


class _Table:
    """Column buffers of one table, written in row groups."""

    def __init__(self, schema: pa.Schema, open_writer: Callable[[pa.Schema], Any]) -> None:
        self.schema = schema
        self._writer = open_writer(schema)
        self._parts: dict[str, list[Any]] = {name: [] for name in schema.names}
        self._rows = 0
        self.total = 0

    def add(self, n: int, **columns: Any) -> None:
        """``n`` rows; each column an array of ``n`` values or one value for all."""
        if n == 0:
            return
        for name in self.schema.names:
            value = columns[name]
            if np.ndim(value) == 0 and not isinstance(value, list):
                value = np.full(n, value, dtype=object if isinstance(value, str) else None)
            self._parts[name].append(value)
        self._rows += n
        if self._rows >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        if self._rows == 0:
            return
        arrays = []
        for field in self.schema:
            parts = self._parts[field.name]
            values = np.concatenate([np.asarray(p) for p in parts])
            if pa.types.is_timestamp(field.type):
                arrays.append(pa.array(values.astype("int64"), pa.int64()).cast(field.type))
            else:
                arrays.append(pa.array(values, field.type, from_pandas=True))
            parts.clear()
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.total += self._rows
        self._rows = 0

    def close(self) -> None:
        self.flush()
        self._writer.close()


def _schema(columns: Iterable[tuple[str, str, str]]) -> pa.Schema:
    import pyarrow as pa

    types = {
        "int16": pa.int16(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "float32": pa.float32(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
        "string": pa.string(),
        "timestamp": pa.timestamp("ns", tz="UTC"),
    }
    return pa.schema([pa.field(name, types[kind]) for name, kind, _ in columns])


def _opener(fmt: str, directory: Path, table: str) -> Callable[[pa.Schema], Any]:
    def open_writer(schema: pa.Schema) -> Any:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetWriter(directory / f"{table}.parquet", schema, compression="zstd")
        import pyarrow.csv as pcsv

        return pcsv.CSVWriter(directory / f"{table}.csv", schema)

    return open_writer


class Exporter:
    """Turns frames into table rows (one per call to ``add``), then closes the tables."""

    def __init__(self, directory: Path, fmt: str, *, alerts: bool = True) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.tables = {
            name: _Table(_schema(columns), _opener(fmt, directory, name))
            for name, (_, columns) in TABLES.items()
        }
        self._sites: dict[int, _Site] = {}
        self._session: Any = None
        self._pending: list[Frame] = []
        self._step_times: dict[tuple[int, int], int] = {}
        self._alerts_seen = (0, 0)
        if alerts:
            from synapse_desktop.models.session import Session

            self._session = Session(history_capacity=64)
        from synapse_native.histogram import bin_edges

        edges = bin_edges()
        self._lower, self._upper = edges[:-1], edges[1:]

    def add(self, frame: Frame) -> None:
        from synapse_native import protocol as p

        header, message = frame.header, frame.message
        common = {"step": header.step, "time": header.timestamp_ns, "rank": header.rank}
        self._step_times.setdefault((header.rank, header.step), header.timestamp_ns)
        if isinstance(message, p.ModelMeta):
            self._meta(header.rank, message)
        elif isinstance(message, p.LayerSummaryBatch):
            self._summaries(header.rank, message.records, common)
        elif isinstance(message, p.TrainingMetrics):
            names = list(message.values)
            values = np.array([message.values[k] for k in names], np.float64)
            self.tables["metrics"].add(len(names), **common, name=names, value=values)
        elif isinstance(message, p.BlockGradNorms):
            n = len(message.norms)
            self.tables["grad_norms"].add(n, **common, layer=np.arange(n), norm=message.norms)
        elif isinstance(message, p.HeadStats):
            layers, heads = message.entropy.shape
            self.tables["head_stats"].add(
                layers * heads,
                **common,
                layer=np.repeat(message.layers, heads),
                head=np.tile(np.arange(heads), layers),
                entropy=message.entropy.ravel(),
                max_logit=message.max_logit.ravel(),
                tokens=message.tokens,
            )
        elif isinstance(message, p.MoeRouting):
            layers, experts = message.tokens.shape
            self.tables["routing"].add(
                layers * experts,
                **common,
                layer=np.repeat(message.layers, experts),
                expert=np.tile(np.arange(experts), layers),
                tokens=message.tokens.ravel(),
                prob=message.probs.ravel(),
                dropped=np.repeat(message.dropped, experts),
                top_k=message.top_k,
            )
        if self._session is not None:
            self._pending.append(frame)
            if len(self._pending) >= _ALERT_BATCH:
                self._detect()

    def close(self) -> dict[str, int]:
        """Write what is left; rows per table."""
        if self._session is not None:
            self._detect()
        for table in self.tables.values():
            table.close()
        return {name: table.total for name, table in self.tables.items()}

    def _meta(self, rank: int, meta: Any) -> None:
        size = max((s.site_id for s in meta.sites), default=-1) + 1
        site = _Site(
            np.full(size, -1, np.int32), np.full(size, "", object), np.full(size, "", object)
        )
        for info in meta.sites:
            site.layer[info.site_id] = info.layer
            site.name[info.site_id] = info.name
            site.kind[info.site_id] = _KIND_NAMES.get(int(info.kind), str(int(info.kind)))
        self._sites[rank] = site

    def _site_columns(self, rank: int, ids: npt.NDArray[np.uint32]) -> dict[str, Any]:
        site = self._sites.get(rank)
        if site is None:
            n = len(ids)
            return {"layer": np.full(n, -1), "site_id": ids, "site": [""] * n, "kind": [""] * n}
        known = ids < len(site.layer)
        safe = np.where(known, ids, 0)
        return {
            "layer": np.where(known, site.layer[safe], -1),
            "site_id": ids,
            "site": np.where(known, site.name[safe], ""),
            "kind": np.where(known, site.kind[safe], ""),
        }

    def _summaries(self, rank: int, records: npt.NDArray[np.void], common: dict[str, int]) -> None:
        n = len(records)
        sites = self._site_columns(rank, records["site_id"])
        flags = records["flags"]
        stats = {name: records[name] for name, _, _ in _STATS}
        self.tables["summaries"].add(
            n, **common, **sites, gradient=(flags & 1) != 0, sampled=(flags & 2) != 0, **stats
        )
        bins = records["hist"].shape[1]
        self.tables["histograms"].add(
            n * bins,
            **common,
            **{k: np.repeat(np.asarray(v), bins) for k, v in sites.items()},
            gradient=np.repeat((flags & 1) != 0, bins),
            bin=np.tile(np.arange(bins), n),
            lower=np.tile(self._lower, n),
            upper=np.tile(self._upper, n),
            fraction=records["hist"].ravel(),
        )

    def _detect(self) -> None:
        if not self._pending:
            return
        session = self._session
        session.apply_frames(self._pending)
        self._pending = []
        anomalies = session.anomalies
        generation, total = self._alerts_seen
        new = anomalies.total - (total if generation == anomalies.generation else 0)
        self._alerts_seen = (anomalies.generation, anomalies.total)
        if new > 0:
            for alert in list(anomalies.alerts)[-min(new, len(anomalies)) :]:
                self._alert(alert)

    def _alert(self, alert: Alert) -> None:
        time_ns = self._step_times.get((alert.rank, alert.step), 0)
        self.tables["alerts"].add(
            1,
            step=alert.step,
            time=time_ns,
            rank=alert.rank,
            kind=alert.kind.name.lower(),
            severity=alert.severity.name.lower(),
            layer=alert.layer,
            site_id=alert.site_id,
            site=alert.site,
            sites=alert.sites,
            expert=alert.expert,
            message=alert.message,
        )


def readme(fmt: str, source: str, rows: dict[str, int]) -> str:
    """DIR/README.md: what each table holds and what each column means."""
    lines = [
        f"# Tables exported from `{source}`",
        "",
        f"Written by `synapse export --format {fmt}`: one `{fmt}` file per table. Every value",
        "is the one in the recorded frames (docs/PROTOCOL.md); `time` is UTC.",
        "",
    ]
    for name, (about, columns) in TABLES.items():
        lines += [f"## {name}.{fmt} ({rows.get(name, 0)} rows)", "", about + ".", ""]
        lines += ["| column | type | meaning |", "|---|---|---|"]
        lines += [f"| `{c}` | {t} | {d} |" for c, t, d in columns]
        lines.append("")
    return "\n".join(lines)


def export(
    source: str | Path, directory: str | Path, fmt: str = "parquet", *, alerts: bool = True
) -> tuple[dict[str, int], str | None]:
    """Export ``source``; returns rows per table and the recording's damage (None: whole)."""
    from synapse_native.protocol import ProtocolError, decode_frame
    from synapse_native.recording import open_recording

    directory = Path(directory)
    exporter = Exporter(directory, fmt, alerts=alerts)
    try:
        with open_recording(source) as recording:
            for _, raw in recording.frames():
                try:
                    frame = decode_frame(raw)
                except ProtocolError:
                    continue  # a frame this build cannot read: the recording keeps it anyway
                if frame is not None:
                    exporter.add(frame)
            damage = recording.damage
    finally:
        rows = exporter.close()
    (directory / "README.md").write_text(readme(fmt, Path(source).name, rows))
    return rows, damage


def run(args: argparse.Namespace) -> int:
    from synapse_native.recording import RecordingError

    try:
        import pyarrow  # noqa: F401
    except ImportError:
        print("synapse export: needs pyarrow: pip install 'synapse-desktop[app]'", file=sys.stderr)
        return 2
    try:
        rows, damage = export(args.recording, args.output, args.format, alerts=not args.no_alerts)
    except (RecordingError, OSError) as exc:
        print(f"synapse export: {exc}", file=sys.stderr)
        return 1
    if damage:
        print(f"synapse export: the recording is damaged: {damage}", file=sys.stderr)
    counts = ", ".join(f"{name} {n}" for name, n in rows.items())
    print(f"synapse export: {args.output}: {counts} rows (README.md names the columns)")
    return 0
