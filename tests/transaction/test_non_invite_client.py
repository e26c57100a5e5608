"""
Tests for L{sipstack.transaction.client.NonInviteClientTransaction}: every arc
of figure 6 of RFC 3261 and the Timer E/F/K schedules.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipstack.config import TimerValues
from sipstack.errors import LocalProtocolError
from sipstack.transaction import NonInviteClientTransaction, TransactionState

from . import TIMERS, RecordingTransport, RecordingUser, make_request, make_response, non_invite_client, run_until

TRYING = TransactionState.TRYING
PROCEEDING = TransactionState.PROCEEDING
COMPLETED = TransactionState.COMPLETED
TERMINATED = TransactionState.TERMINATED


class StartTests(SynchronousTestCase):
    """
    The transaction starts in Trying and sends the request once.
    """

    def test_trying(self) -> None:
        """start() sends the request and runs Timers E and F."""
        transaction, _, transport, _ = non_invite_client()
        self.assertIs(transaction.state, TRYING)
        transaction.start()
        self.assertEqual(transport.messages, [transaction.request])
        self.assertEqual(transaction.pending_timers, {"E", "F"})

    def test_start_twice(self) -> None:
        """A transaction starts once."""
        transaction, _, _, _ = non_invite_client()
        transaction.start()
        self.assertRaises(LocalProtocolError, transaction.start)

    def test_response_before_start(self) -> None:
        """A response before start() is a bug of the caller."""
        transaction, _, _, _ = non_invite_client()
        self.assertRaises(LocalProtocolError, transaction.receive_response, make_response(transaction.request, 200))

    def test_invite_and_ack_refused(self) -> None:
        """INVITE has its own machine, and ACK has no client transaction."""
        clock = Clock()
        for method in ("INVITE", "ACK"):
            self.assertRaises(
                LocalProtocolError,
                NonInviteClientTransaction,
                make_request(method),
                clock=clock,
                timers=TIMERS,
                reliable=False,
                transport=RecordingTransport(clock),
                user=RecordingUser(),
            )


class TimerEFTests(SynchronousTestCase):
    """
    Timer E doubles from T1 up to T2 in Trying and is T2 in Proceeding;
    Timer F times out at 64*T1 (RFC 3261 section 17.1.2.2).
    """

    def test_trying_schedule(self) -> None:
        """Resent at 0.5, 1.5, 3.5, 7.5, then every T2 = 4 s, until Timer F at 32 s."""
        transaction, clock, transport, user = non_invite_client()
        transaction.start()
        run_until(clock, 31.999)
        self.assertEqual(transport.resends, [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
        self.assertIs(transaction.state, TRYING)
        run_until(clock, 32)
        self.assertIs(transaction.state, TERMINATED)
        self.assertEqual(user.calls, [("timed_out", None, TERMINATED), ("terminated", None, TERMINATED)])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_small_t2(self) -> None:
        """The cap is T2 whatever its value."""
        transaction, clock, transport, _ = non_invite_client(timers=TimerValues(t1=0.5, t2=1.0))
        transaction.start()
        run_until(clock, 5)
        self.assertEqual(transport.resends, [0.5, 1.5, 2.5, 3.5, 4.5])

    def test_proceeding_schedule(self) -> None:
        """After a 1xx the pending Timer E still fires, then every T2."""
        transaction, clock, transport, _ = non_invite_client()
        transaction.start()
        run_until(clock, 0.7)
        transaction.receive_response(make_response(transaction.request, 100))
        self.assertIs(transaction.state, PROCEEDING)
        run_until(clock, 14)
        self.assertEqual(transport.resends, [0.5, 1.5, 5.5, 9.5, 13.5])

    def test_timer_f_in_proceeding(self) -> None:
        """Timer F still runs in Proceeding: 64*T1 after the request was sent."""
        transaction, clock, _, user = non_invite_client()
        transaction.start()
        transaction.receive_response(make_response(transaction.request, 100))
        run_until(clock, 31.999)
        self.assertIs(transaction.state, PROCEEDING)
        run_until(clock, 32)
        self.assertEqual(transaction.history, (TRYING, PROCEEDING, TERMINATED))
        self.assertEqual(user.names, ["response", "timed_out", "terminated"])

    def test_reliable(self) -> None:
        """Over a reliable transport there is no Timer E; Timer F still runs."""
        transaction, clock, transport, user = non_invite_client(reliable=True)
        transaction.start()
        self.assertEqual(transaction.pending_timers, {"F"})
        run_until(clock, 32)
        self.assertEqual(transport.resends, [])
        self.assertEqual(user.names, ["timed_out", "terminated"])


class ResponseTests(SynchronousTestCase):
    """
    Responses in Trying and Proceeding go to the TU; a final one moves to Completed.
    """

    def test_provisionals(self) -> None:
        """Every 1xx goes to the TU; the first moves Trying to Proceeding."""
        transaction, _, _, user = non_invite_client()
        transaction.start()
        transaction.receive_response(make_response(transaction.request, 100))
        transaction.receive_response(make_response(transaction.request, 100))
        self.assertEqual(user.calls, [("response", 100, PROCEEDING), ("response", 100, PROCEEDING)])

    def test_final_in_trying(self) -> None:
        """A final response in Trying goes to the TU and starts Timer K (T4)."""
        for status in (200, 302, 404, 503, 600):
            transaction, clock, transport, user = non_invite_client()
            transaction.start()
            run_until(clock, 2)
            transaction.receive_response(make_response(transaction.request, status))
            self.assertIs(transaction.state, COMPLETED)
            self.assertEqual(user.calls, [("response", status, COMPLETED)])
            self.assertEqual(transaction.pending_timers, {"K"})
            run_until(clock, 6.999)
            self.assertIs(transaction.state, COMPLETED)
            run_until(clock, 7)
            self.assertIs(transaction.state, TERMINATED)
            self.assertEqual(transport.resends, [0.5, 1.5])
            self.assertEqual(clock.getDelayedCalls(), [])

    def test_final_in_proceeding(self) -> None:
        """A final response in Proceeding moves to Completed."""
        transaction, _, _, _ = non_invite_client()
        transaction.start()
        transaction.receive_response(make_response(transaction.request, 100))
        transaction.receive_response(make_response(transaction.request, 200))
        self.assertEqual(transaction.history, (TRYING, PROCEEDING, COMPLETED))

    def test_completed_absorbs(self) -> None:
        """Retransmitted finals and late 1xx are absorbed in Completed; nothing is sent."""
        transaction, _, transport, user = non_invite_client()
        transaction.start()
        transaction.receive_response(make_response(transaction.request, 200))
        transaction.receive_response(make_response(transaction.request, 200))
        transaction.receive_response(make_response(transaction.request, 100))
        self.assertEqual(user.statuses, [200])
        self.assertEqual(len(transport.sent), 1)

    def test_reliable(self) -> None:
        """Over a reliable transport Timer K is zero: Completed is left at once."""
        transaction, clock, _, user = non_invite_client(reliable=True)
        transaction.start()
        transaction.receive_response(make_response(transaction.request, 200))
        self.assertEqual(transaction.history, (TRYING, COMPLETED, TERMINATED))
        self.assertEqual(user.names, ["response", "terminated"])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_custom_t4(self) -> None:
        """Timer K is T4."""
        transaction, clock, _, _ = non_invite_client(timers=TimerValues(t4=2.5))
        transaction.start()
        transaction.receive_response(make_response(transaction.request, 200))
        run_until(clock, 2.499)
        self.assertIs(transaction.state, COMPLETED)
        run_until(clock, 2.5)
        self.assertIs(transaction.state, TERMINATED)


class TransportErrorTests(SynchronousTestCase):
    """
    Transport errors end Trying and Proceeding (figure 6); Completed absorbs them.
    """

    def test_trying(self) -> None:
        """In Trying: transport_failed, terminated, no timer left."""
        transaction, clock, _, user = non_invite_client()
        transaction.start()
        transaction.transport_error()
        self.assertEqual(transaction.history, (TRYING, TERMINATED))
        self.assertEqual(user.names, ["transport_failed", "terminated"])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_proceeding(self) -> None:
        """In Proceeding: transport_failed, terminated."""
        transaction, clock, _, _ = non_invite_client()
        transaction.start()
        transaction.receive_response(make_response(transaction.request, 100))
        transaction.transport_error()
        self.assertEqual(transaction.history, (TRYING, PROCEEDING, TERMINATED))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_retransmission_fails(self) -> None:
        """A failure reported while retransmitting ends the transaction."""
        transaction, clock, transport, _ = non_invite_client()
        transaction.start()
        run_until(clock, 0.5)
        transaction.transport_error()
        self.assertIs(transaction.state, TERMINATED)
        run_until(clock, 100)
        self.assertEqual(transport.resends, [0.5])

    def test_failure_within_send(self) -> None:
        """A failure from within the first send leaves no timer behind."""
        transaction, clock, transport, user = non_invite_client()
        transport.fail_sends = True
        transaction.start()
        self.assertEqual(user.names, ["transport_failed", "terminated"])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_completed_absorbs(self) -> None:
        """In Completed the TU already has its answer: the error is absorbed."""
        transaction, _, _, user = non_invite_client()
        transaction.start()
        transaction.receive_response(make_response(transaction.request, 200))
        transaction.transport_error()
        self.assertIs(transaction.state, COMPLETED)
        self.assertEqual(user.names, ["response"])


class TerminatedTests(SynchronousTestCase):
    """
    Nothing is sent and no callback fires once Terminated.
    """

    def test_silent(self) -> None:
        """Responses, errors and time change nothing after Terminated."""
        transaction, clock, transport, user = non_invite_client()
        transaction.start()
        run_until(clock, 40)
        sent, calls = list(transport.sent), list(user.calls)
        transaction.receive_response(make_response(transaction.request, 200))
        transaction.transport_error()
        run_until(clock, 100)
        self.assertEqual((transport.sent, user.calls), (sent, calls))
        self.assertEqual(clock.getDelayedCalls(), [])
