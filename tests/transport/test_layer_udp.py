"""
Tests for L{sipstack.transport.layer.TransportLayer} over real UDP sockets on
127.0.0.1 and ::1: messages both ways, Via stamping, the switch to TCP for
large requests, malformed datagrams and the size limit.
"""

from __future__ import annotations

from dataclasses import replace

from twisted.internet.error import CannotListenError, InvalidAddressError, MessageLengthError
from twisted.trial.unittest import TestCase

from sipstack.errors import TransportFailed
from sipstack.hop import CLEARTEXT, Destination, Peer, TransportKind
from sipstack.message import Request, Response, build_response, parse_datagram
from sipstack.transport.layer import TransportLayer
from tests.transport._helpers import (
    NO_IPV6,
    Inbox,
    MixinBase,
    description,
    fast_limits,
    listen_raw_udp,
    make_layer,
    make_request,
    request_bytes,
    sleep,
    stays_false,
    wait_for,
)


async def listen_udp_and_tcp(layer: TransportLayer, host: str) -> Peer:
    """
    Listen on UDP and TCP on the same port number, as a SIP server does (a
    large request for a UDP target goes to the same port over TCP).
    """
    for _ in range(10):
        udp = await layer.listen(description("udp", host))
        try:
            await layer.listen(description("tcp", host, udp.port))
        except CannotListenError:
            continue
        return udp
    raise AssertionError("found no port free for both UDP and TCP")


