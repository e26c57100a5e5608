"""
Tests for L{sipstack.stack.SIPStack} over real loopback sockets: two stacks
place and end calls over UDP, TCP and TLS, survive lost datagrams by
retransmission, cancel calls, time out, and shut down cleanly.

Timers are shortened (T1 = 50 ms) so that Timer B fires after 3.2 s.
"""

from __future__ import annotations

import gc
import os
import sys
import weakref
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from sipstack.dialog import build_request
from sipstack.errors import LocalProtocolError
from sipstack.hop import CLEARTEXT, Peer, SecurityState, TransportKind
from sipstack.message import Request, Response
from sipstack.stack import IncomingRequest, RequestResult, SIPStack
from sipstack.testing.certs import CertificateAuthority
from tests.stack import Callee, lossy, make_stack, record_requests
from tests.transport._helpers import reactor, sleep, wait_for


class _CallTests:
    """
    A call from stack A to stack B over one transport.
    """

    transport: TransportKind
    scheme = "sip"

    async def stacks(self, callee: Callee) -> tuple[SIPStack, SIPStack, Peer]:
        testcase: Any = self
        options = ""
        kwargs: dict[str, Any] = {}
        if self.transport is TransportKind.TLS:
            ca = CertificateAuthority.generate()
            issued = ca.issue("localhost", dns=["localhost"], sip_uris=["sip:localhost"])
            directory = Path(testcase.mktemp())
            directory.mkdir(parents=True)
            (directory / "cert.pem").write_bytes(issued.fullchain_pem)
            (directory / "key.pem").write_bytes(issued.key_pem)
            options = f":certKey={directory / 'cert.pem'}:privateKey={directory / 'key.pem'}"
            kwargs["trust_root"] = ca.cert_pem
        kind = self.transport.value.lower()
        a = make_stack(testcase, **kwargs)
        b = make_stack(testcase, **kwargs)
        await a.listen(f"{kind}:0:interface=127.0.0.1{options}")
        peer = await b.listen(f"{kind}:0:interface=127.0.0.1{options}")
        b.on_request(callee)
        return a, b, peer

    def invite(self, a: SIPStack, peer: Peer) -> Request:
        if self.transport is TransportKind.TLS:
            uri = f"sips:bob@localhost:{peer.port}"
        elif self.transport is TransportKind.TCP:
            uri = f"sip:bob@{peer};transport=tcp"
        else:
            uri = f"sip:bob@{peer}"
        return build_request(
            "INVITE",
            uri,
            from_="<sip:alice@example.com>",
            to="<sip:bob@example.com>",
            contact=a.contact(self.transport),
        )

    async def test_call(self) -> None:
        """
        INVITE / 180 / 200 / ACK, then BYE / 200: the dialog built from the
        2xx addresses the callee's Contact, the ACK reaches the callee, and
        the result carries the hop's security state.
        """
        testcase: Any = self
        callee = Callee()
        a, _, peer = await self.stacks(callee)
        provisional: list[int] = []
        result = await a.request(self.invite(a, peer), on_provisional=lambda r: provisional.append(r.status))
        testcase.assertEqual(result.status, 200)
        testcase.assertIsNone(result.synthesized)
        testcase.assertIn(180, provisional)
        assert result.dialog is not None and result.security is not None
        if self.transport is TransportKind.TLS:
            testcase.assertEqual(result.security.state, SecurityState.TLS_AUTHENTICATED)
            testcase.assertTrue(result.dialog.secure)
        else:
            testcase.assertEqual(result.security, CLEARTEXT)
        ack = await callee.of("INVITE")[0].acked
        assert ack is not None
        testcase.assertEqual(ack.method, "ACK")
        testcase.assertEqual(ack.cseq.number, result.request.cseq.number)
        bye = await a.request(result.dialog.create_request("BYE"))
        testcase.assertEqual(bye.status, 200)
        testcase.assertEqual(len(callee.of("BYE")), 1)
        testcase.assertEqual(callee.of("BYE")[0].request.to.tag, result.response.to.tag)

    async def test_cancel_before_answer(self) -> None:
        """
        A CANCEL after the 180 gets 200, and the INVITE ends with 487; the
        callee sees the cancellation, and its late 200 goes nowhere.
        """
        testcase: Any = self
        callee = Callee(delay=None)
        a, _, peer = await self.stacks(callee)
        invite = self.invite(a, peer)
        ringing: Deferred[None] = Deferred()
        pending = a.request(invite, on_provisional=lambda r: ringing.callback(None) if not ringing.called else None)
        await ringing
        cancelled = await a.cancel(invite)
        assert cancelled is not None
        testcase.assertEqual(cancelled.status, 200)
        result = await pending
        testcase.assertEqual(result.status, 487)
        testcase.assertIsNone(result.dialog)
        testcase.assertTrue(callee.of("INVITE")[0].cancelled.called)

    async def test_cancel_after_answer(self) -> None:
        """
        C{cancel()} after the 200 sends nothing (RFC 3261 section 9.1: the
        CANCEL would be a no-op) and fires with L{None}; the call stands and
        can be hung up.
        """
        testcase: Any = self
        callee = Callee()
        a, _, peer = await self.stacks(callee)
        invite = self.invite(a, peer)
        result = await a.request(invite)
        testcase.assertEqual(result.status, 200)
        sent = record_requests(a)
        cancelled = await a.cancel(invite)
        testcase.assertIsNone(cancelled)
        testcase.assertEqual([request.method for request in sent], [])
        testcase.assertFalse(callee.of("INVITE")[0].cancelled.called)
        assert result.dialog is not None
        testcase.assertEqual((await a.request(result.dialog.create_request("BYE"))).status, 200)


