"""CONTROL validation: pure functions, every bad field named, all-or-nothing."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synapse_native.protocol import Control, SiteKind, ThresholdMode
from synapse_serve import control

STATE = control.DEFAULT_STATE


def test_default_state_is_valid() -> None:
    assert control.state_errors(STATE) == []
    assert control.kinds_enabled(STATE, SiteKind.MLP)
    assert not control.kinds_enabled(STATE, SiteKind.EMBED)


def test_valid_request_changes_only_its_fields() -> None:
    new = control.apply(STATE, Control(request_id=1, threshold=2.0, top_k=7))
    assert new == dataclasses.replace(STATE, threshold=2.0, top_k=7)
    assert control.apply(STATE, Control(request_id=2)) == STATE  # no fields: no change


def test_threshold_mode_is_checked_against_the_threshold_it_ends_with() -> None:
    top = control.apply(
        STATE, Control(1, threshold=0.05, threshold_mode=ThresholdMode.TOP_FRACTION)
    )
    assert (top.threshold_mode, top.threshold) == (ThresholdMode.TOP_FRACTION, pytest.approx(0.05))
    with pytest.raises(ValueError, match="top-fraction threshold must be in"):
        control.apply(top, Control(2, threshold=2.0))  # 2 is no fraction
    back = control.apply(top, Control(3, threshold=2.0, threshold_mode=ThresholdMode.SIGMA))
    assert back.threshold_mode == ThresholdMode.SIGMA
    with pytest.raises(ValueError, match="threshold_mode 7 unknown"):
        control.apply(STATE, Control(4, threshold_mode=7))
    assert control.parse_mode("top") == ThresholdMode.TOP_FRACTION
    with pytest.raises(ValueError, match="absolute, sigma, top"):
        control.parse_mode("median")


@pytest.mark.parametrize(
    ("request_", "needle"),
    [
        (Control(1, threshold=math.nan), "threshold"),
        (Control(1, threshold=math.inf), "threshold"),
        (Control(1, threshold=-0.5), "threshold"),
        (Control(1, rate_hz=0.0), "rate_hz"),
        (Control(1, rate_hz=1000.5), "rate_hz"),
        (Control(1, rate_hz=math.nan), "rate_hz"),
        (Control(1, top_k=0), "top_k"),
        (Control(1, top_k=65537), "top_k"),
        (Control(1, site_kinds=0), "at least one"),
        (Control(1, site_kinds=1 << 12), "unknown kind bits"),
        (Control(1, unknown_fields=1 << 8), "unknown CONTROL field"),
    ],
)
def test_bad_request_is_rejected_and_named(request_: Control, needle: str) -> None:
    errors = control.request_errors(request_)
    assert len(errors) == 1 and needle in errors[0]
    with pytest.raises(ValueError, match=needle):
        control.apply(STATE, request_)


def test_one_bad_field_rejects_the_whole_request() -> None:
    request = Control(1, threshold=1.0, rate_hz=-1.0)
    assert len(control.request_errors(request)) == 1
    with pytest.raises(ValueError):
        control.apply(STATE, request)


def test_limits_are_inclusive() -> None:
    ok = Control(1, threshold=0.0, rate_hz=1000.0, top_k=65536, site_kinds=control.KNOWN_KINDS)
    assert control.request_errors(ok) == []
    assert control.request_errors(Control(1, top_k=1, rate_hz=1e-3, paused=True)) == []


@given(
    threshold=st.floats(allow_nan=True, allow_infinity=True, width=32),
    rate=st.floats(allow_nan=True, allow_infinity=True, width=32),
    top_k=st.integers(0, 2**32 - 1),
    kinds=st.integers(0, 2**32 - 1),
)
def test_accepted_requests_give_valid_states(
    threshold: float, rate: float, top_k: int, kinds: int
) -> None:
    request = Control(1, threshold=threshold, rate_hz=rate, top_k=top_k, site_kinds=kinds)
    if control.request_errors(request):
        return
    assert control.state_errors(control.apply(STATE, request)) == []
