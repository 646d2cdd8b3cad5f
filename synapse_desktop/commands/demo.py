"""``synapse demo``: train a small Llama-style model with the probe attached, and watch it.

The trainer runs as a child process (``python -m synapse_probe.demo``: the app never imports
torch). Its first stdout line names the address it listens on (``LISTENING``), so the app
connects to the port the trainer really got, and never waits on a port it failed to take.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import IO, Any

from synapse_desktop.net.endpoint import Endpoint, parse_endpoint
from synapse_serve.signals import on_signals, restore

# Must match synapse_probe.demo.train.LISTENING (the test of `synapse demo` checks the pair).
LISTENING = "synapse demo: listening on "
STOP_TIMEOUT_S = 20.0  # after SIGINT: the step in progress, then the probe's close
POLL_MS = 100
VIEWER_WAIT_S = 20.0
PRESETS = ("tiny", "demo", "1b")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=0, help="steps to train (0: until stopped)")
    parser.add_argument("--no-gui", action="store_true", help="run the trainer alone")
    parser.add_argument("--port", type=int, default=9000, help="probe port (0: any free port)")
    parser.add_argument("--moe", type=int, default=0, metavar="N", help="N experts per MLP, top-2")
    parser.add_argument(
        "--moe-capacity",
        type=float,
        default=0.0,
        metavar="F",
        help="with --moe: each expert takes at most F x its even share, the rest drop (0: none)",
    )
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA if present"
    )
    parser.add_argument("--preset", choices=PRESETS, default="demo", help="model size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--inject",
        action="append",
        default=[],
        metavar="KIND@STEP",
        help="misbehave on purpose at STEP: lr, nan or logits (repeatable; docs/DEMO.md)",
    )


def trainer_command(
    args: argparse.Namespace, parent_pid: int | None = None, wait_for_viewer: float = 0.0
) -> list[str]:
    """The trainer's command line for these options."""
    argv = [sys.executable, "-m", "synapse_probe.demo", "--steps", str(args.steps)]
    argv += ["--port", str(args.port), "--moe", str(args.moe), "--device", args.device]
    argv += ["--preset", args.preset, "--seed", str(args.seed)]
    if args.moe_capacity:
        argv += ["--moe-capacity", str(args.moe_capacity)]
    for fault in getattr(args, "inject", []):
        argv += ["--inject", fault]
    if parent_pid is not None:
        argv += ["--parent-pid", str(parent_pid)]
    if wait_for_viewer > 0:
        argv += ["--wait-for-viewer", str(wait_for_viewer)]
    return argv


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("torch") is None:
        print(
            "synapse demo: the trainer needs torch: pip install 'synapse-desktop[probe]'",
            file=sys.stderr,
        )
        return 2
    if args.no_gui:
        return run_headless(trainer_command(args, parent_pid=os.getpid()))
    from synapse_desktop.commands.app import missing_app_module, qt_application

    missing = missing_app_module()
    if missing is not None:
        print(
            f"synapse demo: the app needs its extra ({missing} is missing): "
            "pip install 'synapse-desktop[app]', or run the trainer alone with --no-gui",
            file=sys.stderr,
        )
        return 2
    from PySide6.QtCore import QTimer

    qt_app = qt_application()
    # The trainer waits a little for the app, so that the app sees the run from its first step,
    # and leaves the app a core: torch's spinning worker threads crawl on an oversubscribed CPU.
    argv = trainer_command(args, os.getpid(), wait_for_viewer=VIEWER_WAIT_S)
    argv += ["--threads", str(max(1, (os.cpu_count() or 2) - 1))]
    # Ctrl-C in the terminal closes the window (the poll timer lets Python see the signal). Taken
    # over before the window exists: its first paint can take seconds on a software renderer.
    interrupted = threading.Event()

    def on_interrupt() -> None:
        interrupted.set()
        QTimer.singleShot(0, qt_app.closeAllWindows)  # after the paint in progress, not inside

    previous = on_signals(on_interrupt, (signal.SIGINT,))
    try:
        demo = launch(argv)
        if not (interrupted.is_set() and not demo.window.isVisible()):
            qt_app.exec()  # unless Ctrl-C already closed the window while it opened
    finally:
        restore(previous)
    return demo.finish()


def run_headless(argv: Sequence[str]) -> int:
    """The trainer alone: its output straight through, Ctrl-C / SIGTERM forwarded as SIGINT,
    its exit code returned (128 + N when a signal N killed it)."""
    process = subprocess.Popen(list(argv), start_new_session=True)  # signals: ours to forward
    previous = on_signals(lambda: _interrupt(process), (signal.SIGINT, signal.SIGTERM))
    try:
        code = process.wait()
    finally:
        restore(previous)
    return code if code >= 0 else 128 - code


