"""Captures in the app: the Capture button asks a real probe, the file it writes opens in the
capture view, which shows that file's histogram, top neurons and token x neuron heatmap."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox
from safetensors.numpy import load_file

from synapse_desktop.net.endpoint import Endpoint

SCREENS = Path(os.environ.get("SYNAPSE_CAPTURE_SCREENS", "/work/notes/screens2"))
TIMEOUT_MS = 15000


TRAINER = """
import sys, torch
from torch import nn
import synapse_probe

class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        return x + self.mlp(x)

class Tiny(nn.Module):
    def __init__(self, d=32):
        super().__init__()
        self.embed = nn.Embedding(64, d)
        self.layers = nn.ModuleList(Block(d) for _ in range(2))
        self.head = nn.Linear(d, 64)

    def forward(self, ids):
        x = self.embed(ids)
        for block in self.layers:
            x = block(x)
        return self.head(x)

torch.manual_seed(0)
model = Tiny()
probe = synapse_probe.attach(
    model, port=0, per_block="residual", capture=True, capture_dir=sys.argv[1]
)


def checkpoint():
    path = os.path.join(os.path.dirname(sys.argv[1]), "ckpt.txt")
    with open(path, "w") as f:
        f.write(str(probe.current_step))
    return "saved " + path


probe.on_request("checkpoint", checkpoint)
print(probe.address[1], flush=True)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
ids = torch.randint(0, 64, (4, 24))
for step in range(100_000):
    probe.step(step)
    opt.zero_grad()
    nn.functional.cross_entropy(model(ids).reshape(-1, 64), ids.reshape(-1)).backward()
    opt.step()
    time.sleep(0.01)
"""


@pytest.fixture
def trainer(tmp_path: Path) -> Iterator[int]:
    """A training process (torch stays out of the app's process) with captures on; its port."""
    script = "import os, time\n" + TRAINER
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "caps")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.wait(10)


def test_capture_button_writes_a_file_and_the_view_shows_it(window, qtbot, trainer) -> None:  # type: ignore[no-untyped-def]
    captures = window.captures
    assert not captures.inspector_button.isEnabled()  # not connected
    window.connect_to(Endpoint("127.0.0.1", trainer))
    qtbot.waitUntil(lambda: len(window.session.topology) == 2, timeout=TIMEOUT_MS)
    window.session.selection.select(1)
    qtbot.waitUntil(captures.inspector_button.isEnabled, timeout=TIMEOUT_MS)

    qtbot.mouseClick(captures.inspector_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(captures.views) == 1, timeout=TIMEOUT_MS)

    done = window.session.captures.last
    assert done is not None and done.sites == 1
    assert "written" in window.alerts.capture_status.text()
    assert done.path in window.alerts.capture_status.text()
    view = captures.views[0]
    site = view.current
    assert site.name == window.session.topology.sites[1].name and site.shape == (4, 24, 32)
    values = load_file(done.path)[site.name].reshape(-1, 32)  # read independently
    np.testing.assert_array_equal(site.values, values)
    assert view.histogram.counts.sum() == values.size
    assert view.histogram.edges[0] == values.min() and view.histogram.edges[-1] == values.max()
    top, means = view.top
    expected = np.abs(values).mean(axis=0)
    assert top[0] == int(np.argmax(expected))
    np.testing.assert_allclose(means, np.sort(expected)[::-1][: len(means)], rtol=1e-6)
    assert view.top_table.item(0, 0).text() == str(top[0])
    assert view.heatmap.cells.shape == (96, 32)  # 4 x 24 tokens, 32 neurons: no averaging
    np.testing.assert_allclose(view.heatmap.cells, np.abs(values), rtol=1e-6)
    qtbot.waitExposed(view)
    view.resize(980, 640)
    SCREENS.mkdir(parents=True, exist_ok=True)
    assert view.grab().save(str(SCREENS / "capture-view.png"))
    view.close()
    qtbot.waitUntil(lambda: not captures.views)


