"""Alerts that reach people: each alert as JSON posted to a webhook, or given to a command.

``AlertHooks.send`` never blocks: it puts the alert on a bounded queue (a full queue drops the
alert and counts it) that one worker thread empties. The worker POSTs the JSON to every webhook
(``text`` holds a one-line summary, so Slack and Mattermost incoming webhooks show it as is) and
runs every command with the JSON on its stdin and the summary in ``SYNAPSE_ALERT``; a failed
delivery is retried with capped exponential backoff, then given up and counted.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shlex
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from synapse_desktop.models.anomalies import Alert

log = logging.getLogger(__name__)

QUEUE_SIZE = 256
TIMEOUT_S = 5.0  # per attempt, webhook and command alike


def alert_payload(alert: Alert, source: str = "") -> dict[str, Any]:
    """The alert as a JSON-ready dict (``text``: the one-line summary)."""
    where = f" on {source}" if source else ""
    payload: dict[str, Any] = {
        "text": f"[synapse {alert.severity.name.lower()}] step {alert.step}{where}: "
        f"{alert.message}",
        "kind": alert.kind.value,
        "severity": alert.severity.name.lower(),
        "step": alert.step,
        "rank": alert.rank,
        "layer": alert.layer,
        "site": alert.site,
        "site_id": alert.site_id,
        "message": alert.message,
        "source": source,
    }
    ev = alert.evidence
    if ev is not None:
        payload["evidence"] = {
            "label": ev.label,
            "steps": list(ev.steps),
            "values": [_number(v) for v in ev.values],
            "baseline": _number(ev.baseline),
            "limit": _number(ev.limit),
        }
    return payload


def _number(value: float) -> float | str | None:
    """JSON has no NaN or infinity: NaN becomes null, an infinity the string "inf"/"-inf"."""
    if value != value:
        return None
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    return value


@dataclass
class Delivery:
    """Counters: alerts delivered to every target, dropped (queue full), failed (gave up)."""

    delivered: int = 0
    dropped: int = 0
    failed: int = 0


class AlertHooks:
    """Delivers alerts to ``webhooks`` (URLs) and ``commands`` (shell-style command lines)."""

    def __init__(
        self,
        webhooks: Sequence[str] = (),
        commands: Sequence[str] = (),
        *,
        source: str = "",
        retries: int = 3,
        backoff_s: float = 0.5,
        queue_size: int = QUEUE_SIZE,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        for url in webhooks:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"webhook {url!r}: only http:// and https:// URLs")
        self.webhooks = list(webhooks)
        self.commands = [shlex.split(command) for command in commands]
        if any(not argv for argv in self.commands):
            raise ValueError("an empty --exec command")
        self.source = source
        self.retries, self.backoff_s, self.timeout_s = retries, backoff_s, timeout_s
        self.counts = Delivery()
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(queue_size)
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._run, name="synapse-alert-hooks", daemon=True)
        self._worker.start()

    def send(self, alert: Alert) -> bool:
        """Queue ``alert`` for delivery; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(alert_payload(alert, self.source))
        except queue.Full:
            self.counts.dropped += 1
            return False
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout`` seconds), then stop the worker."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            self._stop.set()
        self._worker.join(timeout)
        self._stop.set()

    def _run(self) -> None:
        while True:
            payload = self._queue.get()
            if payload is None:
                return
            ok = all(self._deliver(self._post, url, payload) for url in self.webhooks)
            ok &= all(self._deliver(self._exec, argv, payload) for argv in self.commands)
            if ok:
                self.counts.delivered += 1
            else:
                self.counts.failed += 1

    def _deliver(self, attempt: Any, target: Any, payload: dict[str, Any]) -> bool:
        for n in range(self.retries + 1):
            try:
                attempt(target, payload)
                return True
            except (OSError, ValueError, subprocess.SubprocessError) as exc:
                log.warning("alert delivery to %s failed (try %d): %s", target, n + 1, exc)
            if self._stop.wait(self.backoff_s * 2**n):
                return False
        return False

    def _post(self, url: str, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, allow_nan=False).encode("utf-8")
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            if not 200 <= response.status < 300:
                raise OSError(f"HTTP {response.status}")

    def _exec(self, argv: list[str], payload: dict[str, Any]) -> None:
        body = json.dumps(payload, allow_nan=False)
        env = dict(os.environ, SYNAPSE_ALERT=payload["text"])
        done = subprocess.run(
            argv, input=body, text=True, env=env, timeout=self.timeout_s, capture_output=True
        )
        if done.returncode != 0:
            raise subprocess.SubprocessError(f"exit status {done.returncode}")
