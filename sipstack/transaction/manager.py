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

The absorber
============

Several states of RFC 3261 and RFC 6026 exist only to absorb
retransmissions until a timer fires: over UDP the non-INVITE server waits
64*T1 (Timer J, 32 s) in C{Completed} to answer retransmitted requests with
its final response; the INVITE server waits 64*T1 in C{Accepted} (Timer L)
to recognise retransmitted INVITEs; the non-INVITE client waits T4 in
C{Completed} (Timer K) to swallow retransmitted responses; the INVITE
client waits 64*T1 in C{Accepted} (Timer M) to pass further 2xx responses
on.  A live machine there holds its request, its response, its timers and
its TU's state: at thousands of requests a second that is hundreds of
thousands of objects, which the garbage collector walks over and over.

So the manager creates its server transactions, and the client
transactions it is asked to (C{start_client(..., hand_off=True)}), with
C{hand_off=True}: each terminates on entering that state (its TU hears
C{terminated} then), and the manager keeps a compact entry until the timer
would have fired.  A server entry holds the key, the transaction's
L{TransactionTransport} for a non-INVITE (which resends the final response
as it was sent), the deadline, and what CANCEL and merge detection still
need (the final response's To tag and the merge key); a client entry the
key, the deadline, and whether 2xx responses still go up (INVITE).
Entries sit in a dictionary and in queues ordered by deadline (every entry
of a queue lives as long), each swept by one timer; a lookup compares the
deadline itself, so an entry is never used after its timer, however late
the sweep.

Seen from the network nothing changes:

  | absorbed state (timer)  | input within the timer     | outcome                                     |
  |-------------------------|----------------------------|---------------------------------------------|
  | non-INVITE server (J)   | the request again          | response resent; L{Absorbed}, no transaction |
  | INVITE server, 2xx (L)  | the INVITE again           | L{Absorbed}, no transaction                 |
  |                         | an ACK matching it (2543)  | L{AckReceived}, no transaction              |
  | either                  | a CANCEL for it            | L{CancelReceived} with C{target_to_tag}     |
  | either                  | a merged request           | L{MergedRequest}, as for a live one         |
  | non-INVITE client (K)   | a response                 | L{Absorbed}, no transaction                 |
  | INVITE client, 2xx (M)  | a 2xx                      | L{StrayResponse}: the TU forwards it (a     |
  |                         |                            | proxy's only use of Timer M, RFC 6026 8.4)  |
  |                         | a non-2xx                  | L{Absorbed}, no transaction                 |

and after the timer, a message with that key is new, as it would be once
the machine terminated.  Over reliable transports Timers J and K are zero
and nothing is kept for them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Generic, TypeVar

from sipstack.clock import Clock, DelayedCall
from sipstack.config import TimerValues
from sipstack.errors import InvalidValue, LocalProtocolError
from sipstack.message.address import parse_name_address
from sipstack.message.headers import Headers
from sipstack.message.message import Request, Response, build_response
from sipstack.transaction._timers import linger, transaction_timeout
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

_Entry = TypeVar("_Entry", bound=tuple[float, TransactionKey, *tuple[object, ...]])

#: A server entry of the absorber: the Timer J or L deadline, the
#: transaction's key, its transport (a non-INVITE's, which resends the final
#: response; L{None} for an INVITE in Accepted, which resends nothing), its
#: merge key and the To field of its final response, as written (for the
#: tag of a CANCEL's 200).  A plain tuple: one object per absorbed
#: transaction.
_Completed = tuple[float, TransactionKey, "TransactionTransport | None", "_MergeKey | None", "str | None"]
#: A client entry: the Timer K or M deadline, the key, and whether a 2xx
#: still goes up (as a L{StrayResponse}: an INVITE in Accepted).
_Done = tuple[float, TransactionKey, bool]

#: The shortest interval between two sweeps of an absorber queue, in
#: seconds: expired entries are freed at most this late (a lookup never
#: uses one).
SWEEP_INTERVAL = 1.0


class _Queue(Generic[_Entry]):
    """
    Absorber entries that all live C{lifetime} seconds, so that the order
    they were added in is the order they expire in: a FIFO queue swept by
    one timer, which calls C{forget} for each expired entry.
    """

    __slots__ = ("_call", "_clock", "_entries", "_forget", "_lifetime")

    def __init__(self, clock: Clock, lifetime: float, forget: Callable[[_Entry], None]) -> None:
        self._clock = clock
        self._lifetime = lifetime
        self._forget = forget
        self._entries: deque[_Entry] = deque()
        self._call: DelayedCall | None = None

    @property
    def lifetime(self) -> float:
        return self._lifetime

    def add(self, entry: _Entry) -> None:
        """Queue C{entry}, whose deadline is now plus the lifetime."""
        self._entries.append(entry)
        if self._call is None:
            self._call = self._clock.callLater(self._lifetime, self._sweep)

    def _sweep(self) -> None:
        self._call = None
        now = self._clock.seconds()
        entries = self._entries
        while entries and entries[0][0] <= now:
            self._forget(entries.popleft())
        if entries:
            self._call = self._clock.callLater(max(entries[0][0] - now, SWEEP_INTERVAL), self._sweep)

    def clear(self) -> None:
        """Drop every entry (without C{forget}) and stop the timer."""
        self._entries.clear()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None


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
    if key.branch is not None:
        # An RFC 3261 key has nothing else (and dataclasses.replace is slow).
        return TransactionKey(method="", branch=key.branch, sent_by=key.sent_by)
    return replace(key, method="")


def _to_tag(to: str | None) -> str:
    """The tag of a To header field value (C{""} for none, or when it cannot be read)."""
    if to is None:
        return ""
    try:
        return parse_name_address(to).tag or ""
    except InvalidValue:
        return ""


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

    def __init__(
        self, *, clock: Clock, timers: TimerValues, server_user: ServerTransactionUser, absorb: bool = True
    ) -> None:
        """
        @param clock: the clock of every transaction's timers.
        @param timers: T1, T2 and T4.
        @param server_user: hears about server transactions that time out,
            fail, or end.
        @param absorb: keep server transactions in non-INVITE C{Completed}
            and INVITE C{Accepted} as absorber entries (see the module
            description) rather than as live machines running Timers J and
            L.
        """
        self.clock = clock
        self.timers = timers
        self._server_user = server_user
        self._absorb = absorb
        self._servers: dict[TransactionKey, ServerTransaction] = {}
        self._clients: dict[TransactionKey, ClientTransaction] = {}
        self._client_users: dict[ClientTransaction, ClientTransactionUser] = {}
        self._merge_keys: dict[_MergeKey, ServerTransaction | _Completed] = {}
        self._cancellable: dict[TransactionKey, ServerTransaction | _Completed] = {}
        self._keys: dict[ServerTransaction | ClientTransaction, TransactionKey] = {}
        self._completed: dict[TransactionKey, _Completed] = {}
        self._done: dict[TransactionKey, _Done] = {}
        timeout = transaction_timeout(timers)
        self._server_queue: _Queue[_Completed] = _Queue(clock, timeout, self._forget)
        self._k_queue: _Queue[_Done] = _Queue(clock, linger(timers, False), self._forget_done)
        self._m_queue: _Queue[_Done] = _Queue(clock, timeout, self._forget_done)

    # Tables

    @property
    def server_transactions(self) -> tuple[ServerTransaction, ...]:
        """The server transactions not yet terminated."""
        return tuple(self._servers.values())

    @property
    def client_transactions(self) -> tuple[ClientTransaction, ...]:
        """The client transactions not yet terminated."""
        return tuple(self._clients.values())

    @property
    def absorbed(self) -> int:
        """How many handed-off transactions the absorber keeps (within their timers)."""
        now = self.clock.seconds()
        return sum(1 for entry in self._completed.values() if entry[0] > now) + sum(
            1 for done in self._done.values() if done[0] > now
        )

    def __len__(self) -> int:
        """The live transactions and the absorber's entries still within their Timer J."""
        return len(self._servers) + len(self._clients) + self.absorbed

    def find_client(self, request: Request) -> ClientTransaction | None:
        """The live client transaction that sent C{request}, if any (to CANCEL it, RFC 3261 section 9.1)."""
        return self._clients.get(client_key(request))

    # Client side

    def start_client(
        self,
        request: Request,
        *,
        reliable: bool,
        transport: TransactionTransport,
        user: ClientTransactionUser,
        hand_off: bool = False,
    ) -> ClientTransaction:
        """
        Create the client transaction of C{request}, add it to the table and
        start it (which sends the request).

        @param request: the request, with the transaction's branch in its top
            Via (RFC 3261 section 8.1.1.7).
        @param hand_off: let the absorber take over Timer K (non-INVITE) or
            Timer M (INVITE: further 2xx responses then come as
            L{StrayResponse}, which suits a proxy but not a UAC that ACKs
            them).
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
            request,
            clock=self.clock,
            timers=self.timers,
            reliable=reliable,
            transport=transport,
            user=self,
            hand_off=hand_off,
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
            done = self._done.get(key) if key is not None and self._done else None
            if done is not None:
                if done[0] > self.clock.seconds():
                    if done[2] and 200 <= response.status < 300:
                        return StrayResponse(response=response)
                    return Absorbed(message=response, transaction=None)
                self._forget_done(done)
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
        if transaction is None and self._completed:
            entry = self._completed.get(key)
            if entry is not None:
                if entry[0] > self.clock.seconds():
                    if method == "ACK":
                        # Only an RFC 2543 ACK of the 2xx has the INVITE's key.
                        return AckReceived(request=request, transaction=None)
                    if entry[2] is not None:
                        entry[2].resend()
                    return Absorbed(message=request, transaction=None)
                self._forget(entry)
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
            if isinstance(target, tuple):
                to_tag = _to_tag(target[4])
                return CancelReceived(request=request, transaction=created, target=None, target_to_tag=to_tag)
            return CancelReceived(request=request, transaction=created, target=target)
        merge_key = _merge_key(request)
        if merge_key is not None:
            first = self._merge_keys.get(merge_key)
            if isinstance(first, tuple) and first[0] <= self.clock.seconds():
                self._forget(first)
                first = None
            created = self._create_server(key, request, reliable, transport)
            if first is not None:
                return MergedRequest(request=request, transaction=created, response=build_response(request, 482))
            self._merge_keys[merge_key] = created
            return RequestReceived(request=request, transaction=created)
        return RequestReceived(request=request, transaction=self._create_server(key, request, reliable, transport))

    def _cancel_target(self, key: TransactionKey) -> ServerTransaction | _Completed | None:
        """
        The live server transaction a CANCEL with this key cancels (RFC 3261
        section 9.2): an INVITE's (whose RFC 2543 key has no To tag), else
        another method's, which may be an absorber entry.
        """
        blind = _method_blind(key)
        for candidate in (replace(blind, to_tag=None), blind):
            target = self._cancellable.get(candidate)
            if isinstance(target, tuple) and target[0] <= self.clock.seconds():
                # An expired absorber entry: forget it and look on (the
                # second key may still name a live transaction).
                self._forget(target)
                continue
            if target is not None:
                return target
        return None

    def _create_server(
        self, key: TransactionKey, request: Request, reliable: bool, transport: TransactionTransport
    ) -> ServerTransaction:
        cls = InviteServerTransaction if request.method == "INVITE" else NonInviteServerTransaction
        transaction = cls(
            request,
            clock=self.clock,
            timers=self.timers,
            reliable=reliable,
            transport=transport,
            user=self,
            hand_off=self._absorb,
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
        for entry in list(self._completed.values()):
            self._forget(entry)
        self._done.clear()
        for queue in (self._server_queue, self._k_queue, self._m_queue):
            queue.clear()

    # The absorber

    def _keep_completed(
        self, key: TransactionKey, transaction: ServerTransaction, merge_key: _MergeKey | None
    ) -> _Completed:
        """Keep a handed-off server transaction as an absorber entry until its Timer J or L."""
        last = transaction.last_response
        # The To field as written: parsed only if a CANCEL comes.
        to = last.headers.get("To") if last is not None else None
        transport = None if isinstance(transaction, InviteServerTransaction) else transaction.transport
        queue = self._server_queue
        entry: _Completed = (self.clock.seconds() + queue.lifetime, key, transport, merge_key, to)
        self._completed[key] = entry
        queue.add(entry)
        return entry

    def _keep_done(self, key: TransactionKey, transaction: ClientTransaction) -> None:
        """Keep a handed-off client transaction as an absorber entry until its Timer K or M."""
        invite = isinstance(transaction, InviteClientTransaction)
        queue = self._m_queue if invite else self._k_queue
        done: _Done = (self.clock.seconds() + queue.lifetime, key, invite)
        self._done[key] = done
        queue.add(done)

    def _forget_done(self, done: _Done) -> None:
        if self._done.get(done[1]) is done:
            del self._done[done[1]]

    def _forget(self, entry: _Completed) -> None:
        """Remove an absorber entry from the tables (it may stay in the expiry queue until swept)."""
        key, merge_key = entry[1], entry[3]
        if self._completed.get(key) is entry:
            del self._completed[key]
        blind = _method_blind(key)
        if self._cancellable.get(blind) is entry:
            del self._cancellable[blind]
        if merge_key is not None and self._merge_keys.get(merge_key) is entry:
            del self._merge_keys[merge_key]

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
                if transaction.handed_off:
                    self._keep_done(key, transaction)
            user = self._client_users.pop(transaction, None)
            if user is not None:
                user.terminated(transaction)
            return
        merge_key = _merge_key(transaction.request)
        if key is not None:
            if self._servers.get(key) is transaction:
                del self._servers[key]
            replacement: _Completed | None = None
            if transaction.handed_off:
                replacement = self._keep_completed(key, transaction, merge_key)
            blind = _method_blind(key)
            if self._cancellable.get(blind) is transaction:
                if replacement is not None:
                    self._cancellable[blind] = replacement
                else:
                    del self._cancellable[blind]
            if merge_key is not None and self._merge_keys.get(merge_key) is transaction:
                if replacement is not None:
                    self._merge_keys[merge_key] = replacement
                else:
                    del self._merge_keys[merge_key]
        self._server_user.terminated(transaction)


def _same_to_tag(ack: Request, transaction: ServerTransaction) -> bool:
    """Whether an ACK carries the To tag of the transaction's last response (RFC 3261 section 17.2.3)."""
    last = transaction.last_response
    return last is not None and last.to.tag == ack.to.tag
