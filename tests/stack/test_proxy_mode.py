"""
The stack's API for a stateful proxy, over loopback sockets: C{forward()}
(every response delivered, no dialog, no ACK, a handle per branch, sending
on a flow, the finalize hook), proxy mode on the server side (responses
passed through, several 2xx, 100 Trying at once, merged requests served,
CANCEL without 487, an unmatched CANCEL handed to the handler, ACKs of 2xx
to C{on_stray}), C{send_stateless}, C{send_response} and C{listeners}.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from sipstack.dialog import build_request
from sipstack.errors import LocalProtocolError
from sipstack.hop import CLEARTEXT, FlowKey, HopSecurity, Peer, TransportKind
from sipstack.message import Request, Response, build_response, parse_datagram
from sipstack.message.envelope import Received
from sipstack.routing.via import new_branch
from sipstack.stack import IncomingRequest, SIPStack
from sipstack.transaction import build_cancel
from tests.stack import Callee, invite_to, make_stack
from tests.transport._helpers import listen_raw_udp, stays_false, wait_for


async def _udp(testcase: TestCase, **kwargs: Any) -> tuple[SIPStack, Peer]:
    stack = make_stack(testcase, **kwargs)
    return stack, await stack.listen("udp:0:interface=127.0.0.1")


class ForwardTests(TestCase):
    """C{SIPStack.forward}: the client side of a proxy's branch."""

    async def test_every_response(self) -> None:
        """
        Each 1xx and each 2xx after the first go to C{on_response}; the
        stack makes no dialog, sends no ACK, and the server (in proxy mode)
        sends the 2xx responses unchanged and only once.
        """
        client, _ = await _udp(self)
        server, peer = await _udp(self, proxy=True)
        acks: list[Received] = []
        server.on_stray(acks.append)

        def fork(incoming: IncomingRequest) -> None:
            request = incoming.request
            incoming.respond(build_response(request, 180, to_tag="one"))
            incoming.respond(build_response(request, 200, to_tag="one"))
            incoming.respond(build_response(request, 200, to_tag="two"))

        server.on_request(fork)
        seen: list[Response] = []
        branch = client.forward(invite_to(client, peer), on_response=seen.append)
        result = await branch.result
        self.assertEqual((result.status, result.response.to.tag, result.dialog), (200, "one", None))
        self.assertIsNone(result.response.headers.get("Contact"))
        await wait_for(lambda: any(r.status == 200 for r in seen), "the second 2xx")
        self.assertEqual([(r.status, r.to.tag) for r in seen], [(180, "one"), (200, "two")])
        # No retransmission of the 2xx (T1 is 50 ms), no ACK, no BYE, no dialogs.
        await stays_false(lambda: len(seen) > 2 or acks, "a retransmitted 2xx or an ACK", 0.3)
        self.assertEqual((dict(client.dialogs), dict(server.dialogs)), ({}, {}))
        self.assertEqual(branch.request.top_via.branch, result.request.top_via.branch)

    async def test_cancel_one_branch(self) -> None:
        """Two branches share Call-ID, CSeq and From tag: cancelling one leaves the other ringing."""
        client, _ = await _udp(self)
        callees = [Callee(delay=None), Callee(delay=None)]
        peers = []
        for callee in callees:
            stack, peer = await _udp(self)
            stack.on_request(callee)
            peers.append(peer)
        invite = invite_to(client, peers[0])
        ringing: list[Deferred[None]] = [Deferred(), Deferred()]

        def rang(index: int, response: Response) -> None:
            if not ringing[index].called:
                ringing[index].callback(None)

        branches = [
            client.forward(invite.replace(uri=invite_to(client, peer).uri), on_response=partial(rang, n))
            for n, peer in enumerate(peers)
        ]
        for each in ringing:
            await each
        self.assertRaises(LocalProtocolError, client.cancel, invite)
        cancelled = await branches[0].cancel()
        assert cancelled is not None
        self.assertEqual(cancelled.status, 200)
        self.assertEqual((await branches[0].result).status, 487)
        await callees[0].of("INVITE")[0].cancelled
        self.assertFalse(callees[1].of("INVITE")[0].cancelled.called)
        self.assertFalse(branches[1].result.called)
        await branches[1].cancel()
        self.assertEqual((await branches[1].result).status, 487)

    async def test_flow(self) -> None:
        """
        A request sent on a flow a peer opened goes on that connection, even
        to an address nobody listens on; a closed flow means planning as usual.
        """
        client = make_stack(self)
        await client.listen("tcp:0:interface=127.0.0.1")
        flows: list[FlowKey] = []

        def remember(incoming: IncomingRequest) -> Response:
            flows.append(incoming.received.flow)
            return incoming.response(200)

        client.on_request(remember)
        phone = make_stack(self)
        phone_peer = await phone.listen("tcp:0:interface=127.0.0.1")
        callee = Callee()
        phone.on_request(callee)
        options = build_request("OPTIONS", "sip:x@example.com", from_="<sip:p@example.com>", to="<sip:x@example.com>")
        tcp = client.listeners[0][1]
        opened = await phone.request(
            options.replace(headers=options.headers.with_added("Route", f"<sip:{tcp};transport=tcp;lr>"))
        )
        self.assertEqual(opened.status, 200)
        message = build_request(
            "MESSAGE", "sip:p@192.0.2.1:5060;transport=tcp", from_="<sip:x@example.com>", to="<sip:p@example.com>"
        )
        result = await client.forward(message, flow=flows[0]).result
        self.assertEqual(result.status, 200)
        self.assertEqual(callee.requests[0].received.flow, opened.flow)
        closed = FlowKey(TransportKind.TCP, Peer("127.0.0.1", 1), Peer("127.0.0.1", 2), 99)
        planned = build_request(
            "MESSAGE", f"sip:p@{phone_peer};transport=tcp", from_="<sip:x@example.com>", to="<sip:p@example.com>"
        )
        self.assertEqual((await client.request(planned, flow=closed)).status, 200)
        self.assertEqual(len(callee.of("MESSAGE")), 2)

    async def test_finalize(self) -> None:
        """
        The hook sees the transport, our sent-by and the hop's security; what
        it returns is sent, with the transaction's own top Via.
        """
        client, client_peer = await _udp(self)
        server, peer = await _udp(self)
        callee = Callee()
        server.on_request(callee)
        calls: list[tuple[TransportKind, Peer, HopSecurity]] = []

        def finalize(request: Request, transport: TransportKind, sent_by: Peer, security: HopSecurity) -> Request:
            calls.append((transport, sent_by, security))
            changed = request.with_top_via(request.top_via.with_param("branch", "z9hG4bKnot-this-one"))
            return changed.replace(headers=changed.headers.with_added("X-Leg", transport.value))

        options = build_request("OPTIONS", f"sip:b@{peer}", from_="<sip:a@example.com>", to="<sip:b@example.com>")
        result = await client.request(options, finalize=finalize)
        self.assertEqual(result.status, 200)
        self.assertEqual(calls, [(TransportKind.UDP, client_peer, CLEARTEXT)])
        received = callee.requests[0].request
        self.assertEqual(received.headers.get("X-Leg"), "UDP")
        self.assertNotEqual(received.top_via.branch, "z9hG4bKnot-this-one")


