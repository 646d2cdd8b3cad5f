"""Fixtures for every test folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _no_leaked_widgets(request: pytest.FixtureRequest) -> Iterator[None]:
    """GUI tests only (model tests need no display): fail on top-level widgets left alive."""
    if request.node.get_closest_marker("gui") is None:
        yield
        return
    from PySide6.QtCore import QCoreApplication, QEvent
    from vispy import app as vispy_app

    vispy_app.use_app("pyside6")
    app = request.getfixturevalue("qapp")
    before = set(app.topLevelWidgets())
    yield
    for _ in range(3):
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        app.processEvents()
    leaked = [w for w in app.topLevelWidgets() if w not in before and w.isVisible()]
    assert not leaked, f"top-level widgets left open: {leaked}"
