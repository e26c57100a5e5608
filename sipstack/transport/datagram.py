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

import socket
from collections.abc import Callable
from errno import ECONNREFUSED, EINTR, EMSGSIZE
from typing import Any

from twisted.internet.error import MessageLengthError
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

#: How many peer addresses a socket remembers the flow value of (the
#: memory is emptied when full: it only saves allocations).
_FLOW_CACHE = 4096


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
        self._flows: dict[tuple[Any, ...], FlowKey] = {}
        self._socket: Any = None
        self._family = socket.AF_INET

    def startProtocol(self) -> None:
        assert self.transport is not None
        address = self.transport.getHost()
        self.local = Peer(address.host, address.port)
        # Twisted's Port.write checks every address three ways before its
        # sendto; L{send} writes to the socket itself once inet_pton has
        # said the address is a literal of the socket's family.
        self._socket = getattr(self.transport, "socket", None)
        self._family = getattr(self.transport, "addressFamily", socket.AF_INET)

    def stopProtocol(self) -> None:
        self._socket = None

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int] | tuple[str, int, int, int]) -> None:
        # A peer sends many datagrams: one flow value for each address, so
        # that every message (and every answer kept for retransmissions)
        # shares it rather than making its own.
        flow = self._flows.get(addr)
        if flow is None:
            assert self.local is not None
            if len(self._flows) >= _FLOW_CACHE:
                self._flows.clear()
            flow = self._flows[addr] = FlowKey(TransportKind.UDP, Peer(addr[0], addr[1]), self.local)
        source = flow.remote
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
        """
        Send one datagram; errors are logged, as UDP gives no delivery
        promise.

        An IP literal of the socket's family (what a received address or a
        resolved Via always is) is written with C{sendto} directly, with the
        error handling of Twisted's C{Port.write}: retried on EINTR,
        ignored on ECONNREFUSED (an earlier ICMP error on an unconnected
        socket), L{MessageLengthError} on EMSGSIZE.  Anything else (a scoped
        IPv6 address, a name) goes through C{Port.write}, which refuses
        names rather than resolve them.
        """
        if self.transport is None:
            return
        address = (peer.host, peer.port)
        try:
            sock = self._socket
            if sock is not None:
                try:
                    socket.inet_pton(self._family, peer.host)
                except OSError:
                    sock = None
            if sock is None:
                self.transport.write(data, address)
                return
            while True:
                try:
                    sock.sendto(data, address)
                    return
                except InterruptedError:
                    continue
                except OSError as error:
                    if error.errno == EINTR:
                        continue
                    if error.errno == EMSGSIZE:
                        raise MessageLengthError("message too long") from None
                    if error.errno == ECONNREFUSED:
                        return
                    raise
        except OSError as error:
            self._log.warn("Could not send a datagram to {peer}: {error}", peer=peer, error=str(error))