class TrainerProcess:
    """The trainer as a child process; its output is passed on line by line, and the address
    it announces is kept in ``endpoint``."""

    def __init__(self, argv: Sequence[str]) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=env,
            start_new_session=True,  # Ctrl-C reaches the app, which then stops the trainer
        )
        self.endpoint: Endpoint | None = None
        self.last_error = ""  # the trainer's last stderr line
        self._interrupted = False
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._relay, args=(self.process.stdout, False), daemon=True),
            threading.Thread(target=self._relay, args=(self.process.stderr, True), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def poll(self) -> int | None:
        """The exit code once the trainer has exited, else None."""
        return self.process.poll()

    def interrupt(self) -> None:
        """Ask the trainer to stop after its current step (one SIGINT: a second one would
        interrupt the step, or kill the trainer as it exits)."""
        if not self._interrupted:
            self._interrupted = True
            _interrupt(self.process)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGINT, up to ``timeout`` seconds for a clean exit, then SIGKILL; the exit code."""
        self.interrupt()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for reader in self._readers:
            reader.join(5)
        return self.process.returncode

    def _relay(self, stream: IO[str], is_stderr: bool) -> None:
        for line in stream:
            if is_stderr:
                if line.strip():
                    self.last_error = line.strip()
            elif self.endpoint is None and line.startswith(LISTENING):
                with contextlib.suppress(ValueError):
                    self.endpoint = parse_endpoint(line[len(LISTENING) :])
            out = sys.stderr if is_stderr else sys.stdout
            try:
                out.write(line)
                out.flush()
            except (OSError, ValueError):
                pass  # our own output is gone; keep draining the pipe
        stream.close()


class DemoApp:
    """The main window tied to a trainer: it connects once the trainer listens, shows when the
    trainer exits, and stops the trainer when the window closes."""

    def __init__(self, trainer: TrainerProcess, window: Any) -> None:
        from PySide6.QtCore import QTimer

        self.trainer, self.window = trainer, window
        self.exit_code: int | None = None
        self._connected = False
        self._watcher = _close_watcher(window, trainer.interrupt)
        self._timer = QTimer(window, interval=POLL_MS)
        self._timer.timeout.connect(self.poll)
        self._timer.start()
        window.setWindowTitle("Synapse demo")
        window.status.showMessage("starting the demo trainer...")

    def poll(self) -> None:
        """Connect once the trainer has said where it listens; report its exit once."""
        endpoint = self.trainer.endpoint
        if not self._connected and endpoint is not None:
            self._connected = True
            self.window.status.clearMessage()
            self.window.connect_to(endpoint)
        code = self.trainer.poll()
        if code is not None and self.exit_code is None:
            self.exit_code = code
            text = _exit_text(code, self.trainer.last_error)
            print(f"synapse demo: {text}", file=sys.stderr, flush=True)
            self.window.setWindowTitle(f"Synapse demo ({text})")
            self.window.status.showMessage(text, 15_000)

    def finish(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """Stop the trainer (if still running) and return its exit code."""
        self._timer.stop()
        running = self.trainer.poll() is None
        code = self.trainer.stop(timeout)
        if running or self.exit_code is None:
            print(f"synapse demo: trainer stopped (exit code {code})", file=sys.stderr)
        self.exit_code = code
        return code if code >= 0 else 128 - code


def launch(trainer_argv: Sequence[str], settings: Any = None) -> DemoApp:
    """Start the trainer and show the main window (a QApplication must exist)."""
    from synapse_desktop.qt.main_window import MainWindow

    trainer = TrainerProcess(trainer_argv)
    window = MainWindow(settings)
    demo = DemoApp(trainer, window)
    window.show()
    return demo


def _exit_text(code: int, last_error: str) -> str:
    text = f"the trainer exited with code {code}"
    if code != 0 and last_error:
        text += f": {last_error}"
    return text


def _close_watcher(window: Any, on_close: Callable[[], None]) -> Any:
    """An event filter on ``window`` that calls ``on_close`` when the window gets a close."""
    from PySide6.QtCore import QEvent, QObject

    class CloseWatcher(QObject):
        def eventFilter(self, watched: QObject, event: QEvent) -> bool:
            if watched is window and event.type() == QEvent.Type.Close:
                on_close()
            return False

    watcher = CloseWatcher(window)
    window.installEventFilter(watcher)
    return watcher


def _interrupt(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):  # it has just exited
            process.send_signal(signal.SIGINT)
