"""
Tests for L{sipstack.transaction.client.InviteClientTransaction}: every arc of
figure 5 of RFC 3261 as replaced by RFC 6026, the Timer A/B/D/M schedules,
and the ACK of section 17.1.1.3.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipstack.config import TimerValues
from sipstack.errors import LocalProtocolError
from sipstack.message import Request, parse_datagram, serialize
from sipstack.transaction import InviteClientTransaction, TransactionState, build_non_2xx_ack

from . import TIMERS, RecordingTransport, RecordingUser, invite_client, make_request, make_response, run_until

CALLING = TransactionState.CALLING
PROCEEDING = TransactionState.PROCEEDING
COMPLETED = TransactionState.COMPLETED
ACCEPTED = TransactionState.ACCEPTED
TERMINATED = TransactionState.TERMINATED


class StartTests(SynchronousTestCase):
    """
    The transaction starts in Calling and sends the INVITE once.
    """

    def test_calling(self) -> None:
        """start() sends the INVITE and runs Timers A and B."""
        transaction, _, transport, user = invite_client()
        self.assertIs(transaction.state, CALLING)
        transaction.start()
        self.assertEqual(transport.messages, [transaction.request])
        self.assertEqual(transaction.pending_timers, {"A", "B"})
        self.assertEqual(user.calls, [])

    def test_start_twice(self) -> None:
        """A transaction starts once."""
        transaction, _, transport, _ = invite_client()
        transaction.start()
        self.assertRaises(LocalProtocolError, transaction.start)
        self.assertEqual(len(transport.sent), 1)

    def test_response_before_start(self) -> None:
        """A response before start() is a bug of the caller."""
        transaction, _, _, _ = invite_client()
        self.assertRaises(LocalProtocolError, transaction.receive_response, make_response(transaction.request, 180))

    def test_transport_error_before_start(self) -> None:
        """A transport error before start() is a bug of the caller."""
        transaction, _, _, _ = invite_client()
        self.assertRaises(LocalProtocolError, transaction.transport_error)

    def test_not_invite(self) -> None:
        """Only an INVITE makes an INVITE client transaction."""
        clock = Clock()
        self.assertRaises(
            LocalProtocolError,
            InviteClientTransaction,
            make_request("OPTIONS"),
            clock=clock,
            timers=TIMERS,
            reliable=False,
            transport=RecordingTransport(clock),
            user=RecordingUser(),
        )

    def test_repr(self) -> None:
        """The repr names the method and state."""
        transaction, _, _, _ = invite_client()
        self.assertEqual(repr(transaction), "<InviteClientTransaction INVITE Calling>")


class TimerABTests(SynchronousTestCase):
    """
    Timer A retransmits at T1, 2T1, 4T1... (no cap) and Timer B times out at
    64*T1 (RFC 3261 section 17.1.1.2).
    """

    def test_retransmissions(self) -> None:
        """The INVITE is resent at 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 s; intervals double past T2."""
        transaction, clock, transport, _ = invite_client()
        transaction.start()
        run_until(clock, 31.9)
        self.assertEqual(transport.resends, [0.5, 1.5, 3.5, 7.5, 15.5, 31.5])

    def test_timer_b(self) -> None:
        """Timer B fires at exactly 64*T1: the TU hears timed_out, then terminated."""
        transaction, clock, _, user = invite_client()
        transaction.start()
        clock.advance(31.999)
        self.assertIs(transaction.state, CALLING)
        self.assertEqual(user.calls, [])
        clock.advance(0.001)
        self.assertIs(transaction.state, TERMINATED)
        self.assertEqual(user.calls, [("timed_out", None, TERMINATED), ("terminated", None, TERMINATED)])
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(transaction.history, (CALLING, TERMINATED))

    def test_timer_b_follows_t1(self) -> None:
        """Timer B is 64*T1 for any T1."""
        transaction, clock, _, _ = invite_client(timers=TimerValues(t1=0.125, t2=4.0))
        transaction.start()
        run_until(clock, 7.999)
        self.assertIs(transaction.state, CALLING)
        run_until(clock, 8)
        self.assertIs(transaction.state, TERMINATED)

    def test_reliable(self) -> None:
        """Over a reliable transport there is no Timer A, but Timer B still runs."""
        transaction, clock, transport, user = invite_client(reliable=True)
        transaction.start()
        self.assertEqual(transaction.pending_timers, {"B"})
        clock.advance(32)
        self.assertEqual(transport.resends, [])
        self.assertEqual(user.names, ["timed_out", "terminated"])


class ProceedingTests(SynchronousTestCase):
    """
    A provisional response moves Calling to Proceeding and stops Timers A and B.
    """

    def test_provisional(self) -> None:
        """1xx goes to the TU; retransmissions stop; no timeout in Proceeding."""
        transaction, clock, transport, _ = invite_client()
        transaction.start()
        run_until(clock, 0.6)
        transaction.receive_response(make_response(transaction.request, 100))
        self.assertIs(transaction.state, PROCEEDING)
        self.assertEqual(transaction.pending_timers, frozenset())
        self.assertEqual(clock.getDelayedCalls(), [])
        clock.advance(100)
        self.assertEqual(transport.resends, [0.5])
        self.assertIs(transaction.state, PROCEEDING)

    def test_more_provisionals(self) -> None:
        """Every further 1xx goes to the TU."""
        transaction, _, _, user = invite_client()
        transaction.start()
        for status in (100, 180, 183):
            transaction.receive_response(make_response(transaction.request, status))
        self.assertEqual(user.statuses, [100, 180, 183])
        self.assertEqual(user.calls[-1][2], PROCEEDING)

    def test_accepted_from_proceeding(self) -> None:
        """A 2xx in Proceeding moves to Accepted."""
        transaction, _, _, _ = invite_client()
        transaction.start()
        transaction.receive_response(make_response(transaction.request, 180))
        transaction.receive_response(make_response(transaction.request, 200))
        self.assertEqual(transaction.history, (CALLING, PROCEEDING, ACCEPTED))

    def test_completed_from_proceeding(self) -> None:
        """A 300-699 in Proceeding moves to Completed and is ACKed."""
        transaction, _, transport, _ = invite_client()
        transaction.start()
        transaction.receive_response(make_response(transaction.request, 180))
        transaction.receive_response(make_response(transaction.request, 603))
        self.assertEqual(transaction.history, (CALLING, PROCEEDING, COMPLETED))
        self.assertEqual([m.method for m in transport.messages if isinstance(m, Request)], ["INVITE", "ACK"])


class AcceptedTests(SynchronousTestCase):
    """
    RFC 6026: a 2xx moves to Accepted, where every 2xx goes to the TU until
    Timer M; the transaction never ACKs a 2xx.
    """

    def test_accepted(self) -> None:
        """The 2xx goes to the TU; Timer M runs; nothing is sent."""
        transaction, _, transport, user = invite_client()
        transaction.start()
        transaction.receive_response(make_response(transaction.request, 200))
        self.assertIs(transaction.state, ACCEPTED)
        self.assertEqual(user.calls, [("response", 200, ACCEPTED)])
        self.assertEqual(transaction.pending_timers, {"M"})
        self.assertEqual(transport.messages, [transaction.request])

    def test_retransmissions_and_forks(self) -> None:
        """Every later 2xx (retransmitted or from another fork) goes to the TU, and is not ACKed."""
        transaction, _, transport, user = invite_client()
        transaction.start()
        transaction.receive_response(make_response(transaction.request, 200))
        transaction.receive_response(make_response(transaction.request, 200))
        transaction.receive_response(make_response(transaction.request, 202, to_tag="fork2"))
        self.assertEqual(user.statuses, [200, 200, 202])
        self.assertEqual(len(transport.sent), 1)

    def test_others_absorbed(self) -> None:
        """1xx and 300-699 responses are absorbed in Accepted."""
        transaction, _, _, user = invite_client()
        transaction.start()
        transaction.receive_response(make_response(transaction.request, 200))
        transaction.receive_response(make_response(transaction.request, 180))
        transaction.receive_response(make_response(transaction.request, 486))
        self.assertEqual(user.statuses, [200])
        self.assertIs(transaction.state, ACCEPTED)

    def test_timer_m(self) -> None:
        """Timer M (64*T1) ends Accepted silently, for reliable transports too."""
        for reliable in (False, True):
            transaction, clock, _, user = invite_client(reliable=reliable)
            transaction.start()
            run_until(clock, 1)
            transaction.receive_response(make_response(transaction.request, 200))
            run_until(clock, 32.999)
            self.assertIs(transaction.state, ACCEPTED)
            run_until(clock, 33)
            self.assertIs(transaction.state, TERMINATED)
            self.assertEqual(user.names, ["response", "terminated"])
            self.assertEqual(clock.getDelayedCalls(), [])

    def test_transport_error_absorbed(self) -> None:
        """A transport error in Accepted is absorbed: nothing is in flight."""
        transaction, _, _, user = invite_client()
        transaction.start()
        transaction.receive_response(make_response(transaction.request, 200))
        transaction.transport_error()
        self.assertIs(transaction.state, ACCEPTED)
        self.assertEqual(user.names, ["response"])


class CompletedTests(SynchronousTestCase):
    """
    A 300-699 response moves to Completed: the TU gets it once, the ACK is
    sent, and resent for each retransmission until Timer D.
    """

    def test_completed(self) -> None:
        """The response goes to the TU, then the ACK is sent; Timer D runs."""
        transaction, clock, transport, user = invite_client()
        transaction.start()
        clock.advance(0.7)
        transaction.receive_response(make_response(transaction.request, 486))
        self.assertIs(transaction.state, COMPLETED)
        self.assertEqual(user.calls, [("response", 486, COMPLETED)])
        self.assertEqual(transaction.pending_timers, {"D"})
        ack = transport.messages[-1]
        assert isinstance(ack, Request)
        self.assertEqual(ack.method, "ACK")

    def test_retransmitted_final(self) -> None:
        """Each retransmitted final response resends the ACK and is not passed up."""
        transaction, clock, transport, user = invite_client()
        transaction.start()
        response = make_response(transaction.request, 486)
        transaction.receive_response(response)
        clock.advance(1)
        transaction.receive_response(response)
        clock.advance(2)
        transaction.receive_response(response)
        self.assertEqual([(s.kind, s.time) for s in transport.sent[2:]], [("resend", 1.0), ("resend", 3.0)])
        self.assertEqual(user.statuses, [486])

    def test_other_responses_absorbed(self) -> None:
        """1xx and 2xx responses are absorbed in Completed."""
        transaction, _, transport, user = invite_client()
        transaction.start()
        transaction.receive_response(make_response(transaction.request, 486))
        transaction.receive_response(make_response(transaction.request, 180))
        transaction.receive_response(make_response(transaction.request, 200))
        self.assertEqual(user.statuses, [486])
        self.assertEqual(len(transport.sent), 2)

    def test_timer_d(self) -> None:
        """Timer D is 32 s over UDP (at least 64*T1), then Terminated."""
        transaction, clock, _, _ = invite_client()
        transaction.start()
        transaction.receive_response(make_response(transaction.request, 486))
        clock.advance(31.999)
        self.assertIs(transaction.state, COMPLETED)
        clock.advance(0.001)
        self.assertIs(transaction.state, TERMINATED)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_timer_d_minimum(self) -> None:
        """With a small T1 Timer D stays 32 s; with a large one it is 64*T1."""
        for t1, expected in ((0.1, 32.0), (1.0, 64.0)):
            transaction, clock, _, _ = invite_client(timers=TimerValues(t1=t1, t2=4.0))
            transaction.start()
            transaction.receive_response(make_response(transaction.request, 486))
            run_until(clock, expected - 0.001)
            self.assertIs(transaction.state, COMPLETED)
            run_until(clock, expected)
            self.assertIs(transaction.state, TERMINATED)

    def test_reliable(self) -> None:
        """Over a reliable transport Timer D is zero: Completed is left at once."""
        transaction, clock, transport, user = invite_client(reliable=True)
        transaction.start()
        transaction.receive_response(make_response(transaction.request, 486))
        self.assertEqual(transaction.history, (CALLING, COMPLETED, TERMINATED))
        self.assertEqual(user.names, ["response", "terminated"])
        self.assertEqual([m.method for m in transport.messages if isinstance(m, Request)], ["INVITE", "ACK"])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_ack_fails(self) -> None:
        """An ACK that cannot be sent: the TU got the response, then transport_failed, then terminated."""
        transaction, clock, transport, user = invite_client()
        transaction.start()
        transport.fail_sends = True
        transaction.receive_response(make_response(transaction.request, 486))
        self.assertEqual(user.names, ["response", "transport_failed", "terminated"])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_transport_error(self) -> None:
        """A transport error in Completed informs the TU and terminates (figure 5)."""
        transaction, clock, _, user = invite_client()
        transaction.start()
        transaction.receive_response(make_response(transaction.request, 486))
        transaction.transport_error()
        self.assertEqual(transaction.history, (CALLING, COMPLETED, TERMINATED))
        self.assertEqual(user.names, ["response", "transport_failed", "terminated"])
        self.assertEqual(clock.getDelayedCalls(), [])


class AckTests(SynchronousTestCase):
    """
    The ACK of a 300-699 response (RFC 3261 section 17.1.1.3).
    """

    def _ack(self) -> tuple[Request, Request]:
        invite = make_request(
            "INVITE",
            routes=("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>, <sip:p3.example.com;lr>"),
            extra="Content-Type: application/sdp\r\nSubject: lunch\r\n",
        )
        return invite, build_non_2xx_ack(invite, make_response(invite, 404, to_tag="dest-tag"))

    def test_fields(self) -> None:
        """Same Request-URI, Call-ID and From; the To of the response; CSeq number with ACK."""
        invite, ack = self._ack()
        self.assertEqual(ack.method, "ACK")
        self.assertEqual(ack.uri, invite.uri)
        self.assertEqual(ack.call_id, invite.call_id)
        self.assertEqual(ack.headers.get("From"), invite.headers.get("From"))
        self.assertEqual(ack.to.tag, "dest-tag")
        self.assertEqual(ack.to.uri, invite.to.uri)
        self.assertEqual((ack.cseq.number, ack.cseq.method), (314159, "ACK"))

    def test_single_via(self) -> None:
        """Exactly one Via: the INVITE's top one, branch included."""
        invite, ack = self._ack()
        self.assertEqual(ack.vias, [invite.top_via])
        self.assertEqual(ack.top_via.branch, invite.top_via.branch)

    def test_routes(self) -> None:
        """The INVITE's Route headers are copied, in order."""
        invite, ack = self._ack()
        self.assertEqual(ack.routes, invite.routes)
        self.assertEqual(len(ack.routes), 3)

    def test_no_body(self) -> None:
        """No body, no Content-Type, and other INVITE headers are not copied."""
        _, ack = self._ack()
        self.assertEqual(ack.body, b"")
        self.assertEqual(ack.content_length, 0)
        self.assertNotIn("Content-Type", ack.headers)
        self.assertNotIn("Subject", ack.headers)
        self.assertEqual(ack.max_forwards, 69)

    def test_wire(self) -> None:
        """The ACK serializes and parses back to itself."""
        _, ack = self._ack()
        self.assertEqual(parse_datagram(serialize(ack)), ack)

    def test_transaction_sends_it(self) -> None:
        """The transaction sends exactly this ACK."""
        transaction, _, transport, _ = invite_client()
        transaction.start()
        response = make_response(transaction.request, 404, to_tag="dest-tag")
        transaction.receive_response(response)
        self.assertEqual(transport.messages[-1], build_non_2xx_ack(transaction.request, response))


