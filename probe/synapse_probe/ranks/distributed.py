"""Several ranks: the port each rank's probe listens on, and how to reach them all.

Each rank listens on ``port + local rank``: the rank on this node, which torchrun sets as
``LOCAL_RANK`` (with ``LOCAL_WORLD_SIZE``); without it, the global rank and world size stand for
them (one node). Ports are only spread out under an initialised torch.distributed group, so a
probe attached before ``init_process_group`` stays on ``port`` and the clash is reported at once.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Mapping, Sequence

log = logging.getLogger(__name__)

Ports = int | Sequence[int]  # a base port, or one port per local rank

_announced = False


def local_rank_and_size(
    rank: int, world_size: int, env: Mapping[str, str] | None = None
) -> tuple[int, int]:
    """This process's rank on its node and the number of ranks there ((0, 1) alone)."""
    if world_size <= 1:
        return 0, 1
    env = os.environ if env is None else env
    try:
        local_rank = int(env["LOCAL_RANK"])
    except (KeyError, ValueError):
        return rank, world_size
    try:
        local_size = int(env["LOCAL_WORLD_SIZE"])
    except (KeyError, ValueError):
        local_size = world_size
    return local_rank, max(local_size, local_rank + 1)


def rank_port(port: Ports, local_rank: int) -> int:
    """The port of ``local_rank``: ``port + local_rank`` for one port (0 stays 0: any free
    port), or its entry of a list of ports."""
    if isinstance(port, int):
        return port + local_rank if port else 0
    ports = list(port)
    if local_rank >= len(ports):
        raise ValueError(
            f"port lists {len(ports)} ports (one per local rank) but this process is local "
            f"rank {local_rank}"
        )
    return int(ports[local_rank])


def node_ports(port: Ports, local_size: int) -> list[int] | None:
    """Every local rank's port (None when they take any free port)."""
    ports = [rank_port(port, r) for r in range(local_size)]
    return ports if all(ports) else None


def connect_command(host: str, ports: Sequence[int]) -> str:
    """``synapse app --connect ...`` for ``ports`` on ``host`` (consecutive ones as a range)."""
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()
    where = f"[{host}]" if ":" in host else host
    parts: list[str] = []
    i = 0
    while i < len(ports):
        j = i
        while j + 1 < len(ports) and ports[j + 1] == ports[j] + 1:
            j += 1
        parts.append(f"{where}:{ports[i]}" if i == j else f"{where}:{ports[i]}-{ports[j]}")
        i = j + 1
    return f"synapse app --connect {','.join(parts)}"


def announce(host: str, port: Ports, local_size: int) -> str | None:
    """Log, and print on stderr, how to connect the app to every rank of this node (once per
    process; call it on local rank 0). Returns the line, or None when there is nothing to say."""
    global _announced
    ports = node_ports(port, local_size)
    if _announced or local_size < 2 or ports is None:
        return None
    _announced = True
    line = (
        f"synapse: {local_size} ranks on this node, each with its probe; connect the app to "
        f"all of them: {connect_command(host, ports)}"
    )
    log.info("%s", line)
    print(line, file=sys.stderr, flush=True)
    return line
