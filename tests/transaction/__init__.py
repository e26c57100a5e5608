"""
Tests for L{sipstack.transaction}, and the small fakes they share: a
recording transport, a recording TU, and builders for the messages of one
call.

The fakes check two rules on every call, so every test enforces them: nothing
is sent and no TU callback fires once the transaction is terminated, and
C{terminated} is the last callback, made once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet.task import Clock

from sipstack.config import TimerValues
from sipstack.message import Request, Response, build_response, parse_datagram
from sipstack.message.message import Message
from sipstack.transaction import (
    ClientTransaction,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    ServerTransaction,
    TransactionState,
)

__all__ = [
    "TIMERS",
    "RecordingTransport",
    "RecordingUser",
    "Sent",
    "make_request",
    "make_response",
    "invite_client",
    "non_invite_client",
    "invite_server",
    "non_invite_server",
    "run_until",
]

#: The default timers of RFC 3261: T1 = 0.5 s, T2 = 4 s, T4 = 5 s.
TIMERS = TimerValues()

BRANCH = "z9hG4bK74bf9"


def run_until(clock: Clock, when: float) -> None:
    """
    Advance C{clock} to C{when}, stopping at the due time of every timer on
    the way, so that each callback sees its own due time as a reactor would
    (C{Clock.advance} alone runs them all at the end of the step).
    """
    while True:
        due = [call.getTime() for call in clock.getDelayedCalls() if call.getTime() <= when]
        if not due:
            break
        clock.rightNow = max(clock.rightNow, min(due))
        clock.advance(0)
    clock.rightNow = max(clock.rightNow, when)


def make_request(
    method: str = "INVITE",
    *,
    branch: str = BRANCH,
    routes: tuple[str, ...] = (),
    to_tag: str | None = None,
    extra: str = "",
) -> Request:
    """A request as the parser would give it, with this top Via branch and these Route values."""
    route_lines = "".join(f"Route: {route}\r\n" for route in routes)
    to = "Bob <sip:bob@biloxi.example.com>" + (f";tag={to_tag}" if to_tag else "")
    data = (
        f"{method} sip:bob@biloxi.example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch={branch}\r\n"
        "Via: SIP/2.0/UDP proxy.atlanta.example.com;branch=z9hG4bKolder\r\n"
        f"{route_lines}"
        "Max-Forwards: 69\r\n"
        "From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
        f"To: {to}\r\n"
        "Call-ID: 3848276298220188511@atlanta.example.com\r\n"
        f"CSeq: 314159 {method}\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    request = parse_datagram(data)
    assert isinstance(request, Request)
    return request


def make_response(request: Request, status: int, to_tag: str = "8321234356") -> Response:
    """A response to C{request} (with a To tag, except for 100)."""
    return build_response(request, status, to_tag=to_tag)


@dataclass
class Sent:
    """
    One call on the transport.

    @ivar kind: C{"send"} or C{"resend"}.
    @ivar message: what C{send} was given; L{None} for C{resend}.
    @ivar time: the clock's time at the call.
    @ivar state: the transaction's state at the call.
    @ivar from_timer: whether the call came from a timer: it was made while
        C{in_input} was false (property tests set it around each input).
    """

    kind: str
    message: Message | None
    time: float
    state: TransactionState
    from_timer: bool


@dataclass
class RecordingTransport:
    """
    A L{sipstack.transaction.TransactionTransport} that records what it is asked
    to send, and can fail (by calling the transaction's C{transport_error()}
    from within C{send}) when C{fail_sends} is set.
    """

    clock: Clock
    sent: list[Sent] = field(default_factory=list)
    transaction: ClientTransaction | ServerTransaction | None = None
    fail_sends: bool = False
    in_input: bool = False

    def _record(self, kind: str, message: Message | None) -> None:
        transaction = self.transaction
        assert transaction is not None
        assert transaction.state is not TransactionState.TERMINATED, f"{kind} after Terminated"
        self.sent.append(Sent(kind, message, self.clock.seconds(), transaction.state, not self.in_input))

    def send(self, message: Message) -> None:
        self._record("send", message)
        if self.fail_sends:
            assert self.transaction is not None
            self.transaction.transport_error()

    def resend(self) -> None:
        self._record("resend", None)

    @property
    def messages(self) -> list[Message]:
        """What C{send} was given, in order."""
        return [sent.message for sent in self.sent if sent.message is not None]

    @property
    def resends(self) -> list[float]:
        """The times of every C{resend}."""
        return [sent.time for sent in self.sent if sent.kind == "resend"]


@dataclass
class RecordingUser:
    """
    A client and server transaction user that records its callbacks as
    C{(name, detail, state)}: detail is the status of a response, the method
    of an ACK, or L{None}; with a C{clock}, C{times} holds the time of each.
    """

    clock: Clock | None = None
    calls: list[tuple[str, object, TransactionState]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def _record(self, name: str, transaction: ClientTransaction | ServerTransaction, detail: object = None) -> None:
        assert not any(call[0] == "terminated" for call in self.calls), f"{name} after terminated"
        self.calls.append((name, detail, transaction.state))
        if self.clock is not None:
            self.times.append(self.clock.seconds())

    def response_received(self, transaction: ClientTransaction, response: Response) -> None:
        self._record("response", transaction, response.status)

    def ack_received(self, transaction: InviteServerTransaction, ack: Request) -> None:
        self._record("ack", transaction, ack.method)

    def timed_out(self, transaction: ClientTransaction | ServerTransaction) -> None:
        self._record("timed_out", transaction)

    def transport_failed(self, transaction: ClientTransaction | ServerTransaction) -> None:
        self._record("transport_failed", transaction)

    def terminated(self, transaction: ClientTransaction | ServerTransaction) -> None:
        assert transaction.state is TransactionState.TERMINATED
        assert transaction.pending_timers == frozenset()
        self._record("terminated", transaction)

    @property
    def names(self) -> list[str]:
        """The callback names, in order."""
        return [call[0] for call in self.calls]

    @property
    def statuses(self) -> list[object]:
        """The statuses passed to C{response_received}, in order."""
        return [call[1] for call in self.calls if call[0] == "response"]


def invite_client(
    *, reliable: bool = False, timers: TimerValues = TIMERS, request: Request | None = None
) -> tuple[InviteClientTransaction, Clock, RecordingTransport, RecordingUser]:
    """An INVITE client transaction with a fresh clock and recording fakes (not started)."""
    clock = Clock()
    transport = RecordingTransport(clock)
    user = RecordingUser(clock)
    transaction = InviteClientTransaction(
        request or make_request("INVITE"),
        clock=clock,
        timers=timers,
        reliable=reliable,
        transport=transport,
        user=user,
    )
    transport.transaction = transaction
    return transaction, clock, transport, user


def non_invite_client(
    *, reliable: bool = False, timers: TimerValues = TIMERS, method: str = "OPTIONS"
) -> tuple[NonInviteClientTransaction, Clock, RecordingTransport, RecordingUser]:
    """A non-INVITE client transaction with a fresh clock and recording fakes (not started)."""
    clock = Clock()
    transport = RecordingTransport(clock)
    user = RecordingUser(clock)
    transaction = NonInviteClientTransaction(
        make_request(method), clock=clock, timers=timers, reliable=reliable, transport=transport, user=user
    )
    transport.transaction = transaction
    return transaction, clock, transport, user


def invite_server(
    *, reliable: bool = False, timers: TimerValues = TIMERS
) -> tuple[InviteServerTransaction, Clock, RecordingTransport, RecordingUser]:
    """An INVITE server transaction with a fresh clock and recording fakes."""
    clock = Clock()
    transport = RecordingTransport(clock)
    user = RecordingUser(clock)
    transaction = InviteServerTransaction(
        make_request("INVITE"), clock=clock, timers=timers, reliable=reliable, transport=transport, user=user
    )
    transport.transaction = transaction
    return transaction, clock, transport, user


def non_invite_server(
    *, reliable: bool = False, timers: TimerValues = TIMERS, method: str = "OPTIONS"
) -> tuple[NonInviteServerTransaction, Clock, RecordingTransport, RecordingUser]:
    """A non-INVITE server transaction with a fresh clock and recording fakes."""
    clock = Clock()
    transport = RecordingTransport(clock)
    user = RecordingUser(clock)
    transaction = NonInviteServerTransaction(
        make_request(method), clock=clock, timers=timers, reliable=reliable, transport=transport, user=user
    )
    transport.transaction = transaction
    return transaction, clock, transport, user