class UDPCallTests(_CallTests, TestCase):
    transport = TransportKind.UDP


class TCPCallTests(_CallTests, TestCase):
    transport = TransportKind.TCP


class TLSCallTests(_CallTests, TestCase):
    transport = TransportKind.TLS


class UDPLossTests(TestCase):
    """
    Retransmissions over UDP recover lost datagrams.
    """

    async def test_lost_first_transmissions(self) -> None:
        """
        With the first transmission of every datagram dropped on both sides
        (INVITE, 200, ACK, BYE, its 200), the call still completes: Timer A
        resends the INVITE, the callee resends its 2xx until the ACK, the
        caller resends its ACK for the repeated 2xx, Timer E resends the BYE.
        """
        callee = Callee()
        a, b = make_stack(self), make_stack(self)
        await a.listen("udp:0:interface=127.0.0.1")
        peer = await b.listen("udp:0:interface=127.0.0.1")
        b.on_request(callee)
        dropped_a, dropped_b = lossy(a), lossy(b)
        invite = build_request(
            "INVITE", f"sip:bob@{peer}", from_="<sip:a@example.com>", to="<sip:b@example.com>", contact=a.contact()
        )
        result = await a.request(invite)
        self.assertEqual(result.status, 200)
        assert result.dialog is not None
        self.assertIsNotNone(await callee.of("INVITE")[0].acked)
        bye = await a.request(result.dialog.create_request("BYE"))
        self.assertEqual(bye.status, 200)
        self.assertEqual(len(callee.of("INVITE")), 1)
        self.assertEqual(len(callee.of("BYE")), 1)
        starts = sorted({data.split(b" ", 1)[0] for data in dropped_a + dropped_b})
        self.assertEqual(starts, [b"ACK", b"BYE", b"INVITE", b"SIP/2.0"])


