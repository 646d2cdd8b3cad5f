"""``HOST:PORT`` endpoints as the user types them, one or several (one per rank)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 9000
MAX_ENDPOINTS = 64  # the most endpoints (ranks) one window connects to
_RANGE = re.compile(r"^(?P<host>.*):(?P<first>\d+)-(?P<last>\d+)$")


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


def parse_endpoints(texts: str | Iterable[str]) -> list[Endpoint]:
    """Several endpoints: each text a comma-separated list of ``parse_endpoint`` items or port
    ranges (``host:9000-9003``, ``[v6]:9000-9003``); several texts add up (a repeated
    ``--connect``). ``ValueError`` names the item at fault: a bad or backwards range, an
    endpoint given twice, more than ``MAX_ENDPOINTS`` in all.
    """
    endpoints: list[Endpoint] = []
    for text in [texts] if isinstance(texts, str) else list(texts):
        items = [item.strip() for item in text.split(",")]
        if len(items) == 1 and not items[0]:
            items = [""]  # a lone empty text: the default endpoint
        elif not all(items):
            raise ValueError(f"empty endpoint in {text!r} (a stray comma?)")
        for item in items:
            endpoints.extend(_parse_item(item, len(endpoints)))
    if not endpoints:
        raise ValueError("no endpoint given")
    seen: set[Endpoint] = set()
    for endpoint in endpoints:
        if endpoint in seen:
            raise ValueError(f"endpoint {endpoint} is given twice")
        seen.add(endpoint)
    return endpoints


def format_endpoints(endpoints: Sequence[Endpoint]) -> str:
    """The text ``parse_endpoints`` reads back: consecutive ports of one host as a range."""
    parts: list[str] = []
    i = 0
    while i < len(endpoints):
        first = endpoints[i]
        j = i
        while (
            j + 1 < len(endpoints)
            and endpoints[j + 1].host == first.host
            and endpoints[j + 1].port == endpoints[j].port + 1
        ):
            j += 1
        parts.append(str(first) if j == i else f"{first}-{endpoints[j].port}")
        i = j + 1
    return ",".join(parts)


def _parse_item(item: str, already: int) -> list[Endpoint]:
    """One item of a list: an endpoint or a port range."""
    match = _RANGE.match(item)
    if match is None:
        endpoints = [parse_endpoint(item)]
    else:
        host = match["host"]
        first = parse_endpoint(f"{host}:{match['first']}")
        last = parse_endpoint(f"{host}:{match['last']}")
        if last.port < first.port:
            raise ValueError(f"port range {match['first']}-{match['last']} runs backwards")
        count = last.port - first.port + 1
        if already + count > MAX_ENDPOINTS:
            raise ValueError(
                f"{item!r} makes {already + count} endpoints; at most {MAX_ENDPOINTS} at once"
            )
        endpoints = [Endpoint(first.host, port) for port in range(first.port, last.port + 1)]
    if already + len(endpoints) > MAX_ENDPOINTS:
        raise ValueError(f"more than {MAX_ENDPOINTS} endpoints; at most {MAX_ENDPOINTS} at once")
    return endpoints
