"""
Tests for the hand-off of absorbing states (the machines' C{hand_off}) and
the transaction manager's absorber, which keeps compact entries instead of
machines in non-INVITE server C{Completed} (Timer J), INVITE server
C{Accepted} (Timer L), non-INVITE client C{Completed} (Timer K) and INVITE
client C{Accepted} (Timer M): what the network sees must not change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipstack.message.message import Message, Request, Response
from sipstack.transaction import (
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    TransactionState,
)
from sipstack.transaction.events import (
    Absorbed,
    CancelReceived,
    MergedRequest,
    RequestOutcome,
    RequestReceived,
    StrayResponse,
)
from sipstack.transaction.manager import SWEEP_INTERVAL, TransactionManager

from . import TIMERS, RecordingTransport, RecordingUser, make_request, make_response, run_until

TRYING = TransactionState.TRYING
PROCEEDING = TransactionState.PROCEEDING
COMPLETED = TransactionState.COMPLETED
ACCEPTED = TransactionState.ACCEPTED
TERMINATED = TransactionState.TERMINATED
CALLING = TransactionState.CALLING

#: 64*T1: Timers J, L and M.
LONG = 64 * TIMERS.t1


@dataclass
class _Wire:
    """A transport that only records: what was sent and how often it was resent."""

    sent: list[Message] = field(default_factory=list)
    resent: int = 0

    def send(self, message: Message) -> None:
        self.sent.append(message)

    def resend(self) -> None:
        self.resent += 1


@dataclass
class _ServerUser:
    """The manager's server TU: records the callbacks of every transaction."""

    names: list[str] = field(default_factory=list)

    def ack_received(self, transaction: InviteServerTransaction, ack: Request) -> None:
        self.names.append("ack")

    def timed_out(self, transaction: object) -> None:
        self.names.append("timed_out")

    def transport_failed(self, transaction: object) -> None:
        self.names.append("transport_failed")

    def terminated(self, transaction: object) -> None:
        self.names.append("terminated")


def _manager(*, absorb: bool = True) -> tuple[TransactionManager, Clock, _ServerUser]:
    clock = Clock()
    user = _ServerUser()
    return TransactionManager(clock=clock, timers=TIMERS, server_user=user, absorb=absorb), clock, user


def _machine(
    cls: type, method: str, *, reliable: bool = False
) -> tuple[object, Clock, RecordingTransport, RecordingUser]:
    clock = Clock()
    transport = RecordingTransport(clock)
    user = RecordingUser(clock)
    machine = cls(
        make_request(method),
        clock=clock,
        timers=TIMERS,
        reliable=reliable,
        transport=transport,
        user=user,
        hand_off=True,
    )
    transport.transaction = machine
    return machine, clock, transport, user