class FailureTests(TestCase):
    """
    Failures become responses the application can tell apart.
    """

    async def test_timeout(self) -> None:
        """
        A server that never answers gives a synthesized 408 after Timer B
        (64*T1 = 3.2 s); the callee got 100 Trying sent for it meanwhile.
        """
        callee = Callee(delay=None)
        a, b = make_stack(self), make_stack(self)
        await a.listen("udp:0:interface=127.0.0.1")
        peer = await b.listen("udp:0:interface=127.0.0.1")

        def silent(incoming: IncomingRequest) -> Deferred[Response | None]:
            callee.requests.append(incoming)
            return Deferred()

        b.on_request(silent)
        # The callee stays silent: drop its 100 Trying too.
        for protocol in b._layer._udp:
            protocol.send = lambda data, peer: None  # type: ignore[method-assign]  # a deaf callee
        started = reactor.seconds()
        request = build_request("OPTIONS", f"sip:bob@{peer}", from_="<sip:a@example.com>", to="<sip:b@example.com>")
        result = await a.request(request)
        self.assertEqual(result.status, 408)
        self.assertEqual(result.synthesized, "timeout")
        self.assertGreaterEqual(reactor.seconds() - started, 64 * 0.05 - 0.01)

    async def test_transport_error(self) -> None:
        """
        A TCP destination nobody listens on gives a synthesized 503, marked
        C{"transport"}.
        """
        a = make_stack(self)
        await a.listen("udp:0:interface=127.0.0.1")
        probe = make_stack(self)
        closed = await probe.listen("tcp:0:interface=127.0.0.1")
        await probe.close(0.0)
        request = build_request(
            "OPTIONS", f"sip:bob@{closed};transport=tcp", from_="<sip:a@example.com>", to="<sip:b@example.com>"
        )
        result = await a.request(request)
        self.assertEqual(result.status, 503)
        self.assertEqual(result.synthesized, "transport")

    async def test_trying_for_slow_invite(self) -> None:
        """An INVITE whose handler takes longer than 200 ms gets 100 Trying first."""
        callee = Callee(delay=0.4)
        a, b = make_stack(self), make_stack(self)
        await a.listen("udp:0:interface=127.0.0.1")
        peer = await b.listen("udp:0:interface=127.0.0.1")

        def slow(incoming: IncomingRequest) -> Response | Deferred[Response | None] | None:
            callee.requests.append(incoming)
            answer: Deferred[Response | None] = Deferred()
            reactor.callLater(0.4, answer.callback, incoming.response(486))
            return answer

        b.on_request(slow)
        invite = build_request(
            "INVITE", f"sip:bob@{peer}", from_="<sip:a@example.com>", to="<sip:b@example.com>", contact=a.contact()
        )
        result = await a.request(invite)
        self.assertEqual(result.status, 486)
        self.assertEqual([response.status for response in result.provisional], [100])


