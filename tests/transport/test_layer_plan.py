"""
Tests for L{TransportLayer.connect_plan}'s view of a plan: the order in
which it looks for a flow to reuse is the TLS-first endpoint's order of
attempts (a property over random plans), so that "as secure as a fresh
walk" means the same thing in both places.  Connecting and reuse over real
sockets are tested through the stack (C{tests.stack.test_tls_first}).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipstack.config import TLSPolicy
from sipstack.hop import TransportKind
from sipstack.routing.plan import Plan, Target, TargetSource
from sipstack.transport.endpoint import TLSFirstEndpoint
from sipstack.transport.layer import _schedule

_targets = st.builds(
    Target,
    st.sampled_from([TransportKind.TLS, TransportKind.TCP, TransportKind.UDP]),
    st.sampled_from(["a.example.com", "b.example.com"]),
    st.integers(5060, 5063),
    st.just(("192.0.2.1",)),
    st.just(TargetSource.NAPTR),
    st.sampled_from([None, 10, 20]),
)


class ScheduleTests(SynchronousTestCase):
    @given(st.lists(_targets, max_size=8), st.sampled_from(list(TLSPolicy)))
    def test_same_order_as_the_endpoint(self, targets: list[Target], policy: TLSPolicy) -> None:
        plan = Plan("sip:example.com", "example.com", policy, tuple(targets))
        self.assertEqual(_schedule(plan), TLSFirstEndpoint(Clock(), plan)._schedule())

    def test_tls_first_within_one_order(self) -> None:
        """Opportunistic: TLS before TCP within an order; a lower order still comes first; no UDP."""

        def target(kind: TransportKind, order: int) -> Target:
            return Target(kind, "h.example.com", 5060, ("192.0.2.1",), TargetSource.NAPTR, order)

        tcp10, tls10, udp10, tcp20, tls20 = (
            target(TransportKind.TCP, 10),
            target(TransportKind.TLS, 10),
            target(TransportKind.UDP, 10),
            target(TransportKind.TCP, 20),
            target(TransportKind.TLS, 20),
        )
        plan = Plan("sip:example.com", "example.com", TLSPolicy.OPPORTUNISTIC, (tcp10, udp10, tls10, tcp20, tls20))
        self.assertEqual(_schedule(plan), [tls10, tcp10, tls20, tcp20])
