"""``synapse watch`` on a live demo trainer that breaks: the alert is printed, posted to a local
webhook as JSON and handed to a command; the watcher ends when the trainer does."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from synapse_desktop.commands import watch

from .test_trainer import finish, listening_port, trainer


class Hook:
    """A local webhook that keeps the JSON bodies posted to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.timeout(300)
def test_a_nan_reaches_the_webhook_and_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = Hook()
    out = tmp_path / "alerts.jsonl"
    script = f"import sys; open({str(out)!r}, 'a').write(sys.stdin.read() + '\\n')"
    process = trainer(
        "--steps", "40", "--inject", "nan@30", "--rate-hz", "1000", "--wait-for-viewer", "30"
    )
    try:
        port = listening_port(process)
        args = argparse.Namespace(
            address=f"127.0.0.1:{port}",
            token=None,
            webhook=[hook.url],
            exec=[f'{sys.executable} -c "{script}"'],
            min_severity="warning",
            timeout=10.0,
        )
        assert watch.run(args) == 0
        finish(process)
    finally:
        if process.poll() is None:
            process.kill()
        hook.close()
    printed = capsys.readouterr().out
    assert f"watching 127.0.0.1:{port}" in printed
    assert "step      30  ERROR   layer 4 gradients: non-finite gradients" in printed
    first = hook.bodies[0]
    assert (first["kind"], first["severity"], first["step"], first["layer"]) == (
        "non-finite",
        "error",
        30,
        4,
    )
    assert first["text"].startswith(f"[synapse error] step 30 on 127.0.0.1:{port}: layer 4")
    kinds = {body["kind"] for body in hook.bodies}
    assert "loss spike" in kinds  # the NaN loss of the next step
    given = [json.loads(line) for line in out.read_text().splitlines()]
    assert [body["text"] for body in given] == [body["text"] for body in hook.bodies]
    assert "sent" in printed.splitlines()[-1] and "failed 0" in printed
