"""Comparing the run shown with a reference run (another recording) at the same step.

Sites are matched by (layer, kind): runs of different models compare on the layers they share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from synapse_desktop.models.session import Session
from synapse_desktop.models.topology import Topology

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Shared:
    """Sites both runs have: ``this[i]`` in the run shown is ``reference[i]`` in the other."""

    this: I64
    reference: I64
    layers: I64
    kinds: I64

    def __len__(self) -> int:
        return len(self.this)


def shared_sites(this: Topology, reference: Topology) -> Shared:
    """The sites of ``this`` whose (layer, kind) the reference has too, in forward order (the
    first site of a kind in a layer when there are several)."""
    theirs: dict[tuple[int, int], int] = {}
    for site in reference.sites:
        theirs.setdefault((site.layer, int(site.kind)), site.index)
    rows: list[tuple[int, int, int, int]] = []
    seen: set[tuple[int, int]] = set()
    for site in this.sites:
        key = (site.layer, int(site.kind))
        if key in theirs and key not in seen:
            seen.add(key)
            rows.append((site.index, theirs[key], site.layer, int(site.kind)))
    if not rows:
        empty = np.zeros(0, np.int64)
        return Shared(empty, empty, empty, empty)
    this_i, ref_i, layers, kinds = (np.array(c, np.int64) for c in zip(*rows, strict=True))
    return Shared(this_i, ref_i, layers, kinds)


@dataclass(frozen=True, slots=True)
class Compared:
    """One statistic of the shared sites: the run shown, the reference, and their steps."""

    shared: Shared
    this: F64
    reference: F64
    this_steps: I64
    reference_steps: I64

    @property
    def ratio(self) -> F64:
        """this / reference (NaN where either is missing or the reference is 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            out = self.this / self.reference
        out[~np.isfinite(out)] = np.nan
        return out


def compare(this: Session, reference: Session, statistic: str) -> Compared:
    """``statistic`` (a summary field, e.g. ``rms``) of every shared site, latest values."""
    shared = shared_sites(this.topology, reference.topology)

    def values(session: Session, index: I64) -> tuple[F64, I64]:
        stats = session.stats
        if len(stats) != len(session.topology) or len(index) == 0:
            return np.full(len(index), np.nan), np.full(len(index), -1, np.int64)
        steps = stats.steps[index].astype(np.int64)
        out = stats.field(statistic)[index].astype(np.float64)
        out[steps < 0] = np.nan
        return out, steps

    mine, my_steps = values(this, shared.this)
    theirs, their_steps = values(reference, shared.reference)
    return Compared(shared, mine, theirs, my_steps, their_steps)
