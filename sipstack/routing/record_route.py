# -*- test-case-name: tests.routing.test_record_route -*-
"""
The Record-Route URI of a proxy, with the TLS hint of docs/tls-first.md
("The Record-Route answer").

A proxy reachable over TLS may add a non-standard parameter naming its TLS
port to the URI it record-routes, so that peers of this stack try TLS first
for in-dialog requests and fall back to the URI's nominal transport; other
stacks pass unknown URI parameters through.  The hint is a hint, not a
constraint: C{;transport=tls} (which forbids fallback) is only for a proxy
that knows every dialog peer can do TLS, and C{sips:} is never used as a
hint (RFC 5630 makes it end-to-end).  Off by default
(C{TLSFirstSettings.record_route_tls_hint}).
"""

from __future__ import annotations

from sipstack.config import TLSFirstSettings
from sipstack.hop import TransportKind
from sipstack.message.uri import SIPURI
from sipstack.routing.via import default_port

__all__ = ["TLS_PORT_HINT", "record_route_uri", "tls_port_hint"]

#: The URI parameter that names a proxy's TLS port.
TLS_PORT_HINT = "x-sipstack-tls-port"


def record_route_uri(
    host: str,
    port: int | None = None,
    *,
    transport: TransportKind = TransportKind.UDP,
    tls_port: int | None = None,
    settings: TLSFirstSettings | None = None,
) -> SIPURI:
    """
    The URI a proxy puts in Record-Route (RFC 3261 section 16.6, step 4):
    C{sip:host[:port];lr}, with C{;transport=} for anything but UDP, and the
    TLS hint C{;x-sipstack-tls-port=N} when C{settings.record_route_tls_hint}
    is on, the proxy listens for TLS on C{tls_port}, and the URI does not
    already say TLS.

    @param host: the proxy's host name or IP address (an IPv6 address with
        or without brackets).
    @param port: the port of C{transport}; left out when L{None} (or the
        transport's default port, so that RFC 3263 SRV lookups still apply
        to a name).
    @param transport: the transport the URI names (UDP: none named).
    @param tls_port: the proxy's TLS port, if it has one.
    @param settings: the TLS-first settings; the defaults (hint off) if
        L{None}.
    @raise ValueError: C{transport} is not UDP, TCP or TLS.
    """
    if transport not in (TransportKind.UDP, TransportKind.TCP, TransportKind.TLS):
        raise ValueError(f"a Record-Route URI cannot name {transport.value}")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    if port == default_port(transport):
        port = None
    uri = SIPURI("sip", host, port=port)
    if transport is not TransportKind.UDP:
        uri = uri.with_param("transport", transport.value.lower())
    hint = settings is not None and settings.record_route_tls_hint
    if hint and tls_port is not None and transport is not TransportKind.TLS:
        uri = uri.with_param(TLS_PORT_HINT, str(tls_port))
    return uri.with_param("lr")


def tls_port_hint(uri: SIPURI) -> int | None:
    """
    The TLS port a Record-Route (or Route) URI hints at, or L{None} when it
    has no hint or a malformed one (a hint must never make a request fail).
    """
    value = uri.param(TLS_PORT_HINT)
    if value is None or not value.isdigit():
        return None
    port = int(value)
    return port if 0 < port < 65536 else None
