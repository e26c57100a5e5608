"""
Tests for L{sipstack.transaction.manager.TransactionManager}: matching of
requests and responses to transactions (RFC 3261 sections 17.1.3 and
17.2.3), CANCEL, ACK, merged requests and stray responses, and the tables
emptied as transactions terminate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipstack.errors import LocalProtocolError
from sipstack.message.message import Message
from sipstack.transaction import (
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    TransactionState,
)
from sipstack.transaction.events import (
    Absorbed,
    AckReceived,
    CancelReceived,
    MergedRequest,
    RequestReceived,
    StrayResponse,
)
from sipstack.transaction.manager import TransactionManager, build_cancel

from . import TIMERS, RecordingUser, make_request, make_response


@dataclass
class _Wire:
    """A transport that only records: what was sent and how often it was resent."""

    sent: list[Message] = field(default_factory=list)
    resent: int = 0

    def send(self, message: Message) -> None:
        self.sent.append(message)

    def resend(self) -> None:
        self.resent += 1


def _manager() -> tuple[TransactionManager, Clock, RecordingUser]:
    clock = Clock()
    user = RecordingUser(clock)
    return TransactionManager(clock=clock, timers=TIMERS, server_user=user), clock, user


class ServerMatchingTests(SynchronousTestCase):
    """
    Requests create server transactions, and their retransmissions are
    absorbed by them (RFC 3261 section 17.2.3).
    """

    def test_new_request(self) -> None:
        """A new INVITE creates an INVITE server transaction, reported as RequestReceived."""
        manager, _, _ = _manager()
        outcome = manager.receive_request(make_request("INVITE"), reliable=False, transport=_Wire())
        assert isinstance(outcome, RequestReceived)
        self.assertIsInstance(outcome.transaction, InviteServerTransaction)
        self.assertEqual(manager.server_transactions, (outcome.transaction,))

    def test_non_invite(self) -> None:
        """A new OPTIONS creates a non-INVITE server transaction."""
        manager, _, _ = _manager()
        outcome = manager.receive_request(make_request("OPTIONS"), reliable=False, transport=_Wire())
        assert isinstance(outcome, RequestReceived)
        self.assertIsInstance(outcome.transaction, NonInviteServerTransaction)

    def test_retransmission_absorbed(self) -> None:
        """
        A retransmission matches the transaction and is absorbed; once the TU
        answered, it gets the last response again.
        """
        manager, _, _ = _manager()
        wire = _Wire()
        first = manager.receive_request(make_request("OPTIONS"), reliable=False, transport=wire)
        assert isinstance(first, RequestReceived)
        again = manager.receive_request(make_request("OPTIONS"), reliable=False, transport=_Wire())
        self.assertEqual(again, Absorbed(message=make_request("OPTIONS"), transaction=first.transaction))
        first.transaction.respond(make_response(first.request, 200))
        manager.receive_request(make_request("OPTIONS"), reliable=False, transport=_Wire())
        self.assertEqual(wire.resent, 1)
        self.assertEqual(len(manager), 1)

    def test_other_branch_is_new(self) -> None:
        """A request with another branch (and a To tag, so not merged) is a new transaction."""
        manager, _, _ = _manager()
        first = manager.receive_request(make_request("BYE", to_tag="x"), reliable=False, transport=_Wire())
        second = manager.receive_request(
            make_request("BYE", to_tag="x", branch="z9hG4bKother"), reliable=False, transport=_Wire()
        )
        assert isinstance(first, RequestReceived) and isinstance(second, RequestReceived)
        self.assertIsNot(first.transaction, second.transaction)

    def test_rfc2543_matching(self) -> None:
        """Without the magic cookie, a retransmission matches by the RFC 2543 fields."""
        manager, _, _ = _manager()
        first = manager.receive_request(make_request("OPTIONS", branch="old1"), reliable=False, transport=_Wire())
        again = manager.receive_request(make_request("OPTIONS", branch="old1"), reliable=False, transport=_Wire())
        assert isinstance(first, RequestReceived)
        self.assertIsInstance(again, Absorbed)

    def test_terminated_removed(self) -> None:
        """A transaction leaves the table when it terminates (Timer J), and the server TU hears of it."""
        manager, clock, user = _manager()
        outcome = manager.receive_request(make_request("OPTIONS"), reliable=False, transport=_Wire())
        assert isinstance(outcome, RequestReceived)
        outcome.transaction.respond(make_response(outcome.request, 200))
        clock.advance(64 * TIMERS.t1)
        self.assertEqual(len(manager), 0)
        self.assertEqual(user.names, ["terminated"])
        again = manager.receive_request(make_request("OPTIONS"), reliable=False, transport=_Wire())
        self.assertIsInstance(again, RequestReceived)

    def test_reliable_terminates_at_once(self) -> None:
        """Over a reliable transport a non-INVITE server transaction ends with its final response."""
        manager, _, _ = _manager()
        outcome = manager.receive_request(make_request("OPTIONS"), reliable=True, transport=_Wire())
        assert isinstance(outcome, RequestReceived)
        outcome.transaction.respond(make_response(outcome.request, 200))
        self.assertEqual(len(manager), 0)


class AckTests(SynchronousTestCase):
    """
    ACKs: absorbed by the INVITE server transaction for a non-2xx, passed up
    for a 2xx (RFC 3261 section 17.2.3, RFC 6026 section 7.1).
    """

    def test_ack_for_non_2xx_absorbed(self) -> None:
        """The ACK of a 486 matches the INVITE transaction, which moves to Confirmed."""
        manager, _, _ = _manager()
        outcome = manager.receive_request(make_request("INVITE"), reliable=False, transport=_Wire())
        assert isinstance(outcome, RequestReceived)
        outcome.transaction.respond(make_response(outcome.request, 486))
        ack = make_request("ACK", to_tag="8321234356")
        self.assertEqual(
            manager.receive_request(ack, reliable=False, transport=_Wire()),
            Absorbed(message=ack, transaction=outcome.transaction),
        )
        self.assertIs(outcome.transaction.state, TransactionState.CONFIRMED)

    def test_ack_for_2xx_passed_up(self) -> None:
        """The ACK of a 2xx carries a branch of its own: it matches nothing and goes to the TU."""
        manager, _, _ = _manager()
        outcome = manager.receive_request(make_request("INVITE"), reliable=False, transport=_Wire())
        assert isinstance(outcome, RequestReceived)
        outcome.transaction.respond(make_response(outcome.request, 200))
        ack = make_request("ACK", to_tag="8321234356", branch="z9hG4bKack")
        self.assertEqual(
            manager.receive_request(ack, reliable=False, transport=_Wire()), AckReceived(request=ack, transaction=None)
        )
        self.assertEqual(len(manager), 1)

    def test_rfc2543_ack_for_2xx(self) -> None:
        """
        Without the magic cookie the ACK of a 2xx matches the INVITE
        transaction in Accepted, and is reported with it (when the manager
        keeps live machines in Accepted).
        """
        clock = Clock()
        manager = TransactionManager(clock=clock, timers=TIMERS, server_user=RecordingUser(clock), absorb=False)
        outcome = manager.receive_request(make_request("INVITE", branch="old"), reliable=False, transport=_Wire())
        assert isinstance(outcome, RequestReceived)
        assert isinstance(outcome.transaction, InviteServerTransaction)
        outcome.transaction.respond(make_response(outcome.request, 200))
        ack = make_request("ACK", branch="old", to_tag="8321234356")
        self.assertEqual(
            manager.receive_request(ack, reliable=False, transport=_Wire()),
            AckReceived(request=ack, transaction=outcome.transaction),
        )

    def test_rfc2543_ack_for_absorbed_2xx(self) -> None:
        """
        With the absorber the INVITE transaction ended with its 2xx; an RFC
        2543 ACK of it, matching its entry, goes to the TU without one, and
        a retransmitted INVITE is absorbed (nothing resent: RFC 6026).
        """
        manager, _, user = _manager()
        wire = _Wire()
        outcome = manager.receive_request(make_request("INVITE", branch="old"), reliable=False, transport=wire)
        assert isinstance(outcome, RequestReceived)
        outcome.transaction.respond(make_response(outcome.request, 200))
        self.assertEqual(user.names, ["terminated"])
        ack = make_request("ACK", branch="old", to_tag="8321234356")
        self.assertEqual(
            manager.receive_request(ack, reliable=False, transport=_Wire()), AckReceived(request=ack, transaction=None)
        )
        again = manager.receive_request(make_request("INVITE", branch="old"), reliable=False, transport=_Wire())
        self.assertEqual(again, Absorbed(message=make_request("INVITE", branch="old"), transaction=None))
        self.assertEqual((wire.resent, len(wire.sent)), (0, 1))

    def test_rfc2543_ack_other_tag(self) -> None:
        """An RFC 2543 ACK whose To tag is not the one we sent is not this transaction's."""
        manager, _, _ = _manager()
        outcome = manager.receive_request(make_request("INVITE", branch="old"), reliable=False, transport=_Wire())
        assert isinstance(outcome, RequestReceived)
        outcome.transaction.respond(make_response(outcome.request, 486))
        ack = make_request("ACK", branch="old", to_tag="someone-else")
        self.assertEqual(
            manager.receive_request(ack, reliable=False, transport=_Wire()), AckReceived(request=ack, transaction=None)
        )
        self.assertIs(outcome.transaction.state, TransactionState.COMPLETED)


