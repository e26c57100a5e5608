# -*- test-case-name: tests.test_hop -*-
"""
Values that describe one hop: the transport it used, the peer, and how secure
it was.

Security is a first-class value (docs/tls-first.md): every received message
and every flow carries a L{HopSecurity}, and only
L{SecurityState.TLS_AUTHENTICATED} may ever be shown to a user as a lock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "TransportKind",
    "Peer",
    "SecurityState",
    "HopSecurity",
    "CLEARTEXT",
    "TLS_UNAUTHENTICATED",
    "FlowKey",
    "Destination",
]


class TransportKind(enum.Enum):
    """
    A SIP transport, named as in the Via sent-protocol (RFC 3261 section 20.42).
    """

    UDP = "UDP"
    TCP = "TCP"
    TLS = "TLS"
    WS = "WS"
    WSS = "WSS"

    @property
    def reliable(self) -> bool:
        """Whether the transport retransmits by itself (RFC 3261 section 17)."""
        return self is not TransportKind.UDP

    @property
    def stream(self) -> bool:
        """Whether messages are framed by Content-Length on a byte stream."""
        return self is not TransportKind.UDP

    @property
    def encrypted(self) -> bool:
        """Whether the transport is TLS (or WebSocket over TLS)."""
        return self in (TransportKind.TLS, TransportKind.WSS)


@dataclass(frozen=True, slots=True)
class Peer:
    """
    A transport address: IP literal (no brackets for IPv6) and port.
    """

    host: str
    port: int

    def __str__(self) -> str:
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


class SecurityState(enum.Enum):
    """
    The three security states of docs/tls-first.md.
    """

    CLEARTEXT = "cleartext"
    TLS_UNAUTHENTICATED = "tls-unauthenticated"
    TLS_AUTHENTICATED = "tls-authenticated"


@dataclass(frozen=True, slots=True)
class HopSecurity:
    """
    How one hop was protected.

    @ivar state: the security state of the hop.
    @ivar identity: for L{SecurityState.TLS_AUTHENTICATED}, the SIP domain (or
        other identity) the peer's certificate was verified against;
        otherwise L{None}.
    """

    state: SecurityState
    identity: str | None = None

    def __post_init__(self) -> None:
        if (self.state is SecurityState.TLS_AUTHENTICATED) != (self.identity is not None):
            raise ValueError("an identity goes with, and only with, an authenticated hop")

    @property
    def encrypted(self) -> bool:
        """Whether the hop was encrypted at all."""
        return self.state is not SecurityState.CLEARTEXT

    @property
    def authenticated(self) -> bool:
        """Whether the peer was authenticated: the only case for a lock icon."""
        return self.state is SecurityState.TLS_AUTHENTICATED


CLEARTEXT = HopSecurity(SecurityState.CLEARTEXT)
TLS_UNAUTHENTICATED = HopSecurity(SecurityState.TLS_UNAUTHENTICATED)


@dataclass(frozen=True, slots=True)
class FlowKey:
    """
    What identifies a flow: the path one message travelled, and the one a
    reply to it should take (RFC 5626 section 3 calls it a flow).

    For UDP a flow is the pair of addresses; for TCP and TLS it is one
    connection, told apart from another between the same addresses by
    C{connection}.

    @ivar transport: the transport.
    @ivar remote: the peer's address as the socket sees it.
    @ivar local: our address as the socket sees it.
    @ivar connection: a number unique to one stream connection; 0 for UDP.
    """

    transport: TransportKind
    remote: Peer
    local: Peer
    connection: int = 0


@dataclass(frozen=True, slots=True)
class Destination:
    """
    Where to send a request: one resolved target of an RFC 3263 plan.

    @ivar transport: the transport to use.
    @ivar peer: the IP address and port.
    @ivar server_name: for TLS, the SIP domain: sent as SNI and, when
        C{authenticated}, the identity the certificate must carry (RFC 5922).
    @ivar authenticated: whether TLS must authenticate the server (a
        C{sips:} URI or the strict policy); a failure is then an error, never
        a fallback.
    """

    transport: TransportKind
    peer: Peer
    server_name: str | None = None
    authenticated: bool = False

    def __post_init__(self) -> None:
        if self.authenticated and (self.transport is not TransportKind.TLS or not self.server_name):
            raise ValueError("authenticated destinations are TLS with a server name")