class MachineHandOffTests(SynchronousTestCase):
    """C{hand_off=True}: the machine terminates on entering its absorbing state, and says so."""

    def test_non_invite_server(self) -> None:
        """The final response is sent, then Terminated at once over UDP: no Timer J."""
        machine, _, transport, user = _machine(NonInviteServerTransaction, "OPTIONS")
        assert isinstance(machine, NonInviteServerTransaction)
        machine.respond(make_response(machine.request, 200))
        self.assertEqual(machine.history, (TRYING, COMPLETED, TERMINATED))
        self.assertTrue(machine.handed_off)
        self.assertEqual(machine.pending_timers, frozenset())
        self.assertEqual([m.status for m in transport.messages if isinstance(m, Response)], [200])
        self.assertEqual(user.names, ["terminated"])

    def test_non_invite_server_reliable(self) -> None:
        """Over a reliable transport Timer J is zero anyway: terminated, but nothing handed off."""
        machine, _, _, _ = _machine(NonInviteServerTransaction, "OPTIONS", reliable=True)
        assert isinstance(machine, NonInviteServerTransaction)
        machine.respond(make_response(machine.request, 200))
        self.assertEqual((machine.state, machine.handed_off), (TERMINATED, False))

    def test_non_invite_server_failed_send(self) -> None:
        """A send that fails within respond ends the transaction as usual: not handed off."""
        machine, _, transport, user = _machine(NonInviteServerTransaction, "OPTIONS")
        assert isinstance(machine, NonInviteServerTransaction)
        transport.fail_sends = True
        machine.respond(make_response(machine.request, 200))
        self.assertEqual((machine.state, machine.handed_off), (TERMINATED, False))
        self.assertEqual(user.names, ["transport_failed", "terminated"])

    def test_invite_server_2xx(self) -> None:
        """A 2xx enters Accepted, then Terminated at once: no Timer L."""
        machine, _, _, user = _machine(InviteServerTransaction, "INVITE")
        assert isinstance(machine, InviteServerTransaction)
        machine.respond(make_response(machine.request, 200))
        self.assertEqual(machine.history, (PROCEEDING, ACCEPTED, TERMINATED))
        self.assertTrue(machine.handed_off)
        self.assertEqual(user.names, ["terminated"])

    def test_invite_server_non_2xx_not_handed_off(self) -> None:
        """A 486 still runs Timers G and H in Completed: retransmissions need the machine."""
        machine, _, _, _ = _machine(InviteServerTransaction, "INVITE")
        assert isinstance(machine, InviteServerTransaction)
        machine.respond(make_response(machine.request, 486))
        self.assertEqual((machine.state, machine.handed_off), (COMPLETED, False))
        self.assertEqual(machine.pending_timers, frozenset({"G", "H"}))

    def test_non_invite_client(self) -> None:
        """The final response goes to the TU, then Terminated at once: no Timer K."""
        machine, _, _, user = _machine(NonInviteClientTransaction, "OPTIONS")
        assert isinstance(machine, NonInviteClientTransaction)
        machine.start()
        machine.receive_response(make_response(machine.request, 200))
        self.assertEqual(machine.history, (TRYING, COMPLETED, TERMINATED))
        self.assertTrue(machine.handed_off)
        self.assertEqual(user.names, ["response", "terminated"])
        self.assertEqual(machine.pending_timers, frozenset())

    def test_invite_client_2xx(self) -> None:
        """A 2xx goes to the TU, then Terminated at once: no Timer M."""
        machine, _, _, user = _machine(InviteClientTransaction, "INVITE")
        assert isinstance(machine, InviteClientTransaction)
        machine.start()
        machine.receive_response(make_response(machine.request, 200))
        self.assertEqual(machine.history, (CALLING, ACCEPTED, TERMINATED))
        self.assertEqual(user.names, ["response", "terminated"])

    def test_invite_client_non_2xx_not_handed_off(self) -> None:
        """A 486 is ACKed and Timer D runs in Completed, as without hand-off."""
        machine, _, transport, _ = _machine(InviteClientTransaction, "INVITE")
        assert isinstance(machine, InviteClientTransaction)
        machine.start()
        machine.receive_response(make_response(machine.request, 486))
        self.assertEqual((machine.state, machine.handed_off), (COMPLETED, False))
        self.assertEqual(machine.pending_timers, frozenset({"D"}))
        self.assertEqual([m.method for m in transport.messages if isinstance(m, Request)], ["INVITE", "ACK"])


