"""Which sites the model has: from MODEL_META, or bootstrapped from the site ids seen."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from synapse_desktop.models.signal import Signal
from synapse_native.protocol import SiteInfo

KIND_NAMES = {0: "other", 1: "attn", 2: "mlp", 3: "residual", 4: "embed", 5: "router", 6: "expert"}


@dataclass(frozen=True, slots=True)
class Site:
    """One hooked site, with ``index`` its dense position in the app's arrays."""

    index: int
    site_id: int
    layer: int
    kind: int
    name: str
    neurons: int
    grid_rows: int
    grid_cols: int

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, f"kind {self.kind}")


class Topology:
    """The ordered site table. ``changed`` fires after every rebuild (indices may move)."""

    def __init__(self) -> None:
        self.changed = Signal()
        self.model_name = ""
        self.from_meta = False
        self.sites: tuple[Site, ...] = ()
        self._lookup = np.full(0, -1, np.int64)

    def __len__(self) -> int:
        return len(self.sites)

    @property
    def layers(self) -> list[int]:
        """The distinct layer ids, in order."""
        return sorted({site.layer for site in self.sites})

    def set_meta(self, model_name: str, specs: Sequence[SiteInfo]) -> bool:
        """Take MODEL_META's table; returns whether anything changed (and ``changed`` fired)."""
        ordered = tuple(sorted(specs, key=lambda s: (s.layer, s.kind, s.site_id)))
        if self.from_meta and model_name == self.model_name and ordered == self._specs():
            return False
        self.model_name = model_name
        self.from_meta = True
        self._build(ordered)
        return True

    def ensure(self, site_ids: Iterable[int]) -> bool:
        """Add a guessed site for every id not yet known; returns whether it rebuilt."""
        unknown = sorted({int(i) for i in site_ids} - {s.site_id for s in self.sites})
        if not unknown:
            return False
        guessed = [SiteInfo(i, i, 0, f"site {i}", 0, 0, 0) for i in unknown]
        specs = sorted((*self._specs(), *guessed), key=lambda s: (s.layer, s.kind, s.site_id))
        self._build(tuple(specs))
        return True

    def clear(self) -> None:
        """Forget every site."""
        self.model_name = ""
        self.from_meta = False
        self._build(())

    def index_of(self, site_id: int) -> int:
        """The dense index of ``site_id``, or -1."""
        if 0 <= site_id < len(self._lookup):
            return int(self._lookup[site_id])
        return -1

    def indices_of(self, site_ids: npt.NDArray[np.integer]) -> npt.NDArray[np.int64]:
        """Vectorised ``index_of`` (-1 for unknown ids)."""
        ids = np.asarray(site_ids, np.int64)
        inside = (ids >= 0) & (ids < len(self._lookup))
        out = np.full(ids.shape, -1, np.int64)
        out[inside] = self._lookup[ids[inside]]
        return out

    def _specs(self) -> tuple[SiteInfo, ...]:
        return tuple(
            SiteInfo(s.site_id, s.layer, s.kind, s.name, s.neurons, s.grid_rows, s.grid_cols)
            for s in self.sites
        )

    def _build(self, specs: tuple[SiteInfo, ...]) -> None:
        self.sites = tuple(
            Site(i, s.site_id, s.layer, int(s.kind), s.name, s.neurons, s.grid_rows, s.grid_cols)
            for i, s in enumerate(specs)
        )
        size = max((s.site_id for s in specs), default=-1) + 1
        self._lookup = np.full(size, -1, np.int64)
        for site in self.sites:
            self._lookup[site.site_id] = site.index
        self.changed.emit()
