"""Handshake helpers, the grid layout helper, and CONTROL applied to a state."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapse_native.protocol import (
    VERSION,
    Control,
    ControlField,
    ControlState,
    Hello,
    ProtocolError,
    Role,
    check_hello_mac,
    grid_shape,
    hello_mac,
    negotiate_version,
    new_challenge,
)


def test_negotiation_picks_the_highest_common_version() -> None:
    assert negotiate_version(Hello(Role.TRAINER, "t", version_min=1, version_max=4)) == VERSION
    peer = Hello(Role.TRAINER, "t", version_min=2, version_max=5)
    assert negotiate_version(peer, ours=(1, 3)) == 3


def test_no_common_version_names_both_ranges() -> None:
    peer = Hello(Role.VIEWER, "v", version_min=2, version_max=3)
    with pytest.raises(ProtocolError, match=r"peer speaks 2\.\.3, this build speaks 1\.\.1"):
        negotiate_version(peer)


def test_mac_depends_on_token_and_challenge() -> None:
    challenge = new_challenge()
    assert len(challenge) == 32 and challenge != new_challenge()
    mac = hello_mac("token", challenge)
    assert len(mac) == 32
    assert check_hello_mac("token", challenge, mac)
    assert not check_hello_mac("token", bytes(32), mac)
    assert not check_hello_mac("other", challenge, mac)
    assert not check_hello_mac("token", challenge, mac[:-1])
    with pytest.raises(ValueError, match="challenge is 31 bytes, 32 expected"):
        hello_mac("token", bytes(31))


@pytest.mark.parametrize(
    ("neurons", "shape"),
    [
        (0, (0, 0)),
        (1, (1, 1)),
        (2, (1, 2)),
        (3, (2, 2)),
        (768, (24, 32)),
        (4096, (64, 64)),
        (11008, (86, 128)),
        (14336, (112, 128)),
        (4099, (64, 65)),
    ],
)
def test_grid_shape_examples(neurons: int, shape: tuple[int, int]) -> None:
    assert grid_shape(neurons) == shape


@settings(max_examples=300, deadline=None)
@given(neurons=st.integers(1, 1 << 32))
def test_grid_shape_is_near_square_and_fits(neurons: int) -> None:
    rows, cols = grid_shape(neurons)
    assert rows <= cols
    assert neurons <= rows * cols <= 2 * neurons  # what MODEL_META accepts
    assert rows * cols < neurons + cols  # no empty row
    assert cols <= 2 * rows or cols == math.isqrt(neurons - 1) + 1


def test_grid_shape_refuses_negative_counts() -> None:
    with pytest.raises(ValueError, match="neurons must be >= 0"):
        grid_shape(-1)


def test_control_reports_present_fields_and_applies_only_those() -> None:
    state = ControlState(threshold=1.0, rate_hz=5.0, site_kinds=15, paused=False, top_k=64)
    control = Control(request_id=3, rate_hz=20.0, paused=True, unknown_fields=0x100)
    assert control.fields == ControlField.RATE | ControlField.PAUSED | ControlField(0x100)
    assert control.applied_to(state) == ControlState(1.0, 20.0, 15, True, 64)
    assert Control(request_id=4).applied_to(state) == state