class ServerAbsorberTests(SynchronousTestCase):
    """Server transactions handed off to the manager's absorber."""

    def test_retransmission_resent_until_timer_j(self) -> None:
        """Within Timer J a retransmission gets the response again; at Timer J it is a new request."""
        manager, clock, user = _manager()
        wire = _Wire()
        outcome = manager.receive_request(make_request("OPTIONS"), reliable=False, transport=wire)
        assert isinstance(outcome, RequestReceived)
        outcome.transaction.respond(make_response(outcome.request, 200))
        self.assertEqual((outcome.transaction.state, user.names), (TERMINATED, ["terminated"]))
        self.assertEqual((manager.server_transactions, manager.absorbed, len(manager)), ((), 1, 1))
        run_until(clock, LONG - 0.001)
        again = manager.receive_request(make_request("OPTIONS"), reliable=False, transport=_Wire())
        self.assertEqual(again, Absorbed(message=make_request("OPTIONS"), transaction=None))
        self.assertEqual(wire.resent, 1)
        run_until(clock, LONG)
        self.assertEqual((manager.absorbed, len(manager)), (0, 0))
        self.assertIsInstance(
            manager.receive_request(make_request("OPTIONS"), reliable=False, transport=_Wire()), RequestReceived
        )
        self.assertEqual(wire.resent, 1)

    def test_swept(self) -> None:
        """Expired entries are freed by one timer, which stops once nothing is left."""
        manager, clock, _ = _manager()
        for index in range(3):
            outcome = manager.receive_request(
                make_request("OPTIONS", branch=f"z9hG4bK{index}", to_tag="x"), reliable=False, transport=_Wire()
            )
            assert isinstance(outcome, RequestReceived)
            outcome.transaction.respond(make_response(outcome.request, 200))
            clock.advance(0.1)
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        run_until(clock, LONG + 0.25)
        # The first sweep freed what was due then; the next comes SWEEP_INTERVAL
        # later, and meanwhile the expired entries count for nothing.
        self.assertEqual((len(manager._completed), manager.absorbed, len(manager)), (2, 0, 0))
        run_until(clock, LONG + SWEEP_INTERVAL + 0.1)
        self.assertEqual(len(manager._completed), 0)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_lookup_never_uses_an_expired_entry(self) -> None:
        """However late the sweep, an entry past its deadline is not used."""
        manager, clock, _ = _manager()
        wire = _Wire()
        outcome = manager.receive_request(make_request("OPTIONS"), reliable=False, transport=wire)
        assert isinstance(outcome, RequestReceived)
        outcome.transaction.respond(make_response(outcome.request, 200))
        # Time passes without the sweep running (the clock jumps).
        clock.rightNow = LONG + 5
        self.assertIsInstance(
            manager.receive_request(make_request("OPTIONS"), reliable=False, transport=_Wire()), RequestReceived
        )
        self.assertEqual(wire.resent, 0)

    def test_rfc2543_cancel_past_an_expired_entry(self) -> None:
        """
        An RFC 2543 CANCEL is matched by the fields without the To tag first,
        then with it: an expired entry under the first key does not hide a
        live transaction under the second.
        """
        manager, clock, _ = _manager()
        options = manager.receive_request(make_request("OPTIONS", branch="old1"), reliable=False, transport=_Wire())
        assert isinstance(options, RequestReceived)
        options.transaction.respond(make_response(options.request, 200))
        # Time passes without the sweep running (the clock jumps).
        clock.rightNow = LONG + 5
        bye = manager.receive_request(
            make_request("BYE", branch="old1", to_tag="t1"), reliable=False, transport=_Wire()
        )
        assert isinstance(bye, RequestReceived)
        cancel = manager.receive_request(
            make_request("CANCEL", branch="old1", to_tag="t1"), reliable=False, transport=_Wire()
        )
        assert isinstance(cancel, CancelReceived)
        self.assertIs(cancel.target, bye.transaction)

    def test_reliable_keeps_nothing(self) -> None:
        """Over TCP Timer J is zero: no entry."""
        manager, _, _ = _manager()
        outcome = manager.receive_request(make_request("OPTIONS"), reliable=True, transport=_Wire())
        assert isinstance(outcome, RequestReceived)
        outcome.transaction.respond(make_response(outcome.request, 200))
        self.assertEqual((manager.absorbed, len(manager)), (0, 0))

    def test_cancel_of_answered_request(self) -> None:
        """A CANCEL for an answered OPTIONS still finds it: its 200 gets the response's To tag."""
        manager, _, _ = _manager()
        outcome = manager.receive_request(make_request("OPTIONS"), reliable=False, transport=_Wire())
        assert isinstance(outcome, RequestReceived)
        outcome.transaction.respond(make_response(outcome.request, 200, to_tag="answered"))
        cancel = manager.receive_request(make_request("CANCEL"), reliable=False, transport=_Wire())
        assert isinstance(cancel, CancelReceived)
        self.assertEqual((cancel.target, cancel.target_to_tag), (None, "answered"))

    def test_merged_request_after_answer(self) -> None:
        """A merged request (same From tag, Call-ID, CSeq; another branch) is still detected within Timer J."""
        manager, clock, _ = _manager()
        outcome = manager.receive_request(make_request("OPTIONS"), reliable=False, transport=_Wire())
        assert isinstance(outcome, RequestReceived)
        outcome.transaction.respond(make_response(outcome.request, 200))
        merged = manager.receive_request(
            make_request("OPTIONS", branch="z9hG4bKother"), reliable=False, transport=_Wire()
        )
        self.assertIsInstance(merged, MergedRequest)
        run_until(clock, LONG)
        late = manager.receive_request(
            make_request("OPTIONS", branch="z9hG4bKthird"), reliable=False, transport=_Wire()
        )
        self.assertIsInstance(late, RequestReceived)

    def test_invite_accepted(self) -> None:
        """
        An INVITE answered 2xx is absorbed until Timer L: retransmissions
        are absorbed without a resend (RFC 6026), a CANCEL gets the 2xx's
        To tag.
        """
        manager, clock, _ = _manager()
        wire = _Wire()
        outcome = manager.receive_request(make_request("INVITE"), reliable=False, transport=wire)
        assert isinstance(outcome, RequestReceived)
        outcome.transaction.respond(make_response(outcome.request, 200, to_tag="callee"))
        self.assertEqual(manager.server_transactions, ())
        again = manager.receive_request(make_request("INVITE"), reliable=False, transport=_Wire())
        self.assertEqual(again, Absorbed(message=make_request("INVITE"), transaction=None))
        cancel = manager.receive_request(make_request("CANCEL"), reliable=False, transport=_Wire())
        assert isinstance(cancel, CancelReceived)
        self.assertEqual(cancel.target_to_tag, "callee")
        self.assertEqual((wire.resent, len(wire.sent)), (0, 1))
        run_until(clock, LONG)
        self.assertIsInstance(
            manager.receive_request(make_request("INVITE"), reliable=False, transport=_Wire()), RequestReceived
        )

    def test_abort_all_clears(self) -> None:
        """Shutting down drops every entry and the sweep timer."""
        manager, clock, _ = _manager()
        outcome = manager.receive_request(make_request("OPTIONS"), reliable=False, transport=_Wire())
        assert isinstance(outcome, RequestReceived)
        outcome.transaction.respond(make_response(outcome.request, 200))
        manager.abort_all()
        self.assertEqual((len(manager), clock.getDelayedCalls()), (0, []))