class ServerProxyModeTests(TestCase):
    """C{SIPStack(proxy=True)}: the server side of a proxy."""

    async def test_cancel_without_487(self) -> None:
        """
        100 Trying goes out at once; a CANCEL gets 200 and fires
        C{cancelled}, but the INVITE's final response is the handler's.
        """
        client, _ = await _udp(self)
        server, peer = await _udp(self, proxy=True)
        pending: list[IncomingRequest] = []

        def hold(incoming: IncomingRequest) -> Deferred[Response | None]:
            pending.append(incoming)
            return Deferred()

        server.on_request(hold)
        invite = invite_to(client, peer)
        trying: Deferred[None] = Deferred()
        started = client.reactor.seconds()
        call = client.request(invite, on_provisional=lambda r: None if trying.called else trying.callback(None))
        await trying
        self.assertLess(client.reactor.seconds() - started, 0.15)
        cancelled = await client.cancel(invite)
        assert cancelled is not None
        self.assertEqual(cancelled.status, 200)
        (incoming,) = pending
        await incoming.cancelled
        await stays_false(lambda: call.called, "a 487 from the stack", 0.2)
        incoming.respond(incoming.response(487))
        self.assertEqual((await call).status, 487)

    async def test_unmatched_cancel_and_merged_request(self) -> None:
        """
        A CANCEL that matches nothing reaches the handler (no 481 from the
        stack), and a request that comes again on a new branch (a spiral)
        is served, not refused with 482.
        """
        client, _ = await _udp(self)
        server, peer = await _udp(self, proxy=True)
        seen: list[str] = []

        def answer(incoming: IncomingRequest) -> Response:
            seen.append(incoming.request.method)
            return incoming.response(202 if incoming.request.method == "CANCEL" else 200)

        server.on_request(answer)
        message = build_request("MESSAGE", f"sip:b@{peer}", from_="<sip:a@example.com>", to="<sip:b@example.com>")
        first, second = await client.request(message), await client.request(message)
        self.assertEqual((first.status, second.status), (200, 200))
        unknown = first.request.with_top_via(first.request.top_via.with_param("branch", new_branch()))
        cancel = build_cancel(unknown)
        self.assertEqual((await client.request(cancel)).status, 202)
        self.assertEqual(seen, ["MESSAGE", "MESSAGE", "CANCEL"])

    async def test_ack_of_2xx_to_stray(self) -> None:
        """The ACK of a 2xx the proxy passed on goes to C{on_stray}; the stack neither waits for it nor resends."""
        client, _ = await _udp(self)
        server, peer = await _udp(self, proxy=True)
        strays: list[Received] = []
        server.on_stray(strays.append)
        server.on_request(lambda incoming: build_response(incoming.request, 200, to_tag="t"))
        result = await client.request(invite_to(client, peer))
        self.assertEqual(result.status, 200)
        await wait_for(lambda: strays, "the ACK")
        message = strays[0].message
        assert isinstance(message, Request)
        self.assertEqual(message.method, "ACK")
        self.assertFalse(server.busy)


