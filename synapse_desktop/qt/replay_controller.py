"""Drives the timeline: the live session's frames kept in memory, recordings opened for
replay, seeking, playback and the run index (loss and alerts of the whole run).

Live, every frame read is kept (``FrameLog``) and indexed; while the timeline follows, the
session takes the frames as they come, as it always did. Scrubbing back holds the stream (the
frames are still kept) and seeks in what was kept; "Live" seeks to the newest step and lets the
stream in again. A recording is the same: its frames, read from disk, go through the same seek.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections.abc import Generator
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from synapse_desktop.models.connection import Phase
from synapse_desktop.models.frame_log import FrameLog
from synapse_desktop.models.session import Session
from synapse_desktop.models.timeline import Mode, RunIndex, Timeline, restore_alerts
from synapse_desktop.net.client import Batch
from synapse_desktop.net.links import Links
from synapse_desktop.net.recording_source import RecordingSource
from synapse_desktop.net.replay import FrameSource, Replay

PLAY_MS = 33
TIMELINE_REFRESH_MS = 250  # live: how often the bar takes the new steps
SCAN_SLICE_S = 0.012  # the run index's work per event-loop turn while a recording is read
DEFAULT_RATE = 10.0  # steps per second at 1x when the source cannot tell


class ReplayController(QObject):
    """Owns the ``Timeline`` and what feeds it; ``message(text)`` is for the status bar."""

    message = Signal(str)
    received = Signal(list)  # whole frames as read from the trainers (the recorder takes them)

    def __init__(self, session: Session, links: Links, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.links = links
        self.timeline = Timeline()
        self.log = FrameLog()
        self.recording: RecordingSource | None = None
        self.replay: Replay | None = None
        self._seeking = False
        self._new_steps = False
        self._play_from = (0.0, 0)  # (monotonic time, index of the step) playback started at
        self._scan: Generator[tuple[float, list[bytes]], None, None] | None = None
        links.raw_sink = self._on_frames
        session.data_reset.connect(self._on_data_reset)
        session.connection.changed.connect(self._on_connection)
        self._play_timer = QTimer(self, interval=PLAY_MS)
        self._play_timer.timeout.connect(self._on_play_tick)
        self._refresh_timer = QTimer(self, interval=TIMELINE_REFRESH_MS)
        self._refresh_timer.timeout.connect(self._on_refresh)
        self._refresh_timer.start()
        self._scan_timer = QTimer(self, interval=1)
        self._scan_timer.timeout.connect(self._on_scan)

    @property
    def source(self) -> FrameSource:
        return self.recording if self.recording is not None else self.log

    # -- recordings -----------------------------------------------------------------------------

    def open_recording(self, path: str | Path) -> None:
        """Replay the recording at ``path`` (``RecordingError`` if it cannot be read)."""
        source = RecordingSource(path)  # first: a bad file leaves the session as it was
        self.close_recording()
        self.links.close()
        self.links.sink = self.session.apply_frames  # a live run scrubbed back: not held now
        self.recording = source
        self.replay = Replay(self.session, source)
        self.session.connection.set(phase=Phase.IDLE, reason=f"replay of {source.name}")
        self.timeline.start(Mode.REPLAY, source.name, source.steps())
        self.seek(self.timeline.first)
        if source.damage:
            self.message.emit(f"{source.name}: {source.damage}")
        self._scan = source.scan(RunIndex.TYPES)
        self._scan_timer.start()

    def close_recording(self) -> None:
        """Stop replaying (the session is emptied); nothing when no recording is open."""
        if self.recording is None:
            return
        self._scan_timer.stop()
        if self._scan is not None:
            self._scan.close()
            self._scan = None
        self.recording.close()
        self.recording = None
        self.replay = None
        self._stop_playing()
        self.session.rewind()
        self.session.flush()
        self.timeline.start(Mode.IDLE, "", ())

    def _on_scan(self) -> None:
        if self._scan is None:
            self._scan_timer.stop()
            return
        deadline = time.perf_counter() + SCAN_SLICE_S
        index = self.timeline.index
        while time.perf_counter() < deadline:
            try:
                fraction, batch = next(self._scan)
            except StopIteration:
                self._scan = None
                self._scan_timer.stop()
                self.timeline.scanned = 1.0
                break
            except Exception as exc:
                self._scan = None
                self._scan_timer.stop()
                self.message.emit(f"reading the recording stopped: {exc}")
                break
            index.feed(batch)
            self.timeline.scanned = fraction
        self._sync_alerts()
        self.timeline.changed.emit()

    # -- live -----------------------------------------------------------------------------------

    def _on_frames(self, frames: list[bytes]) -> None:
        if self.recording is not None:
            return
        if self.timeline.mode is not Mode.LIVE:
            self.log.clear()
            self.timeline.start(Mode.LIVE, self.session.connection.status.peer, self.log.steps())
            self.replay = Replay(self.session, self.log)
        self.log.append(frames)
        index = self.timeline.index
        index.feed(frames)
        held = self.log.steps()
        if held:
            index.forget_before(held[0])  # the live index spans the steps the log holds
        self._new_steps = True
        self.received.emit(frames)

    def _on_refresh(self) -> None:
        if not self._new_steps:
            return
        self._new_steps = False
        timeline = self.timeline
        if timeline.following and timeline.mode is Mode.LIVE:
            timeline.position = timeline.last
            if self.replay is not None:
                self.replay.position = timeline.last
        timeline.set_steps(self.log.steps())

    def _on_data_reset(self) -> None:
        """A new run came (a restarted trainer): what was kept belongs to the old one."""
        if not self._seeking and self.timeline.mode is Mode.LIVE:
            self.log.clear()
            self.timeline.index = RunIndex()
            self._new_steps = True

    def _on_connection(self, status: object) -> None:
        if self.recording is not None and self.session.connection.status.phase is not Phase.IDLE:
            self.close_recording()  # connecting to a trainer ends the replay

    def go_live(self) -> None:
        """Show the newest step and follow the stream again."""
        if self.timeline.mode is not Mode.LIVE:
            return
        self._stop_playing()
        if not self.timeline.following:
            self._seek(self.timeline.last)
        self.links.sink = self.session.apply_frames
        self.timeline.set(following=True)

    def _hold(self, batch: Batch) -> None:
        """Frames that come while the timeline shows the past: kept in the log alone."""

    # -- seeking and playback -------------------------------------------------------------------

    def seek(self, step: int) -> None:
        """Show ``step`` (the held step at or before it)."""
        if self.replay is None:
            return
        if self.timeline.mode is Mode.LIVE and self.timeline.following:
            self.links.sink = self._hold
            self.timeline.following = False
        self._seek(step)

    def _seek(self, step: int, forward: bool = False) -> None:
        assert self.replay is not None
        self._seeking = True
        try:
            shown = self.replay.advance(step) if forward else self.replay.seek(step)
        finally:
            self._seeking = False
        if self.replay.bad_frames:
            self.message.emit(f"{self.replay.bad_frames} damaged frames left out")
        self.timeline.position = shown
        self._sync_alerts()
        self.timeline.changed.emit()

    def step_by(self, direction: int) -> None:
        """One held step forward (``direction`` > 0) or back."""
        target = self.timeline.neighbour(self.timeline.position, direction)
        if target < 0:
            return
        if self.timeline.mode is Mode.LIVE and direction > 0 and target == self.timeline.last:
            self.go_live()
            return
        if self.timeline.mode is Mode.LIVE and self.timeline.following:
            self.seek(target)
        elif self.replay is not None:
            self._seek(target, forward=direction > 0)

    def home(self) -> None:
        self.seek(self.timeline.first)

    def end(self) -> None:
        if self.timeline.mode is Mode.LIVE:
            self.go_live()
        else:
            self.seek(self.timeline.last)

    def jump_to_alert(self, direction: int) -> None:
        step = self.timeline.alert_step(self.timeline.position, direction)
        if step is None:
            self.message.emit("no alert " + ("after" if direction > 0 else "before") + " this step")
            return
        self.seek(step)

    def toggle_play(self) -> None:
        if self.timeline.playing:
            self._stop_playing()
            return
        if self.replay is None or not self.timeline.steps:
            return
        if self.timeline.mode is Mode.LIVE and self.timeline.following:
            return  # live already moves on by itself
        if self.timeline.position >= self.timeline.last and self.timeline.mode is Mode.REPLAY:
            self.seek(self.timeline.first)  # played to the end: from the start again
        self._play_from = (time.monotonic(), self._index_of(self.timeline.position))
        self.timeline.set(playing=True)
        self._play_timer.start()

    def set_speed(self, speed: int) -> None:
        self._play_from = (time.monotonic(), self._index_of(self.timeline.position))
        self.timeline.set(speed=speed)

    def _stop_playing(self) -> None:
        self._play_timer.stop()
        if self.timeline.playing:
            self.timeline.set(playing=False)

    def _on_play_tick(self) -> None:
        steps = self.timeline.steps
        if self.replay is None or not steps:
            self._stop_playing()
            return
        rate = self.source.rate() or DEFAULT_RATE
        started, first = self._play_from
        i = first + int((time.monotonic() - started) * rate * self.timeline.speed)
        if i >= len(steps) - 1:
            if self.timeline.mode is Mode.LIVE:
                self.go_live()
                return
            i = len(steps) - 1
            self._stop_playing()
        if steps[i] != self.timeline.position:
            self._seek(steps[i], forward=True)

    def _index_of(self, step: int) -> int:
        return max(0, bisect_right(self.timeline.steps, step) - 1)

    def _sync_alerts(self) -> None:
        """Away from the newest step, the Alerts dock lists the run's alerts up to the step
        shown (found over the whole run, not only over the replayed window)."""
        if self.timeline.mode is Mode.LIVE and self.timeline.following:
            return
        if self.timeline.position < 0 and self.replay is not None:
            return
        index = self.timeline.index
        restore_alerts(
            self.session.anomalies, index.alerts_until(self.timeline.position), index.forgotten
        )
