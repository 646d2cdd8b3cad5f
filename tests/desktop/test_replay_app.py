"""Replay in the app, really rendered: a recording opens, the timeline scrubs, plays and jumps
to alerts with every dock following; live scrubbing; File > Record; File > Export image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from screens import save

from synapse_native.protocol import encode
from synapse_native.recording import RecordingWriter, open_recording

from .frames import meta
from .sim_frames import nan_summaries, sim_steps

pytestmark = pytest.mark.gui

STEPS = 60


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rec") / "run.mcap"
    with RecordingWriter(path) as writer:
        for frames in sim_steps(STEPS, layers=4):
            writer.write_frames(frames)
    return path


@pytest.fixture(scope="module")
def spiky(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Summaries only, with non-finite values at step 25 and step 45."""
    path = tmp_path_factory.mktemp("rec") / "spiky.mcap"
    with RecordingWriter(path) as writer:
        writer.write_frame(encode(meta(2), seq=0, timestamp_ns=1))
        for step in range(STEPS):
            frame = encode(
                nan_summaries(6, bad=step in (25, 45)),
                seq=step + 1,
                step=step,
                timestamp_ns=10 + step * 10**8,
            )
            writer.write_frame(frame)
    return path


def _image(widget) -> np.ndarray:  # type: ignore[no-untyped-def]
    image = widget.grab().toImage().convertToFormat(widget.grab().toImage().Format.Format_RGB32)
    data = np.frombuffer(image.constBits(), np.uint8, image.sizeInBytes())
    return data.reshape(image.height(), image.bytesPerLine())[:, : image.width() * 4].copy()


def _wait_scanned(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    timeline = window.recordings.controller.timeline
    qtbot.waitUntil(lambda: timeline.scanned >= 1.0, timeout=20000)


def test_a_recording_opens_and_every_dock_follows_the_step(window, qtbot, recording) -> None:  # type: ignore[no-untyped-def]
    from synapse_desktop.models.timeline import Mode

    assert window.recordings.open(recording)
    controller = window.recordings.controller
    timeline = controller.timeline
    assert timeline.mode is Mode.REPLAY and timeline.name == "run.mcap"
    assert (timeline.first, timeline.last, timeline.position) == (0, STEPS - 1, 0)
    assert window.session.topology.model_name.startswith("Llama")
    assert "replay of run.mcap" in window.status.connection.text()
    window.session.selection.select(1)
    _wait_scanned(qtbot, window)
    loss_steps, loss = timeline.index.loss()
    assert loss_steps.tolist() == list(range(STEPS)) and np.isfinite(loss).all()

    controller.seek(40)
    session = window.session
    assert timeline.position == 40 and session.counters.step == 40
    assert session.stats.steps.max() == 40
    assert session.history.series(1).steps[-1] == 40  # the inspector's plots end at step 40
    assert session.metrics.series("loss")[0][-1] == 40  # the overview's metric plot too
    assert max(p.step for p in session.sparse.points) == 40  # the 3D view's points
    qtbot.wait(600)  # the docks' and the status bar's refresh timers
    save(window, "replay-at-step-40")  # looked at before calling replay done
    window.depth_panel.refresh()
    window.inspector.refresh()
    window.overview.refresh()
    assert "step 40" in window.recordings.bar.label.text()
    picture_40 = _image(window.grid.native)
    controller.seek(5)
    assert session.stats.steps.max() == 5
    assert session.history.series(1).steps.tolist() == list(range(6))
    qtbot.wait(100)
    assert not np.array_equal(_image(window.grid.native), picture_40)  # the view changed


def test_keys_step_play_and_jump_to_alerts(window, qtbot, spiky) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import Qt

    assert window.recordings.open(spiky)
    controller = window.recordings.controller
    timeline = controller.timeline
    _wait_scanned(qtbot, window)
    assert [a.step for a in timeline.index.alerts] == [25, 45]
    assert len(window.session.anomalies) == 0  # at step 0 no alert has happened yet
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    window.grid.native.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_Right)
    qtbot.keyClick(window, Qt.Key.Key_Right)
    assert timeline.position == 2
    qtbot.keyClick(window, Qt.Key.Key_Left)
    assert timeline.position == 1
    qtbot.keyClick(window, Qt.Key.Key_End)
    assert timeline.position == STEPS - 1
    assert [a.step for a in window.session.anomalies.alerts] == [25, 45]
    assert window.alerts_dock.windowTitle() == "Alerts (2)"
    qtbot.keyClick(window, Qt.Key.Key_Home)
    assert timeline.position == 0
    controller.jump_to_alert(1)
    assert timeline.position == 25
    assert [a.step for a in window.session.anomalies.alerts] == [25]  # the alerts until then
    controller.jump_to_alert(1)
    assert timeline.position == 45
    controller.jump_to_alert(-1)
    assert timeline.position == 25
    controller.set_speed(64)
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert timeline.playing
    qtbot.waitUntil(lambda: not timeline.playing, timeout=10000)  # played to the end
    assert timeline.position == STEPS - 1


