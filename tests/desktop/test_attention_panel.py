"""The attention dock rendered for real (QPainter under Xvfb), fed with encoded-then-decoded
ATTENTION and HEAD_STATS frames: what the selectors choose is what is drawn, a heatmap click
chooses a head, a previous-token head draws a bright sub-diagonal and arcs to the left."""

from __future__ import annotations

import numpy as np
import pytest

from synapse_desktop.models.session import Session
from synapse_native.protocol import AttentionPattern, HeadStats, SiteKind

from .frames import frame, meta, trainer_hello

TOKENS = tuple(f" w{i}" for i in range(12))
T = len(TOKENS)
N_LAYERS, N_HEADS = 4, 6


def previous_token() -> np.ndarray:
    w = np.zeros((T, T), np.float32)
    w[0, 0] = 1.0
    w[np.arange(1, T), np.arange(T - 1)] = 1.0
    return w


def first_token() -> np.ndarray:
    """An attention sink: every query attends to token 0."""
    w = np.zeros((T, T), np.float32)
    w[:, 0] = 1.0
    return w


def uniform() -> np.ndarray:
    w = np.tril(np.ones((T, T), np.float32))
    return w / w.sum(axis=1, keepdims=True)


def entropy_of(layer: int, head: int) -> float:
    return 0.1 + 0.1 * layer + 0.3 * head


def patterns(pairs: dict[tuple[int, int], np.ndarray], rank: int = 0, seq: int = 3) -> object:
    layers, heads = zip(*pairs, strict=True)
    message = AttentionPattern(
        TOKENS, np.array(layers), np.array(heads), np.stack(list(pairs.values()))
    )
    return frame(message, seq=seq, step=20, rank=rank)


def stats(step: int = 20, seq: int = 2, rank: int = 0) -> object:
    entropy = np.array(
        [[entropy_of(layer, head) for head in range(N_HEADS)] for layer in range(N_LAYERS)],
        np.float32,
    )
    logits = np.tile(np.arange(N_HEADS, dtype=np.float32), (N_LAYERS, 1)) * 3.0
    return frame(HeadStats(np.arange(N_LAYERS), entropy, logits, T), seq=seq, step=step, rank=rank)


def feed(session: Session) -> None:
    session.apply_frames(
        [
            frame(meta(N_LAYERS), seq=1),
            stats(),
            patterns({(1, 2): previous_token(), (0, 0): uniform(), (3, 1): first_token()}),
        ]
    )


def pixels(widget) -> np.ndarray:  # type: ignore[no-untyped-def]
    """What the widget draws now, as (h, w, 3) uint8."""
    from PySide6.QtGui import QImage

    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    h, w = image.height(), image.width()
    data = np.frombuffer(image.constBits(), np.uint8, count=image.sizeInBytes())
    return data.reshape(h, image.bytesPerLine())[:, : 3 * w].reshape(h, w, 3).copy()


def at(image: np.ndarray, point) -> np.ndarray:  # type: ignore[no-untyped-def]
    return image[int(point.y()), int(point.x())].astype(int)


def brightness(rgb: np.ndarray) -> float:
    return float(rgb.sum())


@pytest.fixture
def panel(qtbot):  # type: ignore[no-untyped-def]
    from synapse_desktop.qt.attention_panel import AttentionPanel

    widget = AttentionPanel(Session())
    qtbot.addWidget(widget)
    widget.resize(1300, 380)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


@pytest.mark.gui
def test_it_waits_for_frames_then_shows_the_first_head_with_a_pattern(panel) -> None:  # type: ignore[no-untyped-def]
    from synapse_desktop.qt.attention_panel import WAITING

    panel.refresh()
    assert panel.stack.currentWidget() is panel.waiting
    assert panel.waiting.text() == WAITING and "attention=True" in WAITING
    feed(panel.session)
    panel.refresh()
    assert panel.stack.currentIndex() == 1
    assert (panel.choice.layer, panel.choice.head) == (0, 0)  # the first pair with a pattern
    assert (panel.layer.value(), panel.head.value()) == (0, 0)
    assert (panel.layer.maximum(), panel.head.maximum()) == (N_LAYERS - 1, N_HEADS - 1)
    assert "pattern of step 20" in panel.age.text() and "the newest step" in panel.age.text()
    panel.session.apply_frame(stats(step=25, seq=4))
    panel.refresh()
    assert "5 steps behind" in panel.age.text()


