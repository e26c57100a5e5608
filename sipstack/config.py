# -*- test-case-name: tests.test_config -*-
"""
Configuration values of the stack.

There is no global configuration: every component receives the values it
needs from its caller, and tests build them explicitly.  Each value class
validates itself on construction (as h2's C{H2Configuration} does), so a bad
setting fails at start-up with a message naming it, not at the first packet.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["Limits", "TimerValues", "TLSPolicy", "TLSFirstSettings", "StackConfig"]


def _require_positive(owner: object, **values: float) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f"{type(owner).__name__}.{name} must be positive, not {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """
    Bounds on what a peer may make the stack hold or do.

    Every limit defends against one kind of misbehaving peer; the defaults are
    generous for real SIP traffic (which rarely exceeds a few kilobytes) and
    small enough that one peer cannot exhaust memory.

    @ivar max_message_bytes: the largest message (start line, headers and body)
        accepted on any transport; larger ones get 513 (RFC 3261 section
        21.5.14) or, on a stream, the connection is closed.
    @ivar max_header_bytes: the largest header block (start line and headers)
        a stream may buffer before its blank line arrives.
    @ivar max_headers: the most header fields in one message.
    @ivar max_line_bytes: the longest line (after unfolding) in a header block.
    @ivar max_connections: the most stream connections open at once.
    @ivar max_connections_per_peer: the most stream connections from one IP.
    @ivar idle_timeout: seconds after which a connection that carried nothing
        is closed.
    @ivar partial_message_timeout: seconds a stream may take to deliver the
        rest of a message once its first byte arrived (slow-loris defence).
    @ivar handshake_timeout: seconds a TLS handshake may take.
    @ivar connect_timeout: seconds an outgoing TCP connection may take to
        establish.
    @ivar max_output_buffer_bytes: bytes queued for a slow reader before the
        connection is dropped.
    @ivar udp_receive_buffer_bytes: the kernel receive buffer asked for on UDP
        sockets, so that a burst is queued rather than dropped while the
        reactor is busy (the kernel may cap it at C{net.core.rmem_max}).
    """

    max_message_bytes: int = 65_535
    max_header_bytes: int = 16_384
    max_headers: int = 128
    max_line_bytes: int = 8_192
    max_connections: int = 10_000
    max_connections_per_peer: int = 64
    idle_timeout: float = 600.0
    partial_message_timeout: float = 16.0
    handshake_timeout: float = 5.0
    connect_timeout: float = 10.0
    max_output_buffer_bytes: int = 1_048_576
    udp_receive_buffer_bytes: int = 4_194_304

    def __post_init__(self) -> None:
        _require_positive(
            self,
            max_message_bytes=self.max_message_bytes,
            max_header_bytes=self.max_header_bytes,
            max_headers=self.max_headers,
            max_line_bytes=self.max_line_bytes,
            max_connections=self.max_connections,
            max_connections_per_peer=self.max_connections_per_peer,
            idle_timeout=self.idle_timeout,
            partial_message_timeout=self.partial_message_timeout,
            handshake_timeout=self.handshake_timeout,
            connect_timeout=self.connect_timeout,
            max_output_buffer_bytes=self.max_output_buffer_bytes,
            udp_receive_buffer_bytes=self.udp_receive_buffer_bytes,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerValues:
    """
    The base timer values of RFC 3261 section 17 (table 4 of appendix A).

    @ivar t1: RTT estimate, the base of retransmission back-off.
    @ivar t2: the longest retransmission interval for non-INVITE requests
        and INVITE responses.
    @ivar t4: the longest time a message stays in the network.
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    def __post_init__(self) -> None:
        _require_positive(self, t1=self.t1, t2=self.t2, t4=self.t4)
        if self.t2 < self.t1:
            raise ValueError("TimerValues.t2 must not be smaller than t1")


class TLSPolicy(enum.Enum):
    """
    How the stack uses TLS for the traffic it originates (docs/tls-first.md).
    """

    #: Authenticated TLS only, never a fallback (forced by a C{sips:} URI).
    STRICT = "strict"
    #: TLS first, unauthenticated if need be, then TCP, then UDP.
    OPPORTUNISTIC = "opportunistic"
    #: Plain RFC 3263 selection without probing for TLS.
    RFC3263 = "rfc3263"
    #: No TLS client attempts at all.
    OFF = "off"


@dataclass(frozen=True, slots=True, kw_only=True)
class TLSFirstSettings:
    """
    The knobs of TLS-first target selection (docs/tls-first.md).

    @ivar probe_5061: with no NAPTR and no SRV records, try TLS on port 5061
        of the A/AAAA addresses before TCP/UDP on 5060.
    @ivar override_explicit_transport: try TLS to C{host:5061} first even when
        the URI names a transport or a port (off: such a URI is obeyed as
        RFC 3263 says).
    @ivar allow_udp_fallback: after every stream target failed, a C{sip:}
        request may go over UDP (opportunistic and rfc3263 policies only).
    @ivar negative_ttl: seconds a "no TLS at this target" entry is believed.
    @ivar negative_entries: the most entries the negative cache keeps.
    @ivar pin_ttl: seconds a "TLS worked here" pin lasts; while it does, a TLS
        failure at that target is an error, not a downgrade.
    @ivar pin_entries: the most pins kept.
    @ivar attempt_delay: seconds between happy-eyeballs connection attempts
        to the addresses of one target (RFC 8305 suggests 0.25).
    @ivar via_authenticated_param: add the C{;x-sipstack-tls=authenticated}
        Via parameter on hops whose TLS peer was authenticated (off by
        default: docs/tls-first.md, "The Via answer").
    @ivar record_route_tls_hint: a proxy reachable over TLS adds the
        C{;x-sipstack-tls-port=N} hint to the URIs it record-routes (off by
        default: "The Record-Route answer").
    """

    probe_5061: bool = True
    override_explicit_transport: bool = False
    allow_udp_fallback: bool = True
    negative_ttl: float = 3600.0
    negative_entries: int = 4096
    pin_ttl: float = 86400.0
    pin_entries: int = 4096
    attempt_delay: float = 0.25
    via_authenticated_param: bool = False
    record_route_tls_hint: bool = False

    def __post_init__(self) -> None:
        _require_positive(
            self,
            negative_ttl=self.negative_ttl,
            negative_entries=self.negative_entries,
            pin_ttl=self.pin_ttl,
            pin_entries=self.pin_entries,
            attempt_delay=self.attempt_delay,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StackConfig:
    """
    Everything a stack instance is configured with.
    """

    limits: Limits = field(default_factory=Limits)
    timers: TimerValues = field(default_factory=TimerValues)
    tls_policy: TLSPolicy = TLSPolicy.OPPORTUNISTIC
    tls_first: TLSFirstSettings = field(default_factory=TLSFirstSettings)
