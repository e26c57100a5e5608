# -*- test-case-name: tests.routing.test_via -*-
"""
The Via rules of the transport layer, as pure functions.

  - On receipt, a server stamps the top Via with C{received} and C{rport}
    (RFC 3261 section 18.2.1, RFC 3581 section 4).
  - A response goes where the top Via says (RFC 3261 section 18.2.2, RFC 3581
    section 4): back on the request's connection for reliable transports, else
    to C{maddr}, to C{received}/C{rport}, or to C{sent-by}.
  - A client writes the transport it actually uses and its sent-by into the
    top Via, always with C{rport} (RFC 3261 section 18.1.1; docs/tls-first.md).
  - A request over 1300 bytes that would go over UDP goes over TCP instead
    (RFC 3261 section 18.1.1).
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import dataclass

from sipstack.hop import Peer, TransportKind
from sipstack.message.message import Request
from sipstack.message.via import Via

__all__ = [
    "BRANCH_COOKIE",
    "UDP_SIZE_LIMIT",
    "ResponseTarget",
    "default_port",
    "new_branch",
    "outgoing_via",
    "response_target",
    "stamp_received",
    "transport_for_size",
    "host_literal",
]

#: The magic cookie that marks an RFC 3261 branch (section 8.1.1.7).
BRANCH_COOKIE = "z9hG4bK"

#: Requests larger than this go over a congestion-controlled transport when
#: the path MTU is unknown (RFC 3261 section 18.1.1).
UDP_SIZE_LIMIT = 1300


def new_branch() -> str:
    """A fresh branch: the magic cookie and 64 random bits."""
    return BRANCH_COOKIE + secrets.token_hex(8)


def default_port(transport: TransportKind) -> int:
    """5061 for TLS (and WSS), 5060 otherwise (RFC 3261 section 19.1.2)."""
    return 5061 if transport.encrypted else 5060


_DOTTED_QUAD = re.compile(
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}"
)


def host_literal(host: str) -> str | None:
    """
    The IP address in C{host} (brackets removed, IPv6 compressed), or L{None}
    when C{host} is a name.
    """
    if _DOTTED_QUAD.fullmatch(host):
        # The common case, already in canonical form: no ipaddress object.
        return host
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not text or not (text[0].isdigit() or ":" in text):
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _via_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def stamp_received(request: Request, source: Peer) -> Request:
    """
    Add C{received} and C{rport} to the top Via of a request that arrived
    from C{source}.

    C{received} is added when the sent-by host differs from the source address
    (RFC 3261 section 18.2.1), and always when the client asked for C{rport}
    (RFC 3581 section 4), which also gets the source port as its value.
    """
    via = request.top_via
    stamped = via
    # received holds the bare address, IPv6 without brackets (RFC 3261
    # section 25: received = IPv4address / IPv6address).
    source_host = source.host
    if via.has_rport and via.rport is None:
        stamped = stamped.with_param("received", source_host).with_param("rport", str(source.port))
    elif via.host != source.host and host_literal(via.host) != source.host:
        stamped = stamped.with_param("received", source_host)
    if stamped is via:
        return request
    return request.with_top_via(stamped)


@dataclass(frozen=True, slots=True)
class ResponseTarget:
    """
    Where a response goes when it cannot simply follow its request's
    connection.

    @ivar host: an IP address, or a host name to resolve per RFC 3263 section 5.
    @ivar port: the port.
    @ivar transport: the transport named in the Via.
    @ivar ttl: the multicast TTL when C{maddr} is used, else L{None}.
    """

    host: str
    port: int
    transport: TransportKind
    ttl: int | None = None

    @property
    def resolved(self) -> bool:
        """Whether C{host} is an IP address (no DNS look-up needed)."""
        return host_literal(self.host) is not None


def _transport_of(via: Via) -> TransportKind:
    try:
        return TransportKind(via.transport)
    except ValueError:
        return TransportKind.UDP


def response_target(via: Via) -> ResponseTarget:
    """
    Where to send a response whose top Via is C{via}, when the request's
    connection is gone or the transport is unreliable (RFC 3261 section
    18.2.2, RFC 3581 section 4).

    Over UDP, a C{received} address with an C{rport} value wins (RFC 3581
    applies C{rport} to unreliable transports only); then C{maddr}; then
    C{received} with the sent-by port; then sent-by itself.
    """
    transport = _transport_of(via)
    port = via.port if via.port is not None else default_port(transport)
    received = via.received
    if received is not None:
        received = received[1:-1] if received.startswith("[") else received
    if received is not None and via.rport is not None and not transport.reliable:
        return ResponseTarget(received, via.rport, transport)
    if via.maddr is not None and not transport.reliable:
        return ResponseTarget(via.maddr, port, transport, ttl=via.ttl if via.ttl is not None else 1)
    if received is not None:
        return ResponseTarget(received, port, transport)
    host = host_literal(via.host) or via.host
    return ResponseTarget(host, port, transport)


def outgoing_via(via: Via, transport: TransportKind, sent_by: Peer | tuple[str, int | None]) -> Via:
    """
    The top Via a client writes when it sends over C{transport} from C{sent_by}:
    the transport actually used, our address, and C{rport} (RFC 3581).
    """
    host, port = (sent_by.host, sent_by.port) if isinstance(sent_by, Peer) else sent_by
    stamped = via.replace(transport=transport.value, host=_via_host(host), port=port)
    if not stamped.has_rport:
        stamped = stamped.with_param("rport")
    return stamped


def transport_for_size(transport: TransportKind, size: int, *, explicit: bool = False) -> TransportKind:
    """
    The transport to use for a request of C{size} bytes planned over
    C{transport}: TCP instead of UDP past L{UDP_SIZE_LIMIT}, unless UDP was
    asked for explicitly (a C{transport=udp} URI parameter keeps UDP).
    """
    if transport is TransportKind.UDP and size > UDP_SIZE_LIMIT and not explicit:
        return TransportKind.TCP
    return transport
