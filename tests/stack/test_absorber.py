"""
The stack with the transaction manager's absorber, over real UDP sockets:
answered requests leave only a compact entry behind, which still answers
retransmissions and CANCELs, and nothing of a request waits for the
garbage collector.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from sipstack.dialog import build_request
from sipstack.hop import Peer
from sipstack.message import SIPURI, Response, parse_datagram
from sipstack.message.via import Via
from sipstack.routing.via import new_branch
from sipstack.stack import IncomingRequest, SIPStack
from sipstack.transaction import build_cancel
from tests.stack import Callee, invite_to, make_stack, udp_pair
from tests.transport._helpers import listen_raw_udp, wait_for


def _options(peer: Peer, branch: str | None = None) -> Any:
    return build_request(
        "OPTIONS", f"sip:bob@{peer}", from_="<sip:a@example.com>", to="<sip:b@example.com>"
    ).with_top_via(Via("UDP", "invalid.invalid", params=(("branch", branch or new_branch()),)))


class AbsorberTests(TestCase):
    """Completed non-INVITE server transactions over UDP."""

    async def test_retransmission_answered(self) -> None:
        """
        A retransmitted OPTIONS gets the same response again, from the
        absorber: the handler ran once and the request object is gone.
        """
        seen: list[weakref.ref[IncomingRequest]] = []

        def answer(incoming: IncomingRequest) -> Response:
            seen.append(weakref.ref(incoming))
            return incoming.response(200)

        stack = make_stack(self)
        stack.on_request(answer)
        peer = await stack.listen("udp:0:interface=127.0.0.1")
        raw = listen_raw_udp(self, "127.0.0.1")
        data = (
            f"OPTIONS sip:bob@{peer} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {raw.local};branch=z9hG4bKabsorbed1\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=a1\r\nTo: <sip:b@example.com>\r\n"
            "Call-ID: absorbed-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        raw.send(data, peer)
        await wait_for(lambda: len(raw.received) == 1, "the 200")
        gc.collect()
        self.assertEqual((len(seen), seen[0](), stack._manager.absorbed), (1, None, 1))
        raw.send(data, peer)
        await wait_for(lambda: len(raw.received) == 2, "the 200 again")
        self.assertEqual(raw.received[0][0], raw.received[1][0])
        response = parse_datagram(raw.received[1][0])
        assert isinstance(response, Response)
        self.assertEqual(response.status, 200)
        self.assertEqual(len(seen), 1)

    async def test_cancel_after_answer(self) -> None:
        """A CANCEL of an answered OPTIONS gets 200 with the To tag of the OPTIONS' 200 (RFC 3261 section 9.2)."""
        a, b, peer = await udp_pair(self, lambda incoming: incoming.response(200))
        options = _options(peer)
        answered = await a.request(options)
        self.assertEqual((answered.status, b._manager.absorbed), (200, 1))
        cancelled = await a.request(build_cancel(options))
        self.assertEqual(cancelled.status, 200)
        self.assertEqual(cancelled.response.to.tag, answered.response.to.tag)

    async def test_nothing_left_for_the_collector(self) -> None:
        """
        With the cyclic collector off, an OPTIONS over UDP leaves neither
        its client nor its server transaction alive once answered, though
        both absorb retransmissions for a while (Timers K and J).
        """
        self.addCleanup(gc.enable)
        served: list[weakref.ref[Any]] = []

        def answer(incoming: IncomingRequest) -> Response:
            served.append(weakref.ref(incoming.transaction))
            served.append(weakref.ref(incoming))
            return incoming.response(200)

        a, b, peer = await udp_pair(self, answer)
        gc.collect()
        gc.disable()
        pending = a.request(_options(peer))
        (sent,) = a._manager.client_transactions
        sending = weakref.ref(sent)
        del sent
        self.assertEqual((await pending).status, 200)
        # The result fires from within the client transaction, just before it hands off.
        await wait_for(lambda: not a._manager.client_transactions, "the client transaction to hand off")
        self.assertEqual([ref() for ref in (*served, sending)], [None, None, None])
        self.assertEqual((a._manager.absorbed, b._manager.absorbed), (1, 1))


class ProxyModeTests(TestCase):
    """An answered INVITE forwarded in proxy mode leaves nothing behind."""

    async def test_no_cycle_through_cancelled(self) -> None:
        """
        A proxy's context waits on C{incoming.cancelled} and holds the
        request, a reference cycle; once the INVITE is answered (2xx, the
        transactions handed off), the request is freed without the cyclic
        collector.
        """
        self.addCleanup(gc.enable)
        callee = Callee()
        target = make_stack(self)
        target.on_request(callee)
        target_peer = await target.listen("udp:0:interface=127.0.0.1")
        proxy: SIPStack = make_stack(self, proxy=True)
        proxy_peer = await proxy.listen("udp:0:interface=127.0.0.1")
        held: list[weakref.ref[IncomingRequest]] = []

        class Context:
            def __init__(self, incoming: IncomingRequest) -> None:
                self.incoming = incoming
                incoming.cancelled.addCallback(lambda _: self.incoming)

        def forward(incoming: IncomingRequest) -> Deferred[Response | None]:
            held.append(weakref.ref(incoming))
            context = Context(incoming)
            request = incoming.request
            via = Via("UDP", "invalid.invalid", params=(("branch", new_branch()),))
            uri = request.uri
            assert isinstance(uri, SIPURI)
            request = request.replace(
                uri=uri.replace(port=target_peer.port),
                headers=request.headers.with_added("Via", str(via), first=True),
            )
            branch = proxy.forward(request, late_2xx_as_stray=True)

            def relay(result: Any) -> Response:
                assert context.incoming is incoming
                return incoming.response(result.status)

            return branch.result.addCallback(relay)

        proxy.on_request(forward)
        caller = make_stack(self)
        await caller.listen("udp:0:interface=127.0.0.1")
        gc.collect()
        gc.disable()
        result = await caller.request(invite_to(caller, proxy_peer), auto_ack=False)
        self.assertEqual(result.status, 200)
        await wait_for(lambda: held and held[0]() is None, "the proxied INVITE to be freed")
