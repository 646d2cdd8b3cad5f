"""Fixtures of the packaging tests (``make package-test``): the built artefacts in ``dist/`` and
fresh virtual environments that install them with no compiler on PATH.

These tests check what ``make wheel`` and ``make package`` built; they are not part of
``make test`` (the ``tests/`` tree), which needs no build.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIST = Path(os.environ.get("SYNAPSE_DIST", ROOT / "dist"))
COMPILERS = ("cc", "gcc", "clang", "c++", "g++")


def torch_requirement() -> str:
    """The Makefile's TORCH when it pins a release, else the release this venv runs (a plain
    ``torch`` would fetch the newest CUDA build)."""
    wanted = os.environ.get("TORCH", "torch")
    if "==" in wanted:
        return wanted
    return f"torch=={version('torch')}"


def run(
    command: list[str | Path],
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(c) for c in command],
        env=dict(env) if env is not None else None,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done


def checked(done: subprocess.CompletedProcess[str]) -> str:
    tail = f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.returncode == 0, f"{done.args} failed:\n{tail}"
    return done.stdout


class Venv:
    """A fresh venv whose PATH holds its own ``bin`` and nothing else: no compiler."""

    def __init__(self, path: Path) -> None:
        checked(run([sys.executable, "-m", "venv", path]))
        self.path = path
        self.bin = path / "bin"
        self.python = self.bin / "python"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "CC")}
        env["PATH"] = str(self.bin)
        env.update(extra)
        return env

    def install(self, *requirements: str | Path) -> str:
        path = self.env()["PATH"]
        assert not [c for c in COMPILERS if shutil.which(c, path=path)], "a compiler is on PATH"
        return checked(
            run([self.python, "-m", "pip", "install", "--quiet", *requirements], env=self.env())
        )

    def has(self, module: str) -> bool:
        code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
        return run([self.python, "-c", code], env=self.env()).returncode == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(command: list[str | Path], port: int, env: Mapping[str, str]) -> Iterator[None]:
    """Runs ``command`` (a ``sim``) until the block ends, once ``port`` accepts connections."""
    server = subprocess.Popen(
        [str(c) for c in command], env=dict(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, f"nothing listens on {port}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        yield
    finally:
        server.terminate()
        server.wait(10)


def _one(pattern: str) -> Path:
    found = sorted(DIST.glob(pattern))
    if len(found) != 1:
        pytest.fail(f"expected one {pattern} in {DIST}, found {found}: run make wheel package")
    return found[0]


@pytest.fixture(scope="session")
def wheel() -> Path:
    return _one("synapse_desktop-*.whl")


@pytest.fixture(scope="session")
def sdist() -> Path:
    return _one("synapse_desktop-*.tar.gz")


@pytest.fixture(scope="session")
def bundle() -> Path:
    path = DIST / "synapse-desktop"
    if not (path / "synapse-desktop").is_file():
        pytest.fail(f"no bundle in {path}: run make package")
    return path


@pytest.fixture(scope="session")
def bundle_tar() -> Path:
    return _one("synapse-desktop-*-linux-*.tar.gz")