def test_dragging_the_track_scrubs(window, qtbot, recording) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QPoint, Qt

    window.recordings.open(recording)
    track = window.recordings.bar.track
    timeline = window.recordings.controller.timeline
    y = track.height() // 2
    qtbot.mousePress(track, Qt.MouseButton.LeftButton, pos=QPoint(int(track.x_of(30)), y))
    assert timeline.position == 30
    qtbot.mouseMove(track, QPoint(int(track.x_of(50)), y))
    qtbot.mouseRelease(track, Qt.MouseButton.LeftButton, pos=QPoint(int(track.x_of(50)), y))
    assert abs(timeline.position - 50) <= 1
    _wait_scanned(qtbot, window)
    assert "step" in track.describe(30) and "loss" in track.describe(30)


def test_a_file_that_is_no_recording_is_refused(window, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QMessageBox

    said = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *args: said.append(args[2]))
    path = tmp_path / "junk.mcap"
    path.write_bytes(b"\x00" * 100)
    assert not window.recordings.open(path)
    assert said and "junk.mcap" in said[0]
    assert window.recordings.controller.recording is None


def test_live_scrubbing_holds_the_view_and_live_returns(window, qtbot, sim) -> None:  # type: ignore[no-untyped-def]
    from synapse_desktop.models.timeline import Mode
    from synapse_desktop.net.endpoint import Endpoint

    window.connect_to(Endpoint(sim.host, sim.port))
    controller = window.recordings.controller
    timeline = controller.timeline
    qtbot.waitUntil(lambda: len(timeline.steps) >= 12, timeout=20000)
    assert timeline.mode is Mode.LIVE and timeline.following
    back = timeline.steps[3]
    controller.seek(back)
    assert not timeline.following and window.session.stats.steps.max() == back
    newest = timeline.last
    qtbot.waitUntil(lambda: timeline.last >= newest + 4, timeout=20000)  # the run goes on
    assert window.session.stats.steps.max() == back  # the view stays where it was put
    assert window.recordings.bar.live.isEnabled()
    controller.go_live()
    assert timeline.following
    qtbot.waitUntil(lambda: window.session.stats.steps.max() >= timeline.last - 1, timeout=20000)


