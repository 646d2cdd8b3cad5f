"""A viewer flooding the probe with CONTROL: beyond 100 a second (after a burst of 64) its
requests are dropped unread and counted, answered at most once a second, and neither the
training loop's step boundary nor another viewer's requests pay for it.
(``bench/bench_control_flood.py`` measures the step time under 10 000 CONTROL a second.)"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from synapse_native.protocol import Control, ControlAck, MsgType
from synapse_serve.control_throttle import BURST, RATE_HZ, ControlThrottle
from synapse_serve.server import Server

from .test_faults import META, connect, wait_until


@pytest.fixture
def server() -> Iterator[Server]:
    probe = Server(META, port=0, announce=False).start()
    yield probe
    probe.close()


def test_a_bucket_admits_a_burst_then_its_rate_and_answers_once_a_second() -> None:
    now = [0.0]
    bucket = ControlThrottle(clock=lambda: now[0])
    assert sum(bucket.admit() for _ in range(1000)) == BURST
    assert bucket.dropped == 1000 - BURST
    assert bucket.answer_due() and not bucket.answer_due()
    now[0] += 0.5
    assert sum(bucket.admit() for _ in range(1000)) == int(0.5 * RATE_HZ)
    assert not bucket.answer_due()
    now[0] += 0.5
    assert bucket.answer_due()


def test_a_flooding_viewer_is_dropped_and_counted_and_a_quiet_one_still_served(
    server: Server,
) -> None:
    with connect(server.address) as flooder, connect(server.address) as quiet:
        sent = 3000
        started = time.monotonic()
        for i in range(1, sent + 1):
            assert flooder.send(Control(i, threshold=2.5 + (i & 1) * 0.1))
        wait_until(lambda: server.controls_dropped + len(server._pending) >= sent - 1000)
        slowest = 0.0
        for _ in range(20):  # the training loop's step boundaries meanwhile
            began = time.perf_counter()
            server.poll_control()
            slowest = max(slowest, time.perf_counter() - began)
            time.sleep(0.01)
        acks = [
            f.message
            for f in flooder.frames(1.0)
            if f.header.msg_type == MsgType.CONTROL_ACK and f.message.request_id  # type: ignore[union-attr]
        ]
        elapsed = time.monotonic() - started
        assert quiet.send(Control(7, top_k=100))  # a viewer of its own: its own budget
        wait_until(lambda: server.poll_control() is not None and server.control.top_k == 100)
    applied = [a for a in acks if isinstance(a, ControlAck) and a.applied]
    refused = [a for a in acks if isinstance(a, ControlAck) and not a.applied]
    budget = BURST + RATE_HZ * (elapsed + 1.0)
    assert BURST <= len(applied) <= budget
    assert 1 <= len(refused) <= elapsed + 2  # once a second at most
    assert "more than 100 CONTROL requests a second" in refused[0].error
    assert server.controls_dropped == sent - len(applied)  # the refused one was dropped too
    assert slowest < 0.05  # applying what was admitted is cheap: never the flood's size
