"""The app's menu entry, icon and recording MIME type under the user's XDG data directory.

``install`` writes ``applications/synapse-desktop.desktop`` (its Exec line the absolute path of
the command that runs the app, opening on the connect dialog, or the file it was given),
``icons/hicolor/scalable/{apps,mimetypes}/…svg`` and ``mime/packages/synapse-desktop.xml``, then
refreshes the desktop and MIME caches when their tools are installed; ``uninstall`` removes the
same files. No root, no files outside ``$XDG_DATA_HOME`` (default ``~/.local/share``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from synapse_desktop.resources import DESKTOP_TEMPLATE, ICON, MIME_XML

APP_ID = "synapse-desktop"
MIME_TYPE = "application/x-synapse-recording"


def data_home(env: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_DATA_HOME``, or ``~/.local/share`` when it is unset or not absolute (the spec)."""
    value = env.get("XDG_DATA_HOME", "")
    if value and os.path.isabs(value):
        return Path(value)
    return Path(env.get("HOME") or Path.home()) / ".local" / "share"


def app_command() -> list[str]:
    """The command that runs ``synapse``: the bundle's executable, else the console script
    beside this interpreter, else ``python -m synapse_desktop``; absolute either way, since a
    desktop session's PATH does not know the venv."""
    if getattr(sys, "frozen", False):
        return [str(Path(sys.executable).resolve())]
    script = Path(sys.executable).parent / "synapse"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script.absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "synapse_desktop"]


def _exec_quote(word: str) -> str:
    """One Exec argument, quoted as the Desktop Entry spec asks (and ``%`` doubled)."""
    word = word.replace("%", "%%")
    if not any(c in word for c in " \t\n\"'\\><~|&;$*?#()`"):
        return word
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in word)
    return f'"{escaped}"'


def render_entry(command: list[str]) -> str:
    """The desktop entry with ``command`` as what it runs."""
    text = DESKTOP_TEMPLATE.read_text()
    return text.replace("@EXEC@", " ".join(_exec_quote(w) for w in command)).replace(
        "@TRYEXEC@", command[0]
    )


def installed_paths(root: Path) -> list[Path]:
    """Every file ``install`` writes under the data directory ``root``."""
    icons = root / "icons" / "hicolor" / "scalable"
    return [
        root / "applications" / f"{APP_ID}.desktop",
        icons / "apps" / f"{APP_ID}.svg",
        icons / "mimetypes" / f"{MIME_TYPE.replace('/', '-')}.svg",
        root / "mime" / "packages" / f"{APP_ID}.xml",
    ]


def install(root: Path, command: list[str] | None = None) -> list[Path]:
    """Writes the entry, the icons and the MIME type under ``root``; returns the files."""
    entry, app_icon, mime_icon, mime_xml = paths = installed_paths(root)
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text(render_entry(command or app_command()))
    shutil.copyfile(ICON, app_icon)
    shutil.copyfile(ICON, mime_icon)
    shutil.copyfile(MIME_XML, mime_xml)
    refresh_caches(root)
    return paths


def uninstall(root: Path) -> list[Path]:
    """Removes what ``install`` wrote; returns the files that were there."""
    removed = [path for path in installed_paths(root) if path.exists()]
    for path in removed:
        path.unlink()
    refresh_caches(root)
    return removed


def refresh_caches(root: Path) -> None:
    """Re-reads the MIME packages and the desktop entries' MIME types, with the tools the
    desktop has (shared-mime-info, desktop-file-utils); without them a session does it at
    login."""
    for tool, folder in (
        ("update-mime-database", root / "mime"),
        ("update-desktop-database", root / "applications"),
    ):
        if shutil.which(tool) and folder.is_dir():
            subprocess.run([tool, str(folder)], capture_output=True, timeout=60, check=False)
