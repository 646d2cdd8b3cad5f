"""``synapse app``: the desktop app, optionally connecting to a trainer at once."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--connect",
        metavar="HOST:PORT",
        action="append",
        help="connect at start-up; several ranks: repeat it, or list them "
        "(HOST:9000,HOST2:9000) or give a port range (HOST:9000-9003)",
    )
    parser.add_argument("--token", help="the trainer's token (trainers beyond loopback)")


def run(args: argparse.Namespace) -> int:
    try:
        from PySide6.QtWidgets import QApplication
        from vispy import app as vispy_app
    except ImportError as exc:
        print(
            f"synapse app: the desktop app needs its extra ({exc.name} is missing): "
            "pip install 'synapse-desktop[app]'",
            file=sys.stderr,
        )
        return 2

    from synapse_desktop.net.endpoint import parse_endpoints

    endpoints = None
    if args.connect:
        try:
            endpoints = parse_endpoints(args.connect)
        except ValueError as exc:
            print(f"synapse app: --connect: {exc}", file=sys.stderr)
            return 2
    vispy_app.use_app("pyside6")
    existing = QApplication.instance()
    qt_app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    qt_app.setApplicationName("synapse-desktop")
    qt_app.setDesktopFileName("synapse-desktop")
    from synapse_desktop.qt.main_window import MainWindow

    window = MainWindow()
    window.show()
    if endpoints is not None:
        window.connect_to(endpoints, args.token)
    return int(qt_app.exec())
