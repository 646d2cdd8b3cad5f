"""The residual-stream depth profile: per layer, how large the stream is and how much attention
and the MLP write into it, from the latest statistics (``session.stats``, which already follows
the rank selector).

Definitions (all from the per-element rms of the sites' activations, so layers of different
widths compare):

- ``residual_rms[i]``: rms of layer ``i``'s residual site, the block's output (the stream
  leaving layer ``i``). The L2 norm of one position's stream would be ``sqrt(width) * rms``;
  per-element rms is what is shown.
- ``attn_ratio[i]``: rms of layer ``i``'s attention output / rms of the stream entering layer
  ``i``, which is the residual site of layer ``i - 1``. ``mlp_ratio[i]``: the same for the MLP
  output, over the same stream.
- Layer 0 (and any layer whose previous layer has no residual value): the stream entering it is
  not measured (the embedding is not hooked), so its ratios are NaN, left out, rather than
  divided by another quantity.
- A missing site (``per_block="residual"`` hooks no attention or MLP), a site with nothing
  received yet, or a non-finite or zero rms gives NaN where it is used; nothing raises.

Each site contributes its latest record; ``steps`` tells which step each layer's residual
value is from (sites of one layer may be a step apart while a step is arriving).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from synapse_desktop.models.stats import LatestStats
from synapse_desktop.models.topology import Topology
from synapse_native.protocol import SiteKind

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class DepthProfile:
    """One entry per layer id of the topology, in increasing order."""

    layers: I64  # the layer ids
    residual_rms: F64  # rms of the residual site (the stream leaving the layer)
    attn_rms: F64  # rms of the attention output
    mlp_rms: F64  # rms of the MLP output
    stream_in: F64  # rms of the stream entering the layer (the previous layer's residual)
    attn_ratio: F64  # attn_rms / stream_in
    mlp_ratio: F64  # mlp_rms / stream_in
    residual_site: I64  # per layer: the residual site's index (-1: none)
    steps: I64  # per layer: the step of its residual value (-1: none)

    def __len__(self) -> int:
        return len(self.layers)

    def row_of(self, layer: int) -> int:
        """The row of layer id ``layer`` (-1: not a layer of the profile)."""
        at = np.flatnonzero(self.layers == layer)
        return int(at[0]) if len(at) else -1


def empty_profile() -> DepthProfile:
    f, i = np.zeros(0, np.float64), np.zeros(0, np.int64)
    return DepthProfile(i, f, f, f, f, f, f, i, i)


def depth_profile(topology: Topology, stats: LatestStats) -> DepthProfile:
    """The profile of the latest statistics (see the module's definitions)."""
    layers = np.asarray(topology.layers, np.int64)
    n = len(layers)
    if n == 0 or len(stats) != len(topology):
        return empty_profile()
    rms = stats.field("rms").astype(np.float64)
    rms[~np.isfinite(rms) | (rms <= 0)] = np.nan
    sites = {int(SiteKind.RESIDUAL): np.full(n, -1, np.int64)}
    sites[int(SiteKind.ATTN)] = np.full(n, -1, np.int64)
    sites[int(SiteKind.MLP)] = np.full(n, -1, np.int64)
    row_of = {int(layer): row for row, layer in enumerate(layers)}
    for site in topology.sites:  # ordered by (layer, kind, site_id): the first of a kind wins
        chosen = sites.get(site.kind)
        if chosen is not None and chosen[row_of[site.layer]] < 0:
            chosen[row_of[site.layer]] = site.index

    def values(kind: SiteKind) -> F64:
        index = sites[int(kind)]
        out = np.full(n, np.nan, np.float64)
        out[index >= 0] = rms[index[index >= 0]]
        return out

    residual = values(SiteKind.RESIDUAL)
    attn, mlp = values(SiteKind.ATTN), values(SiteKind.MLP)
    stream_in = np.full(n, np.nan, np.float64)
    follows = layers[1:] == layers[:-1] + 1  # the previous row is the layer just before
    stream_in[1:][follows] = residual[:-1][follows]
    with np.errstate(divide="ignore", invalid="ignore"):
        attn_ratio, mlp_ratio = attn / stream_in, mlp / stream_in
    residual_site = sites[int(SiteKind.RESIDUAL)]
    steps = np.full(n, -1, np.int64)
    steps[residual_site >= 0] = stats.steps[residual_site[residual_site >= 0]]
    return DepthProfile(
        layers, residual, attn, mlp, stream_in, attn_ratio, mlp_ratio, residual_site, steps
    )
