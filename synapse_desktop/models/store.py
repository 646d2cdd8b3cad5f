"""The shape the session's data models share: they gather changes and publish them at ``flush``."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt


class Store(Protocol):
    """A model of one run's data, fed by the session."""

    def flush(self) -> None:
        """Emit the pending change signals."""

    def clear(self) -> None:
        """Forget the run's data (a new training run); signals wait for ``flush``."""


@runtime_checkable
class SiteStore(Store, Protocol):
    """A store with a row per topology site."""

    def remap(self, old_to_new: npt.NDArray[np.int64], size: int) -> None:
        """Follow a topology rebuild: row ``i`` moves to ``old_to_new[i]`` (-1: dropped)."""