@pytest.mark.gui
def test_a_previous_token_head_draws_a_bright_subdiagonal(panel) -> None:  # type: ignore[no-untyped-def]
    feed(panel.session)
    panel.refresh()
    panel.layer.setValue(1)
    panel.head.setValue(2)
    panel.refresh()
    view = panel.pattern_view
    assert view.pattern is not None and (view.pattern.layer, view.pattern.head) == (1, 2)
    image = pixels(view)
    for q in range(2, T):
        below = brightness(at(image, view.cell_rect(q, q - 1).center()))
        diagonal = brightness(at(image, view.cell_rect(q, q).center()))
        far = brightness(at(image, view.cell_rect(q, 0).center()))
        assert below > diagonal + 300 and below > far + 300
    # The token view: arcs between neighbours, none across the whole sequence.
    tokens = panel.tokens_view
    assert tokens.arcs[:, :2].tolist() == [[0, 0]] + [[q, q - 1] for q in range(1, T)]
    arcs = pixels(tokens)
    background = arcs[2, 2].astype(int)
    y0, spacing = int(tokens.baseline), tokens.spacing
    short = slice(y0 - int(spacing), y0 - 1)  # where an arc between neighbours is
    between = [int((tokens.token_x(q) + tokens.token_x(q - 1)) / 2) for q in range(2, T)]
    drawn = [np.abs(arcs[short, x].astype(int) - background).sum(axis=1).max() for x in between]
    assert min(drawn) > 60  # each neighbour pair has its arc
    middle = int(tokens.token_x(T // 2))
    high = slice(int(tokens.height() * 0.1) + 20, y0 - int(spacing))
    assert np.abs(arcs[high, middle].astype(int) - background).sum(axis=1).max() < 30  # no long arc


@pytest.mark.gui
def test_the_selectors_change_what_is_drawn(panel) -> None:  # type: ignore[no-untyped-def]
    feed(panel.session)
    panel.refresh()
    before = pixels(panel.pattern_view)
    panel.layer.setValue(3)
    panel.head.setValue(1)
    panel.refresh()
    view = panel.pattern_view
    assert (view.pattern.layer, view.pattern.head) == (3, 1)  # type: ignore[union-attr]
    assert (panel.tokens_view.pattern.layer, panel.tokens_view.pattern.head) == (3, 1)  # type: ignore[union-attr]
    image = pixels(view)
    assert not np.array_equal(image, before)
    column = [brightness(at(image, view.cell_rect(q, 0).center())) for q in range(T)]
    rest = [brightness(at(image, view.cell_rect(q, q).center())) for q in range(1, T)]
    assert min(column) > max(rest) + 300  # the sink: key 0 lit for every query
    # A head without a pattern says so.
    panel.head.setValue(4)
    panel.refresh()
    assert panel.tokens_view.pattern is None
    assert panel.age.text() == "no pattern for this head yet"
    # The statistic selector recolours the head heatmap.
    heat = panel.heads_view
    entropy_image = pixels(heat)
    assert heat.range == pytest.approx((0.0, np.log(T)))
    panel.statistic.setCurrentIndex(panel.statistic.findData("max_logit"))
    panel.refresh()
    assert panel.choice.statistic == "max_logit"
    assert heat.range == (0.0, 20.0)  # 15 rounded up
    assert not np.array_equal(pixels(heat), entropy_image)


@pytest.mark.gui
def test_the_head_heatmap_colours_by_value_and_a_click_chooses_the_head(panel, qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QPoint, Qt

    feed(panel.session)
    panel.refresh()
    heat = panel.heads_view
    image = pixels(heat)
    low = at(image, heat.cell_rect(0, 0).adjusted(4, 4, 0, 0).topLeft())
    high = at(image, heat.cell_rect(3, 5).adjusted(4, 4, 0, 0).topLeft())
    assert brightness(high) > brightness(low) + 150  # entropy grows with layer and head
    cell = heat.cell_rect(2, 4).center()
    qtbot.mouseClick(heat, Qt.MouseButton.LeftButton, pos=QPoint(int(cell.x()), int(cell.y())))
    assert (panel.choice.layer, panel.choice.head) == (2, 4)
    assert (panel.layer.value(), panel.head.value()) == (2, 4)
    site = panel.session.topology.sites[panel.session.selection.selected]
    assert (site.layer, site.kind) == (2, SiteKind.ATTN)  # the app follows
    heat.hover(cell.x(), cell.y())
    assert panel.readout.startswith("layer 2 head 4, step 20: entropy (nats) 1.5")
    cell = heat.cell_rect(1, 2).center()
    qtbot.mouseClick(heat, Qt.MouseButton.LeftButton, pos=QPoint(int(cell.x()), int(cell.y())))
    panel.refresh()
    assert panel.pattern_view.pattern.weights == pytest.approx(previous_token(), abs=1e-3)  # type: ignore[union-attr]


@pytest.mark.gui
def test_the_layer_selected_in_the_app_is_marked_in_the_heatmap(panel) -> None:  # type: ignore[no-untyped-def]
    from synapse_desktop.views.colors import THEMES

    feed(panel.session)
    panel.refresh()
    heat = panel.heads_view
    color = np.array(THEMES["dark"].selected[:3]) * 255

    def marked(row: int) -> bool:
        image = pixels(heat)
        top = heat.cell_rect(row, 0).top()
        x = int(heat.cell_rect(row, N_HEADS // 2).center().x())
        near = image[int(top) - 1 : int(top) + 2, x].astype(int)
        return bool((np.abs(near - color).sum(axis=1) < 80).any())

    assert not marked(2)
    session = panel.session
    site = next(s for s in session.topology.sites if (s.layer, s.kind) == (2, SiteKind.MLP))
    session.selection.select(site.index)
    assert heat.selected_layer == 2 and marked(2) and not marked(1)


@pytest.mark.gui
def test_hovering_a_token_highlights_what_it_attends_to_and_a_click_pins_it(panel, qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QPoint, Qt

    from synapse_desktop.qt.head_heatmap import CHOSEN_COLOR

    feed(panel.session)
    panel.choice.choose(1, 2)
    panel.refresh()
    tokens = panel.tokens_view
    tokens.hover(tokens.token_x(5))
    assert panel.choice.hovered == 5
    assert panel.readout.startswith("'\u00b7w5' (5) attends to '\u00b7w4' (4) 1.00")
    image = pixels(tokens)
    chosen = np.array([int(CHOSEN_COLOR[i : i + 2], 16) for i in (1, 3, 5)])
    short = slice(int(tokens.baseline - tokens.spacing), int(tokens.baseline) - 1)
    x = int((tokens.token_x(5) + tokens.token_x(4)) / 2)
    assert (np.abs(image[short, x].astype(int) - chosen).sum(axis=1) < 90).any()
    x_other = int((tokens.token_x(9) + tokens.token_x(8)) / 2)
    assert not (np.abs(image[short, x_other].astype(int) - chosen).sum(axis=1) < 90).any()
    # The pattern view outlines that query's row.
    view = panel.pattern_view
    grid = pixels(view)
    row = view.cell_rect(5, 0)
    edge = grid[int(row.top()) - 1 : int(row.top()) + 2, int(view.grid_rect().center().x())]
    assert (np.abs(edge.astype(int) - chosen).sum(axis=1) < 90).any()
    x5 = int(tokens.token_x(5))
    qtbot.mouseClick(tokens, Qt.MouseButton.LeftButton, pos=QPoint(x5, int(tokens.baseline) - 10))
    assert panel.choice.query == 5
    tokens.leaveEvent(None)
    assert panel.choice.hovered == -1 and panel.choice.shown_query == 5
    qtbot.mouseClick(tokens, Qt.MouseButton.LeftButton, pos=QPoint(x5, int(tokens.baseline) - 10))
    assert panel.choice.query == -1


@pytest.mark.gui
def test_the_views_follow_the_rank_shown(panel) -> None:  # type: ignore[no-untyped-def]
    session = panel.session
    feed(session)
    session.apply_frames(
        [
            frame(trainer_hello(), seq=0, rank=1),
            stats(rank=1, seq=1),
            patterns({(1, 2): uniform()}, rank=1, seq=2),
        ]
    )
    session.apply_frame(frame(trainer_hello(), seq=0, rank=0))
    panel.choice.choose(1, 2)
    panel.refresh()
    assert panel.pattern_view.pattern.rank == 0  # type: ignore[union-attr]  # merged: rank 0's
    session.choose_rank(1)
    panel.refresh()
    assert panel.pattern_view.pattern.rank == 1  # type: ignore[union-attr]
    assert panel.tokens_view.pattern.weights == pytest.approx(uniform(), abs=1e-3)  # type: ignore[union-attr]
    assert "rank 1" in panel.age.text()


@pytest.mark.gui
def test_the_views_go_back_to_waiting_on_a_new_run(panel) -> None:  # type: ignore[no-untyped-def]
    session = panel.session
    session.apply_frame(frame(trainer_hello(), seq=0))
    feed(session)
    panel.refresh()
    assert panel.stack.currentIndex() == 1
    session.apply_frame(frame(trainer_hello(), seq=0))
    session.apply_frames([frame(meta(N_LAYERS), seq=1), stats(step=3, seq=2)])  # a restart
    panel.refresh()
    assert panel.tokens_view.pattern is None and panel.heads_view.frame.step == 3  # type: ignore[union-attr]


@pytest.mark.gui
def test_the_window_has_an_attention_dock_toggled_by_ctrl_6(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import Qt

    dock = window.attention_dock
    assert dock.windowTitle() == "Attention"
    assert window.dockWidgetArea(dock) == Qt.DockWidgetArea.BottomDockWidgetArea
    toggle = dock.toggleViewAction()
    assert toggle.shortcut().toString() == "Ctrl+6"
    assert toggle in window.menuBar().actions()[1].menu().actions()
    panel = window.attention_panel
    assert not panel.shown and window.overview.isVisible()  # a tab behind the overview at first
    feed(window.session)
    panel.refresh()
    assert panel.tokens_view.pattern is None  # not on screen: not refreshed
    dock.raise_()
    qtbot.waitUntil(lambda: panel.shown)
    qtbot.waitUntil(lambda: panel.tokens_view.pattern is not None)  # the window's timer
    toggle.trigger()
    assert not dock.isVisible()
    window.overview_dock.raise_()
    toggle.trigger()
    qtbot.waitUntil(lambda: panel.shown)  # shown on top of its tab, not behind it


@pytest.mark.gui
def test_the_simulators_attention_reaches_the_dock(window, qtbot, sim) -> None:  # type: ignore[no-untyped-def]
    from synapse_desktop.net.endpoint import Endpoint
    from synapse_serve.sim.attention import TOKENS as SIM_TOKENS

    window.connect_to(Endpoint("127.0.0.1", sim.port))
    session, panel = window.session, window.attention_panel
    window.attention_dock.raise_()
    qtbot.waitUntil(lambda: panel.shown, timeout=5_000)
    qtbot.waitUntil(lambda: panel.tokens_view.pattern is not None, timeout=15_000)
    assert panel.stack.currentIndex() == 1
    pattern = panel.tokens_view.pattern
    assert pattern is not None and pattern.tokens == SIM_TOKENS
    assert pattern.weights.shape == (len(SIM_TOKENS), len(SIM_TOKENS))
    assert np.allclose(pattern.weights.sum(axis=1), 1.0, atol=0.02)  # softmax rows
    assert (panel.choice.layer, panel.choice.head) == (pattern.layer, pattern.head)
    latest = session.head_stats.latest()
    assert latest is not None and latest.layers == tuple(range(4))
    assert np.isfinite(latest.entropy).all()
    assert (latest.entropy <= np.log(len(SIM_TOKENS)) + 1e-3).all()
    assert "pattern of step" in panel.age.text()
    for view in panel.views:
        image = pixels(view)
        background = image[1, 1].astype(int)
        assert (np.abs(image.astype(int) - background).sum(axis=2) > 60).mean() > 0.02
