"""The per-token residual norm plot of the depth profile dock, rendered for real (Mesa under
Xvfb): hidden until RESIDUAL frames arrive, then layers down and tokens across with the sampled
tokens' strings, brighter where the norm is larger, the selected layer outlined, a click
selecting the layer's residual site."""

from __future__ import annotations

import numpy as np
import pytest

from synapse_desktop.models.session import Session
from synapse_native.protocol import AttentionPattern, ResidualTokens, SiteKind

from .frames import frame, meta, summaries

pytestmark = pytest.mark.gui

N_LAYERS = 12
T = 24
WORDS = ("The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".")
TOKENS = tuple(WORDS[i % len(WORDS)] for i in range(T))


def _norms(scale: float = 1.0) -> np.ndarray:
    """Grows 1.3x per layer; token 0 (an attention sink) 30x the others."""
    norms = np.outer(1.3 ** np.arange(N_LAYERS), np.ones(T)) * 5 * scale
    norms[:, 0] *= 30
    return norms.astype(np.float32)


def _frames(step: int, seq: int, scale: float = 1.0) -> list[object]:
    pattern = AttentionPattern(
        TOKENS,
        np.array([0], np.uint16),
        np.array([0], np.uint16),
        np.tril(np.ones((1, T, T), np.float16)) / T,
    )
    residual = ResidualTokens(np.arange(N_LAYERS, dtype=np.uint16), _norms(scale))
    return [frame(pattern, seq=seq, step=step), frame(residual, seq=seq + 1, step=step)]


@pytest.fixture
def depth(qapp):  # type: ignore[no-untyped-def]
    from synapse_desktop.views.depth_profile import DepthProfileView

    session = Session()
    records = summaries(list(range(3 * N_LAYERS)), 1.0)
    session.apply_frames([frame(meta(N_LAYERS), seq=1), frame(records, seq=2, step=10)])
    view = DepthProfileView(session, size=(420, 640))
    view.canvas.show()
    view.canvas.render()
    yield view
    view.close()


def _brightness(image: np.ndarray, xy: tuple[float, float]) -> int:
    return int(image[round(xy[1]), round(xy[0]), :3].astype(int).sum())


def test_the_plot_appears_with_the_first_frame_and_shows_the_norms(depth) -> None:  # type: ignore[no-untyped-def]
    assert depth.snapshot is None and not depth.tokens.view.visible
    rms_height = depth.rms_panel.view.rect.height
    depth.session.apply_frames(_frames(step=10, seq=3))
    depth.refresh()
    assert depth.snapshot is not None and depth.tokens.view.visible
    assert depth.rms_panel.view.rect.height < rms_height * 0.7  # room made under the profile
    assert depth.token_labels == TOKENS
    assert depth.tokens.token_ticks.labels[:3] == ("The", "\u00b7quick", "\u00b7brown")
    assert depth.tokens.title.text.startswith("per-token residual L2, step 10")
    image = depth.canvas.render()
    background = image[2, 2, :3].astype(int)
    shallow = _brightness(image, depth.token_pixel(0, 5))
    deep = _brightness(image, depth.token_pixel(N_LAYERS - 1, 5))
    sink = _brightness(image, depth.token_pixel(0, 0))
    assert deep - shallow > 150 and sink - shallow > 150
    assert abs(shallow - int(background.sum())) > 20  # drawn, not background


def test_the_selected_layer_is_outlined_and_a_click_selects_its_residual_site(depth, qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QPoint, Qt

    session = depth.session
    session.apply_frames(_frames(step=10, seq=3))
    depth.refresh()
    depth.canvas.render()
    x, y = depth.token_pixel(7, 3)
    qtbot.mouseClick(depth.native, Qt.MouseButton.LeftButton, pos=QPoint(int(x), int(y)))
    site = session.topology.sites[session.selection.selected]
    assert (site.layer, site.kind) == (7, SiteKind.RESIDUAL)
    marks = depth.tokens.marks
    assert [m.pos for m in marks] == [6.5, 7.5] and all(m.visible for m in marks)
    heard: list[str] = []
    depth.hovered.connect(heard.append)
    depth.hover(depth.token_pixel(4, 3))
    assert heard[-1] == f"layer 4, token 3 ' fox': residual L2 norm {_norms()[4, 3]:.4g}"


def test_a_newer_frame_replaces_the_shown_one(depth) -> None:  # type: ignore[no-untyped-def]
    depth.session.apply_frames(_frames(step=10, seq=3))
    depth.refresh()
    depth.session.apply_frames(_frames(step=20, seq=5, scale=2.0))
    depth.refresh()
    assert depth.snapshot is not None and depth.snapshot.step == 20
    assert depth.token_norms[3, 4] == pytest.approx(_norms(2.0)[3, 4])
    assert depth.tokens.title.text.startswith("per-token residual L2, step 20")