class AcknowledgementTests(TestCase):
    """
    The 2xx to an INVITE and its ACK, which live outside the INVITE
    transactions (RFC 3261 sections 13.2.2.4 and 13.3.1.4; RFC 6026).
    """

    async def test_2xx_retransmitted_over_tcp(self) -> None:
        """
        The callee passes its 2xx to the transport again and again until the
        ACK comes, over TCP too: "independent of whatever transport
        protocols are used" (RFC 3261 section 13.3.1.4).
        """
        callee = Callee()
        a, b = make_stack(self), make_stack(self)
        await a.listen("tcp:0:interface=127.0.0.1")
        peer = await b.listen("tcp:0:interface=127.0.0.1")
        b.on_request(callee)
        statuses: list[int] = []
        original = b._layer.send_response_now

        def counting(response: Response, flow: Any) -> Any:
            sent = original(response, flow)
            if sent is not None:
                statuses.append(response.status)
            return sent

        b._layer.send_response_now = counting  # type: ignore[method-assign]  # counts what the callee sends
        invite = build_request(
            "INVITE",
            f"sip:bob@{peer};transport=tcp",
            from_="<sip:a@example.com>",
            to="<sip:b@example.com>",
            contact=a.contact(TransportKind.TCP),
        )
        result = await a.request(invite, auto_ack=False)
        assert result.dialog is not None
        # T1 = 50 ms: the 2xx goes again at 50, 150 and 350 ms.
        await wait_for(lambda: statuses.count(200) >= 3, "the 2xx retransmissions")
        await a.send_ack(result.dialog)
        self.assertIsNotNone(await callee.of("INVITE")[0].acked)

    async def test_application_ack_resent(self) -> None:
        """
        With C{auto_ack=False}, the ACK the application sent with
        C{send_ack} is sent again for each retransmission of the 2xx, so a
        lost ACK is recovered (RFC 3261 section 13.2.2.4: an ACK for each
        2xx).
        """
        callee = Callee()
        a, b = make_stack(self), make_stack(self)
        await a.listen("udp:0:interface=127.0.0.1")
        peer = await b.listen("udp:0:interface=127.0.0.1")
        b.on_request(callee)
        invite = build_request(
            "INVITE", f"sip:bob@{peer}", from_="<sip:a@example.com>", to="<sip:b@example.com>", contact=a.contact()
        )
        result = await a.request(invite, auto_ack=False)
        assert result.dialog is not None
        dropped = lossy(a)
        await a.send_ack(result.dialog)
        ack = await callee.of("INVITE")[0].acked
        self.assertIsNotNone(ack)
        self.assertEqual([data.split(b" ", 1)[0] for data in dropped], [b"ACK"])

    async def test_second_final_response_refused(self) -> None:
        """
        A second final response to an INVITE raises L{LocalProtocolError}
        rather than starting a second, never-ending round of 2xx
        retransmissions.
        """
        a, b = make_stack(self), make_stack(self)
        await a.listen("udp:0:interface=127.0.0.1")
        peer = await b.listen("udp:0:interface=127.0.0.1")
        refused: list[LocalProtocolError] = []
        answered: list[IncomingRequest] = []

        def twice(incoming: IncomingRequest) -> None:
            answered.append(incoming)
            incoming.respond(200)
            try:
                incoming.respond(200)
            except LocalProtocolError as error:
                refused.append(error)

        b.on_request(twice)
        invite = build_request(
            "INVITE", f"sip:bob@{peer}", from_="<sip:a@example.com>", to="<sip:b@example.com>", contact=a.contact()
        )
        result = await a.request(invite)
        self.assertEqual(result.status, 200)
        self.assertEqual(len(refused), 1)
        self.assertIsNotNone(await answered[0].acked)


class MemoryTests(TestCase):
    """
    Finished transactions are freed by reference counting, not left to the
    cyclic garbage collector, whose full collections cost time in
    proportion to everything alive (thousands of transactions linger in
    Timers J and M).
    """

    async def test_no_reference_cycles(self) -> None:
        """
        Over TCP, a non-INVITE client and server transaction end with the
        final response (Timers J and K are zero); with the cyclic collector
        off, both are gone once the result is in.
        """
        self.addCleanup(gc.enable)
        a, b = make_stack(self), make_stack(self)
        await a.listen("tcp:0:interface=127.0.0.1")
        peer = await b.listen("tcp:0:interface=127.0.0.1")
        served: list[weakref.ref[Any]] = []

        def answer(incoming: IncomingRequest) -> Response:
            served.append(weakref.ref(incoming.transaction))
            return incoming.response(200)

        b.on_request(answer)
        request = build_request(
            "OPTIONS", f"sip:bob@{peer};transport=tcp", from_="<sip:a@example.com>", to="<sip:b@example.com>"
        )
        # A first request opens the connection; the second reuses it, so
        # its transaction starts at once.
        self.assertEqual((await a.request(request)).status, 200)
        await wait_for(lambda: len(b._manager) == 0 and len(a._manager) == 0, "the first transactions to end")
        served.clear()
        request = build_request(
            "OPTIONS", f"sip:bob@{peer};transport=tcp", from_="<sip:a@example.com>", to="<sip:b@example.com>"
        )
        gc.collect()
        gc.disable()
        pending = a.request(request)
        (sent,) = a._manager.client_transactions
        sending = weakref.ref(sent)
        del sent
        result = await pending
        self.assertEqual(result.status, 200)
        await wait_for(lambda: len(b._manager) == 0 and len(a._manager) == 0, "the transactions to end")
        self.assertEqual([served[0](), sending()], [None, None])


