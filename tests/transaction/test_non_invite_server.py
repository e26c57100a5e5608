"""
Tests for L{sipstack.transaction.server.NonInviteServerTransaction}: every arc
of figure 8 of RFC 3261 and Timer J.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipstack.errors import LocalProtocolError
from sipstack.transaction import NonInviteServerTransaction, TransactionState

from . import TIMERS, RecordingTransport, RecordingUser, make_request, make_response, non_invite_server, run_until

TRYING = TransactionState.TRYING
PROCEEDING = TransactionState.PROCEEDING
COMPLETED = TransactionState.COMPLETED
TERMINATED = TransactionState.TERMINATED


class TryingTests(SynchronousTestCase):
    """
    The transaction starts in Trying and absorbs retransmissions until the TU answers.
    """

    def test_initial(self) -> None:
        """A new transaction is in Trying, with nothing sent and no timer."""
        transaction, clock, _, _ = non_invite_server()
        self.assertIs(transaction.state, TRYING)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_invite_and_ack_refused(self) -> None:
        """INVITE has its own machine, and ACK never creates a server transaction."""
        clock = Clock()
        for method in ("INVITE", "ACK"):
            self.assertRaises(
                LocalProtocolError,
                NonInviteServerTransaction,
                make_request(method),
                clock=clock,
                timers=TIMERS,
                reliable=False,
                transport=RecordingTransport(clock),
                user=RecordingUser(),
            )

    def test_retransmission_absorbed(self) -> None:
        """A retransmitted request in Trying is absorbed."""
        transaction, _, transport, user = non_invite_server()
        transaction.receive_request(make_request("OPTIONS"))
        self.assertEqual(transport.sent, [])
        self.assertEqual(user.calls, [])

    def test_other_method(self) -> None:
        """A request of another method does not belong here."""
        transaction, _, _, _ = non_invite_server()
        for method in ("BYE", "ACK", "INVITE"):
            self.assertRaises(LocalProtocolError, transaction.receive_request, make_request(method))

    def test_transport_error_absorbed(self) -> None:
        """Nothing was sent yet: a transport error in Trying is absorbed."""
        transaction, _, _, user = non_invite_server()
        transaction.transport_error()
        self.assertIs(transaction.state, TRYING)
        self.assertEqual(user.calls, [])


class ProceedingTests(SynchronousTestCase):
    """
    A provisional response moves to Proceeding; retransmissions get it again.
    """

    def test_provisional(self) -> None:
        """1xx is sent and moves Trying to Proceeding; more 1xx are sent."""
        transaction, _, transport, _ = non_invite_server()
        transaction.respond(make_response(transaction.request, 100))
        transaction.respond(make_response(transaction.request, 100))
        self.assertIs(transaction.state, PROCEEDING)
        self.assertEqual(len(transport.messages), 2)

    def test_retransmission(self) -> None:
        """A retransmitted request resends the latest provisional response."""
        transaction, _, transport, _ = non_invite_server()
        trying = make_response(transaction.request, 100)
        transaction.respond(trying)
        transaction.receive_request(make_request("OPTIONS"))
        self.assertEqual([sent.kind for sent in transport.sent], ["send", "resend"])
        self.assertIs(transaction.last_response, trying)

    def test_final(self) -> None:
        """A final response in Proceeding moves to Completed."""
        transaction, _, _, _ = non_invite_server()
        transaction.respond(make_response(transaction.request, 100))
        transaction.respond(make_response(transaction.request, 404))
        self.assertEqual(transaction.history, (TRYING, PROCEEDING, COMPLETED))

    def test_transport_error(self) -> None:
        """A transport error in Proceeding informs the TU and terminates."""
        transaction, _, _, user = non_invite_server()
        transaction.respond(make_response(transaction.request, 100))
        transaction.transport_error()
        self.assertEqual(transaction.history, (TRYING, PROCEEDING, TERMINATED))
        self.assertEqual(user.calls, [("transport_failed", None, TERMINATED), ("terminated", None, TERMINATED)])


class CompletedTests(SynchronousTestCase):
    """
    A final response moves to Completed, where retransmissions get it again until Timer J.
    """

    def test_completed(self) -> None:
        """A final response in Trying is sent, moves to Completed and starts Timer J."""
        for status in (200, 202, 301, 404, 500, 603):
            transaction, _, _, _ = non_invite_server()
            transaction.respond(make_response(transaction.request, status))
            self.assertIs(transaction.state, COMPLETED)
            self.assertEqual(transaction.pending_timers, {"J"})

    def test_retransmission(self) -> None:
        """Each retransmitted request resends the final response."""
        transaction, _, transport, _ = non_invite_server()
        transaction.respond(make_response(transaction.request, 200))
        transaction.receive_request(make_request("OPTIONS"))
        transaction.receive_request(make_request("OPTIONS"))
        self.assertEqual([sent.kind for sent in transport.sent], ["send", "resend", "resend"])

    def test_timer_j(self) -> None:
        """Timer J is 64*T1 over UDP, then Terminated."""
        transaction, clock, _, user = non_invite_server()
        run_until(clock, 3)
        transaction.respond(make_response(transaction.request, 200))
        run_until(clock, 34.999)
        self.assertIs(transaction.state, COMPLETED)
        run_until(clock, 35)
        self.assertIs(transaction.state, TERMINATED)
        self.assertEqual(user.names, ["terminated"])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_reliable(self) -> None:
        """Over a reliable transport Timer J is zero: Completed is left at once."""
        transaction, clock, transport, _ = non_invite_server(reliable=True)
        transaction.respond(make_response(transaction.request, 200))
        self.assertEqual(transaction.history, (TRYING, COMPLETED, TERMINATED))
        self.assertEqual(len(transport.messages), 1)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_final_twice(self) -> None:
        """A second final response (or a late 1xx) is a TU bug."""
        transaction, _, transport, _ = non_invite_server()
        transaction.respond(make_response(transaction.request, 200))
        self.assertRaises(LocalProtocolError, transaction.respond, make_response(transaction.request, 200))
        self.assertRaises(LocalProtocolError, transaction.respond, make_response(transaction.request, 100))
        self.assertEqual(len(transport.sent), 1)

    def test_transport_error(self) -> None:
        """A transport error in Completed informs the TU and terminates."""
        transaction, clock, _, user = non_invite_server()
        transaction.respond(make_response(transaction.request, 200))
        transaction.transport_error()
        self.assertEqual(transaction.history, (TRYING, COMPLETED, TERMINATED))
        self.assertEqual(user.names, ["transport_failed", "terminated"])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_failure_within_send(self) -> None:
        """A failure reported from within send() leaves no timer behind."""
        transaction, clock, transport, _ = non_invite_server()
        transport.fail_sends = True
        transaction.respond(make_response(transaction.request, 200))
        self.assertIs(transaction.state, TERMINATED)
        self.assertEqual(clock.getDelayedCalls(), [])


class TerminatedTests(SynchronousTestCase):
    """
    Nothing is sent and no callback fires once Terminated; the TU may not respond.
    """

    def test_silent(self) -> None:
        """Requests and errors change nothing; respond() raises."""
        transaction, _, transport, user = non_invite_server(reliable=True)
        transaction.respond(make_response(transaction.request, 200))
        sent, calls = list(transport.sent), list(user.calls)
        transaction.receive_request(make_request("OPTIONS"))
        transaction.transport_error()
        self.assertRaises(LocalProtocolError, transaction.respond, make_response(transaction.request, 200))
        self.assertEqual((transport.sent, user.calls), (sent, calls))
