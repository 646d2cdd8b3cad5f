"""A job stream's rank skew and health: the latest RANK_SKEW per site, the latest JOB_STATUS.

RANK_SKEW names, per site, the rank farthest from the others and by how many of their spreads
(``z``); the layer grid colours sites by ``|z|`` (the skew view), the tooltip names the rank,
and a site whose ``|z|`` passes ``ALERT_Z`` becomes an alert ("rank 37 layer 61 mlp: rms 9.1
sigma from the other ranks"), once per episode (re-armed under half of it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from synapse_desktop.models.signal import Signal
from synapse_desktop.models.topology import Topology
from synapse_native.protocol import (
    NO_RANK,
    JobState,
    JobStatus,
    RankSkew,
    SkewStatistic,
    SummaryFlag,
)

ALERT_Z = 6.0  # |z| from which a rank skew is an alert
Z_FULL = 12.0  # |z| shown at the top of the colour scale
STAT_NAMES = {
    SkewStatistic.RMS: "rms",
    SkewStatistic.MAX_ABS: "max |x|",
    SkewStatistic.NONFINITE: "NaN/inf share",
}
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class SkewAlert:
    """A rank that stands out at a site, at a step."""

    step: int
    rank: int
    site_id: int
    layer: int
    site: str
    z: float
    message: str


class RankSkewModel:
    """Per topology row: the outlier rank, its statistic and z (activations only).

    ``changed`` fires from ``flush`` after new skew or a new status; ``alerted`` with each new
    ``SkewAlert``; ``status_changed`` when the job's state changes.
    """

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.changed = Signal()
        self.alerted = Signal()
        self.status_changed = Signal()
        self.status: JobStatus | None = None
        self.world_size = 0
        self.step = -1
        self.rank = np.zeros(0, np.int64)
        self.statistic = np.zeros(0, np.int64)
        self.z = np.zeros(0, np.float32)
        self.value = np.zeros(0, np.float32)
        self.others = np.zeros(0, np.float32)
        self._armed = np.zeros(0, bool)
        self.alerts: list[SkewAlert] = []
        self._dirty = False

    @property
    def active(self) -> bool:
        """True once a job stream has sent skew."""
        return self.step >= 0

    def apply(self, message: RankSkew, step: int) -> None:
        """Take one RANK_SKEW frame of ``step``."""
        records = message.records
        records = records[(records["flags"] & int(SummaryFlag.GRADIENT)) == 0]
        self._fit(len(self.topology))
        indices = self.topology.indices_of(records["site_id"].astype(np.int64))
        known = indices >= 0
        rows, records = indices[known], records[known]
        self.world_size, self.step = message.world_size, step
        self.rank[rows] = np.where(records["rank"] == NO_RANK, -1, records["rank"])
        self.statistic[rows] = records["statistic"]
        self.z[rows] = records["z"]
        self.value[rows] = records["value"]
        self.others[rows] = records["others_mean"]
        size = np.abs(np.nan_to_num(records["z"]))
        for row, z in zip(rows[size >= ALERT_Z], size[size >= ALERT_Z], strict=True):
            if self._armed[row]:
                self._armed[row] = False
                self._alert(int(row), float(z), step)
        self._armed[rows[size < ALERT_Z / 2]] = True
        self._dirty = True

    def take_status(self, status: JobStatus) -> None:
        """Take a JOB_STATUS."""
        old, self.status = self.status, status
        self.world_size = status.world_size
        if old is None or (old.state, old.rank) != (status.state, status.rank):
            self.status_changed.emit(status)
        self._dirty = True

    def describe(self, index: int) -> str:
        """The tooltip line of topology row ``index`` ('' when no rank stands out there)."""
        if not 0 <= index < len(self.rank) or self.rank[index] < 0 or math.isnan(self.z[index]):
            return ""
        name = STAT_NAMES.get(SkewStatistic(self.statistic[index]), "statistic")
        return (
            f"rank skew: rank {self.rank[index]} {name} {self.value[index]:.3g} is "
            f"{self.z[index]:+.1f} sigma from the other ranks (their mean {self.others[index]:.3g})"
        )

    def colour_values(self) -> npt.NDArray[np.float32]:
        """Per topology row, ``|z|`` on 0..1 (``Z_FULL`` and beyond: 1; NaN: no skew)."""
        self._fit(len(self.topology))
        return np.minimum(np.abs(self.z) / Z_FULL, 1.0).astype(np.float32)

    def health(self) -> str:
        """One line on the job's state ('' outside a job stream)."""
        s = self.status
        if s is None:
            return ""
        if s.state == JobState.RUNNING:
            return f"job of {s.world_size} ranks, {s.ranks_reporting} reporting"
        return f"job stream stopped: {s.text or JobState(s.state).name}"

    def remap(self, old_to_new: I64, size: int) -> None:
        """Follow a topology rebuild."""
        moved = old_to_new >= 0
        for name in ("rank", "statistic", "z", "value", "others", "_armed"):
            old = getattr(self, name)
            fill = -1 if name in ("rank", "statistic") else (True if name == "_armed" else np.nan)
            new = np.full(size, fill, old.dtype)
            n = min(len(old), len(old_to_new))
            new[old_to_new[:n][moved[:n]]] = old[:n][moved[:n]]
            setattr(self, name, new)

    def clear(self) -> None:
        self._fit(0)
        self.step, self.status, self.alerts = -1, None, []
        self._dirty = True

    def flush(self) -> None:
        if self._dirty:
            self._dirty = False
            self.changed.emit()

    def _fit(self, size: int) -> None:
        if len(self.rank) == size:
            return
        self.rank = np.full(size, -1, np.int64)
        self.statistic = np.full(size, -1, np.int64)
        self.z = np.full(size, np.nan, np.float32)
        self.value = np.full(size, np.nan, np.float32)
        self.others = np.full(size, np.nan, np.float32)
        self._armed = np.ones(size, bool)

    def _alert(self, row: int, z: float, step: int) -> None:
        site = self.topology.sites[row]
        name = STAT_NAMES.get(SkewStatistic(self.statistic[row]), "statistic")
        message = (
            f"rank {self.rank[row]} layer {site.layer} {site.kind_name}: "
            f"{name} {z:.1f} sigma from the other ranks"
        )
        alert = SkewAlert(
            step, int(self.rank[row]), site.site_id, site.layer, site.kind_name, z, message
        )
        self.alerts.append(alert)
        del self.alerts[:-500]
        self.alerted.emit(alert)