def test_capture_is_offered_only_when_the_trainer_announces_it(window, qtbot, sim) -> None:  # type: ignore[no-untyped-def]
    window.connect_to(Endpoint("127.0.0.1", sim.port))
    qtbot.waitUntil(lambda: len(window.session.topology) > 0, timeout=TIMEOUT_MS)
    window.session.selection.select(0)
    qtbot.wait(100)
    assert not window.captures.inspector_button.isEnabled()
    assert "capture=True" in window.captures.inspector_button.toolTip()
    assert not window.alerts.capture_button.isEnabled()


def test_a_file_that_is_no_capture_is_refused(window, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    said: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *args: said.append(args[2]))
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 64)
    plain = tmp_path / "plain.safetensors"  # a valid safetensors file, not a capture
    plain.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    assert window.captures.open(garbage) is None and window.captures.open(plain) is None
    assert "not a readable capture" in said[0] and "without Synapse metadata" in said[1]
    assert not window.captures.views


def test_trainer_actions_are_buttons_that_run_in_the_training_script(  # type: ignore[no-untyped-def]
    window, qtbot, trainer, tmp_path
) -> None:
    box = window.trainer_actions
    window.connect_to(Endpoint("127.0.0.1", trainer))
    qtbot.waitUntil(lambda: "checkpoint" in box.buttons, timeout=TIMEOUT_MS)
    assert box.isVisible()
    qtbot.mouseClick(box.buttons["checkpoint"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "done at step" in box.status.text(), timeout=TIMEOUT_MS)
    saved = tmp_path / "ckpt.txt"
    assert saved.is_file() and str(saved) in box.status.text()


def test_an_alert_capture_asks_for_its_site_and_opens_the_answer(window, qtbot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Offline: a NaN alert from fed frames, a trainer said to capture, the answer fed back."""
    import json

    from safetensors.numpy import save_file

    from synapse_desktop.models.connection import Phase
    from synapse_native.protocol import Capability, CaptureDone, CaptureStatus

    from .frames import frame
    from .test_alerts_panel import _feed

    session, panel = window.session, window.alerts
    _feed(session)
    session.connection.set(phase=Phase.LIVE, capabilities=int(Capability.CAPTURE))
    asked: list[object] = []
    session.captures.requested.connect(asked.append)
    assert not panel.capture_button.isEnabled()  # no alert chosen yet
    alert = panel.alert_at(1)  # the NaN at layer 5 mlp
    panel.list.setCurrentRow(1)
    assert panel.capture_button.isEnabled()
    qtbot.mouseClick(panel.capture_button, Qt.MouseButton.LeftButton)
    assert [r.site_ids for r in asked] == [(alert.site_id,)]  # type: ignore[attr-defined]

    path = tmp_path / "tiny-step00000012-r1.safetensors"
    values = np.arange(2 * 3 * 8, dtype=np.float32).reshape(2, 3, 8) - 20
    entry = {"site_id": alert.site_id, "name": "layers.5.mlp", "layer": 5, "kind": 2}
    entry |= {"shape": [2, 3, 8], "tensor": "layers.5.mlp", "grad": None}
    meta = {"model": "tiny", "step": 12, "request_id": 1, "sites": [entry]}
    save_file({"layers.5.mlp": values}, str(path), {"synapse.capture": json.dumps(meta)})
    done = CaptureDone(1, CaptureStatus.WRITTEN, 12, 1, path.stat().st_size, str(path))
    session.apply_frames([frame(done, seq=0)])
    assert len(window.captures.views) == 1
    assert str(path) in panel.capture_status.text() and "step 12" in panel.capture_status.text()
    view = window.captures.views[0]
    assert view.heatmap.cells.shape == (6, 8) and view.top[0][0] == 7  # |x| largest at column 7
    view.close()