class CancelTests(SynchronousTestCase):
    """
    A CANCEL gets its own transaction and names the INVITE it cancels (RFC
    3261 section 9.2).
    """

    def test_cancel_matches_invite(self) -> None:
        """The CANCEL's target is the INVITE server transaction with the same branch."""
        manager, _, _ = _manager()
        invite = manager.receive_request(make_request("INVITE"), reliable=False, transport=_Wire())
        assert isinstance(invite, RequestReceived)
        outcome = manager.receive_request(make_request("CANCEL"), reliable=False, transport=_Wire())
        assert isinstance(outcome, CancelReceived)
        self.assertIs(outcome.target, invite.transaction)
        self.assertIsInstance(outcome.transaction, NonInviteServerTransaction)
        self.assertEqual(len(manager), 2)

    def test_cancel_without_invite(self) -> None:
        """A CANCEL for no INVITE we know has no target (the TU answers 481)."""
        manager, _, _ = _manager()
        outcome = manager.receive_request(make_request("CANCEL"), reliable=False, transport=_Wire())
        assert isinstance(outcome, CancelReceived)
        self.assertIsNone(outcome.target)

    def test_cancel_matches_non_invite(self) -> None:
        """
        A CANCEL for a live non-INVITE server transaction names it as its
        target (section 9.2: "regardless of the method of the original
        request"), in Trying and still in Completed.
        """
        manager, _, _ = _manager()
        options = manager.receive_request(make_request("OPTIONS"), reliable=False, transport=_Wire())
        assert isinstance(options, RequestReceived)
        outcome = manager.receive_request(make_request("CANCEL"), reliable=False, transport=_Wire())
        assert isinstance(outcome, CancelReceived)
        self.assertIs(outcome.target, options.transaction)
        options.transaction.respond(make_response(options.request, 200))
        again = manager.receive_request(
            make_request("CANCEL", branch="z9hG4bKsecond"), reliable=False, transport=_Wire()
        )
        assert isinstance(again, CancelReceived)
        self.assertIsNone(again.target)  # another branch: cancels nothing
        late = manager.receive_request(make_request("CANCEL"), reliable=False, transport=_Wire())
        self.assertIsInstance(late, Absorbed)  # the first CANCEL's retransmission

    def test_cancel_after_non_invite_ended(self) -> None:
        """Once the non-INVITE transaction is gone (at once over TCP), a CANCEL for it has no target (481)."""
        manager, _, _ = _manager()
        options = manager.receive_request(make_request("OPTIONS"), reliable=True, transport=_Wire())
        assert isinstance(options, RequestReceived)
        options.transaction.respond(make_response(options.request, 200))
        self.assertEqual(len(manager), 0)
        outcome = manager.receive_request(make_request("CANCEL"), reliable=True, transport=_Wire())
        assert isinstance(outcome, CancelReceived)
        self.assertIsNone(outcome.target)

    def test_rfc2543_cancel_of_non_invite(self) -> None:
        """
        Without the magic cookie, a CANCEL matches a non-INVITE by the RFC
        2543 fields, the To tag included (the CANCEL copies the To).
        """
        manager, _, _ = _manager()
        bye = manager.receive_request(
            make_request("BYE", branch="old1", to_tag="t1"), reliable=False, transport=_Wire()
        )
        assert isinstance(bye, RequestReceived)
        other = manager.receive_request(
            make_request("CANCEL", branch="old1", to_tag="t2"), reliable=False, transport=_Wire()
        )
        assert isinstance(other, CancelReceived)
        self.assertIsNone(other.target)
        outcome = manager.receive_request(
            make_request("CANCEL", branch="old1", to_tag="t1"), reliable=False, transport=_Wire()
        )
        assert isinstance(outcome, CancelReceived)
        self.assertIs(outcome.target, bye.transaction)

    def test_cancel_retransmission(self) -> None:
        """A retransmitted CANCEL is absorbed by the CANCEL's transaction, not the INVITE's."""
        manager, _, _ = _manager()
        manager.receive_request(make_request("INVITE"), reliable=False, transport=_Wire())
        outcome = manager.receive_request(make_request("CANCEL"), reliable=False, transport=_Wire())
        assert isinstance(outcome, CancelReceived)
        again = manager.receive_request(make_request("CANCEL"), reliable=False, transport=_Wire())
        assert isinstance(again, Absorbed)
        self.assertIs(again.transaction, outcome.transaction)

    def test_build_cancel(self) -> None:
        """build_cancel copies the Request-URI, Via, From, To, Call-ID, Route and CSeq number (section 9.1)."""
        invite = make_request("INVITE", routes=("<sip:proxy.example.com;lr>",))
        cancel = build_cancel(invite)
        self.assertEqual(cancel.method, "CANCEL")
        self.assertEqual(cancel.uri, invite.uri)
        self.assertEqual(cancel.vias, [invite.top_via])
        self.assertEqual((cancel.cseq.number, cancel.cseq.method), (invite.cseq.number, "CANCEL"))
        self.assertEqual(cancel.headers.get_all("Route"), ["<sip:proxy.example.com;lr>"])
        self.assertEqual((cancel.from_, cancel.to, cancel.call_id), (invite.from_, invite.to, invite.call_id))


