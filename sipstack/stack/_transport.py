# -*- test-case-name: tests.test_stack -*-
"""
How the stack reaches the transport layer: the L{TransactionTransport}
each transaction sends through (L{StackTransport}).  Where a request goes
is decided in L{sipstack.stack._locate}.
"""

from __future__ import annotations

from collections.abc import Callable
from weakref import ReferenceType, ref

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipstack.errors import TransportFailed
from sipstack.hop import FlowKey, TransportKind
from sipstack.message import Response
from sipstack.message.envelope import Sent
from sipstack.message.message import Message
from sipstack.transaction import ClientTransaction, ServerTransaction, TransactionState
from sipstack.transport.layer import TransportLayer

__all__ = ["ResponseTransport", "StackTransport", "response_of"]


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


class ResponseTransport:
    """
    A server transaction's L{TransactionTransport}: responses go back on
    the flow the request came in on (L{TransportLayer.send_response}).

    It keeps only the bytes and the flow of the last response sent over
    UDP, for resends: the transaction manager keeps it, and nothing else of
    the transaction, while it absorbs the retransmissions of a completed
    non-INVITE request (Timer J), so it must not hold the request, the
    response or the TU.  The common sends (over UDP to an address, on an
    open connection) complete at once, with no Deferred.
    """

    __slots__ = ("_data", "_failed", "_flow", "_layer", "_sent_flow", "_transaction")

    _log = Logger()

    def __init__(self, layer: TransportLayer, flow: FlowKey) -> None:
        """
        @param layer: sends and resends.
        @param flow: the flow the request came in on.
        """
        self._layer = layer
        self._flow = flow
        self._transaction: ReferenceType[ServerTransaction] | None = None
        self._failed = False
        self._data: bytes | None = None
        self._sent_flow: FlowKey | None = None

    def bind(self, transaction: ServerTransaction) -> None:
        """Name the transaction to report failures to (a failure before this is reported now)."""
        self._transaction = ref(transaction)
        if self._failed:
            transaction.transport_error()

    def send(self, message: Message) -> None:
        response = response_of(message)
        try:
            sent = self._layer.send_response_now(response, self._flow)
        except Exception:
            self._on_failure(Failure())  # type: ignore[no-untyped-call]  # Failure() is unannotated in Twisted 26.10
            return
        if sent is not None:
            self._on_sent(sent)
        else:
            self._layer.send_response(response, self._flow).addCallbacks(self._on_sent, self._on_failure)

    def resend(self) -> None:
        if self._data is None or self._sent_flow is None:
            return
        try:
            self._layer.resend_datagram(self._sent_flow, self._data)
        except TransportFailed:
            self._on_failure(Failure())  # type: ignore[no-untyped-call]  # Failure() is unannotated in Twisted 26.10

    def _on_sent(self, sent: Sent) -> None:
        if sent.flow.transport is TransportKind.UDP:
            self._data, self._sent_flow = sent.data, sent.flow
        else:
            # A stream has nothing to resend (its retransmissions are the TU's).
            self._data = self._sent_flow = None

    def _on_failure(self, failure: Failure) -> None:
        self._log.info("Could not send: {error}", error=failure.getErrorMessage())
        if self._transaction is None:
            self._failed = True
            return
        transaction = self._transaction()
        if transaction is not None and transaction.state is not TransactionState.TERMINATED:
            transaction.transport_error()


def response_of(message: Message) -> Response:
    """C{message}, which a server transaction only ever sends as a L{Response}."""
    assert isinstance(message, Response)
    return message
