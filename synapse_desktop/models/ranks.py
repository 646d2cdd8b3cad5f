"""Several ranks in one session: each rank's data, the rank the views show, the spread.

The views read ``Session.stats``, ``history`` and ``sparse`` (the *shown* models). ``Ranks``
fills them from the chosen rank, or from the merge of every rank (``MERGED``, the default).

- While a single rank has been seen, its data *is* the shown models: nothing is copied, and
  the path of a frame is the same as with no ranks at all.
- When a second rank appears, the first one's data is copied into a store of its own; from
  then on every rank has a store (latest statistics, history, sparse points), and a merged
  history is kept too, so that switching the choice shows the chosen stream's past at once.

**Merged** statistics of a site: the mean across ranks of each rank's latest record, field by
field (histogram included), over the ranks that have reported the site; its step is the newest
among them (recomputed once per batch, for the sites that changed). The merged history keeps
one sample per step: the sample of a step is replaced as
more ranks report it, so once every rank has sent step ``s`` the sample of ``s`` is the mean of
their step-``s`` records. **Merged sparse points** are the lowest rank's (normally rank 0's):
points are exact neurons of one rank, and a union would multiply the points drawn.

**Spread** of a statistic at a site: max - min across the ranks that have reported it (NaN with
fewer than two), and the *farthest* rank: the one whose value is farthest from their mean.

**A job's rank in full.** On a job stream whose serving rank relays ranks (``job_ranks``), the
statistics are the job's merged ones and the choice is which rank's full frames the serving
rank relays (``full``): its sparse points and lens frames are shown, the merged statistics stay.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from synapse_desktop.models.bands import bands
from synapse_desktop.models.history import FIELDS, History
from synapse_desktop.models.signal import Signal
from synapse_desktop.models.sparse import LatestSparse, SparsePoints
from synapse_desktop.models.stats import LatestStats
from synapse_native.protocol import SUMMARY_DTYPE

MERGED = -1  # the choice that shows the mean across ranks


def _field_words(kind: type[np.generic]) -> npt.NDArray[np.intp]:
    """The ``kind`` words of a summary record that hold fields of that type."""
    size = np.dtype(kind).itemsize
    fields = SUMMARY_DTYPE.fields
    assert fields is not None
    words: list[int] = []
    for name in SUMMARY_DTYPE.names or ():
        field, offset = fields[name][:2]
        if field.base == kind:
            words.extend(range(offset // size, (offset + field.itemsize) // size))
    return np.asarray(words, np.intp)


_FLOAT_WORDS = _field_words(np.float32)  # every statistic and the histogram
_COUNT_WORDS = _field_words(np.uint64)  # count, nan_count, inf_count: averaged as integers


I64 = npt.NDArray[np.int64]


@dataclass(slots=True)
class RankData:
    """One rank's own latest statistics, history and sparse points."""

    stats: LatestStats
    history: History
    sparse: LatestSparse


class Spread(NamedTuple):
    """Per site: max - min across ranks (NaN: fewer than two), and the rank farthest from
    their mean (-1: fewer than two ranks, or all equal)."""

    spread: npt.NDArray[np.float32]
    farthest: I64


