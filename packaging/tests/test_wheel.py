"""The sdist and the wheel: what they carry, and the two halves of the wheel installed in fresh
venvs with no compiler on PATH: the probe side (torch, no Qt) streams, the viewer side (Qt, no
torch) goes live against ``synapse sim``."""

from __future__ import annotations

import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Venv, checked, free_port, run, serving, torch_requirement

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.timeout(900)


def test_the_wheel_carries_the_compiled_core_under_an_honest_platform_tag(wheel: Path) -> None:
    # cp310-abi3: the cffi modules use the stable ABI, one wheel for CPython 3.10 and later.
    assert wheel.name.endswith("-cp310-abi3-linux_x86_64.whl"), wheel.name
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (
        "synapse_native/_native.abi3.so",
        "synapse_native/_stats.abi3.so",
        "synapse_desktop/resources/synapse.svg",
        "synapse_desktop/resources/synapse-desktop.desktop",
        "synapse_desktop/resources/synapse-recording.xml",
        "synapse_serve/sim/simulator.py",
    ):
        assert path in names, path
    assert not any(name.endswith((".c", ".h")) for name in names)


def test_the_sdist_carries_what_a_build_needs(sdist: Path) -> None:
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for path in (
        "setup.py",
        "pyproject.toml",
        "native/_cffi_build.py",
        "native/include/ring.h",
        "native/include/stats.h",
        "native/src/ring.c",
        "native/src/stats_kernel_avx2.c",
    ):
        assert path in names, path
    headers = {p for p in names if p.startswith("native/") and p.endswith(".h")}
    root = HERE.parents[1]
    sources = [p for p in (root / "native").glob("*/*.h") if "ctests" not in p.parts]
    assert headers == {p.relative_to(root).as_posix() for p in sources}


@pytest.fixture(scope="module")
def probe_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Venv:
    venv = Venv(tmp_path_factory.mktemp("probe") / "venv")
    venv.install(wheel, torch_requirement())
    return venv


def test_the_probe_side_installs_without_a_compiler_or_qt_and_streams(probe_venv: Venv) -> None:
    assert probe_venv.has("torch") and probe_venv.has("synapse_native._native")
    assert not probe_venv.has("PySide6") and not probe_venv.has("vispy")
    out = checked(run([probe_venv.python, HERE / "probe_stream.py"], env=probe_venv.env()))
    assert "summary batches" in out
    info = checked(run([probe_venv.bin / "synapse", "info"], env=probe_venv.env()))
    assert "statistics kernel" in info and "PySide6 (app)  not installed" in info
    assert "torch (probe)  2." in info


@pytest.fixture(scope="module")
def app_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Venv:
    venv = Venv(tmp_path_factory.mktemp("app") / "venv")
    venv.install(f"{wheel}[app]")
    return venv


@pytest.fixture
def app_sim(app_venv: Venv) -> Iterator[int]:
    """``synapse sim`` from the viewer venv (no torch needed), on a free port."""
    port = free_port()
    sim = [app_venv.bin / "synapse", "sim", "--port", str(port), "--layers", "8"]
    with serving(sim, port, app_venv.env()):
        yield port


def test_the_viewer_side_installs_without_a_compiler_or_torch_and_goes_live(
    app_venv: Venv, app_sim: int, tmp_path: Path
) -> None:
    assert app_venv.has("PySide6") and app_venv.has("vispy") and not app_venv.has("torch")
    app = [app_venv.bin / "synapse", "app", "--connect", f"127.0.0.1:{app_sim}"]
    done = run(
        [*app, "--self-test", "120"],
        env=app_venv.env(XDG_CONFIG_HOME=str(tmp_path)),
        timeout=300,
    )
    out = checked(done)
    assert "self-test: passed" in out and "8 layers" in out