class MergedRequestTests(SynchronousTestCase):
    """
    A request that arrives twice by different paths gets 482 the second time
    (RFC 3261 section 8.2.2.2).
    """

    def test_merged(self) -> None:
        """Same From tag, Call-ID and CSeq, no To tag, another branch: 482 through a new transaction."""
        manager, _, _ = _manager()
        first = manager.receive_request(make_request("INVITE"), reliable=False, transport=_Wire())
        second = manager.receive_request(
            make_request("INVITE", branch="z9hG4bKforked"), reliable=False, transport=_Wire()
        )
        assert isinstance(first, RequestReceived) and isinstance(second, MergedRequest)
        self.assertEqual(second.response.status, 482)
        self.assertIsNot(second.transaction, first.transaction)
        self.assertEqual(len(manager), 2)

    def test_not_merged_with_to_tag(self) -> None:
        """A request inside a dialog (with a To tag) is never a merged one."""
        manager, _, _ = _manager()
        manager.receive_request(make_request("BYE", to_tag="t"), reliable=False, transport=_Wire())
        second = manager.receive_request(
            make_request("BYE", to_tag="t", branch="z9hG4bKforked"), reliable=False, transport=_Wire()
        )
        self.assertIsInstance(second, RequestReceived)

    def test_forgotten_with_transaction(self) -> None:
        """Once the first transaction terminated, the same request is new again."""
        manager, _, _ = _manager()
        first = manager.receive_request(make_request("OPTIONS"), reliable=True, transport=_Wire())
        assert isinstance(first, RequestReceived)
        first.transaction.respond(make_response(first.request, 200))
        second = manager.receive_request(
            make_request("OPTIONS", branch="z9hG4bKlater"), reliable=True, transport=_Wire()
        )
        self.assertIsInstance(second, RequestReceived)