class Ranks:
    """The ranks seen, the choice, and (with several ranks) a store per rank.

    ``changed`` fires from ``flush`` when the ranks seen or the choice changed; ``updated`` when
    a rank's statistics changed while there are several (the spread may have moved).
    """

    def __init__(self, stats: LatestStats, history: History, sparse: LatestSparse) -> None:
        self.changed = Signal()
        self.updated = Signal()
        self.ranks: list[int] = []  # in rank order
        self.choice = MERGED
        self.job_ranks = 0  # a job stream that relays ranks: its world size
        self.serve_rank = 0  # and the rank serving it
        self.full = MERGED  # on such a stream: the rank relayed in full (MERGED: none)
        self._stats, self._history, self._sparse = stats, history, sparse
        self._data: dict[int, RankData] = {}  # empty while one rank (its data is the shown one)
        self._merged: History | None = None
        self._to_merge: list[I64] = []  # sites whose merge is due at the next flush
        self._changed = False
        self._updated = False

    def __len__(self) -> int:
        return len(self.ranks)

    @property
    def shown_sparse_rank(self) -> int:
        """The rank whose sparse points are shown (-1: none seen yet)."""
        if self.full != MERGED:
            return self.full
        if self.choice != MERGED:
            return self.choice
        if self.job_ranks:
            return self.serve_rank
        return self.ranks[0] if self.ranks else -1

    @property
    def lens_choice(self) -> int:
        """The rank whose own lens frames (attention, head stats, residual, routing) are shown:
        the rank relayed in full, else ``choice``."""
        return self.full if self.full != MERGED else self.choice

    # -- frames in ------------------------------------------------------------------------------

    def see(self, rank: int) -> None:
        """Note that ``rank`` exists (its HELLO or its first data)."""
        if rank in self._data or (not self._data and self.ranks and rank == self.ranks[0]):
            return
        if self.ranks and not self._data:  # the second rank: give the first one a store
            first = self.ranks[0]
            self._data[first] = RankData(
                _copy_stats(self._stats), _copy_history(self._history), _copy_sparse(self._sparse)
            )
            self._merged = _copy_history(self._history)
        source = self.shown_sparse_rank
        bisect.insort(self.ranks, rank)
        if self._data:
            size = len(self._stats)
            history = _sized_history(self._history.capacity, size)
            self._data[rank] = RankData(_sized_stats(size), history, _sized_sparse(size))
            if self.shown_sparse_rank != source:
                self._sparse.load(self._data[self.shown_sparse_rank].sparse.points)
        self._changed = True

    def summaries(self, rank: int, indices: I64, records: npt.NDArray[np.void], step: int) -> None:
        """Take one rank's summary records (rows for site ``indices``, all known) of ``step``."""
        self.see(rank)
        stats, history = self._stats, self._history
        if not self._data:  # one rank: the shown models are its own
            fresh = stats.update(indices, records, step)
            if fresh.any():
                kept = records[fresh]
                history.append(indices[fresh], step, _values(kept), bands(kept["hist"]))
            return
        data = self._data[rank]
        fresh = data.stats.update(indices, records, step)
        if not fresh.any():
            return
        rows, kept = indices[fresh], records[fresh]
        values, kept_bands = _values(kept), bands(kept["hist"])
        data.history.append(rows, step, values, kept_bands)
        if self.choice == rank:
            stats.put(rows, kept, step)
            history.append(rows, step, values, kept_bands)
        self._to_merge.append(rows)  # merged once per batch, whatever the ranks in it
        self._updated = True

    def sparse(self, rank: int, index: int, points: SparsePoints) -> None:
        """Take one rank's sparse points of site ``index``."""
        self.see(rank)
        if not self._data:
            self._sparse.update(index, points)
            return
        self._data[rank].sparse.update(index, points)
        if rank == self.shown_sparse_rank:
            self._sparse.update(index, points)

    def sparse_all(self, rank: int, indices: list[int], points: Iterable[SparsePoints]) -> None:
        """Take one rank's sparse points of several sites (all known), in order."""
        self.see(rank)
        if not self._data:
            self._sparse.update_all(indices, points)
            return
        points = list(points)
        self._data[rank].sparse.update_all(indices, points)
        if rank == self.shown_sparse_rank:
            self._sparse.update_all(indices, points)

    # -- the choice -----------------------------------------------------------------------------

    def choose(self, rank: int) -> None:
        """Show ``rank``'s data, or the merge (``MERGED``); the shown models are refilled."""
        if rank != MERGED and rank not in self.ranks:
            raise ValueError(f"no rank {rank} has been seen (ranks: {self.ranks})")
        if rank == self.choice:
            return
        self._settle()
        self.choice = rank
        self._changed = True
        if not self._data:
            return  # one rank: it is also the merge
        every = np.arange(len(self._stats), dtype=np.int64)
        if rank == MERGED:
            merged, steps = self._merge(every)
            self._stats.put(every, merged, steps)
            assert self._merged is not None
            self._history.load(self._merged)
        else:
            data = self._data[rank]
            self._stats.put(every, data.stats.records, data.stats.steps)
            self._history.load(data.history)
        self._sparse.load(self._data[self.shown_sparse_rank].sparse.points)

    def set_job(self, world_size: int, serve_rank: int = 0) -> None:
        """The stream is a job's that relays any of its ``world_size`` ranks (0: it is not),
        served by ``serve_rank``."""
        if (world_size, serve_rank) != (self.job_ranks, self.serve_rank):
            self.job_ranks, self.serve_rank = world_size, serve_rank
            self._changed = True

    def show_full(self, rank: int) -> None:
        """On a job stream: show ``rank``'s relayed frames (``MERGED``: the serving rank's
        own again); the merged statistics stay."""
        if rank == self.full:
            return
        if rank != MERGED and not 0 <= rank < self.job_ranks:
            raise ValueError(f"rank {rank} is not a rank of this job ({self.job_ranks} ranks)")
        if rank != MERGED:
            self.see(rank)  # its store, empty until its first relayed frames
        self.full = rank
        self._changed = True
        if self._data:
            self._sparse.load(self._data[self.shown_sparse_rank].sparse.points)

    # -- reading --------------------------------------------------------------------------------

    def by_rank(self, name: str) -> npt.NDArray[np.float32]:
        """One statistic for every rank (rows, in ``ranks`` order) and site (NaN: no data)."""
        if not self._data:
            return self._stats.field(name)[None, :]
        return np.stack([self._data[rank].stats.field(name) for rank in self.ranks])

    def spread(self, name: str) -> Spread:
        """The spread of one statistic across ranks at every site, and the farthest rank."""
        values = self.by_rank(name).astype(np.float64)
        valid = np.isfinite(values)
        count = valid.sum(axis=0)
        high = np.where(valid, values, -np.inf).max(axis=0)
        low = np.where(valid, values, np.inf).min(axis=0)
        several = count >= 2
        spread = np.full(values.shape[1], np.nan, np.float32)
        spread[several] = (high - low)[several]
        mean = np.where(valid, values, 0.0).sum(axis=0) / np.maximum(count, 1)
        distance = np.where(valid, np.abs(values - mean), -1.0)
        farthest = np.asarray(self.ranks, np.int64)[np.argmax(distance, axis=0)]
        farthest[~(several & (high > low))] = -1  # no spread: no rank stands out
        return Spread(spread, farthest)

    # -- upkeep ---------------------------------------------------------------------------------

    def remap(self, old_to_new: I64, size: int) -> None:
        """Follow a topology rebuild (the shown models are remapped by the session)."""
        for data in self._data.values():
            for model in (data.stats, data.history, data.sparse):
                model.remap(old_to_new, size)
        if self._merged is not None:
            self._merged.remap(old_to_new, size)
        if self._to_merge:  # the sites still to merge moved too
            moved = old_to_new[np.concatenate(self._to_merge)]
            self._to_merge = [moved[moved >= 0]]

    def clear(self) -> None:
        """Forget every rank's data, keeping the ranks (a new training run)."""
        for data in self._data.values():
            for model in (data.stats, data.history, data.sparse):
                model.clear()
        if self._merged is not None:
            self._merged.clear()
        self._to_merge = []
        self._updated = bool(self._data)

    def reset(self) -> None:
        """Forget the ranks themselves (new endpoints); the shown data stays as it is."""
        self.ranks, self.choice, self.full, self.job_ranks = [], MERGED, MERGED, 0
        self._data, self._merged, self._to_merge = {}, None, []
        self._changed = True

    def flush(self) -> None:
        """Bring the merge up to date (before the shown models flush), then emit ``changed``
        and ``updated`` if due."""
        self._settle()
        if self._changed:
            self._changed = False
            self.changed.emit()
        if self._updated:
            self._updated = False
            self.updated.emit()

    def _settle(self) -> None:
        """Merge the sites updated since the last time: the merged history, and the shown
        models when the merge is shown."""
        if not self._to_merge or self._merged is None:
            return
        rows = np.unique(np.concatenate(self._to_merge))
        self._to_merge = []
        merged, steps = self._merge(rows)
        if (steps < 0).any():  # no rank has data there (any more)
            merged, steps, rows = merged[steps >= 0], steps[steps >= 0], rows[steps >= 0]
        values, merged_bands = _values(merged), bands(merged["hist"])
        self._merged.put(rows, steps, values, merged_bands)
        if self.choice == MERGED:
            self._stats.put(rows, merged, steps)
            self._history.put(rows, steps, values, merged_bands)

    def _merge(self, rows: I64) -> tuple[npt.NDArray[np.void], I64]:
        """The merged records of sites ``rows`` and their steps (-1: no rank has data)."""
        stores = [self._data[rank].stats for rank in self.ranks]
        steps = np.stack([store.steps[rows] for store in stores])  # (ranks, rows)
        valid = steps >= 0
        count = np.maximum(valid.sum(axis=0), 1)
        # Plain word views of the records (no structured copies): every float32 field,
        # histogram included, in one pass; the three uint64 counts as integers.
        floats = np.stack([_words(store, np.float32)[rows][:, _FLOAT_WORDS] for store in stores])
        counts = np.stack([_words(store, np.uint64)[rows][:, _COUNT_WORDS] for store in stores])
        out = np.zeros(len(rows), SUMMARY_DTYPE)
        out_floats = out.view(np.float32).reshape(len(rows), -1)
        out_floats[:, _FLOAT_WORDS] = (
            np.where(valid[..., None], floats, 0.0).sum(0) / count[:, None]
        )
        out_counts = out.view(np.uint64).reshape(len(rows), -1)
        out_counts[:, _COUNT_WORDS] = np.where(valid[..., None], counts, 0).sum(0) // count[:, None]
        out["site_id"] = stores[0].records["site_id"][rows]  # the same row: the same site
        return out, steps.max(axis=0)


