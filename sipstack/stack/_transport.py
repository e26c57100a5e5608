# -*- test-case-name: tests.test_stack -*-
"""
How the stack reaches the transport layer: where a request goes
(L{plan_destination}, a stand-in for RFC 3263), and the
L{TransactionTransport} each transaction sends through (L{StackTransport}).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from weakref import ReferenceType, ref

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipstack.errors import RoutingError, TransportFailed
from sipstack.hop import Destination, Peer, TransportKind
from sipstack.message import Request, Response
from sipstack.message.envelope import Sent
from sipstack.message.message import Message
from sipstack.message.uri import SIPURI
from sipstack.routing.via import default_port, host_literal
from sipstack.transaction import ClientTransaction, ServerTransaction
from sipstack.transport.layer import TransportLayer

__all__ = ["plan_destination", "StackTransport", "response_of"]


def plan_destination(reactor: Any, request: Request) -> Deferred[Destination]:
    """
    Where to send C{request}: a stand-in for RFC 3263 target selection.

    The target is the first Route if it is a loose router, else the
    Request-URI (RFC 3261 sections 8.1.2 and 16.12); its C{maddr} or host,
    its port (5060, 5061 for TLS), and its transport: TLS for C{sips:} or
    C{transport=tls}, TCP for C{transport=tcp}, else UDP.  A host name is
    resolved with C{reactor.resolve}.  A C{sips:} target with a name needs
    authenticated TLS for that name (RFC 5922).

    @raise RoutingError: (in the Deferred) the target is not a SIP URI.
    """
    target = request.uri
    routes = request.routes
    if routes and isinstance(routes[0].uri, SIPURI) and routes[0].uri.lr:
        target = routes[0].uri
    if not isinstance(target, SIPURI):
        return fail(RoutingError(f"cannot route to {target}"))
    param = target.transport
    if target.secure or param == "tls":
        transport = TransportKind.TLS
    elif param == "tcp":
        transport = TransportKind.TCP
    else:
        transport = TransportKind.UDP
    host = target.maddr or target.host
    port = target.port if target.port is not None else default_port(transport)
    literal = host_literal(host)
    name = None if literal is not None else host
    authenticated = target.secure and name is not None

    def destination(address: str) -> Destination:
        server_name = name if transport is TransportKind.TLS else None
        return Destination(transport, Peer(address, port), server_name, authenticated)

    if literal is not None:
        return succeed(destination(literal))
    return Deferred.fromCoroutine(_resolve(reactor, host)).addCallback(destination)


async def _resolve(reactor: Any, host: str) -> str:
    address: str = await reactor.resolve(host)
    return address


class StackTransport:
    """
    A transaction's L{TransactionTransport}: the sends of one transaction,
    the last L{Sent} kept for UDP retransmissions, failures reported back.

    It holds its transaction weakly and its C{send} gets the previous
    L{Sent} rather than reading it from an owner, so that a transaction, its
    transport and its TU form no reference cycle: they are freed the moment
    the transaction terminates (Timer J and M keep thousands of them alive
    at a time, and cyclic garbage would be left to full collections, whose
    cost grows with every live object).
    """

    _log = Logger()

    def __init__(self, layer: TransportLayer, send: Callable[[Message, Sent | None], Deferred[Sent]]) -> None:
        """
        @param layer: resends over UDP.
        @param send: sends a message for the first time, given what was sent
            last (L{None} before the first send).
        """
        self._layer = layer
        self._send_message = send
        self._transaction: ReferenceType[ServerTransaction | ClientTransaction] | None = None
        self.sent: Sent | None = None
        self._failed = False

    @property
    def transaction(self) -> ServerTransaction | ClientTransaction | None:
        """The transaction failures are reported to, while it lives."""
        return self._transaction() if self._transaction is not None else None

    def bind(self, transaction: ServerTransaction | ClientTransaction) -> None:
        """Name the transaction to report failures to (a failure before this is reported now)."""
        self._transaction = ref(transaction)
        if self._failed:
            transaction.transport_error()

    def send(self, message: Message) -> None:
        self._send_message(message, self.sent).addCallbacks(self._on_sent, self._on_failure)

    def resend(self) -> None:
        if self.sent is not None:
            try:
                self._layer.resend(self.sent)
            except TransportFailed:
                self._on_failure(Failure())  # type: ignore[no-untyped-call]  # Failure() is unannotated in Twisted 26.10

    def _on_sent(self, sent: Sent) -> None:
        self.sent = sent

    def _on_failure(self, failure: Failure) -> None:
        self._log.info("Could not send: {error}", error=failure.getErrorMessage())
        if self._transaction is None:
            self._failed = True
            return
        transaction = self._transaction()
        if transaction is not None:
            transaction.transport_error()


def response_of(message: Message) -> Response:
    """C{message}, which a server transaction only ever sends as a L{Response}."""
    assert isinstance(message, Response)
    return message