class StatelessTests(TestCase):
    async def test_send_stateless(self) -> None:
        """An ACK sent without a transaction goes to the Request-URI's host, planned by RFC 3263."""
        sender, _ = await _udp(self)
        receiver, peer = await _udp(self)
        strays: list[Received] = []
        receiver.on_stray(strays.append)
        ack = build_request("ACK", f"sip:b@{peer}", from_="<sip:a@example.com>", to="<sip:b@example.com>;tag=x", cseq=7)
        sent = await sender.send_stateless(ack)
        self.assertEqual(sent.flow.remote, peer)
        await wait_for(lambda: strays, "the ACK")
        self.assertEqual(strays[0].message.cseq.number, 7)

    async def test_send_response_by_via(self) -> None:
        """A response with no flow goes where its top Via says: C{received} and C{rport}."""
        stack, _ = await _udp(self)
        raw = listen_raw_udp(self, "127.0.0.1")
        assert raw.local is not None
        request = build_request("OPTIONS", "sip:x@example.com", from_="<sip:a@example.com>", to="<sip:x@example.com>")
        via = f"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKraw;received=127.0.0.1;rport={raw.local.port}"
        request = request.replace(headers=request.headers.with_added("Via", via, first=True))
        await stack.send_response(build_response(request, 200))
        await wait_for(lambda: raw.received, "the response")
        response = parse_datagram(raw.received[0][0])
        assert isinstance(response, Response)
        self.assertEqual((response.status, response.top_via.branch), (200, "z9hG4bKraw"))

    async def test_listeners(self) -> None:
        """Every listener, in the order bound."""
        stack = make_stack(self)
        udp = await stack.listen("udp:0:interface=127.0.0.1")
        tcp = await stack.listen("tcp:0:interface=127.0.0.1")
        self.assertEqual(stack.listeners, ((TransportKind.UDP, udp), (TransportKind.TCP, tcp)))
