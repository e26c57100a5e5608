# -*- test-case-name: tests.transaction.test_manager -*-
"""
The transaction manager: the tables of client and server transactions, and
the matching of every received message to one of them (RFC 3261 sections
17.1.3 and 17.2.3).

The manager is sans-IO like the machines it holds: the stack gives it each
received message and acts on the outcome it returns; the transactions send
through the L{TransactionTransport} given with the message or request that
created them.  A transaction is forgotten the moment it enters
C{Terminated} (RFC 3261 section 17.1.1.2).

Rules
=====

Requests (L{TransactionManager.receive_request}):

  | request                                        | outcome                                              |
  |------------------------------------------------|------------------------------------------------------|
  | matches a server transaction (section 17.2.3)  | L{Absorbed}: retransmission (the transaction answers |
  |                                                | with its latest response) or ACK of a 300-699        |
  | ACK matching an INVITE transaction in Accepted | L{AckReceived} with the transaction (RFC 2543 match) |
  | ACK matching nothing                           | L{AckReceived} without one: the ACK of a 2xx         |
  | CANCEL matching nothing                        | L{CancelReceived}: new transaction, and the live     |
  |                                                | transaction it cancels (section 9.2), if any: an     |
  |                                                | INVITE's, else one of another method                 |
  | no To tag, same From tag, Call-ID and CSeq as  | L{MergedRequest}: new transaction, and the 482 to    |
  | a transaction it does not match (8.2.2.2)      | send through it                                      |
  | anything else                                  | L{RequestReceived}: new server transaction           |

Responses (L{TransactionManager.receive_response}): one that matches a client
transaction (branch and CSeq method, section 17.1.3) is given to it, which
calls its TU, and the outcome is L{Absorbed}; any other is a
L{StrayResponse} for the core (a proxy forwards it, section 16.11).

Decisions where the RFC leaves room:

  - An ACK matched by the RFC 2543 rules (no magic cookie) must also carry
    the To tag of the transaction's last response (section 17.2.3); if it
    does not, it is not this transaction's and goes to the TU.
  - A CANCEL is matched to a live server transaction of any method but
    CANCEL (section 9.2: "regardless of the method of the original
    request"), an INVITE first; the request it cancels carries the same
    branch and sent-by or, for RFC 2543 peers, the same fields but the
    method (and, for a non-INVITE, the same To tag, which the CANCEL copies).
  - Merged requests are detected only among requests without a To tag and
    only while the first one's transaction lives, which is when its
    retransmissions could still arrive; ACK and CANCEL are never merged.
  - The manager never sends by itself: it returns the 482 for the TU to send,
    so the TU has bound its transport to the transaction before anything goes
    out.
"""

from __future__ import annotations

from dataclasses import replace

from sipstack.clock import Clock
from sipstack.config import TimerValues
from sipstack.errors import LocalProtocolError
from sipstack.message.headers import Headers
from sipstack.message.message import Request, Response, build_response
from sipstack.transaction.client import ClientTransaction, InviteClientTransaction, NonInviteClientTransaction
from sipstack.transaction.events import (
    Absorbed,
    AckReceived,
    CancelReceived,
    ClientTransactionUser,
    MergedRequest,
    RequestOutcome,
    RequestReceived,
    ResponseOutcome,
    ServerTransactionUser,
    StrayResponse,
    TransactionTransport,
)
from sipstack.transaction.server import InviteServerTransaction, NonInviteServerTransaction, ServerTransaction
from sipstack.transaction.states import (
    TransactionKey,
    TransactionState,
    client_key,
    client_key_for_response,
    server_key,
)

__all__ = ["TransactionManager", "build_cancel"]

#: What identifies a request for merge detection (RFC 3261 section 8.2.2.2).
_MergeKey = tuple[str | None, str, int, str]


def build_cancel(request: Request) -> Request:
    """
    The CANCEL of a request we sent (RFC 3261 section 9.1): the
    Request-URI, Call-ID, From, To and CSeq number of the request, the
    method CANCEL, exactly one Via (the request's top Via, so the branch
    matches its transaction) and its Route headers; no body.

    @param request: the request as its client transaction sent it (with the
        transaction's branch in its top Via).
    @raise sipstack.errors.RemoteProtocolError: a header it copies is
        missing or malformed.
    """
    headers = request.headers
    fields = [("Via", str(request.top_via))]
    fields.extend(("Route", value) for value in headers.get_all("Route"))
    fields.append(("Max-Forwards", headers.get("Max-Forwards") or "70"))
    fields.append(("From", headers.get("From") or str(request.from_)))
    fields.append(("To", headers.get("To") or str(request.to)))
    fields.append(("Call-ID", request.call_id))
    fields.append(("CSeq", f"{request.cseq.number} CANCEL"))
    fields.append(("Content-Length", "0"))
    return Request(method="CANCEL", uri=request.uri, headers=Headers(fields))


