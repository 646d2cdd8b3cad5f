"""``synapse app``: the desktop app, optionally connecting to a trainer at once."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "recording", nargs="?", help="replay this recording (an .mcap file) instead of connecting"
    )
    parser.add_argument(
        "--connect",
        metavar="HOST:PORT",
        action="append",
        help="connect at start-up; several ranks: repeat it, or list them "
        "(HOST:9000,HOST2:9000) or give a port range (HOST:9000-9003)",
    )
    parser.add_argument("--token", help="the trainer's token (trainers beyond loopback)")
    parser.add_argument(
        "--connect-dialog",
        action="store_true",
        help="open on the connect dialog when not connecting at once (the desktop entry does)",
    )
    parser.add_argument(
        "--self-test",
        metavar="SECONDS",
        type=float,
        nargs="?",
        const=60.0,
        help="with --connect: wait until live, render one frame, print what was seen, exit 0 "
        "(1 when that does not happen within SECONDS, default 60)",
    )
    parser.add_argument(
        "--screenshot", metavar="PNG", help="with --self-test: save the window there too"
    )


def run(args: argparse.Namespace) -> int:
    missing = missing_app_module()
    if missing is not None:
        print(
            f"synapse app: the desktop app needs its extra ({missing} is missing): "
            "pip install 'synapse-desktop[app]'",
            file=sys.stderr,
        )
        return 2

    from synapse_desktop.heap_tuning import fix_mmap_threshold
    from synapse_desktop.net.endpoint import parse_endpoints

    endpoints = None
    if args.connect:
        try:
            endpoints = parse_endpoints(args.connect)
        except ValueError as exc:
            print(f"synapse app: --connect: {exc}", file=sys.stderr)
            return 2
    if args.recording is not None and not os.path.isfile(args.recording):
        print(f"synapse app: no such recording: {args.recording}", file=sys.stderr)
        return 2
    if args.self_test is not None and endpoints is None:
        print("synapse app: --self-test needs --connect HOST:PORT", file=sys.stderr)
        return 2
    fix_mmap_threshold()  # a long-running app's heap: see heap_tuning
    qt_app = qt_application()
    from PySide6.QtCore import QTimer

    from synapse_desktop.qt.main_window import MainWindow

    window = MainWindow()
    window.show()
    if args.recording is not None:
        window.recordings.open(args.recording)
    elif endpoints is not None:
        window.connect_to(endpoints, args.token)
    elif args.connect_dialog:
        QTimer.singleShot(0, window.show_connect_dialog)
    if args.self_test is not None:
        from pathlib import Path

        from synapse_desktop.qt.self_test import SelfTest

        shot = Path(args.screenshot) if args.screenshot else None
        SelfTest(window, args.self_test, shot)  # parented to the window, which keeps it
    return int(qt_app.exec())


def qt_application() -> Any:
    """The process's QApplication (made once, named for the desktop entry), VisPy on PySide6."""
    from PySide6.QtWidgets import QApplication
    from vispy import app as vispy_app

    vispy_app.use_app("pyside6")
    existing = QApplication.instance()
    qt_app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    qt_app.setApplicationName("synapse-desktop")
    qt_app.setDesktopFileName("synapse-desktop")
    return qt_app


def missing_app_module() -> str | None:
    """The name of the app extra's module that cannot be imported (Qt, VisPy), or None."""
    try:
        import PySide6.QtWidgets  # noqa: F401
        import vispy.app  # noqa: F401
    except ImportError as exc:
        return exc.name or str(exc)
    return None
