"""Handshake helpers: version negotiation and the HMAC-SHA256 answer to a trainer's challenge."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from ._connection_wire import Hello
from ._layout import AUTH_DATA_SIZE
from ._wire import VERSION, ProtocolError

AUTH_CONTEXT = b"synapse-auth-v1"


def new_challenge() -> bytes:
    """32 random bytes for a trainer's HELLO ``auth_data``."""
    return secrets.token_bytes(AUTH_DATA_SIZE)


def hello_mac(token: str, challenge: bytes) -> bytes:
    """The viewer's ``auth_data``: HMAC-SHA256(key=token UTF-8, msg=AUTH_CONTEXT + challenge)."""
    if len(challenge) != AUTH_DATA_SIZE:
        raise ValueError(f"challenge is {len(challenge)} bytes, {AUTH_DATA_SIZE} expected")
    return hmac.new(token.encode("utf-8"), AUTH_CONTEXT + challenge, hashlib.sha256).digest()


def check_hello_mac(token: str, challenge: bytes, mac: bytes) -> bool:
    """Whether ``mac`` answers ``challenge`` for ``token`` (constant-time comparison)."""
    return hmac.compare_digest(hello_mac(token, challenge), mac)


def negotiate_version(peer: Hello, *, ours: tuple[int, int] = (VERSION, VERSION)) -> int:
    """The highest version both sides speak; ProtocolError naming both ranges when none."""
    low = max(peer.version_min, ours[0])
    high = min(peer.version_max, ours[1])
    if low > high:
        raise ProtocolError(
            f"no common protocol version: peer speaks {peer.version_min}..{peer.version_max}, "
            f"this build speaks {ours[0]}..{ours[1]}"
        )
    return high
