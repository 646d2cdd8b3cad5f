"""Alerts posted to a webhook and given to a command: JSON a person's tools can read, retries
with backoff, and never a wait on a slow endpoint."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from synapse_desktop.models.anomalies import Alert, AlertKind, Severity
from synapse_desktop.models.early_warning import Evidence
from synapse_desktop.net.alert_hooks import AlertHooks, alert_payload


class Hook:
    """A local HTTP endpoint: answers ``statuses`` in turn (then 200), after ``delay_s``."""

    def __init__(self, statuses: list[int] | None = None, delay_s: float = 0.0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.statuses = list(statuses or [])
        self.delay_s = delay_s
        self.requests = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(hook.delay_s)
                hook.requests += 1
                status = hook.statuses.pop(0) if hook.statuses else 200
                if status == 200:
                    hook.bodies.append(json.loads(body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    endpoint = Hook()
    yield endpoint
    endpoint.close()


def alert(step: int = 120, nan: bool = False) -> Alert:
    evidence = Evidence("gradient norm", (100, 110, 120), (1.0, 1.25, float("nan")), 1.1, 3.0)
    return Alert(
        AlertKind.GRAD_SPIKE,
        step,
        0,
        7,
        2,
        "mlp",
        "layer 2 block: gradient norm 40, spike score 31.0 (mean 1.1)",
        Severity.WARNING,
        evidence=evidence if nan else None,
    )


def test_an_alert_is_posted_as_slack_compatible_json(hook: Hook) -> None:
    hooks = AlertHooks([hook.url], source="gpu1:9000")
    assert hooks.send(alert(nan=True))
    hooks.close()
    (body,) = hook.bodies
    assert body["text"].startswith("[synapse warning] step 120 on gpu1:9000: layer 2 block")
    assert (body["kind"], body["layer"], body["site"], body["step"]) == (
        "gradient-norm spike",
        2,
        "mlp",
        120,
    )
    assert body["evidence"]["values"] == [1.0, 1.25, None]  # NaN is null in JSON
    assert hooks.counts.delivered == 1


def test_failures_are_retried_with_backoff_then_given_up() -> None:
    flaky = Hook(statuses=[500, 503])
    try:
        hooks = AlertHooks([flaky.url], retries=3, backoff_s=0.05)
        hooks.send(alert())
        hooks.close()
        assert flaky.requests == 3 and len(flaky.bodies) == 1
        assert hooks.counts.delivered == 1
        down = AlertHooks([flaky.url.replace(str(flaky.server.server_address[1]), "1")])
        down.retries, down.backoff_s = 1, 0.01
        down.send(alert())
        down.close()
        assert down.counts.failed == 1 and down.counts.delivered == 0
    finally:
        flaky.close()


def test_a_slow_endpoint_never_holds_up_the_sender() -> None:
    slow = Hook(delay_s=0.5)
    try:
        hooks = AlertHooks([slow.url], queue_size=4)
        start = time.perf_counter()
        sent = [hooks.send(alert(step)) for step in range(10)]
        elapsed = time.perf_counter() - start
        assert elapsed < 0.2  # ten sends, one of them already being delivered for 0.5 s
        assert sent.count(False) == hooks.counts.dropped >= 5  # the queue holds four
        hooks.close(timeout=10)
        assert len(slow.bodies) == 10 - hooks.counts.dropped
    finally:
        slow.close()


def test_a_command_gets_the_json_and_the_summary(tmp_path: Path) -> None:
    out = tmp_path / "alerts.txt"
    script = (
        "import os, sys; "
        "open(sys.argv[1], 'a').write(os.environ['SYNAPSE_ALERT'] + '\\n' + sys.stdin.read())"
    )
    hooks = AlertHooks(commands=[f'{sys.executable} -c "{script}" {out}'])
    hooks.send(alert())
    hooks.close()
    summary, body = out.read_text().split("\n", 1)
    assert summary == alert_payload(alert())["text"]
    assert json.loads(body)["kind"] == "gradient-norm spike"


def test_bad_targets_are_refused() -> None:
    with pytest.raises(ValueError, match="only http"):
        AlertHooks(["file:///etc/passwd"])
    with pytest.raises(ValueError, match="empty"):
        AlertHooks(commands=[""])
