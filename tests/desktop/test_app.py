"""The app against real streams: an in-process simulator, a restarted one, garbage, tokens."""

from __future__ import annotations

import contextlib
import math
import socket
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from synapse_desktop.models.connection import Phase
from synapse_desktop.net.endpoint import Endpoint
from synapse_native.protocol import ThresholdMode

from .conftest import SimThread

pytestmark = pytest.mark.gui
WAIT_MS = 15_000


def _live(window, qtbot, sim: SimThread, token: str | None = None) -> None:  # type: ignore[no-untyped-def]
    window.connect_to(Endpoint("127.0.0.1", sim.port), token)
    session = window.session
    qtbot.waitUntil(lambda: session.connection.status.phase is Phase.LIVE, timeout=WAIT_MS)
    qtbot.waitUntil(
        lambda: session.sparse.total > 0 and (session.stats.steps >= 0).all(), timeout=WAIT_MS
    )


def test_meta_summaries_and_sparse_reach_state_and_visuals(window, qtbot, sim) -> None:  # type: ignore[no-untyped-def]
    _live(window, qtbot, sim)
    session, grid = window.session, window.grid
    assert len(session.topology) == 12 and session.topology.model_name.startswith("Llama")
    assert session.topology.sites[0].name == "model.layers.0.self_attn"
    # The grid places a batch's points one display frame later (spread_ms): wait for it.
    qtbot.waitUntil(lambda: grid.points.visual.count == session.sparse.total, timeout=WAIT_MS)
    assert len(grid.geometry.layout) == 12
    assert session.control.state is not None  # the trainer announced its settings
    qtbot.waitUntil(lambda: session.history.count.min() >= 3, timeout=WAIT_MS)
    series = session.history.series(0)
    assert np.all(np.diff(series.steps) > 0) and np.isfinite(series.bands).all()
    assert "live" in window.status.connection.text()
    assert "frames/s" in window.status.rates.text()


def test_threshold_from_the_panel_is_acknowledged_and_sparse_frames_follow(  # type: ignore[no-untyped-def]
    window, qtbot, sim
) -> None:
    _live(window, qtbot, sim)
    session, panel = window.session, window.panel
    assert panel.threshold.isEnabled() and panel.threshold_mode.isEnabled()
    panel.threshold_mode.setCurrentIndex(panel.threshold_mode.findData(int(ThresholdMode.ABSOLUTE)))
    qtbot.waitUntil(lambda: session.control.state.threshold_mode == 0, timeout=WAIT_MS)
    panel.threshold.setValue(2.0)
    qtbot.waitUntil(
        lambda: (
            session.control.state is not None and abs(session.control.state.threshold - 2.0) < 1e-6
        ),
        timeout=WAIT_MS,
    )
    assert panel.threshold_ack.text() == "in force: |x| > 2"
    newest = session.counters.step
    qtbot.waitUntil(lambda: all(p.step > newest for p in session.sparse.points), timeout=WAIT_MS)
    assert all(abs(p.threshold - 2.0) < 1e-6 for p in session.sparse.points)
    assert all((p.values > 2.0).all() for p in session.sparse.points)


def test_a_top_fraction_lights_that_share_of_every_site(window, qtbot, sim) -> None:  # type: ignore[no-untyped-def]
    _live(window, qtbot, sim)
    session, panel = window.session, window.panel
    assert session.control.state.threshold_mode == ThresholdMode.SIGMA  # the default
    panel.threshold_mode.setCurrentIndex(
        panel.threshold_mode.findData(int(ThresholdMode.TOP_FRACTION))
    )
    qtbot.waitUntil(lambda: session.control.state.threshold_mode == 2, timeout=WAIT_MS)
    assert session.control.state.threshold == pytest.approx(0.01)
    assert panel.threshold.value() == pytest.approx(1.0) and panel.threshold.suffix() == " %"
    assert panel.threshold_ack.text() == "in force: top 1.00 %"
    panel.threshold.setValue(5.0)  # percent on screen, a fraction on the wire
    qtbot.waitUntil(lambda: abs(session.control.state.threshold - 0.05) < 1e-6, timeout=WAIT_MS)
    newest = session.counters.step
    qtbot.waitUntil(lambda: all(p.step > newest for p in session.sparse.points), timeout=WAIT_MS)
    for points, site in zip(session.sparse.points, session.topology.sites, strict=True):
        assert points.n_above == math.ceil(0.05 * site.neurons)


def test_pause_and_site_filter_round_trip(window, qtbot, sim) -> None:  # type: ignore[no-untyped-def]
    _live(window, qtbot, sim)
    session, panel = window.session, window.panel
    panel.kinds["mlp"].setChecked(False)
    qtbot.waitUntil(lambda: session.control.state.site_kinds & (1 << 2) == 0, timeout=WAIT_MS)
    panel.pause.setChecked(True)
    qtbot.waitUntil(lambda: session.control.state.paused, timeout=WAIT_MS)
    assert panel.pause.text() == "Resume"


def test_the_app_reconnects_after_the_trainer_restarts(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    first = SimThread()
    port = first.port
    try:
        _live(window, qtbot, first)
    finally:
        first.stop()
    status = window.session.connection
    qtbot.waitUntil(lambda: status.status.phase is Phase.RETRYING, timeout=WAIT_MS)
    assert status.status.reason
    assert "retrying" in window.status.connection.text()
    second = SimThread(port=port, seed=1)
    try:
        qtbot.waitUntil(lambda: status.status.phase is Phase.LIVE, timeout=WAIT_MS)
        steps = window.session.counters.step
        qtbot.waitUntil(lambda: window.session.counters.step > steps, timeout=WAIT_MS)
    finally:
        second.stop()


class RawServer:
    """Accepts connections and writes ``payload`` to each, then closes them."""

    def __init__(self, payload: bytes) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.payload = payload
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            with contextlib.suppress(OSError):
                conn.sendall(self.payload)
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listener.close()


@pytest.fixture
def garbage() -> Iterator[RawServer]:
    server = RawServer(b"HTTP/1.1 200 OK\r\n\r\n" + bytes(range(256)) * 8)
    yield server
    server.close()


def test_a_garbage_stream_shows_why_and_the_app_lives(window, qtbot, garbage) -> None:  # type: ignore[no-untyped-def]
    window.connect_to(Endpoint("127.0.0.1", garbage.port))
    status = window.session.connection
    qtbot.waitUntil(lambda: "magic" in status.status.reason, timeout=WAIT_MS)
    assert status.status.phase in (Phase.RETRYING, Phase.CONNECTING)
    assert window.isVisible() and "magic" in window.status.connection.text()


def test_a_version_mismatch_names_both_versions(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    from synapse_native.protocol import HEADER, MAGIC

    server = RawServer(HEADER.pack(MAGIC, 2, 1, 0, 0, 0, 0, 0, 0))
    try:
        window.connect_to(Endpoint("127.0.0.1", server.port))
        status = window.session.connection
        qtbot.waitUntil(lambda: "version 2" in status.status.reason, timeout=WAIT_MS)
        assert "speaks 1" in status.status.reason
    finally:
        server.close()


def test_a_token_protected_trainer(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    sim = SimThread(token="s3cret-s3cret-16")
    try:
        window.connect_to(Endpoint("127.0.0.1", sim.port), None)
        status = window.session.connection
        qtbot.waitUntil(lambda: status.status.phase is Phase.FAILED, timeout=WAIT_MS)
        assert "token" in status.status.reason
        _live(window, qtbot, sim, token="s3cret-s3cret-16")
    finally:
        sim.stop()