class ShutdownTests(TestCase):
    """
    close() lets open transactions finish.
    """

    async def test_graceful(self) -> None:
        """
        A request in progress when the callee's stack starts closing still
        gets its answer; a new one gets 503.
        """
        a, b = make_stack(self), make_stack(self)
        await a.listen("udp:0:interface=127.0.0.1")
        peer = await b.listen("udp:0:interface=127.0.0.1")
        seen: list[IncomingRequest] = []

        def slow(incoming: IncomingRequest) -> Deferred[Response | None]:
            seen.append(incoming)
            answer: Deferred[Response | None] = Deferred()
            reactor.callLater(0.3, answer.callback, incoming.response(200))
            return answer

        b.on_request(slow)

        def options() -> Request:
            return build_request("OPTIONS", f"sip:bob@{peer}", from_="<sip:a@example.com>", to="<sip:b@example.com>")

        first = a.request(options())
        await wait_for(lambda: seen, "the first request")
        closing = b.close(5.0)
        second = await a.request(options())
        self.assertEqual(second.status, 503)
        self.assertIsNone(second.synthesized)
        self.assertEqual((await first).status, 200)
        await closing
        self.assertFalse(b.busy)

    async def test_merged_request(self) -> None:
        """
        The same request (From tag, Call-ID, CSeq) arriving with another
        branch while the first is served gets 482 (RFC 3261 section 8.2.2.2).
        """
        a, b = make_stack(self), make_stack(self)
        await a.listen("udp:0:interface=127.0.0.1")
        peer = await b.listen("udp:0:interface=127.0.0.1")
        b.on_request(lambda incoming: Deferred())
        request = build_request("OPTIONS", f"sip:bob@{peer}", from_="<sip:a@example.com>", to="<sip:b@example.com>")
        first: Deferred[RequestResult] = a.request(request)
        await sleep(0.05)
        second = await a.request(request)
        self.assertEqual(second.status, 482)
        self.assertFalse(first.called)
        first.addErrback(lambda failure: None)


EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


class _Server(ProcessProtocol):
    """The answer_options example as a child process: its output, and when it ended."""

    def __init__(self) -> None:
        self.output = b""
        self.ended: Deferred[None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data

    def errReceived(self, data: bytes) -> None:
        self.output += data

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)


class ExampleTests(TestCase):
    """
    The embedding examples of docs/embedding.md run, against each other, as
    separate processes.
    """

    async def test_examples(self) -> None:
        """send_message.py gets 200 from answer_options.py, which prints the text it received."""
        env = {**os.environ, "PYTHONPATH": str(EXAMPLES.parent.parent)}
        server = _Server()
        process = reactor.spawnProcess(
            server,
            sys.executable,
            [sys.executable, str(EXAMPLES / "answer_options.py"), "udp:0:interface=127.0.0.1"],
            env=env,
        )

        async def stop() -> None:
            if not server.ended.called:
                process.signalProcess("TERM")
                await server.ended

        self.addCleanup(lambda: Deferred.fromCoroutine(stop()))
        await wait_for(lambda: b"listening on udp" in server.output, "the server to listen", timeout=10)
        port = server.output.split(b"127.0.0.1:", 1)[1].split()[0].decode()
        out, err, code = await getProcessOutputAndValue(
            sys.executable, [str(EXAMPLES / "send_message.py"), f"sip:bob@127.0.0.1:{port}", "Hello, Bob"], env=env
        )
        self.assertEqual((out.strip(), code), (b"200 OK", 0), err)
        await wait_for(lambda: b"Hello, Bob" in server.output, "the server to print the MESSAGE")
        await stop()
