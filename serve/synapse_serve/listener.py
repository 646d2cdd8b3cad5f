"""Where the probe listens: the loopback-or-token rule, binding with an optional port fallback,
and the start-up line that tells the user how to connect."""

from __future__ import annotations

import errno
import ipaddress
import socket
import sys

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9000
FALLBACK_PORTS = 32  # ports tried after the requested one when port_fallback is on


class PortInUseError(OSError):
    """The requested port is taken (and no fallback was allowed, or none was free)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address; other names count as reachable from outside."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


MIN_TOKEN_BYTES = 16
MAKE_TOKEN = 'python -c "import secrets; print(secrets.token_urlsafe())"'


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token (docs/RELIABILITY.md, first row), and
    refuse tokens too short to resist guessing."""
    if token is not None and len(token.encode("utf-8")) < MIN_TOKEN_BYTES:
        raise ValueError(
            f"a token must be at least {MIN_TOKEN_BYTES} bytes (this one is "
            f"{len(token.encode('utf-8'))}); make one with: {MAKE_TOKEN}"
        )
    if not is_loopback(host) and token is None:
        raise ValueError(
            f"listening on {host!r} exposes the probe beyond this machine and requires a token "
            "(pass token=..., which viewers must present); or keep the default host 127.0.0.1 "
            "and reach it through an SSH tunnel"
        )


def bind(host: str, port: int, *, port_fallback: bool = False, backlog: int = 32) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port).

    With ``port_fallback`` the next ``FALLBACK_PORTS`` ports are tried when ``port`` is taken;
    otherwise a taken port raises PortInUseError naming the way out.
    """
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be in 0..65535, got {port}")
    address = DEFAULT_HOST if host == "localhost" else host
    last = port if port == 0 or not port_fallback else min(65535, port + FALLBACK_PORTS)
    for candidate in range(port, last + 1):
        try:
            return _listen(address, candidate, backlog)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    if port_fallback:
        raise PortInUseError(
            errno.EADDRINUSE,
            f"ports {port}..{last} on {address} are all in use; choose another port",
        )
    raise PortInUseError(
        errno.EADDRINUSE,
        f"port {port} on {address} is in use; pass port_fallback=True to take the next free "
        "port or choose another port",
    )


def _listen(address: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if sys.platform != "win32":  # on Windows it would let another socket steal the port
            # Lets a restarted trainer rebind while old connections sit in TIME_WAIT; unlike
            # SO_REUSEPORT it never lets two live listeners share the port.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def startup_line(host: str, port: int, *, token: bool) -> str:
    """What the probe prints when it starts listening."""
    where = f"synapse: probe listening on {host}:{port}"
    if not is_loopback(host):
        return f"{where} (token required); connect the app to this machine's address, port {port}"
    auth = " (token required)" if token else ""
    return (
        f"{where}{auth} (loopback only). From another machine: "
        f"ssh -N -L {port}:127.0.0.1:{port} user@{socket.gethostname()}, "
        f"then connect the app to localhost:{port}"
    )
