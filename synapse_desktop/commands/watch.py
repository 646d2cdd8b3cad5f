"""``synapse watch``: run the app's detectors on a live stream, headless, and send each alert on.

The frames go through the same ``Session`` (and so the same ``models.anomalies`` detectors) as
in the app; each new alert is printed and handed to ``net.alert_hooks`` (webhooks, commands),
which never holds up the reading of the stream. Imports neither Qt nor torch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from synapse_desktop.commands.tail import DEFAULT_ADDRESS, parse_address

if TYPE_CHECKING:
    from synapse_desktop.models.anomalies import Alert, Anomalies

SEVERITIES = ("info", "warning", "error")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "address",
        nargs="?",
        default=DEFAULT_ADDRESS,
        metavar="HOST:PORT",
        help="the probe to watch (default: %(default)s)",
    )
    parser.add_argument("--token", default=None, help="the probe's token, if it requires one")
    parser.add_argument(
        "--webhook",
        action="append",
        default=[],
        metavar="URL",
        help="POST each alert as JSON to URL (its 'text' field suits Slack; repeatable)",
    )
    parser.add_argument(
        "--exec",
        action="append",
        default=[],
        metavar="CMD",
        help="run CMD for each alert: the JSON on stdin, the summary in $SYNAPSE_ALERT "
        "(repeatable)",
    )
    parser.add_argument(
        "--min-severity",
        choices=SEVERITIES,
        default="warning",
        help="send alerts of this severity and above (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for the probe (default: 5)"
    )


class AlertFollower:
    """Calls ``on_alert`` once for each alert ``anomalies`` adds (read after each batch)."""

    def __init__(self, anomalies: Anomalies, on_alert: Callable[[Alert], None]) -> None:
        self.anomalies = anomalies
        self.on_alert = on_alert
        self._seen = (anomalies.generation, anomalies.total)
        anomalies.changed.connect(self._follow)

    def _follow(self) -> None:
        anomalies = self.anomalies
        generation, total = self._seen
        new = anomalies.total - (total if generation == anomalies.generation else 0)
        self._seen = (anomalies.generation, anomalies.total)
        if new > 0:
            for alert in list(anomalies.alerts)[-min(new, len(anomalies)) :]:
                self.on_alert(alert)


def run(args: argparse.Namespace) -> int:
    from synapse_desktop.models.anomalies import Severity
    from synapse_desktop.models.session import Session
    from synapse_desktop.net.alert_hooks import AlertHooks
    from synapse_native.client import ConnectionClosed, PeerError, StreamClient

    try:
        host, port = parse_address(args.address)
        hooks = AlertHooks(args.webhook, args.exec, source=f"{host}:{port}")
    except ValueError as exc:
        print(f"synapse watch: {exc}", file=sys.stderr)
        return 2
    least = Severity[args.min_severity.upper()]

    def on_alert(alert: Alert) -> None:
        print(f"step {alert.step:>7}  {alert.severity.name:<7} {alert.message}", flush=True)
        if alert.severity >= least:
            hooks.send(alert)

    session = Session(history_capacity=64)
    follower = AlertFollower(session.anomalies, on_alert)  # kept: signals hold weak references
    status = 0
    try:
        client = StreamClient.connect(host, port, token=args.token, timeout=args.timeout)
    except (OSError, ValueError) as exc:
        print(f"synapse watch: cannot read {host}:{port}: {exc}", file=sys.stderr)
        hooks.close()
        return 1
    print(f"synapse watch: watching {host}:{port}", flush=True)
    try:
        with client:
            session.apply_frames([client.hello])
            while True:
                frame = client.next_frame(1.0)
                if frame is not None:
                    session.apply_frames([frame])
    except KeyboardInterrupt:
        pass
    except ConnectionClosed as exc:
        print(f"synapse watch: the probe closed the stream ({exc})", flush=True)
    except (OSError, PeerError, ValueError) as exc:
        print(f"synapse watch: {exc}", file=sys.stderr)
        status = 1
    finally:
        hooks.close()
    del follower
    counts = hooks.counts
    print(
        f"synapse watch: {session.anomalies.total} alerts; sent {counts.delivered}, "
        f"failed {counts.failed}, dropped {counts.dropped}",
        flush=True,
    )
    return status
