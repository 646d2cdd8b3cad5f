"""``synapse app --connect HOST:PORT --self-test``: the smoke test the bundle's test runs, here
against an in-process simulator; and its failure when nothing is live."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gui


def _app(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path)}  # the window's settings
    return subprocess.run(
        [sys.executable, "-m", "synapse_desktop", "app", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_the_self_test_goes_live_renders_a_frame_and_passes(sim, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shot = tmp_path / "window.png"
    done = _app(
        [
            "--connect",
            f"127.0.0.1:{sim.port}",
            "--self-test",
            "120",
            "--screenshot",
            str(shot),
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "4 layers" in out and "points" in out and "% of its pixels drawn" in out
    assert "llvmpipe" in out and out.rstrip().endswith("self-test: passed")
    assert shot.stat().st_size > 10_000


def test_the_self_test_fails_with_the_reason_when_nothing_is_live(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    done = _app(["--connect", f"127.0.0.1:{port}", "--self-test", "3"], tmp_path)
    assert done.returncode == 1
    assert "FAILED: not live" in done.stdout and "self-test: FAILED" in done.stdout


def test_the_self_test_needs_an_endpoint(tmp_path: Path) -> None:
    done = _app(["--self-test"], tmp_path)
    assert done.returncode == 2 and "--self-test needs --connect" in done.stderr