class ClientAbsorberTests(SynchronousTestCase):
    """Client transactions started with C{hand_off=True}."""

    def test_timer_k(self) -> None:
        """Within Timer K a retransmitted final response is absorbed; after it, it is stray."""
        manager, clock, _ = _manager()
        user = RecordingUser(clock)
        request = make_request("OPTIONS")
        transaction = manager.start_client(request, reliable=False, transport=_Wire(), user=user, hand_off=True)
        response = make_response(request, 200)
        self.assertEqual(manager.receive_response(response), Absorbed(message=response, transaction=transaction))
        self.assertEqual((transaction.state, user.names), (TERMINATED, ["response", "terminated"]))
        self.assertEqual(manager.receive_response(response), Absorbed(message=response, transaction=None))
        run_until(clock, TIMERS.t4)
        self.assertEqual(manager.receive_response(response), StrayResponse(response=response))
        self.assertEqual(len(manager), 0)

    def test_timer_m(self) -> None:
        """Within Timer M further 2xx responses are strays for the TU to forward; non-2xx are absorbed."""
        manager, clock, _ = _manager()
        user = RecordingUser(clock)
        request = make_request("INVITE")
        manager.start_client(request, reliable=False, transport=_Wire(), user=user, hand_off=True)
        manager.receive_response(make_response(request, 200, to_tag="one"))
        other = make_response(request, 200, to_tag="two")
        self.assertEqual(manager.receive_response(other), StrayResponse(response=other))
        late = make_response(request, 487)
        self.assertEqual(manager.receive_response(late), Absorbed(message=late, transaction=None))
        run_until(clock, LONG)
        self.assertEqual(manager.receive_response(late), StrayResponse(response=late))

    def test_without_hand_off(self) -> None:
        """By default a client transaction keeps its machine (a UAC's INVITE ACKs every 2xx)."""
        manager, clock, _ = _manager()
        request = make_request("INVITE")
        transaction = manager.start_client(request, reliable=False, transport=_Wire(), user=RecordingUser(clock))
        manager.receive_response(make_response(request, 200))
        self.assertEqual((transaction.state, transaction.pending_timers), (ACCEPTED, frozenset({"M"})))