def _values(records: npt.NDArray[np.void]) -> npt.NDArray[np.float32]:
    """The history ``FIELDS`` of ``records``, shape (n, len(FIELDS))."""
    return np.stack([records[name] for name in FIELDS], axis=1).astype(np.float32)


def _words(stats: LatestStats, kind: type[np.generic]) -> npt.NDArray[Any]:
    """``stats.records`` as rows of ``kind`` words (a view)."""
    return stats.records.view(kind).reshape(len(stats), -1)


def _sized_stats(size: int) -> LatestStats:
    stats = LatestStats()
    stats.remap(np.zeros(0, np.int64), size)
    return stats


def _sized_history(capacity: int, size: int) -> History:
    history = History(capacity)
    history.remap(np.zeros(0, np.int64), size)
    return history


def _sized_sparse(size: int) -> LatestSparse:
    sparse = LatestSparse()
    sparse.remap(np.zeros(0, np.int64), size)
    return sparse


def _copy_stats(stats: LatestStats) -> LatestStats:
    copy = _sized_stats(len(stats))
    copy.put(np.arange(len(stats), dtype=np.int64), stats.records, stats.steps)
    return copy


def _copy_history(history: History) -> History:
    copy = _sized_history(history.capacity, len(history))
    copy.load(history)
    return copy


def _copy_sparse(sparse: LatestSparse) -> LatestSparse:
    copy = _sized_sparse(len(sparse))
    copy.load(sparse.points)
    return copy