class ClientMatchingTests(SynchronousTestCase):
    """
    Responses match client transactions by branch and CSeq method (RFC 3261
    section 17.1.3); others are stray.
    """

    def test_start_sends(self) -> None:
        """start_client creates the right machine, sends the request and lists the transaction."""
        manager, _, _ = _manager()
        wire = _Wire()
        transaction = manager.start_client(make_request("INVITE"), reliable=False, transport=wire, user=RecordingUser())
        self.assertIsInstance(transaction, InviteClientTransaction)
        self.assertEqual(wire.sent, [make_request("INVITE")])
        self.assertIs(manager.find_client(make_request("INVITE")), transaction)
        other = manager.start_client(make_request("OPTIONS"), reliable=False, transport=_Wire(), user=RecordingUser())
        self.assertIsInstance(other, NonInviteClientTransaction)

    def test_response_matched(self) -> None:
        """A response with the branch and method reaches the transaction's own TU."""
        manager, _, _ = _manager()
        user = RecordingUser()
        request = make_request("OPTIONS")
        transaction = manager.start_client(request, reliable=True, transport=_Wire(), user=user)
        response = make_response(request, 200)
        self.assertEqual(manager.receive_response(response), Absorbed(message=response, transaction=transaction))
        self.assertEqual(user.names, ["response", "terminated"])
        self.assertEqual(len(manager), 0)

    def test_stray(self) -> None:
        """A response for no transaction (other branch, other method, or no cookie) is stray."""
        manager, _, _ = _manager()
        request = make_request("INVITE")
        manager.start_client(request, reliable=False, transport=_Wire(), user=RecordingUser())
        for response in (
            make_response(make_request("INVITE", branch="z9hG4bKelse"), 200),
            make_response(make_request("OPTIONS"), 200),
            make_response(make_request("INVITE", branch="nocookie"), 200),
        ):
            self.assertEqual(manager.receive_response(response), StrayResponse(response=response))

    def test_timeout(self) -> None:
        """Timer F reaches the client's TU, then the transaction is gone."""
        manager, clock, _ = _manager()
        user = RecordingUser()
        manager.start_client(make_request("OPTIONS"), reliable=True, transport=_Wire(), user=user)
        clock.advance(64 * TIMERS.t1)
        self.assertEqual(user.names, ["timed_out", "terminated"])
        self.assertEqual(len(manager), 0)

    def test_refused(self) -> None:
        """An ACK has no client transaction; neither does a request without an RFC 3261 branch or a duplicate."""
        manager, _, _ = _manager()
        user = RecordingUser()
        self.assertRaises(
            LocalProtocolError, manager.start_client, make_request("ACK"), reliable=True, transport=_Wire(), user=user
        )
        self.assertRaises(
            LocalProtocolError,
            manager.start_client,
            make_request("OPTIONS", branch="old"),
            reliable=True,
            transport=_Wire(),
            user=user,
        )
        manager.start_client(make_request("OPTIONS"), reliable=True, transport=_Wire(), user=user)
        self.assertRaises(
            LocalProtocolError,
            manager.start_client,
            make_request("OPTIONS"),
            reliable=True,
            transport=_Wire(),
            user=user,
        )

    def test_abort_all(self) -> None:
        """abort_all ends every transaction and leaves no timer."""
        manager, clock, server_user = _manager()
        user = RecordingUser()
        manager.start_client(make_request("INVITE"), reliable=False, transport=_Wire(), user=user)
        manager.receive_request(make_request("OPTIONS", branch="z9hG4bKin"), reliable=False, transport=_Wire())
        manager.abort_all()
        self.assertEqual(len(manager), 0)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(user.names, ["terminated"])
        self.assertEqual(server_user.names, ["terminated"])