def test_file_record_writes_what_comes_and_shows_its_size(window, qtbot, sim, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from synapse_desktop.net.endpoint import Endpoint
    from synapse_desktop.net.recording_source import RecordingSource

    window.connect_to(Endpoint(sim.host, sim.port))
    timeline = window.recordings.controller.timeline
    qtbot.waitUntil(lambda: len(timeline.steps) >= 3, timeout=20000)
    path = tmp_path / "live.mcap"
    actions = window.recordings
    assert actions.start_recording(path)
    assert actions.record_action.isChecked()
    first = timeline.last
    qtbot.waitUntil(lambda: timeline.last >= first + 6, timeout=20000)
    actions._show_recording()
    assert actions.record_label.isVisible() and "REC" in actions.record_label.text()
    assert "B" in actions.record_label.text()  # its size
    actions.stop_recording()
    assert not actions.record_label.isVisible()
    with open_recording(path) as recorded:
        assert recorded.damage is None
        assert len(recorded.step_index()) >= 5
    window.links.close()
    source = RecordingSource(path)  # opens on its own: the site table came first
    try:
        assert source.meta(source.steps()[0]) is not None
    finally:
        source.close()
    assert window.recordings.open(path)
    assert window.session.topology.model_name.startswith("Llama")


def test_export_image_writes_the_3d_view_and_each_dock(window, qtbot, recording, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtGui import QImage

    from synapse_desktop.qt.export_image import export_targets, save_png

    window.recordings.open(recording)
    window.recordings.controller.seek(30)
    qtbot.wait(300)
    targets = dict(export_targets(window))
    assert "3D view" in targets and "Inspector" in targets and "Controls" in targets
    for name, widget in targets.items():
        path = tmp_path / f"{name}.png"
        assert save_png(widget, path), name
        image = QImage(str(path))
        assert (image.width(), image.height()) == (widget.width(), widget.height()), name
    grid = _image(window.grid.native)
    assert len(np.unique(grid.reshape(-1, 4), axis=0)) > 50  # a real picture, not a blank


def test_a_heatmap_context_menu_copies_its_numbers_as_csv(window, qtbot, recording) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QPoint
    from PySide6.QtWidgets import QApplication

    window.overview_dock.show()
    window.overview_dock.raise_()
    window.recordings.open(recording)
    window.recordings.controller.seek(40)
    window.overview.refresh()
    heatmap = window.overview.view.activation
    assert not heatmap.data.empty
    menu = window.recordings.heatmap_menu
    native = window.overview.view.native
    native.customContextMenuRequested.emit(QPoint(10, 10))
    qtbot.waitUntil(menu.isVisible)
    titles = [a.text() for a in menu.actions()]
    assert titles == ["Copy layers x steps as CSV", "Copy block gradient norm as CSV"]
    menu.actions()[0].trigger()
    menu.hide()
    lines = QApplication.clipboard().text().splitlines()
    header = lines[0].split(",")
    assert header[0] == "layer" and int(header[-1]) == 40
    assert len(lines) == 1 + heatmap.data.values.shape[0] == 5  # 4 layers
    column = heatmap.data.axis.columns([40])[0]
    assert float(lines[1].split(",")[-1]) == pytest.approx(
        float(heatmap.data.values[0, column]), rel=1e-5
    )


def test_compare_follows_the_step_on_the_layers_both_runs_share(  # type: ignore[no-untyped-def]
    window, qtbot, recording, tmp_path
) -> None:
    reference = tmp_path / "yesterday.mcap"
    with RecordingWriter(reference) as writer:
        for frames in sim_steps(STEPS, layers=2, seed=1):  # another, smaller model
            writer.write_frames(frames)
    actions = window.recordings
    assert actions.open(recording)
    assert actions.compare_with(reference)
    assert actions.compare_dock.isVisible()
    actions.controller.seek(30)
    comparison = actions.comparison
    assert comparison.replay.position == 30  # the reference is at the same step
    compared = comparison.compared(window.session, "rms")
    assert sorted(set(compared.shared.layers.tolist())) == [0, 1]  # the layers both have
    assert len(compared.shared) == 6
    this_rms = window.session.stats.field("rms")[compared.shared.this]
    np.testing.assert_allclose(compared.this, this_rms)
    assert (compared.this_steps == 30).all() and (compared.reference_steps == 30).all()
    assert np.isfinite(compared.ratio).all() and not np.allclose(compared.ratio, 1.0)
    text = actions.compare_panel.describe_layer(1)
    assert text.startswith("layer 1 rms: attn") and "x)" in text
    qtbot.waitUntil(lambda: len(comparison.index.loss()[0]) == STEPS, timeout=20000)
    actions.compare_panel.resize(500, 400)
    picture = _image(actions.compare_panel)
    assert len(np.unique(picture.reshape(-1, 4), axis=0)) > 8  # both losses and the layers drawn


_KILLED_TRAINER = """
import sys, torch
sys.path.insert(0, {models!r})
from probe_models import batch, llama_like, lm_loss
import synapse_probe
model = llama_like(n_layers=3)
probe = synapse_probe.attach(model, port=0, rate_hz=1000.0, budget=None, record={path!r})
step = 0
while True:
    synapse_probe.log_metrics(step, loss=4.0 / (step + 1))
    with torch.no_grad():
        lm_loss(model, *batch(seed=step))
    step += 1
    if step == 60:
        print("running", flush=True)
"""


def test_a_run_recorded_by_the_probe_alone_and_killed_halfway_replays(  # type: ignore[no-untyped-def]
    window, qtbot, tmp_path
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "killed.mcap"
    models = str(Path(__file__).parent.parent / "probe")
    script = _KILLED_TRAINER.format(models=models, path=str(path))
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "running\n"
        time.sleep(2.5)  # past the writer's 1 s flush
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert window.recordings.open(path)
    controller = window.recordings.controller
    timeline = controller.timeline
    assert len(timeline.steps) >= 60
    session = window.session
    assert len(session.topology) > 0 and session.topology.from_meta
    _wait_scanned(qtbot, window)
    for target in (timeline.steps[10], timeline.steps[len(timeline.steps) // 2], timeline.last):
        controller.seek(target)
        assert timeline.position == target
        loss_steps, loss = session.metrics.series("loss")
        assert loss_steps[-1] == target and loss[-1] == pytest.approx(4.0 / (target + 1))
        measured = session.stats.steps.max()
        assert 0 <= measured <= target  # the statistics of the last measured step
        assert session.counters.step == measured  # the status bar's step
        site = int(np.argmax(session.stats.steps))
        assert session.history.series(site).steps[-1] == measured
    window.depth_panel.refresh()
    window.inspector.refresh()
    window.overview.refresh()
