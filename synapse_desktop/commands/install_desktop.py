"""``synapse install-desktop``: the app in the desktop's menu, and recordings opening with it."""

from __future__ import annotations

import argparse

from synapse_desktop import desktop_entry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--uninstall", action="store_true", help="remove the entry, icons and MIME type"
    )


def run(args: argparse.Namespace) -> int:
    root = desktop_entry.data_home()
    if args.uninstall:
        removed = desktop_entry.uninstall(root)
        for path in removed:
            print(f"removed {path}")
        if not removed:
            print(f"nothing to remove under {root}")
        return 0
    for path in desktop_entry.install(root):
        print(f"installed {path}")
    command = " ".join(desktop_entry.app_command())
    print(f"the menu entry runs: {command} app --connect-dialog")
    return 0
