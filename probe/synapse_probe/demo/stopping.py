"""When the demo trainer should stop: SIGINT / SIGTERM, or the app that started it is gone."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any


class StopFlag:
    """Set by the first SIGINT or SIGTERM; the training loop checks it between steps.

    A second signal raises KeyboardInterrupt, for a step that takes too long to finish.
    ``parent_pid``: the process that started the trainer; once it is gone (this process was
    re-parented) ``should_stop`` says so.
    """

    def __init__(self, parent_pid: int | None = None) -> None:
        self.reason = ""
        self.parent_pid = parent_pid
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Take over SIGINT and SIGTERM (main thread only; elsewhere the flag stays manual)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def restore(self) -> None:
        """Give the signals back their previous handlers."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def set(self, reason: str) -> None:
        if not self.reason:
            self.reason = reason

    def should_stop(self) -> bool:
        """Whether to stop before the next step (a signal came, or the parent died)."""
        if not self.reason and self.parent_pid is not None and not _alive_parent(self.parent_pid):
            self.set(f"the process that started the trainer (pid {self.parent_pid}) is gone")
        return bool(self.reason)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if self.reason:
            raise KeyboardInterrupt
        self.set(signal.Signals(signum).name)


def _alive_parent(pid: int) -> bool:
    """Whether ``pid`` is still this process's parent (an orphan gets a new one)."""
    return os.getppid() == pid
