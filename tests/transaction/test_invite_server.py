"""
Tests for L{sipstack.transaction.server.InviteServerTransaction}: every arc of
figure 7 of RFC 3261 as replaced by figure 5 of RFC 6026, and the Timer
G/H/I/L schedules.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipstack.config import TimerValues
from sipstack.errors import LocalProtocolError
from sipstack.message import Request, Response
from sipstack.transaction import InviteServerTransaction, TransactionState

from . import TIMERS, RecordingTransport, RecordingUser, invite_server, make_request, make_response, run_until

PROCEEDING = TransactionState.PROCEEDING
COMPLETED = TransactionState.COMPLETED
CONFIRMED = TransactionState.CONFIRMED
ACCEPTED = TransactionState.ACCEPTED
TERMINATED = TransactionState.TERMINATED


def _ack() -> Request:
    """The ACK of a non-2xx response to the INVITE (same branch, our To tag)."""
    return make_request("ACK", to_tag="8321234356")


class ProceedingTests(SynchronousTestCase):
    """
    The transaction starts in Proceeding; provisional responses keep it there.
    """

    def test_initial(self) -> None:
        """A new transaction is in Proceeding, with nothing sent and no timer."""
        transaction, clock, transport, _ = invite_server()
        self.assertIs(transaction.state, PROCEEDING)
        self.assertEqual(transport.sent, [])
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertIsNone(transaction.last_response)

    def test_not_invite(self) -> None:
        """Only an INVITE makes an INVITE server transaction."""
        clock = Clock()
        self.assertRaises(
            LocalProtocolError,
            InviteServerTransaction,
            make_request("BYE"),
            clock=clock,
            timers=TIMERS,
            reliable=False,
            transport=RecordingTransport(clock),
            user=RecordingUser(),
        )

    def test_provisional(self) -> None:
        """1xx from the TU is sent and the state stays Proceeding."""
        transaction, _, transport, _ = invite_server()
        ringing = make_response(transaction.request, 180)
        transaction.respond(ringing)
        transaction.respond(make_response(transaction.request, 183))
        self.assertIs(transaction.state, PROCEEDING)
        self.assertEqual([m.status for m in transport.messages if isinstance(m, Response)], [180, 183])

    def test_retransmitted_invite(self) -> None:
        """A retransmitted INVITE resends the latest provisional response."""
        transaction, _, transport, user = invite_server()
        transaction.respond(make_response(transaction.request, 180))
        transaction.receive_request(make_request("INVITE"))
        self.assertEqual([sent.kind for sent in transport.sent], ["send", "resend"])
        self.assertEqual(user.calls, [])

    def test_retransmission_before_any_response(self) -> None:
        """Before any response there is nothing to resend."""
        transaction, _, transport, _ = invite_server()
        transaction.receive_request(make_request("INVITE"))
        self.assertEqual(transport.sent, [])

    def test_ack_absorbed(self) -> None:
        """An ACK before a final response is absorbed."""
        transaction, _, _, user = invite_server()
        transaction.receive_request(_ack())
        self.assertIs(transaction.state, PROCEEDING)
        self.assertEqual(user.calls, [])

    def test_other_method(self) -> None:
        """A request other than INVITE or ACK does not belong here."""
        transaction, _, _, _ = invite_server()
        self.assertRaises(LocalProtocolError, transaction.receive_request, make_request("CANCEL"))


class TryingTests(SynchronousTestCase):
    """
    send_trying() sends a 100 (Trying) when the stack decides the TU is slow.
    """

    def test_trying(self) -> None:
        """The 100 is built from the INVITE, without a To tag, and becomes the latest response."""
        transaction, _, transport, _ = invite_server()
        self.assertTrue(transaction.send_trying())
        [trying] = transport.messages
        assert isinstance(trying, Response)
        self.assertEqual(trying.status, 100)
        self.assertIsNone(trying.to.tag)
        self.assertEqual(trying.cseq, transaction.request.cseq)
        self.assertIs(transaction.last_response, trying)
        transaction.receive_request(make_request("INVITE"))
        self.assertEqual(transport.sent[-1].kind, "resend")

    def test_only_first(self) -> None:
        """Nothing is sent once a response was sent, or outside Proceeding."""
        transaction, _, transport, _ = invite_server()
        transaction.respond(make_response(transaction.request, 180))
        self.assertFalse(transaction.send_trying())
        transaction.respond(make_response(transaction.request, 486))
        self.assertFalse(transaction.send_trying())
        self.assertEqual(len(transport.sent), 2)

    def test_not_after_termination(self) -> None:
        """A late send_trying() on a terminated transaction does nothing."""
        transaction, _, _, _ = invite_server(reliable=True)
        transaction.respond(make_response(transaction.request, 486))
        transaction.receive_request(_ack())
        self.assertFalse(transaction.send_trying())


class AcceptedTests(SynchronousTestCase):
    """
    RFC 6026: a 2xx moves to Accepted; the TU retransmits it through respond()
    and gets the ACK, until Timer L.
    """

    def test_accepted(self) -> None:
        """The 2xx is sent and Timer L runs."""
        transaction, _, _, _ = invite_server()
        transaction.respond(make_response(transaction.request, 200))
        self.assertIs(transaction.state, ACCEPTED)
        self.assertEqual(transaction.pending_timers, {"L"})

    def test_tu_retransmits(self) -> None:
        """The TU's 2xx retransmissions are sent; other responses are refused."""
        transaction, clock, transport, _ = invite_server()
        ok = make_response(transaction.request, 200)
        transaction.respond(ok)
        run_until(clock, 0.5)
        transaction.respond(ok)
        self.assertEqual([(sent.kind, sent.message) for sent in transport.sent], [("send", ok), ("send", ok)])
        self.assertRaises(LocalProtocolError, transaction.respond, make_response(transaction.request, 180))
        self.assertRaises(LocalProtocolError, transaction.respond, make_response(transaction.request, 486))
        self.assertIs(transaction.state, ACCEPTED)

    def test_invite_absorbed(self) -> None:
        """A retransmitted INVITE is absorbed: the TU retransmits the 2xx."""
        transaction, _, transport, user = invite_server()
        transaction.respond(make_response(transaction.request, 200))
        transaction.receive_request(make_request("INVITE"))
        self.assertEqual(len(transport.sent), 1)
        self.assertEqual(user.calls, [])

    def test_ack_to_tu(self) -> None:
        """Every ACK in Accepted goes to the TU; the state stays."""
        transaction, _, _, user = invite_server()
        transaction.respond(make_response(transaction.request, 200))
        transaction.receive_request(_ack())
        transaction.receive_request(_ack())
        self.assertEqual(user.calls, [("ack", "ACK", ACCEPTED), ("ack", "ACK", ACCEPTED)])

    def test_timer_l(self) -> None:
        """Timer L (64*T1) ends Accepted silently, over any transport."""
        for reliable in (False, True):
            transaction, clock, _, user = invite_server(reliable=reliable)
            run_until(clock, 1)
            transaction.respond(make_response(transaction.request, 200))
            run_until(clock, 32.999)
            self.assertIs(transaction.state, ACCEPTED)
            run_until(clock, 33)
            self.assertEqual(transaction.history, (PROCEEDING, ACCEPTED, TERMINATED))
            self.assertEqual(user.names, ["terminated"])
            self.assertEqual(clock.getDelayedCalls(), [])

    def test_transport_error(self) -> None:
        """A transport error in Accepted informs the TU and the state stays (RFC 6026)."""
        transaction, _, _, user = invite_server()
        transaction.respond(make_response(transaction.request, 200))
        transaction.transport_error()
        self.assertIs(transaction.state, ACCEPTED)
        self.assertEqual(user.calls, [("transport_failed", None, ACCEPTED)])


