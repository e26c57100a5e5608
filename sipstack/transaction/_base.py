# -*- test-case-name: tests.transaction.test_properties -*-
"""
What the four transaction state machines share: the current state and the
states visited, the named timers, and the guards that keep a terminated
transaction silent.

Three rules hold for every machine and are enforced here rather than in
each transition:

  - Entering C{Terminated} cancels every timer, then calls the TU's
    C{terminated} once; nothing is sent and no callback fires afterwards.
  - A timer is never started once the transaction is terminated, so a TU or
    transport that terminates it re-entrantly cannot leave a timer behind.
  - Sending goes through L{_Machine._send}/L{_Machine._resend}, which do
    nothing after termination.

The constructor is shared too: each machine only names its initial state
(C{_INITIAL}) and the methods it refuses (L{_Machine._refusal}), so the four
classes take the same arguments in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Generic, TypeVar

from sipstack.clock import Clock
from sipstack.config import TimerValues
from sipstack.errors import LocalProtocolError
from sipstack.message.message import Message, Request
from sipstack.transaction._timers import TimerSet
from sipstack.transaction.events import TransactionTransport
from sipstack.transaction.states import TransactionState

__all__: list[str] = []

_TERMINATED = TransactionState.TERMINATED

#: The TU type of a machine: a client or a server transaction user.
_User = TypeVar("_User")


class _Machine(Generic[_User]):
    """
    The state, history, timers, transport and TU of one transaction.

    Subclasses set C{_INITIAL}, C{_FOR_INVITE} and C{_ROLE}, and implement
    L{_notify_terminated} to tell their TU.
    """

    #: The state the machine starts in.
    _INITIAL: ClassVar[TransactionState]
    #: Whether the machine serves INVITE (and nothing else) or any method
    #: but INVITE and ACK (an ACK has no transaction of its own, RFC 3261
    #: section 17).
    _FOR_INVITE: ClassVar[bool]
    #: What the machine does with its request, for error messages.
    _ROLE: ClassVar[str]

    def __init__(
        self,
        request: Request,
        *,
        clock: Clock,
        timers: TimerValues,
        reliable: bool,
        transport: TransactionTransport,
        user: _User,
        hand_off: bool = False,
    ) -> None:
        """
        @param request: the request of the transaction: as it will be passed
            to the transport (client), or as received (server; the
            transaction manager passes it to the TU).
        @param clock: runs the timers.
        @param timers: T1, T2 and T4.
        @param reliable: whether the transport is reliable (TCP, TLS, WS).
        @param transport: sends and resends.
        @param user: the transaction user (TU), told what happened.
        @param hand_off: terminate on entering the state whose only job is
            to absorb retransmissions until a timer (non-INVITE server
            C{Completed}, Timer J; INVITE server C{Accepted}, Timer L;
            non-INVITE client C{Completed}, Timer K; INVITE client
            C{Accepted}, Timer M), leaving that job to the TU, which keeps a
            compact record instead of the machine (L{handed_off}).
        @raise LocalProtocolError: this machine cannot serve a request of
            this method.
        """
        refusal = self._refusal(request.method)
        if refusal is not None:
            raise LocalProtocolError(refusal)
        self._request = request
        self._values = timers
        self._reliable = reliable
        self._transport = transport
        self._user = user
        self._timers = TimerSet(clock)
        self._state = self._INITIAL
        self._history = [self._INITIAL]
        self._hand_off = hand_off
        self._handed_off = False

    @classmethod
    def _refusal(cls, method: str) -> str | None:
        """Why a request of C{method} cannot have this machine, or L{None} when it can."""
        if method != "ACK" and (method == "INVITE") == cls._FOR_INVITE:
            return None
        kind = "an INVITE" if cls._FOR_INVITE else "a non-INVITE"
        return f"{kind} {cls._ROLE} {method} requests"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._request.method} {self._state.value}>"

    @property
    def request(self) -> Request:
        """The request that created the transaction."""
        return self._request

    @property
    def state(self) -> TransactionState:
        """The current state."""
        return self._state

    @property
    def reliable(self) -> bool:
        """Whether the transport is reliable (no retransmissions, zero linger timers)."""
        return self._reliable

    @property
    def history(self) -> tuple[TransactionState, ...]:
        """
        Every state entered so far, in order, starting with the initial one.

        The figures have no cycles, so this holds at most four states; it lets
        an adapter log transitions and tests check them.
        """
        return tuple(self._history)

    @property
    def pending_timers(self) -> frozenset[str]:
        """The RFC names (C{"A"}, C{"B"}...) of the timers now running."""
        return self._timers.running

    @property
    def terminated(self) -> bool:
        """Whether the transaction is in C{Terminated}."""
        return self._state is _TERMINATED

    @property
    def handed_off(self) -> bool:
        """
        Whether the transaction was made with C{hand_off} and terminated on
        entering its absorbing state, leaving the rest of that state's timer
        to its TU (see the constructor).
        """
        return self._handed_off

    @property
    def transport(self) -> TransactionTransport:
        """What the transaction sends through (a TU that took over resends through it)."""
        return self._transport

    def _hand_over(self) -> None:
        """Terminate in an absorbing state, as C{hand_off} asks (unless already terminated)."""
        if self._state is not _TERMINATED:
            self._handed_off = True
            self._terminate()

    def _enter(self, state: TransactionState) -> None:
        self._state = state
        self._history.append(state)

    def _start_timer(self, name: str, delay: float, callback: Callable[[], None]) -> None:
        if self._state is not _TERMINATED:
            self._timers.start(name, delay, callback)

    def _cancel_timers(self, *names: str) -> None:
        for name in names:
            self._timers.cancel(name)

    def _send(self, message: Message) -> None:
        if self._state is not _TERMINATED:
            self._transport.send(message)

    def _resend(self) -> None:
        if self._state is not _TERMINATED:
            self._transport.resend()

    def _terminate(self, inform: Callable[[], None] | None = None) -> None:
        """
        Enter C{Terminated}: cancel every timer, call C{inform} (the TU's
        C{timed_out} or C{transport_failed}) if given, then the TU's
        C{terminated}.  Does nothing when already terminated.
        """
        if self._state is _TERMINATED:
            return
        self._timers.cancel_all()
        self._enter(_TERMINATED)
        if inform is not None:
            inform()
        self._notify_terminated()

    def _notify_terminated(self) -> None:
        raise NotImplementedError
