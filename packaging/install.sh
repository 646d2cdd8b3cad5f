#!/bin/sh
# Puts the bundled Synapse app in the desktop's menu (and recordings opening with it), for this
# user only: the entry, icons and MIME type go under ${XDG_DATA_HOME:-~/.local/share}.
#   ./install.sh              install (the entry runs this folder's synapse-desktop)
#   ./install.sh --uninstall  remove them
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/synapse-desktop" install-desktop "$@"