class CompletedTests(SynchronousTestCase):
    """
    A 300-699 response moves to Completed: Timer G retransmits it until the
    ACK, Timer H gives up.
    """

    def test_timer_g(self) -> None:
        """Resent at 0.5, 1.5, 3.5, 7.5, then every T2 (4 s), until Timer H at 32 s."""
        transaction, clock, transport, _ = invite_server()
        transaction.respond(make_response(transaction.request, 486))
        self.assertIs(transaction.state, COMPLETED)
        self.assertEqual(transaction.pending_timers, {"G", "H"})
        run_until(clock, 31.999)
        self.assertEqual(transport.resends, [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])

    def test_timer_g_from_entry(self) -> None:
        """Timer G counts from entering Completed, and caps at T2 whatever it is."""
        transaction, clock, transport, _ = invite_server(timers=TimerValues(t1=0.5, t2=1.0))
        run_until(clock, 10)
        transaction.respond(make_response(transaction.request, 500))
        run_until(clock, 14)
        self.assertEqual(transport.resends, [10.5, 11.5, 12.5, 13.5])

    def test_timer_h(self) -> None:
        """Timer H fires at exactly 64*T1: the TU hears timed_out, then terminated."""
        transaction, clock, _, user = invite_server()
        run_until(clock, 2)
        transaction.respond(make_response(transaction.request, 486))
        run_until(clock, 33.999)
        self.assertIs(transaction.state, COMPLETED)
        run_until(clock, 34)
        self.assertEqual(transaction.history, (PROCEEDING, COMPLETED, TERMINATED))
        self.assertEqual(user.calls, [("timed_out", None, TERMINATED), ("terminated", None, TERMINATED)])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_retransmitted_invite(self) -> None:
        """A retransmitted INVITE resends the final response."""
        transaction, _, transport, _ = invite_server()
        final = make_response(transaction.request, 486)
        transaction.respond(final)
        transaction.receive_request(make_request("INVITE"))
        self.assertEqual([sent.kind for sent in transport.sent], ["send", "resend"])
        self.assertIs(transaction.last_response, final)

    def test_respond_refused(self) -> None:
        """No response may follow a final one."""
        transaction, _, transport, _ = invite_server()
        transaction.respond(make_response(transaction.request, 486))
        for status in (180, 200, 486):
            self.assertRaises(LocalProtocolError, transaction.respond, make_response(transaction.request, status))
        self.assertEqual(len(transport.sent), 1)

    def test_reliable(self) -> None:
        """Over a reliable transport there is no Timer G, but Timer H runs."""
        transaction, clock, transport, user = invite_server(reliable=True)
        transaction.respond(make_response(transaction.request, 486))
        self.assertEqual(transaction.pending_timers, {"H"})
        run_until(clock, 32)
        self.assertEqual(transport.resends, [])
        self.assertEqual(user.names, ["timed_out", "terminated"])

    def test_transport_error(self) -> None:
        """A transport error in Completed informs the TU; the state stays (RFC 6026 figure 5)."""
        transaction, _, _, user = invite_server()
        transaction.respond(make_response(transaction.request, 486))
        transaction.transport_error()
        self.assertIs(transaction.state, COMPLETED)
        self.assertEqual(user.calls, [("transport_failed", None, COMPLETED)])
        transaction.receive_request(_ack())
        self.assertIs(transaction.state, CONFIRMED)


