"""
Property tests of the four transaction state machines (the h2
C{test_state_machines} template, run through whole input sequences).

For random sequences of responses or TU answers of every status class,
retransmitted requests, ACKs, transport errors, transports that fail inside
C{send}, and clock advances of random length, over reliable and unreliable
transports and several timer settings, every machine:

  - raises nothing but L{LocalProtocolError}, and that only for TU misuse
    the module tables forbid;
  - moves only along the arcs of its RFC figure, each for an input that
    figure allows (the tables below are written from the figures, not from
    the code);
  - retransmits on Timers A, E and G at the intervals of RFC 3261 (A
    doubling from T1 without a cap; E and G min(2^n*T1, T2), E at T2 in
    Proceeding), never over a reliable transport;
  - times out (Timers B, F, H) exactly 64*T1 after the state began;
  - sends nothing and calls back nothing after Terminated, says
    C{terminated} exactly once, and leaves no timer behind at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipstack.config import TimerValues
from sipstack.errors import LocalProtocolError
from sipstack.message import Request
from sipstack.transaction import (
    ClientTransaction,
    InviteServerTransaction,
    ServerTransaction,
    TransactionState,
)

from . import (
    RecordingTransport,
    RecordingUser,
    invite_client,
    invite_server,
    make_request,
    make_response,
    non_invite_client,
    non_invite_server,
    run_until,
)

CALLING = TransactionState.CALLING
TRYING = TransactionState.TRYING
PROCEEDING = TransactionState.PROCEEDING
COMPLETED = TransactionState.COMPLETED
CONFIRMED = TransactionState.CONFIRMED
ACCEPTED = TransactionState.ACCEPTED
TERMINATED = TransactionState.TERMINATED

Arcs = dict[tuple[TransactionState, TransactionState], frozenset[str]]

#: RFC 3261 figure 5 as replaced by RFC 6026 figure 3: each arc and the inputs
#: that may take it ("advance" is a timer; a zero Timer D fires within the input).
INVITE_CLIENT_ARCS: Arcs = {
    (CALLING, PROCEEDING): frozenset({"1xx"}),
    (CALLING, ACCEPTED): frozenset({"2xx"}),
    (PROCEEDING, ACCEPTED): frozenset({"2xx"}),
    (CALLING, COMPLETED): frozenset({"3-6xx"}),
    (PROCEEDING, COMPLETED): frozenset({"3-6xx"}),
    (CALLING, TERMINATED): frozenset({"advance", "transport_error"}),
    (COMPLETED, TERMINATED): frozenset({"advance", "transport_error", "3-6xx"}),
    (ACCEPTED, TERMINATED): frozenset({"advance"}),
}

#: RFC 3261 figure 6.
NON_INVITE_CLIENT_ARCS: Arcs = {
    (TRYING, PROCEEDING): frozenset({"1xx"}),
    (TRYING, COMPLETED): frozenset({"2xx", "3-6xx"}),
    (PROCEEDING, COMPLETED): frozenset({"2xx", "3-6xx"}),
    (TRYING, TERMINATED): frozenset({"advance", "transport_error"}),
    (PROCEEDING, TERMINATED): frozenset({"advance", "transport_error"}),
    (COMPLETED, TERMINATED): frozenset({"advance", "2xx", "3-6xx"}),
}

#: RFC 3261 figure 7 as replaced by RFC 6026 figure 5 (transport errors loop).
INVITE_SERVER_ARCS: Arcs = {
    (PROCEEDING, COMPLETED): frozenset({"respond 3-6xx"}),
    (PROCEEDING, ACCEPTED): frozenset({"respond 2xx"}),
    (COMPLETED, CONFIRMED): frozenset({"ack"}),
    (COMPLETED, TERMINATED): frozenset({"advance"}),
    (CONFIRMED, TERMINATED): frozenset({"advance", "ack"}),
    (ACCEPTED, TERMINATED): frozenset({"advance"}),
}

#: RFC 3261 figure 8 (a response whose sending fails at once takes a transport
#: error arc within the TU's respond()).
NON_INVITE_SERVER_ARCS: Arcs = {
    (TRYING, PROCEEDING): frozenset({"respond 1xx"}),
    (TRYING, COMPLETED): frozenset({"respond 2xx", "respond 3-6xx"}),
    (PROCEEDING, COMPLETED): frozenset({"respond 2xx", "respond 3-6xx"}),
    (PROCEEDING, TERMINATED): frozenset({"transport_error", "respond 1xx"}),
    (COMPLETED, TERMINATED): frozenset({"advance", "transport_error", "respond 2xx", "respond 3-6xx"}),
}

STATUSES = st.sampled_from([100, 180, 181, 183, 200, 202, 302, 404, 486, 503, 603])

#: Binary fractions, so that timer arithmetic is exact.
TIMER_VALUES = st.sampled_from(
    [TimerValues(), TimerValues(t1=0.25, t2=1.0, t4=2.0), TimerValues(t1=1.0, t2=8.0, t4=3.0)]
)

DELAYS = st.one_of(
    st.floats(min_value=0, max_value=2, allow_nan=False, allow_infinity=False),
    st.floats(min_value=0, max_value=12, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 0.5, 1.0, 4.0, 5.0, 32.0, 64.0]),
)

Step = tuple[str, object]

#: The value each kind of input carries.
VALUES: dict[str, st.SearchStrategy[object]] = {
    "response": STATUSES,
    "respond": STATUSES,
    "advance": DELAYS,
    "break": st.booleans(),
}


def _steps(names: str) -> st.SearchStrategy[Step]:
    """Inputs of these kinds (space-separated), a kind named twice drawn twice as often."""
    return st.sampled_from(names.split()).flatmap(lambda name: st.tuples(st.just(name), VALUES.get(name, st.none())))


# Inputs that can end a machine at once (transport errors) or do nothing but
# raise (misuse) are drawn less often than those that walk it through its states.
CLIENT_STEPS = _steps("response response response response advance advance advance advance transport_error break start")
SERVER_STEPS = _steps(
    "respond respond advance advance advance request request ack ack trying transport_error break stray"
)


def _class(status: int) -> str:
    return "1xx" if status < 200 else "2xx" if status < 300 else "3-6xx"


def _close(first: float, second: float) -> bool:
    return abs(first - second) < 1e-9


Transaction = ClientTransaction | ServerTransaction


@dataclass
class Run:
    """One machine driven through one input sequence, with what the checks need."""

    transaction: Transaction
    clock: Clock
    transport: RecordingTransport
    user: RecordingUser
    timers: TimerValues
    reliable: bool
    #: When each state of the history was entered.
    entered: dict[TransactionState, float]


class _MachineProperties:
    """
    The properties every machine shares; subclasses name the machine, its
    arcs, and how to drive it.
    """

    arcs: Arcs
    #: The states in which an input (a retransmitted request or response) may
    #: cause a resend.
    resend_states: frozenset[TransactionState]

    def __init__(self, factory: Callable[..., tuple[Transaction, Clock, RecordingTransport, RecordingUser]]) -> None:
        self.factory = factory

    def make(self, reliable: bool, timers: TimerValues) -> Run:
        """A new machine with its fakes; a client is started."""
        transaction, clock, transport, user = self.factory(reliable=reliable, timers=timers)
        transport.in_input = True
        if isinstance(transaction, ClientTransaction):
            transaction.start()
        return Run(transaction, clock, transport, user, timers, reliable, {})

    def apply(self, test: SynchronousTestCase, run: Run, name: str, value: object) -> str:
        """Apply one input; return its kind for the arc tables."""
        raise NotImplementedError

    def finish(self, run: Run) -> str | None:
        """
        Give the final input that lets the timers drive the machine to
        Terminated; return its kind, or L{None} when none was needed.
        """
        raise NotImplementedError

    def check_schedule(self, test: SynchronousTestCase, run: Run) -> None:
        raise NotImplementedError

    def check(self, test: SynchronousTestCase, reliable: bool, timers: TimerValues, steps: list[Step]) -> None:
        run = self.make(reliable, timers)
        run.entered[run.transaction.state] = 0.0
        run.transport.in_input = True
        for name, value in steps:
            before = len(run.transaction.history)
            kind = self.apply(test, run, name, value)
            self._check_arcs(test, run, before, kind)
            if reliable:
                # No retransmission timer, and no zero-length linger timer.
                test.assertFalse(run.transaction.pending_timers & {"A", "D", "E", "G", "I", "J", "K"})
        run.transport.fail_sends = False
        before = len(run.transaction.history)
        self._check_arcs(test, run, before, self.finish(run))
        before = len(run.transaction.history)
        self.advance(run, 100.0)
        self._check_arcs(test, run, before, "advance")
        test.assertIs(run.transaction.state, TERMINATED)
        test.assertEqual(run.clock.getDelayedCalls(), [])
        test.assertEqual(run.transaction.pending_timers, frozenset())
        test.assertEqual(run.user.names.count("terminated"), 1)
        test.assertEqual(run.user.names[-1], "terminated")
        if reliable:
            test.assertEqual([sent for sent in run.transport.sent if sent.from_timer], [])
        for sent in run.transport.sent:
            if sent.kind == "resend" and not sent.from_timer:
                test.assertIn(sent.state, self.resend_states)
        self.check_schedule(test, run)

    def _check_arcs(self, test: SynchronousTestCase, run: Run, before: int, kind: str | None) -> None:
        history = run.transaction.history
        test.assertEqual(len(set(history)), len(history), f"a state entered twice: {history}")
        for old, new in zip(history[before - 1 :], history[before:], strict=False):
            arc = (old, new)
            test.assertIn(arc, self.arcs, f"{old.value} -> {new.value} is not in the figure")
            if kind is not None:
                test.assertIn(kind, self.arcs[arc], f"{old.value} -> {new.value} on {kind}")
            run.entered[new] = run.clock.seconds()

    def advance(self, run: Run, delay: float) -> None:
        """Let C{delay} seconds pass; what is sent meanwhile comes from timers."""
        run.transport.in_input = False
        run_until(run.clock, run.clock.seconds() + delay)
        run.transport.in_input = True

    def check_timeout(self, test: SynchronousTestCase, run: Run, state: TransactionState) -> None:
        """A timed_out callback comes exactly 64*T1 after C{state} was entered."""
        for (name, _, _), when in zip(run.user.calls, run.user.times, strict=True):
            if name == "timed_out":
                test.assertTrue(_close(when, run.entered[state] + 64 * run.timers.t1), (when, run.entered))


class _ClientProperties(_MachineProperties):
    def apply(self, test: SynchronousTestCase, run: Run, name: str, value: object) -> str:
        transaction = run.transaction
        assert isinstance(transaction, ClientTransaction)
        if name == "response":
            assert isinstance(value, int)
            transaction.receive_response(make_response(transaction.request, value))
            return _class(value)
        if name == "start":
            test.assertRaises(LocalProtocolError, transaction.start)
        elif name == "advance":
            assert isinstance(value, float)
            self.advance(run, value)
        elif name == "transport_error":
            transaction.transport_error()
        elif name == "break":
            assert isinstance(value, bool)
            run.transport.fail_sends = value
        return name

    def finish(self, run: Run) -> str | None:
        transaction = run.transaction
        assert isinstance(transaction, ClientTransaction)
        if transaction.terminated:
            return None
        transaction.receive_response(make_response(transaction.request, 500))
        return "3-6xx"


class InviteClientProperties(_ClientProperties):
    arcs = INVITE_CLIENT_ARCS
    resend_states = frozenset({COMPLETED})

    def check_schedule(self, test: SynchronousTestCase, run: Run) -> None:
        """Timer A: resends at T1, 3T1, 7T1... (intervals doubling, no cap), in Calling only."""
        resends = [sent for sent in run.transport.sent if sent.from_timer]
        for number, sent in enumerate(resends, start=1):
            test.assertIs(sent.state, CALLING)
            test.assertTrue(_close(sent.time, run.timers.t1 * (2**number - 1)), (number, sent))
        self.check_timeout(test, run, CALLING)
        finals = [status for status in run.user.statuses if isinstance(status, int) and status >= 300]
        test.assertLessEqual(len(finals), 1)
        acks = [m for m in run.transport.messages if isinstance(m, Request) and m.method == "ACK"]
        test.assertEqual(len(acks), len(finals), "exactly the 300-699 response is ACKed, never a 2xx")


class NonInviteClientProperties(_ClientProperties):
    arcs = NON_INVITE_CLIENT_ARCS
    resend_states: frozenset[TransactionState] = frozenset()

    def check_schedule(self, test: SynchronousTestCase, run: Run) -> None:
        """Timer E: min(2^n*T1, T2) apart while Trying, T2 once Proceeding."""
        last, interval = 0.0, run.timers.t1
        for sent in run.transport.sent:
            if not sent.from_timer:
                continue
            test.assertIn(sent.state, (TRYING, PROCEEDING))
            test.assertTrue(_close(sent.time, last + interval), (sent, last, interval))
            last = sent.time
            interval = min(2 * interval, run.timers.t2) if sent.state is TRYING else run.timers.t2
        self.check_timeout(test, run, TRYING)
        finals = [status for status in run.user.statuses if isinstance(status, int) and status >= 200]
        test.assertLessEqual(len(finals), 1)


class _ServerProperties(_MachineProperties):
    def respond_allowed(self, state: TransactionState, status: int) -> bool:
        raise NotImplementedError

    def apply(self, test: SynchronousTestCase, run: Run, name: str, value: object) -> str:
        transaction = run.transaction
        assert isinstance(transaction, ServerTransaction)
        if name == "respond":
            assert isinstance(value, int)
            response = make_response(transaction.request, value)
            if self.respond_allowed(transaction.state, value):
                transaction.respond(response)
            else:
                test.assertRaises(LocalProtocolError, transaction.respond, response)
            return f"respond {_class(value)}"
        if name == "request":
            transaction.receive_request(make_request(transaction.request.method))
        elif name == "ack":
            if isinstance(transaction, InviteServerTransaction):
                transaction.receive_request(make_request("ACK", to_tag="8321234356"))
        elif name == "stray":
            test.assertRaises(LocalProtocolError, transaction.receive_request, make_request("REFER"))
        elif name == "trying":
            if isinstance(transaction, InviteServerTransaction):
                transaction.send_trying()
        elif name == "advance":
            assert isinstance(value, float)
            self.advance(run, value)
        elif name == "transport_error":
            transaction.transport_error()
        elif name == "break":
            assert isinstance(value, bool)
            run.transport.fail_sends = value
        return name

    def finish(self, run: Run) -> str | None:
        transaction = run.transaction
        assert isinstance(transaction, ServerTransaction)
        if transaction.state not in (TRYING, PROCEEDING):
            return None
        transaction.respond(make_response(transaction.request, 500))
        return "respond 3-6xx"


class InviteServerProperties(_ServerProperties):
    arcs = INVITE_SERVER_ARCS
    resend_states = frozenset({PROCEEDING, COMPLETED})

    def respond_allowed(self, state: TransactionState, status: int) -> bool:
        return state is PROCEEDING or (state is ACCEPTED and 200 <= status < 300)

    def check_schedule(self, test: SynchronousTestCase, run: Run) -> None:
        """Timer G: min(2^n*T1, T2) apart from entering Completed, in Completed only."""
        last, interval = run.entered.get(COMPLETED, 0.0), run.timers.t1
        for sent in run.transport.sent:
            if sent.from_timer:
                test.assertIs(sent.state, COMPLETED)
                test.assertTrue(_close(sent.time, last + interval), (sent, last, interval))
                last, interval = sent.time, min(2 * interval, run.timers.t2)
        self.check_timeout(test, run, COMPLETED)
        acks = [call for call in run.user.calls if call[0] == "ack"]
        test.assertTrue(all(state is ACCEPTED for _, _, state in acks))


class NonInviteServerProperties(_ServerProperties):
    arcs = NON_INVITE_SERVER_ARCS
    resend_states = frozenset({PROCEEDING, COMPLETED})

    def respond_allowed(self, state: TransactionState, status: int) -> bool:
        return state in (TRYING, PROCEEDING)

    def check_schedule(self, test: SynchronousTestCase, run: Run) -> None:
        """A non-INVITE server never retransmits on its own, and never times out."""
        test.assertEqual([sent for sent in run.transport.sent if sent.from_timer], [])
        test.assertNotIn("timed_out", run.user.names)
        test.assertNotIn("ack", run.user.names)


def _property(machine: _MachineProperties, steps: st.SearchStrategy[Step]) -> Callable[..., None]:
    @given(reliable=st.booleans(), timers=TIMER_VALUES, steps=st.lists(steps, min_size=8, max_size=60))
    def test(self: SynchronousTestCase, reliable: bool, timers: TimerValues, steps: list[Step]) -> None:
        machine.check(self, reliable, timers, steps)

    return test


class InviteClientPropertyTests(SynchronousTestCase):
    """The INVITE client follows RFC 3261 figure 5 / RFC 6026 figure 3 under any inputs."""

    test_machine = _property(InviteClientProperties(invite_client), CLIENT_STEPS)
    test_machine.__doc__ = "Random inputs: figure arcs only, Timer A doubling, B at 64*T1, nothing left behind."


class NonInviteClientPropertyTests(SynchronousTestCase):
    """The non-INVITE client follows RFC 3261 figure 6 under any inputs."""

    test_machine = _property(NonInviteClientProperties(non_invite_client), CLIENT_STEPS)
    test_machine.__doc__ = "Random inputs: figure arcs only, Timer E capped at T2, F at 64*T1, nothing left behind."


class InviteServerPropertyTests(SynchronousTestCase):
    """The INVITE server follows RFC 3261 figure 7 / RFC 6026 figure 5 under any inputs."""

    test_machine = _property(InviteServerProperties(invite_server), SERVER_STEPS)
    test_machine.__doc__ = "Random inputs: figure arcs only, Timer G capped at T2, H at 64*T1, nothing left behind."


class NonInviteServerPropertyTests(SynchronousTestCase):
    """The non-INVITE server follows RFC 3261 figure 8 under any inputs."""

    test_machine = _property(NonInviteServerProperties(non_invite_server), SERVER_STEPS)
    test_machine.__doc__ = "Random inputs: figure arcs only, no retransmission of its own, nothing left behind."


class TimerSetTests(SynchronousTestCase):
    """
    The named-timer bookkeeping behind every machine.
    """

    def test_restart_and_cancel(self) -> None:
        """Starting a running timer replaces it; cancelling twice is harmless."""
        from sipstack.transaction._timers import TimerSet

        clock = Clock()
        fired: list[str] = []
        timers = TimerSet(clock)
        timers.start("A", 1, lambda: fired.append("first"))
        timers.start("A", 2, lambda: fired.append("second"))
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(2)
        self.assertEqual(fired, ["second"])
        self.assertEqual(timers.running, frozenset())
        timers.start("B", 1, lambda: None)
        timers.cancel("B")
        timers.cancel("B")
        timers.cancel_all()
        self.assertEqual(clock.getDelayedCalls(), [])
