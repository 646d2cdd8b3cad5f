"""Fixtures of the probe tests: a fake server."""

from __future__ import annotations

import pytest
from probe_fakes import FakeServer


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()