class ConfirmedTests(SynchronousTestCase):
    """
    The ACK moves Completed to Confirmed, which absorbs ACK retransmissions
    until Timer I.
    """

    def test_confirmed(self) -> None:
        """The ACK stops G and H and starts I (T4); the TU is not told."""
        transaction, clock, transport, user = invite_server()
        transaction.respond(make_response(transaction.request, 486))
        run_until(clock, 2)
        transaction.receive_request(_ack())
        self.assertIs(transaction.state, CONFIRMED)
        self.assertEqual(transaction.pending_timers, {"I"})
        self.assertEqual(user.calls, [])
        run_until(clock, 6.999)
        self.assertIs(transaction.state, CONFIRMED)
        run_until(clock, 7)
        self.assertEqual(transaction.history, (PROCEEDING, COMPLETED, CONFIRMED, TERMINATED))
        self.assertEqual(transport.resends, [0.5, 1.5])
        self.assertEqual(user.names, ["terminated"])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_absorbs(self) -> None:
        """ACK and INVITE retransmissions and transport errors are absorbed in Confirmed."""
        transaction, _, transport, user = invite_server()
        transaction.respond(make_response(transaction.request, 486))
        transaction.receive_request(_ack())
        transaction.receive_request(_ack())
        transaction.receive_request(make_request("INVITE"))
        transaction.transport_error()
        self.assertEqual(len(transport.sent), 1)
        self.assertEqual(user.calls, [])
        self.assertRaises(LocalProtocolError, transaction.respond, make_response(transaction.request, 200))

    def test_reliable(self) -> None:
        """Over a reliable transport Timer I is zero: the ACK terminates at once."""
        transaction, clock, _, _ = invite_server(reliable=True)
        transaction.respond(make_response(transaction.request, 486))
        transaction.receive_request(_ack())
        self.assertEqual(transaction.history, (PROCEEDING, COMPLETED, CONFIRMED, TERMINATED))
        self.assertEqual(clock.getDelayedCalls(), [])


class TransportErrorTests(SynchronousTestCase):
    """
    Transport errors inform the TU without ending the transaction (RFC 6026 figure 5).
    """

    def test_proceeding(self) -> None:
        """In Proceeding the TU is told and may still send its final response."""
        transaction, _, _, user = invite_server()
        transaction.respond(make_response(transaction.request, 180))
        transaction.transport_error()
        self.assertIs(transaction.state, PROCEEDING)
        transaction.respond(make_response(transaction.request, 200))
        self.assertEqual(transaction.history, (PROCEEDING, ACCEPTED))
        self.assertEqual(user.names, ["transport_failed"])

    def test_failure_within_send(self) -> None:
        """A failure reported from within send() still leaves the machine consistent."""
        transaction, _, transport, user = invite_server()
        transport.fail_sends = True
        transaction.respond(make_response(transaction.request, 486))
        self.assertEqual(user.calls, [("transport_failed", None, COMPLETED)])
        self.assertEqual(transaction.pending_timers, {"G", "H"})


class TerminatedTests(SynchronousTestCase):
    """
    Nothing is sent and no callback fires once Terminated; the TU may not respond.
    """

    def test_silent(self) -> None:
        """Requests, errors and time change nothing; respond() raises."""
        transaction, clock, transport, user = invite_server()
        transaction.respond(make_response(transaction.request, 200))
        run_until(clock, 40)
        sent, calls = list(transport.sent), list(user.calls)
        transaction.receive_request(make_request("INVITE"))
        transaction.receive_request(_ack())
        transaction.transport_error()
        self.assertRaises(LocalProtocolError, transaction.respond, make_response(transaction.request, 200))
        run_until(clock, 100)
        self.assertEqual((transport.sent, user.calls), (sent, calls))
        self.assertEqual(clock.getDelayedCalls(), [])
