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

The event classes at the end are what the transaction manager reports for
each message it matches (L{sipstack.transaction.manager}).

@see: RFC 3261 section 17; RFC 6026 sections 7 and 8.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sipstack.message.message import Message, Request, Response

if TYPE_CHECKING:
    from sipstack.transaction.client import ClientTransaction
    from sipstack.transaction.server import InviteServerTransaction, ServerTransaction

__all__ = [
    "TransactionTransport",
    "ClientTransactionUser",
    "ServerTransactionUser",
    "RequestReceived",
    "CancelReceived",
    "MergedRequest",
    "AckReceived",
    "Absorbed",
    "StrayResponse",
    "RequestOutcome",
    "ResponseOutcome",
]


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


# What the transaction manager reports for each message it is given (RFC 3261
# sections 17.1.3 and 17.2.3).  Each receive_* call returns exactly one.


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestReceived:
    """
    A new request: the manager created its server transaction, which the TU
    answers through (RFC 3261 section 17.2).

    @ivar request: the request.
    @ivar transaction: its new server transaction.
    """

    request: Request
    transaction: ServerTransaction


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelReceived:
    """
    A new CANCEL (RFC 3261 section 9.2): the manager created its own
    non-INVITE server transaction, which the TU answers (200, or 481 when
    C{target} is L{None}), and found the live server transaction it
    cancels, if any.  Only an INVITE is affected (487 unless answered
    already); any other request just goes on, and the CANCEL still gets 200.

    @ivar request: the CANCEL.
    @ivar transaction: the CANCEL's own server transaction.
    @ivar target: the server transaction it cancels (an INVITE's, or one of
        another method), or L{None}.
    @ivar target_to_tag: when it matches a non-INVITE transaction that has
        sent its final response and now lives on as an entry of the
        manager's absorber (so C{target} is L{None}): the To tag of that
        response (C{""} if it had none), for the 200 the CANCEL still gets
        (RFC 3261 section 9.2); otherwise L{None}.
    """

    request: Request
    transaction: ServerTransaction
    target: ServerTransaction | None
    target_to_tag: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MergedRequest:
    """
    A request with no To tag whose From tag, Call-ID and CSeq equal those of
    a request already being served through another transaction: it reached
    us twice by different paths (RFC 3261 section 8.2.2.2).  The manager
    created a server transaction for it so that its retransmissions are
    absorbed; the TU sends C{response} (a 482) through it.

    @ivar request: the merged request.
    @ivar transaction: its server transaction.
    @ivar response: the 482 (Loop Detected) to send through C{transaction}.
    """

    request: Request
    transaction: ServerTransaction
    response: Response


@dataclass(frozen=True, slots=True, kw_only=True)
class AckReceived:
    """
    An ACK the TU must see: the ACK of a 2xx, which is a transaction of its
    own (RFC 3261 section 17.2.3; RFC 6026 section 7.1).

    @ivar request: the ACK.
    @ivar transaction: the INVITE server transaction in C{Accepted} it
        matched (only when the INVITE's branch has no magic cookie and the
        RFC 2543 rules matched it), or L{None} for an ACK with a branch of
        its own, to be matched to a dialog or forwarded by the TU.
    """

    request: Request
    transaction: InviteServerTransaction | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Absorbed:
    """
    The message belongs to an existing transaction and was given to it: a
    retransmitted request (answered with the latest response if there is
    one), the ACK of a 300-699 response, or a response the client
    transaction then passed to its TU through its callbacks.

    @ivar message: the message.
    @ivar transaction: the transaction that took it, or L{None} for a
        request retransmitted to a completed non-INVITE transaction the
        manager keeps in its absorber (which resent the response).
    """

    message: Message
    transaction: ServerTransaction | ClientTransaction | None


@dataclass(frozen=True, slots=True, kw_only=True)
class StrayResponse:
    """
    A response that matches no client transaction (RFC 3261 section
    18.1.2): a UA drops it; a proxy forwards it statelessly (sections 16.7 and
    16.11).

    @ivar response: the response.
    """

    response: Response


#: Everything L{TransactionManager.receive_request} can report.
RequestOutcome = RequestReceived | CancelReceived | MergedRequest | AckReceived | Absorbed
#: Everything L{TransactionManager.receive_response} can report.
ResponseOutcome = Absorbed | StrayResponse
