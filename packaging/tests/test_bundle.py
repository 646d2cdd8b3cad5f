"""The bundled app (``make package``): what it carries, its size, and the bundle itself, run with
no venv and no Python on PATH, going live against its own ``sim`` under Xvfb; ``install.sh``
puts its menu entry in and takes it out."""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

import pytest
from conftest import checked, free_port, run, serving

pytestmark = pytest.mark.timeout(600)
MAX_MB = 250


def _bare_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a desktop session with nothing of ours in it: no venv, no Python on
    PATH, its own config and data folders."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(tmp_path)),  # keeps the fontconfig cache
        "LANG": "C.UTF-8",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }
    for name in ("DISPLAY", "XAUTHORITY", "LIBGL_ALWAYS_SOFTWARE", "QT_QPA_PLATFORM"):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(extra)
    return env


def _size_mb(folder: Path) -> float:
    """What the folder takes on disk, in MB (PyInstaller links some libraries: counted once)."""
    files = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]
    return sum(p.stat().st_size for p in files) / 1e6


def test_the_bundle_carries_the_core_shaders_icon_and_qt_plugins_and_no_torch(
    bundle: Path,
) -> None:
    inside = bundle / "_internal"
    for path in (
        "synapse_native/_native.abi3.so",
        "synapse_native/_stats.abi3.so",
        "vispy/glsl",
        "synapse_desktop/resources/synapse.svg",
        "synapse_desktop/resources/synapse-desktop.desktop",
        "PySide6/Qt/plugins/platforms/libqxcb.so",
        "PySide6/Qt/plugins/platforms/libqwayland.so",
        "PySide6/Qt/plugins/xcbglintegrations/libqxcb-glx-integration.so",
        "PySide6/Qt/plugins/iconengines/libqsvgicon.so",
    ):
        assert (inside / path).exists(), path
    assert (bundle / "install.sh").stat().st_mode & 0o111
    assert list(inside.glob("libpython3*.so*")), "no Python runtime inside"
    assert not (inside / "torch").exists()
    size = _size_mb(bundle)
    print(f"bundle: {size:.0f} MB")
    assert size < MAX_MB


def test_the_bundle_runs_without_python_and_goes_live_against_sim(
    bundle: Path, tmp_path: Path
) -> None:
    env = _bare_env(tmp_path)
    assert shutil.which("synapse", path=env["PATH"]) is None
    info = checked(run([bundle / "synapse-desktop", "info"], env=env, timeout=120))
    assert "bundled app" in info and "statistics kernel" in info
    assert "numpy          2." in info and "PySide6 (app)  6." in info
    assert "Qt platform    xcb" in info  # the GL report's child process: `synapse-desktop -m`
    port = free_port()
    shot = tmp_path / "bundle.png"
    with serving([bundle / "synapse-desktop", "sim", "--port", str(port)], port, env):
        app = [bundle / "synapse-desktop", "--connect", f"127.0.0.1:{port}"]
        done = run(
            [*app, "--self-test", "120", "--screenshot", str(shot)],
            env=env,
            timeout=300,
        )
    out = checked(done)
    print(out)
    assert "self-test: passed" in out and "32 layers" in out
    assert shot.stat().st_size > 10_000


def test_install_sh_adds_and_removes_the_menu_entry(bundle: Path, tmp_path: Path) -> None:
    env = _bare_env(tmp_path)
    data = Path(env["XDG_DATA_HOME"])
    checked(run([bundle / "install.sh"], env=env, timeout=120))
    entry = data / "applications" / "synapse-desktop.desktop"
    text = entry.read_text()
    exe = (bundle / "synapse-desktop").resolve()
    assert f"Exec={exe} app --connect-dialog %f" in text
    assert (data / "mime" / "packages" / "synapse-desktop.xml").is_file()
    checked(run(["desktop-file-validate", entry]))  # desktop-file-utils: make system-deps
    checked(run([bundle / "install.sh", "--uninstall"], env=env, timeout=120))
    assert not entry.exists()
    assert not (data / "icons" / "hicolor" / "scalable" / "apps" / "synapse-desktop.svg").exists()


def test_the_tarball_unpacks_to_a_working_bundle(bundle_tar: Path, tmp_path: Path) -> None:
    with tarfile.open(bundle_tar) as archive:
        archive.extractall(tmp_path, filter="tar")
    exe = tmp_path / "synapse-desktop" / "synapse-desktop"
    out = checked(run([exe, "--version"], env=_bare_env(tmp_path), timeout=60))
    assert out.startswith("synapse ")
    print(f"tarball: {bundle_tar.stat().st_size / 1e6:.0f} MB")
