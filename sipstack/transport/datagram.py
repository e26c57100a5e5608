# -*- test-case-name: tests.transport.test_layer -*-
"""
SIP over UDP.

L{SIPDatagramProtocol} parses each datagram with the core's
L{parse_datagram<sipstack.message.parse_datagram>}, answers a malformed
request where RFC 3261 says to (or drops it), and hands messages to its owner.
It catches everything at its boundary, so one bad datagram never disturbs the
next.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from sipstack.config import Limits
from sipstack.errors import InvalidValue, RemoteProtocolError
from sipstack.hop import FlowKey, Peer, TransportKind
from sipstack.message import build_error_response, parse_datagram, serialize
from sipstack.message.message import Message
from sipstack.message.via import parse_via
from sipstack.routing import response_target

__all__ = ["SIPDatagramProtocol"]


class SIPDatagramProtocol(DatagramProtocol):
    """
    One UDP socket carrying SIP.

    @ivar local: the address the socket is bound to, once listening.
    """

    _log = Logger()

    def __init__(self, limits: Limits, on_message: Callable[[Message, FlowKey], None]) -> None:
        self._limits = limits
        self._on_message = on_message
        self.local: Peer | None = None

    def startProtocol(self) -> None:
        assert self.transport is not None
        address = self.transport.getHost()
        self.local = Peer(address.host, address.port)

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int] | tuple[str, int, int, int]) -> None:
        source = Peer(addr[0], addr[1])
        assert self.local is not None
        flow = FlowKey(TransportKind.UDP, source, self.local)
        try:
            try:
                message = parse_datagram(datagram, self._limits)
            except RemoteProtocolError as error:
                self._refuse(error, source)
                return
            if message is not None:
                self._on_message(message, flow)
        except Exception:
            self._log.failure("Dropped a datagram from {source} after an unexpected error", source=source)

    def _refuse(self, error: RemoteProtocolError, source: Peer) -> None:
        self._log.warn(
            "Bad datagram from {source}: {status} {reason} ({action})",
            source=source,
            status=error.status,
            reason=error.reason,
            action=error.action.value,
        )
        response = build_error_response(error)
        if response is None:
            return
        # RFC 3261 section 18.2.2 / RFC 3581: to received/rport when asked
        # for, else to the sent-by port at the source address.
        port = source.port
        via_text = response.headers.get("Via")
        if via_text is not None:
            try:
                via = parse_via(via_text)[0]
            except InvalidValue:
                pass
            else:
                if not via.has_rport:
                    port = response_target(via).port
        self.send(serialize(response), Peer(source.host, port))

    def send(self, data: bytes, peer: Peer) -> None:
        """Send one datagram; errors are logged, as UDP gives no delivery promise."""
        if self.transport is None:
            return
        try:
            self.transport.write(data, (peer.host, peer.port))
        except OSError as error:
            self._log.warn("Could not send a datagram to {peer}: {error}", peer=peer, error=str(error))