class TransportErrorTests(SynchronousTestCase):
    """
    Transport errors end the transaction where figure 5 says so.
    """

    def test_calling(self) -> None:
        """In Calling: transport_failed, then terminated; no timer left."""
        transaction, clock, _, user = invite_client()
        transaction.start()
        clock.advance(1)
        transaction.transport_error()
        self.assertEqual(transaction.history, (CALLING, TERMINATED))
        self.assertEqual(user.calls, [("transport_failed", None, TERMINATED), ("terminated", None, TERMINATED)])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_failure_within_send(self) -> None:
        """A failure reported from within the first send leaves no timer behind."""
        transaction, clock, transport, user = invite_client()
        transport.fail_sends = True
        transaction.start()
        self.assertIs(transaction.state, TERMINATED)
        self.assertEqual(user.names, ["transport_failed", "terminated"])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_proceeding_absorbed(self) -> None:
        """In Proceeding the error is absorbed: the response may still come on a new connection."""
        transaction, _, _, user = invite_client()
        transaction.start()
        transaction.receive_response(make_response(transaction.request, 180))
        transaction.transport_error()
        self.assertIs(transaction.state, PROCEEDING)
        self.assertEqual(user.names, ["response"])


class TerminatedTests(SynchronousTestCase):
    """
    Nothing is sent and no callback fires once Terminated.
    """

    def test_silent(self) -> None:
        """Responses, transport errors and time are all absorbed after Terminated."""
        transaction, clock, transport, user = invite_client()
        transaction.start()
        transaction.receive_response(make_response(transaction.request, 486))
        clock.advance(32)
        sent = list(transport.sent)
        calls = list(user.calls)
        for status in (180, 200, 486):
            transaction.receive_response(make_response(transaction.request, status))
        transaction.transport_error()
        clock.advance(100)
        self.assertEqual(transport.sent, sent)
        self.assertEqual(user.calls, calls)
        self.assertIs(transaction.state, TERMINATED)
        self.assertEqual(clock.getDelayedCalls(), [])
