"""
Tests for L{sipstack.transport.layer.TransportLayer} over real TCP
connections on 127.0.0.1 and ::1: connection reuse, keep-alives, and each
connection limit against raw clients that misbehave.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SkipTest, TestCase

from sipstack.errors import TransportFailed
from sipstack.hop import CLEARTEXT, Destination, Peer, TransportKind
from sipstack.message import Request, Response, build_response
from sipstack.message.envelope import Received
from sipstack.transport.layer import TransportLayer
from tests.transport._helpers import (
    NO_IPV6,
    WAIT,
    Inbox,
    MixinBase,
    connect_raw,
    description,
    fast_limits,
    make_layer,
    make_request,
    reactor,
    request_bytes,
    sleep,
    stays_false,
    wait_for,
)


class Responder(Inbox):
    """
    An inbox that also answers every request with 200 on its flow.
    """

    layer: TransportLayer

    def __call__(self, received: Received) -> None:
        super().__call__(received)
        if isinstance(received.message, Request) and received.message.method != "ACK":
            self.layer.send_response(build_response(received.message, 200), received.flow)


class _StreamTests(MixinBase):
    """
    The TCP transport over one address family.
    """

    host: str

    async def server(self, inbox: Inbox | None = None, **limits: Any) -> tuple[TransportLayer, Peer, Inbox]:
        """A layer listening on TCP with C{limits}; by default it answers 200."""
        if inbox is None:
            inbox = Responder()
        layer = make_layer(self, inbox, limits=fast_limits(**limits))
        if isinstance(inbox, Responder):
            inbox.layer = layer
        return layer, await layer.listen(description("tcp", self.host)), inbox

    async def test_response_on_the_inbound_connection(self) -> None:
        """
        A request over TCP arrives as cleartext with C{received}/C{rport}
        stamped; the response goes back on the same connection, and a second
        request reuses it: neither side opens another connection.
        """
        inbox_a, inbox_b = Inbox(), Inbox()
        a = make_layer(self, inbox_a, limits=fast_limits())
        b = make_layer(self, inbox_b, limits=fast_limits())
        listener_a = await a.listen(description("tcp", self.host))
        peer_b = await b.listen(description("tcp", self.host))

        sent = await a.send_request(make_request(), Destination(TransportKind.TCP, peer_b))
        self.assertEqual((sent.flow.transport, sent.flow.remote), (TransportKind.TCP, peer_b))
        self.assertEqual(sent.message.top_via.transport, "TCP")
        self.assertEqual(sent.message.top_via.port, listener_a.port)
        received = await inbox_b.wait()
        request = received.message
        assert isinstance(request, Request)
        self.assertEqual(received.flow.transport, TransportKind.TCP)
        self.assertEqual(received.security, CLEARTEXT)
        self.assertEqual(received.source, sent.flow.local)
        self.assertEqual(request.top_via.received, self.host)
        self.assertEqual(request.top_via.rport, sent.flow.local.port)
        self.assertEqual(request.top_via.transport, "TCP")

        reply = await b.send_response(build_response(request, 200), received.flow)
        self.assertEqual(reply.flow, received.flow)
        answer = await inbox_a.wait()
        assert isinstance(answer.message, Response)
        self.assertEqual(answer.flow, sent.flow)
        self.assertEqual(answer.security, CLEARTEXT)

        again = await a.send_request(make_request(), Destination(TransportKind.TCP, peer_b))
        self.assertEqual(again.flow, sent.flow)
        self.assertEqual((await inbox_b.wait(2)).flow, received.flow)
        self.assertEqual(list(a.flows), [sent.flow])
        self.assertEqual(list(b.flows), [received.flow])

    async def test_request_back_on_the_inbound_connection(self) -> None:
        """
        The server can send a request back to the client on the connection
        the client opened (C{flow=}), which the client receives on its flow.
        """
        inbox_a, inbox_b = Inbox(), Inbox()
        a = make_layer(self, inbox_a, limits=fast_limits())
        b = make_layer(self, inbox_b, limits=fast_limits())
        listener_a = await a.listen(description("tcp", self.host))
        peer_b = await b.listen(description("tcp", self.host))
        sent = await a.send_request(make_request(), Destination(TransportKind.TCP, peer_b))
        flow_b = (await inbox_b.wait()).flow

        back = await b.send_request(
            make_request(method="NOTIFY"), Destination(TransportKind.TCP, listener_a), flow=flow_b
        )
        self.assertEqual(back.flow, flow_b)
        received = await inbox_a.wait()
        assert isinstance(received.message, Request)
        self.assertEqual(received.message.method, "NOTIFY")
        self.assertEqual(received.flow, sent.flow)
        self.assertEqual(len(a.flows), 1)
        self.assertEqual(len(b.flows), 1)

    async def test_concurrent_sends_share_one_connection(self) -> None:
        """
        Requests sent to the same destination before the connection is up
        wait for that one connection and all go over it.
        """
        a = make_layer(self, limits=fast_limits())
        b, peer_b, inbox_b = await self.server(Inbox())
        destination = Destination(TransportKind.TCP, peer_b)
        pending = [a.send_request(make_request(), destination) for _ in range(3)]
        flows = set()
        for result in pending:
            flows.add((await result).flow)
        await inbox_b.wait(3)
        self.assertEqual(len(flows), 1)
        self.assertEqual(len(b.flows), 1)

    async def test_connection_refused(self) -> None:
        """
        With nothing listening, sending fails with L{TransportFailed}.
        """
        b, peer_b, _ = await self.server()
        await b.close()
        a = make_layer(self, limits=fast_limits())
        with self.assertRaises(TransportFailed):
            await a.send_request(make_request(), Destination(TransportKind.TCP, peer_b))
        self.assertEqual(a.flows, {})

    async def test_handler_error_keeps_the_connection(self) -> None:
        """
        An exception in the message handler is logged; the connection and
        the next message are unaffected.
        """
        inbox = Inbox()

        def handler(received: Received) -> None:
            inbox(received)
            if len(inbox.messages) == 1:
                raise RuntimeError("handler bug")

        b = make_layer(self, handler, limits=fast_limits())
        peer_b = await b.listen(description("tcp", self.host))
        client = await connect_raw(self, peer_b)
        client.send(request_bytes())
        await inbox.wait()
        client.send(request_bytes())
        await inbox.wait(2)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertFalse(client.closed)

    async def test_response_after_the_connection_closed(self) -> None:
        """
        When the request's connection is gone, the response goes over a new
        connection to the C{received} address and the sent-by port (RFC 3261
        section 18.2.2; C{rport} is for unreliable transports only, RFC 3581
        section 4).
        """
        inbox_a, inbox_b = Inbox(), Inbox()
        a = make_layer(self, inbox_a, limits=fast_limits())
        b = make_layer(self, inbox_b, limits=fast_limits())
        await a.listen(description("tcp", self.host))
        peer_b = await b.listen(description("tcp", self.host))
        sent = await a.send_request(make_request(), Destination(TransportKind.TCP, peer_b))
        received = await inbox_b.wait()
        assert isinstance(received.message, Request)
        stream = a.stream(sent.flow)
        assert stream is not None
        stream.abort()
        await wait_for(lambda: not b.flows, "the connection to close")
        reply = await b.send_response(build_response(received.message, 200), received.flow)
        self.assertNotEqual(reply.flow, received.flow)
        answer = await inbox_a.wait()
        self.assertEqual(answer.flow.remote, reply.flow.local)

    # Keep-alives (RFC 5626 section 3.5.1)

    async def test_keepalive_ping_pong(self) -> None:
        """
        A layer with a keep-alive interval pings the connections it opened;
        the server answers each with a pong, which the client counts.
        """
        inbox_b = Inbox()
        a = make_layer(self, limits=fast_limits(), keepalive_interval=0.05)
        b, peer_b, _ = await self.server(inbox_b)
        sent = await a.send_request(make_request(), Destination(TransportKind.TCP, peer_b))
        stream = a.stream(sent.flow)
        assert stream is not None
        await wait_for(lambda: stream.pongs_received >= 2, "two pongs")
        self.assertEqual(len(inbox_b.messages), 1)
        self.assertEqual(len(b.flows), 1)

    async def test_raw_ping_answered(self) -> None:
        """
        A double CRLF sent raw to the server gets a single CRLF back.
        """
        _, peer_b, inbox = await self.server()
        client = await connect_raw(self, peer_b)
        client.send(b"\r\n\r\n")
        await wait_for(lambda: client.received == b"\r\n", "the pong")
        client.send(b"\r\n\r\n" + request_bytes())
        await inbox.wait()
        await wait_for(lambda: client.received.startswith(b"\r\n\r\nSIP/2.0 200 "), "a pong and a 200")

    # Limits

    async def test_oversize_message_answered_513_then_closed(self) -> None:
        """
        A message larger than C{max_message_bytes} gets 513, then the
        connection is closed; nothing is handed up.
        """
        b, peer_b, inbox = await self.server(max_message_bytes=2000)
        client = await connect_raw(self, peer_b)
        client.send(request_bytes(body=b"x" * 3000))
        await client.lost
        self.assertTrue(client.received.startswith(b"SIP/2.0 513 "), client.received[:40])
        self.assertEqual(inbox.messages, [])
        await wait_for(lambda: not b.flows, "the flow to go")

    async def test_too_many_connections_per_peer(self) -> None:
        """
        A connection over C{max_connections_per_peer} from one address is
        closed at once; the earlier ones keep working, and once one goes a
        new one is accepted.
        """
        b, peer_b, inbox = await self.server(max_connections_per_peer=2)
        first, second = await connect_raw(self, peer_b), await connect_raw(self, peer_b)
        await wait_for(lambda: len(b.flows) == 2, "two flows")
        extra = await connect_raw(self, peer_b)
        await extra.lost
        for client in (first, second):
            client.send(request_bytes())
        await inbox.wait(2)
        await wait_for(lambda: first.received and second.received, "both answers")
        self.assertFalse(first.closed or second.closed)

        assert first.transport is not None
        first.transport.loseConnection()
        await first.lost
        await wait_for(lambda: len(b.flows) == 1, "the flow to go")
        replacement = await connect_raw(self, peer_b)
        replacement.send(request_bytes())
        await inbox.wait(3)
        self.assertFalse(replacement.closed)

    async def test_too_many_connections(self) -> None:
        """
        A connection over C{max_connections} is closed at once; the existing
        ones keep working.
        """
        b, peer_b, inbox = await self.server(max_connections=2)
        first, second = await connect_raw(self, peer_b), await connect_raw(self, peer_b)
        await wait_for(lambda: len(b.flows) == 2, "two flows")
        extra = await connect_raw(self, peer_b)
        await extra.lost
        for client in (first, second):
            client.send(request_bytes())
        await inbox.wait(2)
        self.assertFalse(first.closed or second.closed)
        self.assertEqual(len(b.flows), 2)

    async def test_outbound_connections_not_counted_per_peer(self) -> None:
        """
        Connections a layer opened itself do not use up the quota of
        connections I{from} that address.
        """
        b, peer_b, inbox_b = await self.server(max_connections_per_peer=1)
        _c, peer_c, _ = await self.server()
        await b.send_request(make_request(), Destination(TransportKind.TCP, peer_c))
        client = await connect_raw(self, peer_b)
        client.send(request_bytes())
        await inbox_b.wait()
        self.assertFalse(client.closed)

    async def test_slow_partial_message_closed(self) -> None:
        """
        A connection that starts a message and does not finish it within
        C{partial_message_timeout} is closed.
        """
        _b, peer_b, inbox = await self.server(partial_message_timeout=0.2)
        client = await connect_raw(self, peer_b)
        started = reactor.seconds()
        client.send(request_bytes()[:60])
        await client.lost
        self.assertGreater(reactor.seconds() - started, 0.15)
        self.assertEqual(inbox.messages, [])

    async def test_partial_message_finished_in_time(self) -> None:
        """
        A message completed within C{partial_message_timeout} is delivered,
        and the connection then stays open past that timeout.
        """
        _b, peer_b, inbox = await self.server(partial_message_timeout=0.2)
        client = await connect_raw(self, peer_b)
        data = request_bytes()
        client.send(data[:60])
        await sleep(0.1)
        client.send(data[60:])
        await inbox.wait()
        await stays_false(lambda: client.closed, "the connection closed", 0.3)

    async def test_idle_connection_closed(self) -> None:
        """
        A connection that carries nothing for C{idle_timeout} is closed;
        traffic (here, pings) keeps one open.
        """
        b, peer_b, _ = await self.server(idle_timeout=0.3)
        idle, busy = await connect_raw(self, peer_b), await connect_raw(self, peer_b)
        started = reactor.seconds()
        while not idle.closed and reactor.seconds() - started < WAIT:
            busy.send(b"\r\n\r\n")
            await sleep(0.05)
        self.assertTrue(idle.closed)
        self.assertGreater(reactor.seconds() - started, 0.25)
        self.assertFalse(busy.closed)
        await busy.lost
        self.assertEqual(b.flows, {})

    async def test_reader_that_never_reads_dropped(self) -> None:
        """
        A peer that stops reading while the server writes to it is dropped
        once the output queued for it passes C{max_output_buffer_bytes}; a
        peer reading the same stream of data is not.
        """
        b, peer_b, inbox = await self.server(Inbox(), max_output_buffer_bytes=256 * 1024)
        stalled, reading = await connect_raw(self, peer_b), await connect_raw(self, peer_b)
        reading.keep = False
        stalled.send(request_bytes())
        reading.send(request_bytes())
        await inbox.wait(2)
        streams = {}
        for received in inbox.messages:
            stream = b.stream(received.flow)
            assert stream is not None
            streams[received.source] = stream
        stalled_stream, reading_stream = streams[stalled.local], streams[reading.local]
        assert stalled.transport is not None
        stalled.transport.pauseProducing()  # type: ignore[attr-defined]  # stop reading

        # Less than Twisted's 64 KiB send buffer per reactor turn: a peer that
        # reads keeps up, so only one that does not is ever held back.
        chunk = b"x" * 16 * 1024
        written, started = 0, reactor.seconds()
        while not stalled_stream.closed and reactor.seconds() - started < WAIT:
            stalled_stream.write(chunk)
            reading_stream.write(chunk)
            written += len(chunk)
            await sleep(0)
        await stalled_stream.lost
        self.assertGreater(written, 256 * 1024)
        self.assertFalse(reading_stream.closed)
        await wait_for(lambda: reading.byte_count == written, "the reading peer to get everything")
        reading.send(b"\r\n\r\n")
        await wait_for(lambda: reading.byte_count == written + 2, "the reading peer's pong")
        self.assertEqual(len(b.flows), 1)

    async def test_misbehaving_client_does_not_disturb_a_good_one(self) -> None:
        """
        A client sending a garbled request gets 400, then sending binary
        garbage is disconnected, while a layer client on another connection
        keeps getting answers.
        """
        b, peer_b, _ = await self.server(max_header_bytes=4096)
        inbox_a = Inbox()
        a = make_layer(self, inbox_a, limits=fast_limits())
        good = Destination(TransportKind.TCP, peer_b)
        bad = await connect_raw(self, peer_b)

        await a.send_request(make_request(), good)
        await inbox_a.wait(1)
        bad.send(b"hello there\r\nVia: SIP/2.0/TCP bad.example.com;branch=z9hG4bKx\r\nContent-Length: 0\r\n\r\n")
        await wait_for(lambda: bad.received.startswith(b"SIP/2.0 400 "), "a 400 for the garbage")
        await a.send_request(make_request(), good)
        await inbox_a.wait(2)
        bad.send(b"\x00\xff" * 5000)
        await bad.lost
        await a.send_request(make_request(), good)
        await inbox_a.wait(3)
        self.assertEqual(len(a.flows), 1)
        self.assertEqual(len(b.flows), 1)

    async def test_malformed_request_answered_connection_kept(self) -> None:
        """
        A well-framed but invalid request gets 400 naming the fault on its
        connection, which stays open for the next request.
        """
        _b, peer_b, inbox = await self.server()
        client = await connect_raw(self, peer_b)
        client.send(request_bytes().replace(b"CSeq: ", b"CSeq: abc "))
        await wait_for(lambda: b"\r\n\r\n" in client.received, "the 400")
        status_line = client.received.split(b"\r\n")[0]
        self.assertTrue(status_line.startswith(b"SIP/2.0 400 "))
        self.assertIn(b"CSeq", status_line)
        client.send(request_bytes())
        await inbox.wait()
        self.assertFalse(client.closed)

    async def test_missing_content_length_closes(self) -> None:
        """
        A request without Content-Length cannot be framed on a stream: it
        gets 400 and the connection is closed.
        """
        _b, peer_b, inbox = await self.server()
        client = await connect_raw(self, peer_b)
        client.send(request_bytes(content_length=False))
        await client.lost
        self.assertTrue(client.received.startswith(b"SIP/2.0 400 "))
        self.assertEqual(inbox.messages, [])

    async def test_close_drops_connections(self) -> None:
        """
        L{TransportLayer.close} closes inbound and outbound connections and
        stops the listeners.
        """
        b, peer_b, _ = await self.server()
        c, peer_c, _ = await self.server()
        client = await connect_raw(self, peer_b)
        await b.send_request(make_request(), Destination(TransportKind.TCP, peer_c))
        await wait_for(lambda: len(b.flows) == 2 and len(c.flows) == 1, "both flows")
        await b.close()
        await client.lost
        await wait_for(lambda: not c.flows, "the outbound flow to close")
        self.assertEqual(b.flows, {})
        a = make_layer(self, limits=fast_limits())
        with self.assertRaises(TransportFailed):
            await a.send_request(make_request(), Destination(TransportKind.TCP, peer_b))


class StreamOverIPv4Tests(_StreamTests, TestCase):
    host = "127.0.0.1"


class StreamOverIPv6Tests(_StreamTests, TestCase):
    host = "::1"
    skip = NO_IPV6


class SentByTests(TestCase):
    """
    The sent-by a layer writes in the Via of requests it sends on a stream.
    """

    async def test_listener_of_the_connection_family(self) -> None:
        """
        With TCP listeners on 127.0.0.1 and ::1, a request over IPv6 names
        the IPv6 listener, one over IPv4 the IPv4 listener.
        """
        if NO_IPV6:
            raise SkipTest(NO_IPV6)
        a = make_layer(self, limits=fast_limits())
        v4 = await a.listen(description("tcp", "127.0.0.1"))
        v6 = await a.listen(description("tcp", "::1"))
        for host, listener in (("::1", v6), ("127.0.0.1", v4)):
            b = make_layer(self, Inbox(), limits=fast_limits())
            peer_b = await b.listen(description("tcp", host))
            sent = await a.send_request(make_request(), Destination(TransportKind.TCP, peer_b))
            via = sent.message.top_via
            self.assertEqual((via.host.strip("[]"), via.port), (listener.host, listener.port))

    async def test_wildcard_listener(self) -> None:
        """
        With a TCP listener on the wildcard address, the sent-by is the
        connection's own address and the listener's port, never C{0.0.0.0}.
        """
        a = make_layer(self, limits=fast_limits())
        listener = await a.listen(description("tcp", "0.0.0.0"))
        b = make_layer(self, Inbox(), limits=fast_limits())
        peer_b = await b.listen(description("tcp", "127.0.0.1"))
        sent = await a.send_request(make_request(), Destination(TransportKind.TCP, peer_b))
        via = sent.message.top_via
        self.assertEqual((via.host, via.port), ("127.0.0.1", listener.port))

    async def test_no_listener(self) -> None:
        """
        Without a TCP listener, the sent-by is the connection's own address.
        """
        a = make_layer(self, limits=fast_limits())
        b = make_layer(self, Inbox(), limits=fast_limits())
        peer_b = await b.listen(description("tcp", "127.0.0.1"))
        sent = await a.send_request(make_request(), Destination(TransportKind.TCP, peer_b))
        via = sent.message.top_via
        self.assertEqual((via.host, via.port), (sent.flow.local.host, sent.flow.local.port))
