"""``synapse install-desktop``: the menu entry, icons and recording MIME type under the user's
XDG data folder, seen the way a desktop sees them (desktop-file-validate, shared-mime-info via
Qt's MIME database, gio's default application), and ``--uninstall``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from synapse_desktop import desktop_entry

MCAP_MAGIC = b"\x89MCAP0\r\n"


def _synapse(args: list[str], data_home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_DATA_HOME": str(data_home)}
    return subprocess.run(
        [sys.executable, "-m", "synapse_desktop", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def _mime_of(path: Path, data_home: Path) -> str:
    """The MIME type a file manager would give ``path`` (shared-mime-info, read by Qt)."""
    code = (
        "import sys; from PySide6.QtCore import QMimeDatabase; "
        "print(QMimeDatabase().mimeTypeForFile(sys.argv[1]).name())"
    )
    env = {**os.environ, "XDG_DATA_HOME": str(data_home)}
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_install_writes_a_valid_entry_that_opens_the_app_and_recordings(tmp_path: Path) -> None:
    data = tmp_path / "data"
    out = _synapse(["install-desktop"], data).stdout
    entry = data / "applications" / "synapse-desktop.desktop"
    assert f"installed {entry}" in out
    text = entry.read_text()
    command = desktop_entry.app_command()
    assert Path(command[0]).is_absolute()  # a desktop session's PATH does not know the venv
    assert f"Exec={' '.join(command)} app --connect-dialog %f" in text
    assert "MimeType=application/x-synapse-recording;" in text
    assert "Icon=synapse-desktop" in text
    subprocess.run(["desktop-file-validate", str(entry)], check=True, timeout=60)
    icons = data / "icons" / "hicolor" / "scalable"
    assert (icons / "apps" / "synapse-desktop.svg").read_bytes().startswith(b"<")
    assert (icons / "mimetypes" / "application-x-synapse-recording.svg").is_file()
    assert (data / "mime" / "mime.cache").is_file()  # update-mime-database ran

    recording = tmp_path / "run.mcap"
    recording.write_bytes(MCAP_MAGIC + bytes(64))
    assert _mime_of(recording, data) == "application/x-synapse-recording"
    default = subprocess.run(
        ["gio", "mime", "application/x-synapse-recording"],
        env={**os.environ, "XDG_DATA_HOME": str(data)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "synapse-desktop.desktop" in default.splitlines()[0]


def test_uninstall_removes_every_file_it_wrote(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _synapse(["install-desktop"], data)
    out = _synapse(["install-desktop", "--uninstall"], data).stdout
    paths = desktop_entry.installed_paths(data)
    assert all(not path.exists() for path in paths)
    assert all(f"removed {path}" in out for path in paths)
    recording = tmp_path / "run.mcap"
    recording.write_bytes(MCAP_MAGIC + bytes(64))
    assert _mime_of(recording, data) != "application/x-synapse-recording"
    again = _synapse(["install-desktop", "--uninstall"], data).stdout
    assert "nothing to remove" in again


@pytest.mark.parametrize(
    ("command", "exec_line"),
    [
        (["/opt/synapse/synapse-desktop"], "/opt/synapse/synapse-desktop"),
        (["/home/a b/venv/bin/synapse"], '"/home/a b/venv/bin/synapse"'),
        (["/usr/bin/python3", "-m", "synapse_desktop"], "/usr/bin/python3 -m synapse_desktop"),
        (["/tmp/100%/x"], "/tmp/100%%/x"),
    ],
)
def test_the_exec_line_quotes_paths_as_the_spec_asks(command: list[str], exec_line: str) -> None:
    text = desktop_entry.render_entry(command)
    assert f"Exec={exec_line} app --connect-dialog %f\n" in text
    assert f"TryExec={command[0]}\n" in text


def test_the_data_home_follows_xdg_rules(tmp_path: Path) -> None:
    assert desktop_entry.data_home({"XDG_DATA_HOME": str(tmp_path)}) == tmp_path
    home = {"HOME": "/home/u"}
    assert desktop_entry.data_home(home) == Path("/home/u/.local/share")
    relative = {**home, "XDG_DATA_HOME": "relative/path"}  # ignored, as the spec says
    assert desktop_entry.data_home(relative) == Path("/home/u/.local/share")
