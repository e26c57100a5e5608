"""
Tests for L{sipstack.stack.SIPStack} over real loopback sockets, and the
helpers they share with C{tests.test_stack}: stacks with fast timers that
close themselves, a callee handler, a lossy UDP shim, and a record of what a
stack sends.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from sipstack.config import StackConfig, TimerValues
from sipstack.dialog import build_request
from sipstack.hop import Peer
from sipstack.message import Request, Response
from sipstack.stack import IncomingRequest, SIPStack
from tests.transport._helpers import reactor

__all__ = ["FAST", "Callee", "make_stack", "lossy", "record_requests", "invite_to", "udp_pair"]

#: T1 = 50 ms: Timer B and F fire after 3.2 s, a 2xx waits 3.2 s for its ACK.
FAST = StackConfig(timers=TimerValues(t1=0.05, t2=0.4, t4=0.5))


def make_stack(testcase: TestCase, *, stack_reactor: Any = reactor, **kwargs: Any) -> SIPStack:
    """A stack with fast timers (unless C{config} is given), closed (without grace) when the test ends."""
    kwargs.setdefault("config", FAST)
    stack = SIPStack(stack_reactor, **kwargs)
    testcase.addCleanup(stack.close, 0.0)
    return stack


async def udp_pair(testcase: TestCase, callee: Any, **b_kwargs: Any) -> tuple[SIPStack, SIPStack, Peer]:
    """Stack A and stack B (answering with C{callee}) listening on loopback UDP; B's address."""
    a, b = make_stack(testcase), make_stack(testcase, **b_kwargs)
    await a.listen("udp:0:interface=127.0.0.1")
    peer = await b.listen("udp:0:interface=127.0.0.1")
    b.on_request(callee)
    return a, b, peer


def invite_to(a: SIPStack, peer: Peer | str, **kwargs: Any) -> Request:
    """An INVITE from A to C{peer} (an address, or a host[:port] text) over UDP, with A's Contact."""
    return build_request(
        "INVITE",
        f"sip:bob@{peer}",
        from_="<sip:a@example.com>",
        to="<sip:b@example.com>",
        contact=a.contact(),
        **kwargs,
    )


def lossy(stack: SIPStack) -> list[bytes]:
    """
    Make C{stack}'s UDP sockets drop the first transmission of every
    datagram (retransmissions repeat the same bytes and get through); return
    the list of dropped datagrams.
    """
    dropped: list[bytes] = []
    seen: set[bytes] = set()
    for protocol in stack._layer._udp:
        original = protocol.send

        def send(data: bytes, peer: Peer, original: Any = original) -> None:
            if data not in seen:
                seen.add(data)
                dropped.append(data)
                return
            original(data, peer)

        protocol.send = send  # type: ignore[method-assign]  # the lossy shim of this test
    return dropped


def record_requests(stack: SIPStack) -> list[Request]:
    """Record every request C{stack} passes to its transport layer (first sends, not UDP retransmissions)."""
    sent: list[Request] = []
    original = stack._layer.send_request

    def recording(message: Request, *args: Any, **kwargs: Any) -> Any:
        sent.append(message)
        return original(message, *args, **kwargs)

    stack._layer.send_request = recording  # type: ignore[method-assign,assignment]  # records what the stack sends
    return sent


class Callee:
    """
    A handler that rings, then answers an INVITE with 200 (after C{delay}
    seconds, or never when C{delay} is L{None}), and answers anything else
    with 200.
    """

    def __init__(self, delay: float | None = 0.0) -> None:
        self.delay = delay
        self.requests: list[IncomingRequest] = []

    def __call__(self, incoming: IncomingRequest) -> Response | Deferred[Response | None] | None:
        self.requests.append(incoming)
        if incoming.request.method != "INVITE":
            return incoming.response(200)
        incoming.respond(180)
        if self.delay == 0.0:
            return incoming.response(200)
        answer: Deferred[Response | None] = Deferred()
        if self.delay is not None:
            reactor.callLater(self.delay, answer.callback, incoming.response(200))
        return answer

    def of(self, method: str) -> list[IncomingRequest]:
        return [incoming for incoming in self.requests if incoming.request.method == method]
