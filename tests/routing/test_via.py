"""
Tests for L{sipstack.routing.via}: the Via rules of RFC 3261 section 18 and
RFC 3581.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sipstack.hop import Peer, TransportKind
from sipstack.message import Request, parse_datagram, serialize
from sipstack.message.via import Via, parse_via
from sipstack.routing import (
    ResponseTarget,
    new_branch,
    outgoing_via,
    response_target,
    stamp_received,
    transport_for_size,
)


def _request(via: str) -> Request:
    data = (
        f"OPTIONS sip:b@example.org SIP/2.0\r\nVia: {via}\r\nVia: SIP/2.0/UDP older.example.org;branch=z9hG4bKold\r\n"
        "From: <sip:a@example.org>;tag=1\r\nTo: <sip:b@example.org>\r\nCall-ID: c@x\r\nCSeq: 1 OPTIONS\r\n"
        "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    request = parse_datagram(data)
    assert isinstance(request, Request)
    return request


def _via(text: str) -> Via:
    [via] = parse_via(text)
    return via


class StampReceivedTests(SynchronousTestCase):
    """
    A server stamps received and rport on the top Via (RFC 3261 section 18.2.1, RFC 3581).
    """

    def test_same_address_untouched(self) -> None:
        """A sent-by that is the source address, without rport, is left alone."""
        request = _request("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1")
        self.assertIs(stamp_received(request, Peer("192.0.2.1", 5060)), request)

    def test_name_gets_received(self) -> None:
        """A host name in sent-by gets received with the source address."""
        request = stamp_received(_request("SIP/2.0/UDP pc.example.org;branch=z9hG4bK1"), Peer("192.0.2.9", 5070))
        self.assertEqual(request.top_via.received, "192.0.2.9")
        self.assertFalse(request.top_via.has_rport)

    def test_rport_filled(self) -> None:
        """An empty rport gets the source port, and received is always added."""
        request = stamp_received(_request("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport"), Peer("192.0.2.1", 40000))
        self.assertEqual(request.top_via.rport, 40000)
        self.assertEqual(request.top_via.received, "192.0.2.1")

    def test_ipv6(self) -> None:
        """An IPv6 source is written without brackets in received."""
        request = stamp_received(_request("SIP/2.0/TCP [2001:db8::1];branch=z9hG4bK1;rport"), Peer("2001:db8::9", 5))
        self.assertEqual(request.top_via.received, "2001:db8::9")
        self.assertEqual(request.top_via.rport, 5)
        same = _request("SIP/2.0/TCP [2001:DB8:0::9]:5060;branch=z9hG4bK1")
        self.assertIs(stamp_received(same, Peer("2001:db8::9", 5060)), same)

    def test_other_vias_and_headers_kept(self) -> None:
        """Only the top Via changes; the stamped request still serializes and parses."""
        request = stamp_received(_request("SIP/2.0/UDP pc.example.org;branch=z9hG4bK1;rport"), Peer("192.0.2.9", 1))
        self.assertEqual(len(request.vias), 2)
        self.assertEqual(request.vias[1].branch, "z9hG4bKold")
        self.assertEqual(parse_datagram(serialize(request)), request)
        reparsed = parse_datagram(serialize(request))
        assert reparsed is not None
        self.assertEqual(reparsed.vias, request.vias)


class ResponseTargetTests(SynchronousTestCase):
    """
    Responses go where RFC 3261 section 18.2.2 and RFC 3581 say.
    """

    def test_rport_and_received(self) -> None:
        """received with an rport value wins."""
        target = response_target(_via("SIP/2.0/UDP pc.example.org:5062;received=192.0.2.9;rport=40000;maddr=x"))
        self.assertEqual(target, ResponseTarget("192.0.2.9", 40000, TransportKind.UDP))

    def test_rport_ignored_on_streams(self) -> None:
        """Over TCP and TLS, rport is not used: received with the sent-by port is (RFC 3581 section 4)."""
        target = response_target(_via("SIP/2.0/TCP pc.example.org:5062;received=192.0.2.9;rport=40000"))
        self.assertEqual(target, ResponseTarget("192.0.2.9", 5062, TransportKind.TCP))

    def test_maddr(self) -> None:
        """maddr on an unreliable transport sends to it with the TTL (default 1)."""
        target = response_target(_via("SIP/2.0/UDP pc.example.org;maddr=239.255.255.1;ttl=16"))
        self.assertEqual(target, ResponseTarget("239.255.255.1", 5060, TransportKind.UDP, ttl=16))
        self.assertEqual(response_target(_via("SIP/2.0/UDP pc.example.org;maddr=239.255.255.1")).ttl, 1)

    def test_received_with_sent_by_port(self) -> None:
        """received without rport uses the sent-by port, or the transport's default."""
        self.assertEqual(
            response_target(_via("SIP/2.0/UDP pc.example.org:5070;received=192.0.2.9")),
            ResponseTarget("192.0.2.9", 5070, TransportKind.UDP),
        )
        self.assertEqual(response_target(_via("SIP/2.0/TLS pc.example.org;received=192.0.2.9")).port, 5061)

    def test_sent_by(self) -> None:
        """Without received the sent-by is used; a name must then be resolved."""
        target = response_target(_via("SIP/2.0/TCP pc.example.org"))
        self.assertEqual(target, ResponseTarget("pc.example.org", 5060, TransportKind.TCP))
        self.assertFalse(target.resolved)
        self.assertTrue(response_target(_via("SIP/2.0/UDP [2001:db8::1]:5999")).resolved)
        self.assertEqual(response_target(_via("SIP/2.0/UDP [2001:db8::1]:5999")).host, "2001:db8::1")

    def test_unknown_transport(self) -> None:
        """An unknown transport token is answered as over UDP."""
        self.assertEqual(response_target(_via("SIP/2.0/SCTP 192.0.2.1")).transport, TransportKind.UDP)


class OutgoingViaTests(SynchronousTestCase):
    """
    A client writes the transport it uses, its sent-by, and rport.
    """

    def test_stamp(self) -> None:
        """The transport and sent-by are replaced, the branch kept, rport added once."""
        branch = new_branch()
        via = outgoing_via(_via(f"SIP/2.0/UDP placeholder;branch={branch}"), TransportKind.TLS, Peer("::1", 5061))
        self.assertEqual(str(via), f"SIP/2.0/TLS [::1]:5061;branch={branch};rport")
        self.assertEqual(outgoing_via(via, TransportKind.TLS, ("h.example.org", None)).params, via.params)

    def test_branches_unique(self) -> None:
        """Branches carry the magic cookie and differ."""
        branches = {new_branch() for _ in range(100)}
        self.assertEqual(len(branches), 100)
        self.assertTrue(all(branch.startswith("z9hG4bK") for branch in branches))

    def test_size_switch(self) -> None:
        """Over 1300 bytes UDP becomes TCP, unless UDP was explicit; others are kept."""
        self.assertIs(transport_for_size(TransportKind.UDP, 1301), TransportKind.TCP)
        self.assertIs(transport_for_size(TransportKind.UDP, 1300), TransportKind.UDP)
        self.assertIs(transport_for_size(TransportKind.UDP, 5000, explicit=True), TransportKind.UDP)
        self.assertIs(transport_for_size(TransportKind.TLS, 5000), TransportKind.TLS)
