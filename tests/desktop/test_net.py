"""Connection helpers without a display: endpoints, backoff, overload coalescing."""

from __future__ import annotations

import random

import numpy as np
import pytest

from synapse_desktop.models.session import Session
from synapse_desktop.net.backoff import Backoff
from synapse_desktop.net.coalesce import coalesce
from synapse_desktop.net.endpoint import Endpoint, parse_endpoint
from synapse_native.protocol import decode_frame, encode

from .frames import ack, frame, meta, sparse, summaries


def test_endpoints_parse_with_defaults_and_clear_errors() -> None:
    assert parse_endpoint("") == Endpoint("localhost", 9000)
    assert parse_endpoint("gpu-node:9100") == Endpoint("gpu-node", 9100)
    assert parse_endpoint(":9001") == Endpoint("localhost", 9001)
    assert parse_endpoint("[::1]:9002") == Endpoint("::1", 9002)
    assert str(Endpoint("::1", 9002)) == "[::1]:9002"
    with pytest.raises(ValueError, match="port"):
        parse_endpoint("host:99999")


def test_backoff_doubles_up_to_the_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(initial=0.5, cap=4.0, jitter=0.25, rng=random.Random(1))
    delays = [backoff.next() for _ in range(7)]
    for delay, base in zip(delays, [0.5, 1, 2, 4, 4, 4, 4], strict=True):
        assert 0.75 * base <= delay <= 1.25 * base
    assert len(set(delays)) == len(delays)  # jittered
    backoff.reset()
    assert backoff.next() <= 0.625


def test_coalescing_keeps_control_frames_every_summary_and_the_newest_sparse_per_site() -> None:
    raw = [encode(meta(1), seq=0)]
    for step in range(3):
        raw.append(encode(summaries([0, 1, 2], float(step)), seq=1 + 4 * step, step=step))
        for site in range(3):
            raw.append(encode(sparse(site, [step]), seq=2 + 4 * step + site, step=step))
    raw.insert(5, encode(ack(1, 0.7), seq=0))
    keep, headers = coalesce(raw)
    assert len(headers) == len(raw)
    kept = [decode_frame(raw[i]) for i in keep]
    assert [type(f.message).__name__ for f in kept] == [  # type: ignore[union-attr]
        "ModelMeta",
        "LayerSummaryBatch",
        "ControlAck",
        "LayerSummaryBatch",
        "LayerSummaryBatch",
        "SparseActivations",
        "SparseActivations",
        "SparseActivations",
    ]
    # The discarded frames still advance the sequence: no trainer drop, all app drops.
    session = Session()
    items = list(headers)
    for i in keep:
        items[i] = decode_frame(raw[i])  # type: ignore[call-overload]
    session.apply_frames(items)
    assert session.counters.app_dropped == len(raw) - len(keep)
    assert session.counters.dropped_by_trainer == 0
    assert session.counters.step == 2
    np.testing.assert_array_equal(session.sparse.points[1].indices, [2])
    assert frame(meta(1), seq=0).header.seq == 0


def test_several_endpoints_lists_ranges_and_clear_errors() -> None:
    from synapse_desktop.net.endpoint import MAX_ENDPOINTS, format_endpoints, parse_endpoints

    four = [Endpoint("gpu", port) for port in range(9000, 9004)]
    assert parse_endpoints("gpu:9000-9003") == four
    assert parse_endpoints(["gpu:9000-9001", "gpu:9002,gpu:9003"]) == four  # repeated --connect
    assert parse_endpoints("[::1]:9000-9001, b") == [
        Endpoint("::1", 9000),
        Endpoint("::1", 9001),
        Endpoint("b", 9000),
    ]
    assert parse_endpoints("") == [Endpoint()]
    assert format_endpoints([*four, Endpoint("b", 1)]) == "gpu:9000-9003,b:1"
    assert parse_endpoints(format_endpoints(four)) == four
    for text, reason in (
        ("gpu:9003-9000", "runs backwards"),
        ("gpu:9000,,gpu:9001", "stray comma"),
        ("gpu:9000,gpu:9000", "given twice"),
        ("gpu:0-3", "port must be"),
        (f"gpu:1-{MAX_ENDPOINTS + 1}", f"at most {MAX_ENDPOINTS}"),
    ):
        with pytest.raises(ValueError, match=reason):
            parse_endpoints(text)
    with pytest.raises(ValueError, match=f"at most {MAX_ENDPOINTS}"):
        parse_endpoints([f"h:{port}" for port in range(1, MAX_ENDPOINTS + 2)])
