"""
Tests for L{sipstack.routing.record_route}: the Record-Route URI of a proxy
and its TLS hint (docs/tls-first.md, "The Record-Route answer").
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipstack.config import TLSFirstSettings
from sipstack.hop import TransportKind
from sipstack.message.uri import parse_sip_uri
from sipstack.routing import TLS_PORT_HINT, record_route_uri, tls_port_hint

HINT_ON = TLSFirstSettings(record_route_tls_hint=True)


class RecordRouteURITests(SynchronousTestCase):
    def test_hint_off_by_default(self) -> None:
        """Without settings, or with the flag off, no hint is added."""
        self.assertEqual(str(record_route_uri("proxy.example.com", tls_port=5061)), "sip:proxy.example.com;lr")
        off = record_route_uri("proxy.example.com", tls_port=5061, settings=TLSFirstSettings())
        self.assertEqual(str(off), "sip:proxy.example.com;lr")

    def test_hint_on(self) -> None:
        """With the flag on and a TLS port, the URI names it; the scheme stays sip:."""
        uri = record_route_uri("proxy.example.com", 5070, transport=TransportKind.TCP, tls_port=5071, settings=HINT_ON)
        self.assertEqual(str(uri), f"sip:proxy.example.com:5070;transport=tcp;{TLS_PORT_HINT}=5071;lr")
        self.assertEqual(uri.scheme, "sip")
        self.assertTrue(uri.lr)
        self.assertEqual(tls_port_hint(uri), 5071)

    def test_no_tls_port_no_hint(self) -> None:
        """A proxy without TLS gives no hint, flag or not."""
        self.assertIsNone(tls_port_hint(record_route_uri("192.0.2.1", 5060, settings=HINT_ON)))

    def test_tls_transport_needs_no_hint(self) -> None:
        """A URI that already says TLS gets no hint (it forbids fallback by itself)."""
        uri = record_route_uri("proxy.example.com", transport=TransportKind.TLS, tls_port=5061, settings=HINT_ON)
        self.assertEqual(str(uri), "sip:proxy.example.com;transport=tls;lr")

    def test_default_port_left_out(self) -> None:
        """The transport's default port is left out, so that SRV still applies to a name."""
        self.assertEqual(str(record_route_uri("proxy.example.com", 5060)), "sip:proxy.example.com;lr")
        tls = record_route_uri("proxy.example.com", 5061, transport=TransportKind.TLS)
        self.assertEqual(str(tls), "sip:proxy.example.com;transport=tls;lr")

    def test_ipv6(self) -> None:
        """An IPv6 address is bracketed, written either way."""
        for host in ("2001:db8::1", "[2001:db8::1]"):
            uri = record_route_uri(host, 5080, tls_port=5081, settings=HINT_ON)
            self.assertEqual(str(uri), f"sip:[2001:db8::1]:5080;{TLS_PORT_HINT}=5081;lr")

    def test_other_transport_refused(self) -> None:
        self.assertRaises(ValueError, record_route_uri, "proxy.example.com", transport=TransportKind.WS)

    def test_malformed_hints_ignored(self) -> None:
        """A hint that is no port number is no hint (it must never make a request fail)."""
        for value in ("", "abc", "0", "70000", "-1"):
            uri = parse_sip_uri(f"sip:proxy.example.com;lr;{TLS_PORT_HINT}={value}" if value else "sip:p.example.com")
            self.assertIsNone(tls_port_hint(uri), value)

    @given(st.integers(1, 65535), st.integers(1, 65535))
    def test_round_trip(self, port: int, tls_port: int) -> None:
        """The hint survives the wire: written, parsed, read back."""
        uri = record_route_uri("proxy.example.com", port, tls_port=tls_port, settings=HINT_ON)
        parsed = parse_sip_uri(str(uri))
        self.assertEqual(tls_port_hint(parsed), tls_port)
        self.assertTrue(parsed.lr)
