"""
Tests for L{sipstack.transport.descriptions}: listener descriptions, good
and bad, with IPv6 interfaces written unescaped, bracketed or escaped.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sipstack.hop import TransportKind
from sipstack.transport.descriptions import ListenerDescription, parse_listener


class ParseListenerTests(SynchronousTestCase):
    """
    L{parse_listener}.
    """

    def test_udp_defaults(self) -> None:
        """
        A bare C{udp:PORT} listens on the IPv4 loopback address.
        """
        self.assertEqual(parse_listener("udp:5060"), ListenerDescription(TransportKind.UDP, 5060))

    def test_kinds_case_insensitive(self) -> None:
        """
        The kind may be written in any case.
        """
        self.assertEqual(parse_listener("TCP:5060").transport, TransportKind.TCP)
        self.assertEqual(parse_listener("Udp:0").port, 0)

    def test_tcp_options(self) -> None:
        """
        A TCP listener takes an interface and a backlog.
        """
        self.assertEqual(
            parse_listener("tcp:5070:interface=0.0.0.0:backlog=16"),
            ListenerDescription(TransportKind.TCP, 5070, interface="0.0.0.0", backlog=16),
        )

    def test_tls_options(self) -> None:
        """
        A TLS listener takes its certificate, key, and the client
        certificate options.
        """
        self.assertEqual(
            parse_listener("tls:5061:certKey=cert.pem:privateKey=key.pem:requestClientCertificate=yes:caCerts=ca.pem"),
            ListenerDescription(
                TransportKind.TLS,
                5061,
                private_key="key.pem",
                cert_key="cert.pem",
                request_client_certificate=True,
                ca_certs="ca.pem",
            ),
        )

    def test_tls_key_defaults_to_certificate(self) -> None:
        """
        Without C{privateKey}, the key is read from the C{certKey} file.
        """
        description = parse_listener("tls:5061:certKey=both.pem")
        self.assertEqual((description.cert_key, description.private_key), ("both.pem", "both.pem"))
        self.assertFalse(description.request_client_certificate)

    def test_flag_spellings(self) -> None:
        """
        C{requestClientCertificate} takes yes/no and true/false, in any case.
        """
        for text, value in (("yes", True), ("No", False), ("TRUE", True), ("false", False)):
            description = parse_listener(f"tls:5061:certKey=c.pem:requestClientCertificate={text}")
            self.assertEqual(description.request_client_certificate, value, text)

    def test_ipv6_unescaped(self) -> None:
        """
        An IPv6 interface may be written as it is, colons and all, and other
        options may follow it.
        """
        self.assertEqual(parse_listener("udp:5060:interface=::1").interface, "::1")
        self.assertEqual(parse_listener("tcp:5060:interface=2001:db8::1:backlog=5").interface, "2001:db8::1")
        self.assertEqual(parse_listener("tcp:5060:interface=::ffff:192.0.2.1").interface, "::ffff:192.0.2.1")
        description = parse_listener("tls:5061:interface=::1:certKey=c.pem")
        self.assertEqual((description.interface, description.cert_key), ("::1", "c.pem"))

    def test_ipv6_bracketed(self) -> None:
        """
        An IPv6 interface may be written in brackets, which are removed.
        """
        self.assertEqual(parse_listener("tcp:5060:interface=[::1]").interface, "::1")
        self.assertEqual(parse_listener("tcp:5060:interface=[2001:db8::1]:backlog=5").interface, "2001:db8::1")

    def test_ipv6_escaped(self) -> None:
        """
        An IPv6 interface may be escaped as Twisted's endpoint strings need.
        """
        self.assertEqual(parse_listener("udp:5060:interface=\\:\\:1").interface, "::1")
        self.assertEqual(parse_listener("tcp:5060:interface=2001\\:db8\\:\\:1:backlog=5").interface, "2001:db8::1")

    def test_ipv6_wildcard(self) -> None:
        """
        C{::} binds every IPv6 address.
        """
        self.assertEqual(parse_listener("udp:5060:interface=::").interface, "::")

    def _bad(self, text: str, *fragments: str) -> None:
        with self.assertRaises(ValueError) as caught:
            parse_listener(text)
        for fragment in fragments:
            self.assertIn(fragment, str(caught.exception), text)

    def test_unknown_kind(self) -> None:
        """
        Unknown and unsupported kinds are refused by name.
        """
        self._bad("sctp:5060", "sctp")
        self._bad("ws:80", "ws")
        self._bad("5060", "5060")

    def test_bad_port(self) -> None:
        """
        The port must be a decimal number up to 65535.
        """
        for text in ("udp:", "udp:abc", "udp:-1", "udp:65536", "tcp:50 60", "udp:\uff15\uff10\uff16\uff10"):
            self._bad(text, "port")

    def test_unknown_option(self) -> None:
        """
        Options another kind takes, or no kind, are refused by name.
        """
        self._bad("udp:5060:backlog=5", "unknown option", "backlog")
        self._bad("tcp:5060:certKey=c.pem", "unknown option", "certKey")
        self._bad("tcp:5060:bogus", "unknown option", "bogus")
        self._bad("udp:5060:interface=::1:backlog=5", "unknown option", "backlog")

    def test_bad_interface(self) -> None:
        """
        The interface must be an IP address; brackets go only around a
        whole IPv6 address.
        """
        for text in (
            "tcp:5060:interface=example.com",
            "tcp:5060:interface=",
            "tcp:5060:interface=::1:bogus",
            "tcp:5060:interface=[::1",
            "tcp:5060:interface=::1]",
            "tcp:5060:interface=[127.0.0.1]",
            "tcp:5060:interface=256.0.0.1",
        ):
            self._bad(text, "interface")

    def test_bad_backlog(self) -> None:
        """
        The backlog must be a decimal number.
        """
        self._bad("tcp:5060:backlog=many", "backlog")
        self._bad("tcp:5060:backlog=-1", "backlog")

    def test_bad_flag(self) -> None:
        """
        C{requestClientCertificate} takes only yes or no.
        """
        self._bad("tls:5061:certKey=c.pem:requestClientCertificate=maybe", "requestClientCertificate")

    def test_tls_needs_certificate(self) -> None:
        """
        A TLS listener without a certificate, or with an empty path, is
        refused.
        """
        self._bad("tls:5061", "certKey")
        self._bad("tls:5061:privateKey=k.pem", "certKey")
        self._bad("tls:5061:certKey=", "certKey")
        self._bad("tls:5061:certKey=c.pem:privateKey=", "privateKey")