# The property: a manager with the absorber and one without answer every
# sequence of inputs alike, as far as the network and the TU can tell.

_STEPS = st.lists(
    st.tuples(
        st.sampled_from(["again", "cancel", "merged", "ack"]),
        st.sampled_from([0.0, 0.001, 1.0, 5.0, LONG - 0.001, LONG, LONG + 0.001, 40.0]),
    ),
    max_size=6,
)


def _normal(outcome: RequestOutcome) -> tuple[object, ...]:
    """What the stack acts on: the kind of outcome, and for a CANCEL whether (and with which tag) it matched."""
    if isinstance(outcome, CancelReceived):
        if outcome.target is not None:
            last = outcome.target.last_response
            return ("cancel", last.to.tag if last is not None else None)
        return ("cancel", outcome.target_to_tag or None)
    return (type(outcome).__name__,)


def _run(absorb: bool, method: str, status: int, steps: list[tuple[str, float]]) -> list[tuple[object, ...]]:
    manager, clock, _ = _manager(absorb=absorb)
    wire = _Wire()
    first = manager.receive_request(make_request(method), reliable=False, transport=wire)
    assert isinstance(first, RequestReceived)
    first.transaction.respond(make_response(first.request, status, to_tag="tag1"))
    seen: list[tuple[object, ...]] = []
    for index, (kind, delay) in enumerate(steps):
        run_until(clock, clock.seconds() + delay)
        request: Request
        if kind == "again":
            request = make_request(method)
        elif kind == "cancel":
            request = make_request("CANCEL")
        elif kind == "merged":
            request = make_request(method, branch=f"z9hG4bKmerged{index}")
        else:
            request = make_request("ACK", branch="z9hG4bK74bf9" if method == "INVITE" else f"z9hG4bKack{index}")
        if kind == "ack" and method != "INVITE":
            continue
        outcome = manager.receive_request(request, reliable=False, transport=_Wire())
        if isinstance(outcome, RequestReceived | CancelReceived | MergedRequest) and not outcome.transaction.terminated:
            outcome.transaction.respond(make_response(outcome.request, 200, to_tag="tag2"))
        seen.append((*_normal(outcome), wire.resent))
    return seen


class EquivalenceTests(SynchronousTestCase):
    """The absorber changes nothing observable."""

    @given(st.sampled_from([("OPTIONS", 200), ("REGISTER", 404), ("INVITE", 200)]), _STEPS)
    def test_same_outcomes(self, request: tuple[str, int], steps: list[tuple[str, float]]) -> None:
        """
        Retransmissions, CANCELs, merged requests and ACKs at any time
        around Timer J/L get the same outcomes and the same resends with
        the absorber as with live machines.
        """
        method, status = request
        self.assertEqual(_run(True, method, status, steps), _run(False, method, status, steps))