class _UDPTests(MixinBase):
    """
    The UDP transport over one address family.
    """

    host: str

    async def test_request_and_response(self) -> None:
        """
        A request sent over UDP arrives as cleartext from the sender's
        socket, and the response sent back on its flow arrives at the sender.
        """
        inbox_a, inbox_b = Inbox(), Inbox()
        a, b = make_layer(self, inbox_a), make_layer(self, inbox_b)
        peer_a = await a.listen(description("udp", self.host))
        peer_b = await b.listen(description("udp", self.host))

        sent = await a.send_request(make_request(), Destination(TransportKind.UDP, peer_b))
        self.assertEqual(sent.flow.transport, TransportKind.UDP)
        self.assertEqual(sent.flow.remote, peer_b)
        request = (await inbox_b.wait()).message
        received = inbox_b.messages[0]
        assert isinstance(request, Request)
        self.assertEqual(received.flow.transport, TransportKind.UDP)
        self.assertEqual(received.source, peer_a)
        self.assertEqual(received.flow.local, peer_b)
        self.assertEqual(received.security, CLEARTEXT)
        self.assertEqual(request.top_via.transport, "UDP")

        await b.send_response(build_response(request, 200), received.flow)
        answer = await inbox_a.wait()
        assert isinstance(answer.message, Response)
        self.assertEqual(answer.message.status, 200)
        self.assertEqual(answer.source, peer_b)
        self.assertEqual(answer.flow.local, peer_a)
        self.assertEqual(answer.security, CLEARTEXT)
        self.assertEqual(answer.message.top_via.param("branch"), sent.message.top_via.param("branch"))

    async def test_request_each_way(self) -> None:
        """
        Two layers can each send requests to the other.
        """
        inbox_a, inbox_b = Inbox(), Inbox()
        a, b = make_layer(self, inbox_a), make_layer(self, inbox_b)
        peer_a = await a.listen(description("udp", self.host))
        peer_b = await b.listen(description("udp", self.host))
        await a.send_request(make_request(method="MESSAGE"), Destination(TransportKind.UDP, peer_b))
        await b.send_request(make_request(method="NOTIFY"), Destination(TransportKind.UDP, peer_a))
        from_a, from_b = await inbox_b.wait(), await inbox_a.wait()
        assert isinstance(from_a.message, Request) and isinstance(from_b.message, Request)
        self.assertEqual((from_a.message.method, from_a.source), ("MESSAGE", peer_a))
        self.assertEqual((from_b.message.method, from_b.source), ("NOTIFY", peer_b))

    async def test_sent_via(self) -> None:
        """
        A request goes out with a top Via naming UDP, the listener's address
        and port, and C{rport} (RFC 3261 section 18.1.1, RFC 3581).
        """
        a = make_layer(self)
        peer_a = await a.listen(description("udp", self.host))
        raw = listen_raw_udp(self, self.host)
        assert raw.local is not None
        sent = await a.send_request(make_request(), Destination(TransportKind.UDP, raw.local))
        await wait_for(lambda: raw.received, "the request")
        [(data, source)] = raw.received
        self.assertEqual(source, peer_a)
        self.assertEqual(data, sent.data)
        request = parse_datagram(data)
        assert isinstance(request, Request)
        via = request.top_via
        self.assertEqual((via.transport, via.port, via.has_rport), ("UDP", peer_a.port, True))
        self.assertEqual(via.host.strip("[]"), self.host)

    async def test_received_and_rport_stamped(self) -> None:
        """
        A received request's top Via gets C{received} (the source address)
        and, when the client asked with a bare C{rport}, the source port
        (RFC 3261 section 18.2.1, RFC 3581 section 4).
        """
        inbox = Inbox()
        b = make_layer(self, inbox)
        peer_b = await b.listen(description("udp", self.host))
        raw = listen_raw_udp(self, self.host)
        assert raw.local is not None
        raw.send(request_bytes(via_host="192.0.2.1", via_port=5999), peer_b)
        raw.send(request_bytes(via_host="192.0.2.1", via_port=5999, rport=False), peer_b)
        await inbox.wait(2)
        with_rport, without = (received.message for received in inbox.messages)
        assert isinstance(with_rport, Request) and isinstance(without, Request)
        self.assertEqual(with_rport.top_via.received, self.host)
        self.assertEqual(with_rport.top_via.rport, raw.local.port)
        self.assertEqual(without.top_via.received, self.host)
        self.assertFalse(without.top_via.has_rport)

    async def test_response_to_received_and_rport(self) -> None:
        """
        A response goes to the C{received}/C{rport} address of its request,
        not to a sent-by that cannot be reached (RFC 3581 section 4).
        """
        inbox = Inbox()
        b = make_layer(self, inbox)
        peer_b = await b.listen(description("udp", self.host))
        raw = listen_raw_udp(self, self.host)
        raw.send(request_bytes(via_host="192.0.2.1", via_port=5999), peer_b)
        received = await inbox.wait()
        assert isinstance(received.message, Request)
        await b.send_response(build_response(received.message, 486), received.flow)
        await wait_for(lambda: raw.received, "the response")
        [(data, source)] = raw.received
        self.assertEqual(source, peer_b)
        self.assertTrue(data.startswith(b"SIP/2.0 486 "))

    async def test_response_from_the_receiving_socket(self) -> None:
        """
        With two UDP listeners of the same family, a response leaves from the
        socket its request arrived on (RFC 3581 section 4: symmetric
        response for NAT traversal).
        """
        inbox = Inbox()
        b = make_layer(self, inbox)
        await b.listen(description("udp", self.host))
        second = await b.listen(description("udp", self.host))
        raw = listen_raw_udp(self, self.host)
        raw.send(request_bytes(via_host="192.0.2.1", via_port=5999), second)
        received = await inbox.wait()
        assert isinstance(received.message, Request)
        sent = await b.send_response(build_response(received.message, 200), received.flow)
        self.assertEqual(sent.flow.local, second)
        await wait_for(lambda: raw.received, "the response")
        self.assertEqual(raw.received[0][1], second)

    async def test_large_request_goes_over_tcp(self) -> None:
        """
        A request over 1300 bytes planned over UDP goes over TCP to the same
        port (RFC 3261 section 18.1.1): the receiver gets it on a TCP flow,
        with a Via naming TCP, and answers on that connection.
        """
        inbox_a, inbox_b = Inbox(), Inbox()
        a, b = make_layer(self, inbox_a, limits=fast_limits()), make_layer(self, inbox_b, limits=fast_limits())
        await a.listen(description("udp", self.host))
        peer_b = await listen_udp_and_tcp(b, self.host)

        sent = await a.send_request(make_request(size=2000), Destination(TransportKind.UDP, peer_b))
        self.assertGreater(len(sent.data), 1300)
        self.assertEqual(sent.flow.transport, TransportKind.TCP)
        self.assertEqual(sent.message.top_via.transport, "TCP")
        received = await inbox_b.wait()
        assert isinstance(received.message, Request)
        self.assertEqual(received.flow.transport, TransportKind.TCP)
        self.assertEqual(received.message.top_via.transport, "TCP")
        self.assertEqual(received.message.body, sent.message.body)

        await b.send_response(build_response(received.message, 200), received.flow)
        answer = await inbox_a.wait()
        self.assertEqual(answer.flow, sent.flow)
        self.assertEqual(len(b.flows), 1)

    async def test_large_request_falls_back_to_udp(self) -> None:
        """
        When the target has no TCP listener, a large request goes over UDP
        after all, with a Via naming UDP, and arrives whole.
        """
        inbox_b = Inbox()
        a, b = make_layer(self, limits=fast_limits()), make_layer(self, inbox_b)
        await a.listen(description("udp", self.host))
        peer_b = await b.listen(description("udp", self.host))

        sent = await a.send_request(make_request(size=2000), Destination(TransportKind.UDP, peer_b))
        self.assertEqual(sent.flow.transport, TransportKind.UDP)
        self.assertEqual(sent.message.top_via.transport, "UDP")
        received = await inbox_b.wait()
        assert isinstance(received.message, Request)
        self.assertEqual(received.flow.transport, TransportKind.UDP)
        self.assertEqual(received.message.top_via.transport, "UDP")
        self.assertEqual(received.message.body, sent.message.body)
        self.assertEqual(a.flows, {})

    async def test_datagram_larger_than_8k_arrives_whole(self) -> None:
        """
        A datagram larger than Twisted's default receive size (8192 bytes)
        but within C{max_message_bytes} is received whole, not truncated.
        """
        inbox_b = Inbox()
        a, b = make_layer(self, limits=fast_limits()), make_layer(self, inbox_b)
        await a.listen(description("udp", self.host))
        peer_b = await b.listen(description("udp", self.host))
        sent = await a.send_request(make_request(size=12_000), Destination(TransportKind.UDP, peer_b))
        received = await inbox_b.wait()
        self.assertEqual(received.message.body, sent.message.body)

    async def test_resend(self) -> None:
        """
        L{TransportLayer.resend} sends a UDP request again, byte for byte.
        """
        a = make_layer(self)
        await a.listen(description("udp", self.host))
        raw = listen_raw_udp(self, self.host)
        assert raw.local is not None
        sent = await a.send_request(make_request(), Destination(TransportKind.UDP, raw.local))
        a.resend(sent)
        await wait_for(lambda: len(raw.received) == 2, "two copies")
        self.assertEqual(raw.received[0][0], raw.received[1][0])

    async def test_resend_datagram(self) -> None:
        """
        L{TransportLayer.resend_datagram} writes bytes again from the socket
        a flow names; a flow whose socket is closed fails.
        """
        a = make_layer(self)
        await a.listen(description("udp", self.host))
        raw = listen_raw_udp(self, self.host)
        assert raw.local is not None
        sent = await a.send_request(make_request(), Destination(TransportKind.UDP, raw.local))
        a.resend_datagram(sent.flow, sent.data)
        await wait_for(lambda: len(raw.received) == 2, "two copies")
        self.assertEqual(raw.received[0][0], raw.received[1][0])
        with self.assertRaises(TransportFailed):
            a.resend_datagram(replace(sent.flow, local=Peer(self.host, 9)), sent.data)

    async def test_datagram_send_errors(self) -> None:
        """
        The socket is written directly for an IP literal of its family,
        with Twisted's error handling: a datagram too large for UDP raises
        L{MessageLengthError}; an address of the other family or a host
        name goes through Twisted's checks, which refuse it rather than
        resolve it; nothing is sent then.
        """
        layer = make_layer(self)
        await layer.listen(description("udp", self.host))
        (protocol,) = layer._udp
        raw = listen_raw_udp(self, self.host)
        assert raw.local is not None
        protocol.send(b"small", raw.local)
        await wait_for(lambda: raw.received, "the datagram")
        with self.assertRaises(MessageLengthError):
            protocol.send(b"x" * 70_000, raw.local)
        other = "::1" if self.host == "127.0.0.1" else "127.0.0.1"
        for host in (other, "localhost"):
            with self.assertRaises(InvalidAddressError):
                protocol.send(b"nowhere", Peer(host, raw.local.port))
        await stays_false(lambda: len(raw.received) > 1, "another datagram", 0.05)

    async def test_no_listener_for_the_family(self) -> None:
        """
        Sending over UDP without a UDP listener of the target's address
        family fails with L{TransportFailed}.
        """
        a = make_layer(self)
        other = "::1" if self.host == "127.0.0.1" else "127.0.0.1"
        await a.listen(description("udp", other))
        with self.assertRaises(TransportFailed):
            await a.send_request(make_request(), Destination(TransportKind.UDP, Peer(self.host, 9)))

    async def test_malformed_request_answered_400(self) -> None:
        """
        A malformed request gets a 400 whose reason names the fault, sent
        back to the address it came from; nothing is handed up.
        """
        inbox = Inbox()
        b = make_layer(self, inbox)
        peer_b = await b.listen(description("udp", self.host))
        raw = listen_raw_udp(self, self.host)
        bad = request_bytes(via_host="192.0.2.1", via_port=5999).replace(b"CSeq: ", b"CSeq: abc ")
        raw.send(bad, peer_b)
        await wait_for(lambda: raw.received, "the 400")
        [(data, source)] = raw.received
        self.assertEqual(source, peer_b)
        # The answer copies the broken CSeq, so only its status line is read.
        status_line = data.split(b"\r\n")[0]
        self.assertTrue(status_line.startswith(b"SIP/2.0 400 "), status_line)
        self.assertIn(b"CSeq", status_line)
        self.assertIn(b"branch=z9hG4bKtest", data)
        self.assertEqual(inbox.messages, [])

    async def test_malformed_request_answered_at_sent_by_port(self) -> None:
        """
        Without C{rport}, the 400 goes to the source address and the Via's
        sent-by port (RFC 3261 section 18.2.2).
        """
        b = make_layer(self)
        peer_b = await b.listen(description("udp", self.host))
        sender, listener = listen_raw_udp(self, self.host), listen_raw_udp(self, self.host)
        assert listener.local is not None
        bad = request_bytes(via_host="192.0.2.1", via_port=listener.local.port, rport=False)
        sender.send(bad.replace(b"Max-Forwards: 70", b"Max-Forwards: lots"), peer_b)
        await wait_for(lambda: listener.received, "the 400")
        self.assertTrue(listener.received[0][0].startswith(b"SIP/2.0 400 "))
        self.assertIn(b"Max-Forwards", listener.received[0][0].split(b"\r\n")[0])
        self.assertEqual(sender.received, [])

    async def test_malformed_response_dropped(self) -> None:
        """
        A malformed response is dropped silently; the socket keeps working.
        """
        inbox = Inbox()
        b = make_layer(self, inbox)
        peer_b = await b.listen(description("udp", self.host))
        raw = listen_raw_udp(self, self.host)
        raw.send(b"SIP/2.0 2x0 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n", peer_b)
        raw.send(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", peer_b)  # no Via
        await stays_false(lambda: raw.received or inbox.messages, "an answer to a malformed response")
        raw.send(request_bytes(), peer_b)
        await inbox.wait()
        self.assertEqual(raw.received, [])

    async def test_oversize_datagram_answered_513(self) -> None:
        """
        A datagram larger than C{max_message_bytes} gets 513 Message Too
        Large (RFC 3261 section 21.5.14) and is not handed up.
        """
        inbox = Inbox()
        b = make_layer(self, inbox, limits=fast_limits(max_message_bytes=1500))
        peer_b = await b.listen(description("udp", self.host))
        raw = listen_raw_udp(self, self.host)
        raw.send(request_bytes(body=b"x" * 3000), peer_b)
        await wait_for(lambda: raw.received, "the 513")
        self.assertTrue(raw.received[0][0].startswith(b"SIP/2.0 513 "))
        raw.send(request_bytes(body=b"x" * 500), peer_b)
        await inbox.wait()
        self.assertEqual(len(inbox.messages[0].message.body), 500)

    async def test_garbage_does_not_disturb_others(self) -> None:
        """
        Garbage datagrams from one sender neither stop the socket nor reach
        the handler; a good sender's requests keep arriving.
        """
        inbox = Inbox()
        b = make_layer(self, inbox)
        peer_b = await b.listen(description("udp", self.host))
        bad, good = listen_raw_udp(self, self.host), listen_raw_udp(self, self.host)
        for garbage in (b"\x00\xff\xfe garbage", b"\r\n\r\n", b"INVITE\r\n\r\n", b"\xff" * 5000):
            bad.send(garbage, peer_b)
            good.send(request_bytes(), peer_b)
        await inbox.wait(4)
        await sleep(0.05)
        self.assertEqual(len(inbox.messages), 4)
        self.assertEqual({received.source for received in inbox.messages}, {good.local})


class UDPOverIPv4Tests(_UDPTests, TestCase):
    host = "127.0.0.1"


class UDPOverIPv6Tests(_UDPTests, TestCase):
    host = "::1"
    skip = NO_IPV6
