# -*- test-case-name: tests.transaction.test_invite_client -*-
"""
The narrow interfaces the transaction state machines call out through.

A transaction never does I/O: it asks its L{TransactionTransport} to send or
resend, and tells its transaction user (TU) what happened through
L{ClientTransactionUser} or L{ServerTransactionUser}.  The stack implements
these with adapters; tests implement them with small recording fakes.

Callback order is fixed: the machine has already moved to its new state (and
started or cancelled its timers) when it calls the TU, so a TU that calls
back into the transaction sees the state the RFC figure describes.
C{terminated} is always the last callback a transaction makes, and comes
exactly once.

@see: RFC 3261 section 17; RFC 6026 sections 7 and 8.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from sipstack.message.message import Message, Request, Response

if TYPE_CHECKING:
    from sipstack.transaction.client import ClientTransaction
    from sipstack.transaction.server import InviteServerTransaction, ServerTransaction

__all__ = ["TransactionTransport", "ClientTransactionUser", "ServerTransactionUser"]


class TransactionTransport(Protocol):
    """
    Where one transaction's messages go: one instance per transaction.

    The adapter behind it chooses the flow (RFC 3261 section 18), serializes
    and writes.  It never raises: a failure, now or later, is reported by
    calling the transaction's C{transport_error()}, which may happen from
    within L{send} itself.
    """

    def send(self, message: Message) -> None:
        """
        Send C{message} for the first time: the request (client), an ACK for
        a non-2xx response (INVITE client), or a response (server).

        The adapter remembers what it sent, for L{resend}.
        """

    def resend(self) -> None:
        """
        Retransmit the last message this transaction sent, as it was sent
        (same bytes, same flow): Timers A, E and G, and the answers to
        retransmitted requests and responses.
        """


class ClientTransactionUser(Protocol):
    """
    The TU of a client transaction: a UAC core or a proxy's response context.
    """

    def response_received(self, transaction: ClientTransaction, response: Response) -> None:
        """
        A response the TU must see: every provisional response before the
        final one, the final response, and, in the INVITE client's
        C{Accepted} state, every further 2xx (retransmissions and forked
        answers, RFC 6026 section 8.4), which the TU acknowledges itself.

        Retransmissions of a non-2xx final response are absorbed (the
        transaction resends its ACK) and never reach the TU.
        """

    def timed_out(self, transaction: ClientTransaction) -> None:
        """
        Timer B or F fired before a final response arrived; the stack turns
        this into a 408 (RFC 3261 section 8.1.3.1).
        """

    def transport_failed(self, transaction: ClientTransaction) -> None:
        """
        The transport reported a failure; the stack turns this into a 503
        (RFC 3261 section 8.1.3.1).
        """

    def terminated(self, transaction: ClientTransaction) -> None:
        """
        The transaction entered C{Terminated}: forget it (RFC 3261 section
        17.1.1.2 "MUST be destroyed the instant it enters Terminated").
        """


class ServerTransactionUser(Protocol):
    """
    The TU of a server transaction: a UAS core or a proxy's server side.

    The request itself reaches the TU from the transaction manager, which
    creates the transaction; retransmissions never do.
    """

    def ack_received(self, transaction: InviteServerTransaction, ack: Request) -> None:
        """
        An ACK matched an INVITE server transaction in the C{Accepted} state
        (it acknowledges a 2xx): the TU stops retransmitting its 2xx (RFC
        6026 section 7.1).  Never called for non-INVITE transactions.
        """

    def timed_out(self, transaction: ServerTransaction) -> None:
        """
        Timer H fired: the ACK for a 300-699 response never came (RFC 3261
        section 17.2.1).
        """

    def transport_failed(self, transaction: ServerTransaction) -> None:
        """
        A response could not be sent; the TU may try the next address of RFC
        3263 section 5 (RFC 3261 section 18.2.2).
        """

    def terminated(self, transaction: ServerTransaction) -> None:
        """The transaction entered C{Terminated}: forget it."""
