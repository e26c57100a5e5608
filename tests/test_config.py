"""
Tests for L{sipstack.config} and L{sipstack.hop}: values validate themselves.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sipstack.config import Limits, StackConfig, TimerValues, TLSPolicy
from sipstack.hop import CLEARTEXT, HopSecurity, Peer, SecurityState, TransportKind


class ConfigTests(SynchronousTestCase):
    """
    Configuration values reject nonsense at construction.
    """

    def test_defaults(self) -> None:
        """The defaults are RFC 3261's timers and opportunistic TLS."""
        config = StackConfig()
        self.assertEqual((config.timers.t1, config.timers.t2, config.timers.t4), (0.5, 4.0, 5.0))
        self.assertIs(config.tls_policy, TLSPolicy.OPPORTUNISTIC)

    def test_limits_positive(self) -> None:
        """A zero or negative limit is refused with its name in the message."""
        error = self.assertRaises(ValueError, Limits, max_headers=0)
        self.assertIn("max_headers", str(error))
        self.assertRaises(ValueError, Limits, idle_timeout=-1)

    def test_timer_order(self) -> None:
        """T2 below T1 is refused."""
        self.assertRaises(ValueError, TimerValues, t1=5.0, t2=4.0)


class HopTests(SynchronousTestCase):
    """
    Hop values keep security states apart.
    """

    def test_identity_only_when_authenticated(self) -> None:
        """Only an authenticated hop carries an identity, and it always does."""
        self.assertRaises(ValueError, HopSecurity, SecurityState.TLS_UNAUTHENTICATED, "example.com")
        self.assertRaises(ValueError, HopSecurity, SecurityState.TLS_AUTHENTICATED)
        hop = HopSecurity(SecurityState.TLS_AUTHENTICATED, "example.com")
        self.assertTrue(hop.authenticated and hop.encrypted)
        self.assertFalse(CLEARTEXT.encrypted or CLEARTEXT.authenticated)

    def test_transport_kinds(self) -> None:
        """UDP alone is unreliable; TLS and WSS are encrypted."""
        self.assertFalse(TransportKind.UDP.reliable)
        self.assertTrue(TransportKind.TCP.stream)
        self.assertTrue(TransportKind.TLS.encrypted)
        self.assertFalse(TransportKind.TCP.encrypted)

    def test_peer_text(self) -> None:
        """IPv6 peers are written with brackets."""
        self.assertEqual(str(Peer("::1", 5060)), "[::1]:5060")
        self.assertEqual(str(Peer("127.0.0.1", 5060)), "127.0.0.1:5060")
