"""The probe's table of sites: what each hooked point is, and the per-step marks the hooks keep."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from synapse_native.protocol import ModelMeta, SiteInfo, SiteKind, grid_shape
from synapse_serve.control import kind_bit

KIND_CODES = {"attn": SiteKind.ATTN, "mlp": SiteKind.MLP, "residual": SiteKind.RESIDUAL}


class Site:
    """One hooked point. ``seen_step`` / ``grad_step`` make each site count once per step."""

    __slots__ = (
        "grad_step",
        "kind",
        "kind_mask",
        "layer",
        "name",
        "neurons",
        "seen_step",
        "site_id",
    )

    def __init__(self, site_id: int, layer: int, kind: SiteKind | int, name: str, neurons: int):
        self.site_id = site_id
        self.layer = layer
        self.kind = kind
        self.kind_mask = kind_bit(kind)
        self.name = name
        self.neurons = neurons
        self.seen_step = -1
        self.grad_step = -1

    def info(self) -> SiteInfo:
        """The site's row of the MODEL_META site table."""
        rows, cols = grid_shape(self.neurons)
        return SiteInfo(self.site_id, self.layer, self.kind, self.name, self.neurons, rows, cols)


class SiteTable:
    """All sites of a probe, by id and by (layer, kind name); grows when users log new ones."""

    def __init__(self) -> None:
        self.sites: list[Site] = []
        self._by_key: dict[tuple[int, str], Site] = {}
        self.changed = False  # the topology differs from the last MODEL_META sent

    def __len__(self) -> int:
        return len(self.sites)

    def add(self, layer: int, kind: str, name: str, neurons: int = 0) -> Site:
        """A new site; ``kind`` is "attn", "mlp", "residual" or any other label (kind OTHER)."""
        site = Site(len(self.sites), layer, KIND_CODES.get(kind, SiteKind.OTHER), name, neurons)
        self.sites.append(site)
        self._by_key[(layer, kind)] = site
        self.changed = True
        return site

    def get(self, layer: int, kind: str) -> Site | None:
        """The site at ``layer`` of the given kind name, if there is one."""
        return self._by_key.get((layer, kind))

    def set_width(self, site: Site, neurons: int) -> None:
        """Record the width seen in a real output (the guess made at attach time may differ)."""
        site.neurons = neurons
        self.changed = True

    def meta(self, model_name: str) -> ModelMeta:
        """The MODEL_META message describing the sites as they are now."""
        n_layers = max((s.layer for s in self.sites), default=-1) + 1
        return ModelMeta(model_name, n_layers, tuple(s.info() for s in self.sites))


def first_tensor(output: Any) -> torch.Tensor | None:
    """The tensor a module output stands for: itself, or the first tensor of a tuple / mapping."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        items: Any = output
    elif isinstance(output, Mapping):
        items = output.values()
    else:
        return None
    for item in items:
        if isinstance(item, torch.Tensor):
            return item
    return None