def _method_blind(key: TransactionKey) -> TransactionKey:
    """C{key} without its method: how a CANCEL finds the request it cancels, whatever its method."""
    return replace(key, method="")


def _merge_key(request: Request) -> _MergeKey | None:
    if request.method in ("ACK", "CANCEL") or request.to.tag is not None:
        return None
    cseq = request.cseq
    return (request.from_.tag, request.call_id, cseq.number, cseq.method)


class TransactionManager:
    """
    The client and server transactions of one stack, keyed as RFC 3261
    sections 17.1.3 and 17.2.3 say.

    The manager is the server transactions' TU as far as their lifetime goes:
    it forgets each one on C{terminated} and passes C{timed_out},
    C{transport_failed} and C{terminated} on to the C{server_user} given at
    construction.  Client transactions keep the TU they were started with;
    the manager sits between them in the same way.

    @ivar clock: the clock every transaction's timers run on.
    @ivar timers: the timer values every transaction uses.
    """

    def __init__(self, *, clock: Clock, timers: TimerValues, server_user: ServerTransactionUser) -> None:
        """
        @param clock: the clock of every transaction's timers.
        @param timers: T1, T2 and T4.
        @param server_user: hears about server transactions that time out,
            fail, or end.
        """
        self.clock = clock
        self.timers = timers
        self._server_user = server_user
        self._servers: dict[TransactionKey, ServerTransaction] = {}
        self._clients: dict[TransactionKey, ClientTransaction] = {}
        self._client_users: dict[ClientTransaction, ClientTransactionUser] = {}
        self._merge_keys: dict[_MergeKey, ServerTransaction] = {}
        self._cancellable: dict[TransactionKey, ServerTransaction] = {}
        self._keys: dict[ServerTransaction | ClientTransaction, TransactionKey] = {}

    # Tables

    @property
    def server_transactions(self) -> tuple[ServerTransaction, ...]:
        """The server transactions not yet terminated."""
        return tuple(self._servers.values())

    @property
    def client_transactions(self) -> tuple[ClientTransaction, ...]:
        """The client transactions not yet terminated."""
        return tuple(self._clients.values())

    def __len__(self) -> int:
        return len(self._servers) + len(self._clients)

    def find_client(self, request: Request) -> ClientTransaction | None:
        """The live client transaction that sent C{request}, if any (to CANCEL it, RFC 3261 section 9.1)."""
        return self._clients.get(client_key(request))

    # Client side

    def start_client(
        self, request: Request, *, reliable: bool, transport: TransactionTransport, user: ClientTransactionUser
    ) -> ClientTransaction:
        """
        Create the client transaction of C{request}, add it to the table and
        start it (which sends the request).

        @param request: the request, with the transaction's branch in its top
            Via (RFC 3261 section 8.1.1.7).
        @raise sipstack.errors.LocalProtocolError: the request has no RFC
            3261 branch, is an ACK (which has no client transaction), or a
            transaction with this key is already running.
        """
        if request.method == "ACK":
            raise LocalProtocolError("an ACK has no client transaction (RFC 3261 section 17.1.1.3)")
        key = client_key(request)
        if key in self._clients:
            raise LocalProtocolError(f"a client transaction with branch {key.branch} is already running")
        cls = InviteClientTransaction if request.method == "INVITE" else NonInviteClientTransaction
        transaction = cls(
            request, clock=self.clock, timers=self.timers, reliable=reliable, transport=transport, user=self
        )
        self._clients[key] = transaction
        self._keys[transaction] = key
        self._client_users[transaction] = user
        transaction.start()
        return transaction

    def receive_response(self, response: Response) -> ResponseOutcome:
        """
        Match a received response to its client transaction (RFC 3261
        section 17.1.3) and give it to it.

        @raise sipstack.errors.RemoteProtocolError: its top Via or CSeq is
            missing or malformed.
        """
        key = client_key_for_response(response)
        transaction = self._clients.get(key) if key is not None else None
        if transaction is None:
            return StrayResponse(response=response)
        transaction.receive_response(response)
        return Absorbed(message=response, transaction=transaction)

    # Server side

    def receive_request(self, request: Request, *, reliable: bool, transport: TransactionTransport) -> RequestOutcome:
        """
        Match a received request to its server transaction (RFC 3261
        section 17.2.3), or create one.

        @param reliable: whether it came over a reliable transport.
        @param transport: the transport a new server transaction sends
            through; unused when the request matches an existing one.
        @raise sipstack.errors.RemoteProtocolError: a header the key needs is
            missing or malformed.
        """
        key = server_key(request)
        transaction = self._servers.get(key)
        method = request.method
        if transaction is not None and not (
            method == "ACK" and not key.rfc3261 and not _same_to_tag(request, transaction)
        ):
            if method == "ACK":
                assert isinstance(transaction, InviteServerTransaction)
                if transaction.state is TransactionState.ACCEPTED:
                    transaction.receive_request(request)
                    return AckReceived(request=request, transaction=transaction)
            transaction.receive_request(request)
            return Absorbed(message=request, transaction=transaction)
        if method == "ACK":
            return AckReceived(request=request, transaction=None)
        if method == "CANCEL":
            target = self._cancel_target(key)
            created = self._create_server(key, request, reliable, transport)
            return CancelReceived(request=request, transaction=created, target=target)
        merge_key = _merge_key(request)
        if merge_key is not None:
            first = self._merge_keys.get(merge_key)
            created = self._create_server(key, request, reliable, transport)
            if first is not None:
                return MergedRequest(request=request, transaction=created, response=build_response(request, 482))
            self._merge_keys[merge_key] = created
            return RequestReceived(request=request, transaction=created)
        return RequestReceived(request=request, transaction=self._create_server(key, request, reliable, transport))

    def _cancel_target(self, key: TransactionKey) -> ServerTransaction | None:
        """
        The live server transaction a CANCEL with this key cancels (RFC 3261
        section 9.2): an INVITE's (whose RFC 2543 key has no To tag), else
        another method's.
        """
        blind = _method_blind(key)
        return self._cancellable.get(replace(blind, to_tag=None)) or self._cancellable.get(blind)

    def _create_server(
        self, key: TransactionKey, request: Request, reliable: bool, transport: TransactionTransport
    ) -> ServerTransaction:
        cls = InviteServerTransaction if request.method == "INVITE" else NonInviteServerTransaction
        transaction = cls(
            request, clock=self.clock, timers=self.timers, reliable=reliable, transport=transport, user=self
        )
        self._servers[key] = transaction
        self._keys[transaction] = key
        if request.method != "CANCEL":
            self._cancellable.setdefault(_method_blind(key), transaction)
        return transaction

    def abort_all(self) -> None:
        """
        Terminate every transaction at once, cancelling its timers (for a
        stack that shuts down).  Each TU hears C{terminated} and nothing else.
        """
        transactions: list[ServerTransaction | ClientTransaction] = [*self._servers.values(), *self._clients.values()]
        for transaction in transactions:
            transaction._terminate()

    # The TU of every transaction, as far as the tables go

    def response_received(self, transaction: ClientTransaction, response: Response) -> None:
        self._client_users[transaction].response_received(transaction, response)

    def ack_received(self, transaction: InviteServerTransaction, ack: Request) -> None:
        # Reported as AckReceived by receive_request.
        pass

    def timed_out(self, transaction: ServerTransaction | ClientTransaction) -> None:
        if isinstance(transaction, ClientTransaction):
            self._client_users[transaction].timed_out(transaction)
        else:
            self._server_user.timed_out(transaction)

    def transport_failed(self, transaction: ServerTransaction | ClientTransaction) -> None:
        if isinstance(transaction, ClientTransaction):
            self._client_users[transaction].transport_failed(transaction)
        else:
            self._server_user.transport_failed(transaction)

    def terminated(self, transaction: ServerTransaction | ClientTransaction) -> None:
        key = self._keys.pop(transaction, None)
        if isinstance(transaction, ClientTransaction):
            if key is not None and self._clients.get(key) is transaction:
                del self._clients[key]
            user = self._client_users.pop(transaction, None)
            if user is not None:
                user.terminated(transaction)
            return
        if key is not None and self._servers.get(key) is transaction:
            del self._servers[key]
        if key is not None and self._cancellable.get(_method_blind(key)) is transaction:
            del self._cancellable[_method_blind(key)]
        merge_key = _merge_key(transaction.request)
        if merge_key is not None and self._merge_keys.get(merge_key) is transaction:
            del self._merge_keys[merge_key]
        self._server_user.terminated(transaction)


def _same_to_tag(ack: Request, transaction: ServerTransaction) -> bool:
    """Whether an ACK carries the To tag of the transaction's last response (RFC 3261 section 17.2.3)."""
    last = transaction.last_response
    return last is not None and last.to.tag == ack.to.tag
