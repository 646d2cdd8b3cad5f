"""``HOST:PORT`` endpoints as the user types them."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 9000


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        return self.host in ("localhost", "::1") or self.host.startswith("127.")


def parse_endpoint(text: str) -> Endpoint:
    """``host``, ``host:port``, ``:port`` or ``[v6]:port``; ``ValueError`` with the reason."""
    text = text.strip()
    if not text:
        return Endpoint()
    host, port_text = text, ""
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValueError(f"unclosed '[' in {text!r}")
        host, rest = text[1:close], text[close + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"expected ':PORT' after ']' in {text!r}")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    port = DEFAULT_PORT
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"port must be a number from 1 to 65535, got {port_text!r}")
        port = int(port_text)
    return Endpoint(host or DEFAULT_HOST, port)
