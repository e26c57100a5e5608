"""
CANCEL through L{SIPStack} over loopback UDP (RFC 3261 section 9): the
client never sends one after the final response, nor before the INVITE went
out, and the server answers one for any live transaction.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from sipstack.config import StackConfig, TimerValues
from sipstack.dialog import build_request
from sipstack.errors import LocalProtocolError
from sipstack.message import Request, Response
from sipstack.message.via import Via
from sipstack.routing.resolver import AddressFamily
from sipstack.routing.via import new_branch
from sipstack.stack import IncomingRequest
from sipstack.testing.dns import serve_zone
from sipstack.transaction import build_cancel
from sipstack.transport.dns import DNSResolver
from tests.stack import Callee, invite_to, make_stack, record_requests, udp_pair
from tests.transport._helpers import reactor, wait_for


class _HeldResolver:
    """
    A real L{DNSResolver} on a zone server of the test, except that address
    answers are held until the test releases them: a destination still
    being planned.
    """

    def __init__(self, real: DNSResolver) -> None:
        self._real = real
        self.pending: list[tuple[Deferred[Any], Deferred[Any]]] = []

    def naptr(self, name: str) -> Deferred[Any]:
        return self._real.naptr(name)

    def srv(self, name: str) -> Deferred[Any]:
        return self._real.srv(name)

    def addresses(self, name: str, family: AddressFamily) -> Deferred[Any]:
        held: Deferred[Any] = Deferred()
        self.pending.append((held, self._real.addresses(name, family)))
        return held

    async def release(self) -> None:
        """Pass every held answer on, once it is in."""
        for held, real in self.pending:
            held.callback(await real)


def _methods(sent: list[Request]) -> list[str]:
    return [request.method for request in sent]


class ClientCancelTests(TestCase):
    """
    C{SIPStack.cancel()}: when a CANCEL goes, and what the Deferred fires
    with when none does.
    """

    async def test_final_response_first(self) -> None:
        """
        C{cancel()} before any provisional response waits for one (section
        9.1); when the final response comes first, no CANCEL is ever sent
        and the Deferred fires with L{None}.
        """

        def busy(incoming: IncomingRequest) -> Deferred[Response | None]:
            answer: Deferred[Response | None] = Deferred()
            reactor.callLater(0.05, answer.callback, incoming.response(486))
            return answer

        a, _, peer = await udp_pair(self, busy)
        sent = record_requests(a)
        invite = invite_to(a, peer)
        pending = a.request(invite)
        cancelling = a.cancel(invite)
        self.assertFalse(cancelling.called)
        result = await pending
        self.assertEqual(result.status, 486)
        self.assertIsNone(await cancelling)
        self.assertEqual(_methods(sent)[0], "INVITE")
        self.assertNotIn("CANCEL", _methods(sent))

    async def test_cancel_twice(self) -> None:
        """A second C{cancel()} while the first is pending sends no second CANCEL and fires with the same result."""
        callee = Callee(delay=None)
        a, _, peer = await udp_pair(self, callee)
        invite = invite_to(a, peer)
        ringing: Deferred[None] = Deferred()
        pending = a.request(invite, on_provisional=lambda r: ringing.callback(None) if not ringing.called else None)
        await ringing
        sent = record_requests(a)
        first, second = a.cancel(invite), a.cancel(invite)
        result1, result2 = await first, await second
        assert result1 is not None
        self.assertIs(result1, result2)
        self.assertEqual(result1.status, 200)
        self.assertEqual((await pending).status, 487)
        self.assertEqual(_methods(sent).count("CANCEL"), 1)

    async def test_cancel_while_planning(self) -> None:
        """
        C{cancel()} while the INVITE's destination is still being resolved:
        the INVITE is never sent, its result is a local 487 marked
        C{"cancelled"}, and C{cancel()} fires with L{None}.
        """
        zone = serve_zone(reactor, "example.test", "b A 127.0.0.1")
        self.addCleanup(zone.stop)
        held = _HeldResolver(DNSResolver(reactor, [zone.nameserver], timeout=0.5))
        a, b = make_stack(self, resolver=held), make_stack(self)
        await a.listen("udp:0:interface=127.0.0.1")
        peer = await b.listen("udp:0:interface=127.0.0.1")
        callee = Callee()
        b.on_request(callee)
        sent = record_requests(a)
        invite = invite_to(a, f"b.example.test:{peer.port}")
        pending = a.request(invite)
        self.assertEqual(len(held.pending), 2)
        self.assertIsNone(await a.cancel(invite))
        self.assertTrue(pending.called)
        result = await pending
        self.assertEqual((result.status, result.synthesized, result.dialog), (487, "cancelled", None))
        await held.release()
        self.assertEqual(zone.count("b.example.test", "A"), 1)
        self.assertEqual(sent, [])
        self.assertEqual(callee.requests, [])
        self.assertIsNone(await a.cancel(invite))

    async def test_unknown_request(self) -> None:
        """C{cancel()} of a request that is no INVITE of ours raises L{LocalProtocolError}."""
        a = make_stack(self)
        await a.listen("udp:0:interface=127.0.0.1")
        self.assertRaises(LocalProtocolError, a.cancel, invite_to(a, "127.0.0.1:9"))
        options = build_request("OPTIONS", "sip:b@127.0.0.1:9", from_="<sip:a@example.com>", to="<sip:b@example.com>")
        self.assertRaises(LocalProtocolError, a.cancel, options)

    async def test_refused_start(self) -> None:
        """
        A request whose branch is in use by a live transaction fails its
        Deferred with L{LocalProtocolError}, and is not left known to
        C{cancel()}.
        """
        a, _, peer = await udp_pair(self, Callee(delay=None))
        via = Via("UDP", "invalid.invalid", params=(("branch", new_branch()),))
        first = invite_to(a, peer).with_top_via(via)
        pending = a.request(first)
        second = invite_to(a, peer).with_top_via(via)
        failure = await self.assertFailure(a.request(second), LocalProtocolError)
        self.assertIn("already running", str(failure))
        self.assertRaises(LocalProtocolError, a.cancel, second)
        self.assertFalse(pending.called)
        pending.addErrback(lambda failure: None)

    async def test_forgotten_after_linger(self) -> None:
        """
        Over TCP a 486 ends the INVITE transaction at once (Timer D is
        zero), yet C{cancel()} still fires with L{None} for 64*T1; after
        that the INVITE is forgotten and C{cancel()} raises.
        """
        quick = StackConfig(timers=TimerValues(t1=0.005, t2=0.04, t4=0.05))
        a, b = make_stack(self, config=quick), make_stack(self, config=quick)
        await a.listen("tcp:0:interface=127.0.0.1")
        peer = await b.listen("tcp:0:interface=127.0.0.1")
        b.on_request(lambda incoming: incoming.response(486))
        invite = build_request(
            "INVITE", f"sip:bob@{peer};transport=tcp", from_="<sip:a@example.com>", to="<sip:b@example.com>"
        )
        self.assertEqual((await a.request(invite)).status, 486)
        await wait_for(lambda: not a._manager.client_transactions, "the INVITE transaction to end")
        self.assertIsNone(await a.cancel(invite))

        def forgotten() -> bool:
            try:
                a.cancel(invite)
            except LocalProtocolError:
                return True
            return False

        await wait_for(forgotten, "the INVITE to be forgotten")


class ServerCancelTests(TestCase):
    """
    A CANCEL received (RFC 3261 section 9.2): 200 for any live transaction,
    481 for none.
    """

    async def test_cancel_of_non_invite(self) -> None:
        """
        A CANCEL matching a pending OPTIONS gets 200 with the OPTIONS' To
        tag; the OPTIONS goes on and gets its own 200 (no 487).  A CANCEL
        matching nothing gets 481.
        """
        seen: list[IncomingRequest] = []

        def slow(incoming: IncomingRequest) -> Deferred[Response | None]:
            seen.append(incoming)
            answer: Deferred[Response | None] = Deferred()
            reactor.callLater(0.1, answer.callback, incoming.response(200))
            return answer

        a, _, peer = await udp_pair(self, slow)
        options = build_request(
            "OPTIONS", f"sip:bob@{peer}", from_="<sip:a@example.com>", to="<sip:b@example.com>"
        ).with_top_via(Via("UDP", "invalid.invalid", params=(("branch", new_branch()),)))
        pending = a.request(options)
        await wait_for(lambda: seen, "the OPTIONS")
        cancelled = await a.request(build_cancel(options))
        self.assertEqual(cancelled.status, 200)
        self.assertEqual(cancelled.response.to.tag, seen[0].to_tag)
        self.assertFalse(pending.called)
        result = await pending
        self.assertEqual(result.status, 200)
        self.assertFalse(seen[0].cancelled.called)
        other = options.with_top_via(Via("UDP", "invalid.invalid", params=(("branch", new_branch()),)))
        self.assertEqual((await a.request(build_cancel(other))).status, 481)
        self.assertEqual(len(seen), 1)
