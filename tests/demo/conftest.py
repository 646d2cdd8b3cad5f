"""Demo test fixtures: one torch thread (two threads on two busy shared cores spin and crawl),
the same for trainer subprocesses, and no GUI window left open by a ``gui`` test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Trainer subprocesses inherit this environment.
TRAINER_ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _no_leaked_widgets(request: pytest.FixtureRequest) -> Iterator[None]:
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
