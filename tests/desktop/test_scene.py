"""Scene geometry without VisPy: layout, atlas packing, picking, colour scales."""

from __future__ import annotations

import numpy as np

from synapse_desktop.models.session import Session
from synapse_desktop.scene.atlas import pack
from synapse_desktop.scene.layout import LAYER_SPACING, compute_layout
from synapse_desktop.scene.picking import pick
from synapse_desktop.scene.scales import SCALES

from .frames import frame, meta


def _sites(n_layers: int = 32):  # type: ignore[no-untyped-def]
    session = Session()
    session.apply_frame(frame(meta(n_layers), seq=1))
    return session.topology.sites


def test_layout_is_deterministic_and_sized_by_the_neuron_grids() -> None:
    sites = _sites()
    layout = compute_layout(sites)
    again = compute_layout(sites)
    np.testing.assert_array_equal(layout.corners, again.corners)
    assert layout.rows.tolist()[:3] == [64, 112, 64] and layout.cols.tolist()[:3] == [64, 128, 64]
    assert layout.layer_x[31] == 31 * LAYER_SPACING
    lo, hi = layout.bounds
    assert hi[0] - lo[0] == 31 * LAYER_SPACING and hi[1] - lo[1] == 128
    wider = compute_layout(sites, spacing=2.0)
    assert wider.layer_x[31] == 2 * layout.layer_x[31]
    # Planes of one card do not overlap: each starts below the previous one.
    quads = layout.quads()
    assert quads[1, 0, 2] < quads[0, 2, 2] and quads[2, 0, 2] < quads[1, 2, 2]
    # Neuron 130 of the MLP plane: row 1, column 2.
    pos = layout.neuron_positions(1, np.array([130]))
    np.testing.assert_allclose(pos[0] - layout.corners[1], [0, 2.5, -1.5])


def test_atlas_blocks_do_not_overlap() -> None:
    layout = compute_layout(_sites(4))
    atlas = pack(layout.rows, layout.cols)
    image = np.zeros(atlas.shape, np.int32)
    for i in range(len(layout)):
        block = atlas.block(image, i)
        assert block.shape == (layout.rows[i], layout.cols[i])
        block += 1
    assert image.max() == 1 and image.sum() == int((layout.rows * layout.cols).sum())
    uv = atlas.texcoords()
    assert uv.shape == (12, 4, 2) and uv.min() >= 0 and uv.max() <= 1


def test_a_ray_picks_the_nearest_plane_and_the_neuron_under_it() -> None:
    layout = compute_layout(_sites(4))
    target = layout.neuron_positions(4, np.array([200]))[0]  # layer 1, MLP
    origin = target + np.array([-500.0, 0.0, 0.0])
    hit = pick(layout, origin, [1.0, 0.0, 0.0])
    assert hit is not None and hit.index == 1 and hit.neuron == 200  # layer 0 is in front
    assert hit.distance == 500 - LAYER_SPACING
    behind = pick(layout, target + np.array([500.0, 0.0, 0.0]), [-1.0, 0.0, 0.0])
    assert behind is not None and behind.index == 10  # layer 3 is in front from that side
    assert pick(layout, origin + np.array([0, 1e4, 0]), [1.0, 0.0, 0.0]) is None
    assert pick(layout, origin, [0.0, 1.0, 0.0]) is None  # parallel to the planes


def test_scales_clip_and_keep_nan() -> None:
    out = SCALES["rms"].normalize(np.array([1e-5, 1.0, 1e5, np.nan]))
    np.testing.assert_allclose(out[:3], [0.0, 0.5, 1.0])
    assert np.isnan(out[3])


def test_atlas_shelves_are_bands_of_whole_rows_holding_their_blocks() -> None:
    layout = compute_layout(_sites(32))
    atlas = pack(layout.rows, layout.cols)
    tops, stops = atlas.shelves[:, 0], atlas.shelves[:, 1]
    assert (tops[1:] >= stops[:-1]).all() and stops[-1] == atlas.shape[0]
    assert (atlas.offsets[:, 0] == tops[atlas.shelf]).all()
    assert (atlas.offsets[:, 0] + atlas.rows <= stops[atlas.shelf]).all()
    assert (np.diff(atlas.shelf) >= 0).all() and len(atlas.shelves) > 1
    empty = pack(np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert empty.shelves.shape == (0, 2) and len(empty.shelf) == 0
