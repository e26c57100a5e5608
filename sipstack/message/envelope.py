# -*- test-case-name: tests.transport.test_datagram -*-
"""
What the transport layer hands up with every message it received.
"""

from __future__ import annotations

from dataclasses import dataclass

from sipstack.hop import FlowKey, HopSecurity, Peer, TransportKind
from sipstack.message.message import Message

__all__ = ["Received", "Sent"]


@dataclass(frozen=True, slots=True)
class Received:
    """
    A message, the flow it arrived on and how that hop was protected.

    @ivar message: the message; for a request, its top Via already carries
        C{received} and C{rport} as RFC 3261 section 18.2.1 and RFC 3581 say.
    @ivar flow: the flow it came on; a response to a request goes back on it
        (RFC 3261 section 18.2.2).
    @ivar security: the hop's security state (docs/tls-first.md); never a
        lock unless C{security.authenticated}.
    @ivar received_at: the clock's time when the last byte arrived.
    """

    message: Message
    flow: FlowKey
    security: HopSecurity
    received_at: float

    @property
    def source(self) -> Peer:
        """The address the message came from."""
        return self.flow.remote

    @property
    def transport(self) -> TransportKind:
        """The transport it came over."""
        return self.flow.transport


@dataclass(frozen=True, slots=True)
class Sent:
    """
    A message as it went out.

    @ivar message: the message as sent (for a request, its top Via names the
        transport used and our sent-by).
    @ivar flow: the flow it went on.
    @ivar security: the hop's security state.
    @ivar data: the bytes, kept so that a UDP retransmission resends them.
    """

    message: Message
    flow: FlowKey
    security: HopSecurity
    data: bytes
