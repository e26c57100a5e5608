"""
Tests for L{sipstack.message.parser}: datagrams, stream framing, limits, and
the outcome of every fault.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sipstack.config import Limits
from sipstack.errors import FaultAction, MessageTooLarge, RemoteProtocolError
from sipstack.message import (
    KeepAlive,
    Request,
    Response,
    StreamFramer,
    build_error_response,
    parse_datagram,
    serialize,
)
from sipstack.message.message import Message

INVITE = (
    b"INVITE sip:bob@biloxi.example.org SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc7.atlanta.example.org:5060;branch=z9hG4bKa7e1;rport\r\n"
    b"Via: SIP/2.0/TCP edge.example.org;branch=z9hG4bK0e1;received=192.0.2.9\r\n"
    b"Max-Forwards: 69\r\n"
    b'From: "Alice A." <sip:alice@atlanta.example.org>;tag=88sja8x\r\n'
    b"To: Bob <sip:bob@biloxi.example.org>\r\n"
    b"Call-ID: 9a8b7c6d@pc7.atlanta.example.org\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"Contact: <sip:alice@pc7.atlanta.example.org;transport=udp>\r\n"
    b"X-Unknown:   keep   this  \r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)

RINGING = (
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/UDP pc7.atlanta.example.org:5060;branch=z9hG4bKa7e1;received=192.0.2.1;rport=5060\r\n"
    b'From: "Alice A." <sip:alice@atlanta.example.org>;tag=88sja8x\r\n'
    b"To: Bob <sip:bob@biloxi.example.org>;tag=314159\r\n"
    b"Call-ID: 9a8b7c6d@pc7.atlanta.example.org\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def _replace(message: bytes, old: bytes, new: bytes) -> bytes:
    assert old in message, old
    return message.replace(old, new, 1)


def _parse(data: bytes) -> Message:
    message = parse_datagram(data)
    assert message is not None
    return message


class DatagramTests(SynchronousTestCase):
    """
    L{parse_datagram} reads valid datagrams, odd-but-valid ones included.
    """

    def test_request(self) -> None:
        """A request's start line, typed headers and body are all read."""
        request = _parse(INVITE)
        assert isinstance(request, Request)
        self.assertEqual(request.method, "INVITE")
        self.assertEqual(str(request.uri), "sip:bob@biloxi.example.org")
        self.assertEqual(len(request.vias), 2)
        self.assertEqual(request.top_via.branch, "z9hG4bKa7e1")
        self.assertEqual(request.top_via.host, "pc7.atlanta.example.org")
        self.assertEqual(request.from_.tag, "88sja8x")
        self.assertEqual(request.from_.display_name, "Alice A.")
        self.assertIsNone(request.to.tag)
        self.assertEqual(request.call_id, "9a8b7c6d@pc7.atlanta.example.org")
        self.assertEqual((request.cseq.number, request.cseq.method), (7, "INVITE"))
        self.assertEqual(request.max_forwards, 69)
        contacts = request.contacts
        assert isinstance(contacts, list)
        self.assertEqual(str(contacts[0].uri), "sip:alice@pc7.atlanta.example.org;transport=udp")
        self.assertEqual(request.body, b"v=0\n")
        self.assertEqual(request.headers.get("x-unknown"), "keep   this")
        self.assertEqual(request.notes, ())

    def test_response(self) -> None:
        """A response's status, reason and headers are read."""
        response = _parse(RINGING)
        assert isinstance(response, Response)
        self.assertEqual((response.status, response.reason), (180, "Ringing"))
        self.assertTrue(response.provisional)
        self.assertEqual(response.to.tag, "314159")
        self.assertEqual(response.top_via.rport, 5060)

    def test_canonical_round_trip_is_exact(self) -> None:
        """A canonical message serializes back to exactly its bytes."""
        for data in (INVITE.replace(b"X-Unknown:   keep   this  ", b"X-Unknown: keep   this"), RINGING):
            self.assertEqual(serialize(_parse(data)), data)

    def test_folded_header(self) -> None:
        """Folded lines (LWS with CRLF) are joined with one space (RFC 3261 section 7.3.1)."""
        folded = b"Subject: I know you're there,\r\n   pick up the phone\r\n\tand talk to me!"
        data = _replace(INVITE, b"X-Unknown:   keep   this  ", folded)
        request = _parse(data)
        self.assertEqual(request.headers.get("subject"), "I know you're there, pick up the phone and talk to me!")

    def test_folded_structured_header(self) -> None:
        """A folded Via is still parsed."""
        data = _replace(INVITE, b"UDP pc7.atlanta.example.org:5060;", b"UDP\r\n  pc7.atlanta.example.org:5060;")
        self.assertEqual(_parse(data).top_via.host, "pc7.atlanta.example.org")

    def test_compact_forms(self) -> None:
        """Compact header names are read as their long forms."""
        data = (
            b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\n"
            b"v: SIP/2.0/UDP pc.example.com;branch=z9hG4bKc1\r\n"
            b"f: <sip:a@example.com>;tag=1\r\nt: <sip:carol@chicago.example.com>\r\n"
            b"i: c1@x\r\nCSeq: 1 OPTIONS\r\nm: <sip:a@192.0.2.1>\r\nl: 0\r\n\r\n"
        )
        request = _parse(data)
        self.assertEqual(request.call_id, "c1@x")
        self.assertEqual(request.top_via.branch, "z9hG4bKc1")
        self.assertEqual(request.content_length, 0)
        self.assertEqual(request.notes, ("no Max-Forwards (treated as 70)",))

    def test_leading_crlf_ignored(self) -> None:
        """CRLFs before the start line are ignored (RFC 3261 section 7.5)."""
        self.assertEqual(_parse(b"\r\n\r\n" + INVITE), _parse(INVITE))

    def test_keepalive_datagram(self) -> None:
        """A datagram of only CRLFs is a keep-alive, not a message."""
        self.assertIsNone(parse_datagram(b"\r\n\r\n"))
        self.assertIsNone(parse_datagram(b"\r\n"))

    def test_bare_lf(self) -> None:
        """A datagram with bare LF line ends is accepted."""
        self.assertEqual(_parse(RINGING.replace(b"\r\n", b"\n")), _parse(RINGING))

    def test_no_blank_line(self) -> None:
        """A datagram that ends after its headers without the blank line is accepted."""
        self.assertEqual(_parse(RINGING[:-2]), _parse(RINGING))

    def test_extra_bytes_after_body_dropped(self) -> None:
        """Bytes past Content-Length in a datagram are discarded (RFC 3261 section 18.3)."""
        self.assertEqual(_parse(INVITE + b"garbage").body, b"v=0\n")

    def test_no_content_length_on_datagram(self) -> None:
        """Without Content-Length a datagram's body is the rest of the datagram."""
        data = _replace(INVITE, b"Content-Length: 4\r\n", b"")
        self.assertEqual(_parse(data + b"more").body, b"v=0\nmore")

    def test_utf8_values(self) -> None:
        """UTF-8 in display names and reason phrases is read as text."""
        data = _replace(RINGING, b"180 Ringing", "180 Ça sonne".encode())
        self.assertEqual(_parse(data).reason, "Ça sonne")  # type: ignore[union-attr]  # a response

    def test_header_colon_spacing(self) -> None:
        """Whitespace before the colon and none after are both valid (HCOLON)."""
        data = _replace(RINGING, b"Call-ID: ", b"Call-ID \t:")
        self.assertEqual(_parse(data).call_id, "9a8b7c6d@pc7.atlanta.example.org")

    def test_reason_phrase_optional(self) -> None:
        """A status line with no reason phrase is tolerated."""
        response = _parse(_replace(RINGING, b"SIP/2.0 180 Ringing", b"SIP/2.0 180"))
        self.assertEqual(response.reason, "")  # type: ignore[union-attr]  # a response

    def test_missing_max_forwards_noted(self) -> None:
        """A request without Max-Forwards is accepted with a note."""
        request = _parse(_replace(INVITE, b"Max-Forwards: 69\r\n", b""))
        self.assertIsNone(request.max_forwards)
        self.assertEqual(len(request.notes), 1)


#: INVITE in canonical form: serialize(parse(x)) is x.
CANONICAL_INVITE = INVITE.replace(b"X-Unknown:   keep   this  ", b"X-Unknown: keep   this")


class SerializeParsedTests(SynchronousTestCase):
    """
    A parsed message is written as the bytes it came in only when those are
    exactly what serializing its values gives; otherwise it is written in
    canonical form, as a message built from the same values would be.
    """

    def assertWrittenAsBuilt(self, data: bytes) -> bytes:
        message = _parse(data)
        written = serialize(message)
        self.assertEqual(written, serialize(message.replace()))
        self.assertEqual(_parse(written), message)
        return written

    def test_canonical_kept(self) -> None:
        """Canonical requests and responses are written back byte for byte."""
        for data in (CANONICAL_INVITE, RINGING, _replace(RINGING, b"180 Ringing", "180 Ça sonne".encode())):
            self.assertEqual(self.assertWrittenAsBuilt(data), data)

    def test_header_spacing(self) -> None:
        """Odd but valid spacing around a header value is written as ': ' and no more."""
        for old, new in [
            (b"Via: SIP/2.0/UDP pc7", b"Via:SIP/2.0/UDP pc7"),
            (b"Via: SIP/2.0/UDP pc7", b"Via:  SIP/2.0/UDP pc7"),
            (b"Via: SIP/2.0/UDP pc7", b"Via:\tSIP/2.0/UDP pc7"),
            (b"Call-ID: ", b"Call-ID : "),
            (b"CSeq: 7 INVITE", b"CSeq: 7 INVITE "),
            (b"Content-Length: 4", b"Content-Length: 4\t"),
            (b"X-Unknown: keep   this", b"X-Unknown:keep   this"),
            (b"X-Unknown: keep   this", b"X-Unknown: \tkeep   this"),
        ]:
            self.assertEqual(self.assertWrittenAsBuilt(_replace(CANONICAL_INVITE, old, new)), CANONICAL_INVITE)

    def test_empty_values(self) -> None:
        """An empty value is written as 'Name: ', which is kept; 'Name:' is not canonical."""
        data = _replace(CANONICAL_INVITE, b"X-Unknown: keep   this", b"Subject: ")
        self.assertEqual(self.assertWrittenAsBuilt(data), data)
        self.assertEqual(self.assertWrittenAsBuilt(_replace(data, b"Subject: ", b"Subject:")), data)
        self.assertEqual(self.assertWrittenAsBuilt(_replace(data, b"Subject: ", b"Subject:  ")), data)

    def test_start_lines(self) -> None:
        """
        A Request-URI is written with its scheme in lower case and its port
        without leading zeros; a status line without a reason gets its space.
        """
        for old, new, canonical in [
            (b"INVITE sip:bob@", b"INVITE SIP:bob@", b"INVITE sip:bob@"),
            (b"INVITE sip:bob@", b"INVITE sIp:bob@", b"INVITE sip:bob@"),
            (b"example.org SIP/2.0", b"example.org:05060 SIP/2.0", b"example.org:5060 SIP/2.0"),
        ]:
            data = _replace(CANONICAL_INVITE, old, new)
            self.assertEqual(self.assertWrittenAsBuilt(data), _replace(CANONICAL_INVITE, old, canonical))
        data = _replace(CANONICAL_INVITE, b"INVITE sip:bob@biloxi.example.org", b"INVITE TEL:+15551234")
        self.assertTrue(self.assertWrittenAsBuilt(data).startswith(b"INVITE tel:+15551234 SIP/2.0\r\n"))
        data = _replace(CANONICAL_INVITE, b"INVITE sip:bob@biloxi.example.org", b"INVITE sip:bob@biloxi.example.org:0")
        self.assertEqual(self.assertWrittenAsBuilt(data), data)
        data = _replace(CANONICAL_INVITE, b" SIP/2.0\r\n", b" sip/2.0\r\n")
        self.assertEqual(self.assertWrittenAsBuilt(data), data)
        written = self.assertWrittenAsBuilt(_replace(RINGING, b"SIP/2.0 180 Ringing", b"SIP/2.0 180"))
        self.assertEqual(written, _replace(RINGING, b"SIP/2.0 180 Ringing", b"SIP/2.0 180 "))

    def test_framing(self) -> None:
        """Leading CRLFs, bytes past the body, bare LFs and folding are not written back."""
        self.assertEqual(self.assertWrittenAsBuilt(b"\r\n\r\n" + CANONICAL_INVITE), CANONICAL_INVITE)
        self.assertEqual(self.assertWrittenAsBuilt(CANONICAL_INVITE + b"garbage"), CANONICAL_INVITE)
        self.assertEqual(self.assertWrittenAsBuilt(RINGING.replace(b"\r\n", b"\n")), RINGING)
        self.assertEqual(self.assertWrittenAsBuilt(RINGING[:-2]), RINGING)
        folded = _replace(CANONICAL_INVITE, b"X-Unknown: keep   this", b"X-Unknown: keep\r\n   this")
        self.assertEqual(self.assertWrittenAsBuilt(folded), _replace(folded, b"keep\r\n   this", b"keep this"))
        stripped = _replace(CANONICAL_INVITE, b"Content-Length: 4\r\n", b"")
        self.assertEqual(self.assertWrittenAsBuilt(stripped), stripped)

    def test_stream(self) -> None:
        """The framer keeps the bytes of canonical messages only."""
        framer = StreamFramer()
        odd = _replace(RINGING, b"CSeq: ", b"CSeq:  ")
        framer.feed(CANONICAL_INVITE + odd + RINGING)
        written = []
        while (event := framer.next_event()) is not None:
            assert not isinstance(event, KeepAlive)
            written.append(serialize(event))
            self.assertEqual(written[-1], serialize(event.replace()))
        self.assertEqual(written, [CANONICAL_INVITE, RINGING, RINGING])


class DatagramFaultTests(SynchronousTestCase):
    """
    Every fault in a datagram gives a defined outcome.
    """

    def assertFault(
        self, data: bytes, status: int, word: str, action: FaultAction = FaultAction.RESPOND
    ) -> RemoteProtocolError:
        error: RemoteProtocolError = self.assertRaises(RemoteProtocolError, parse_datagram, data)
        self.assertEqual(error.status, status)
        self.assertIn(word.lower(), error.reason.lower())
        self.assertEqual(error.action, action)
        if action is FaultAction.RESPOND:
            response = build_error_response(error)
            assert response is not None
            self.assertEqual(response.status, status)
            self.assertEqual(response.reason, error.reason)
            assert error.request_fields is not None
            copied = [value for name, value in error.request_fields if name == "Via"]
            self.assertEqual(response.headers.get_all("Via"), copied)
            to = response.headers.get("To")
            if to is not None and "sip:bob@>" not in to:
                self.assertIsNotNone(response.to.tag)
        return error

    def test_missing_mandatory_headers(self) -> None:
        """A request missing To, From, Call-ID or CSeq gets 400 naming the header."""
        for line, name in [
            (b'From: "Alice A." <sip:alice@atlanta.example.org>;tag=88sja8x\r\n', "From"),
            (b"Call-ID: 9a8b7c6d@pc7.atlanta.example.org\r\n", "Call-ID"),
            (b"CSeq: 7 INVITE\r\n", "CSeq"),
        ]:
            self.assertFault(_replace(INVITE, line, b""), 400, f"Missing {name}")
        error = self.assertRaises(
            RemoteProtocolError, parse_datagram, _replace(INVITE, b"To: Bob <sip:bob@biloxi.example.org>\r\n", b"")
        )
        self.assertEqual((error.status, error.reason), (400, "Missing To header"))

    def test_missing_via_dropped(self) -> None:
        """A request with no Via is dropped: there is nowhere to answer."""
        data = INVITE
        for line in data.split(b"\r\n"):
            if line.startswith(b"Via:"):
                data = _replace(data, line + b"\r\n", b"")
        self.assertFault(data, 400, "Via", FaultAction.DROP)

    def test_bad_top_via_answered(self) -> None:
        """A request whose top Via is unreadable is still answered (RFC 4475 section 3.1.2.1)."""
        data = _replace(INVITE, b"Via: SIP/2.0/UDP pc7", b"Via: garbage pc7")
        self.assertFault(data, 400, "Via")

    def test_bad_second_via_read_lazily(self) -> None:
        """
        A bad Via below a good top Via does not stop the parse (the top Via is
        what routes the response); reading every Via names the fault.
        """
        data = _replace(INVITE, b"Via: SIP/2.0/TCP edge", b"Via: SIP/2.0/TCP edge.example.org:99999999 x")
        request = _parse(data)
        self.assertEqual(request.top_via.branch, "z9hG4bKa7e1")
        error = self.assertRaises(RemoteProtocolError, lambda: request.vias)
        self.assertEqual((error.status, error.reason[:14]), (400, "Bad Via header"))

    def test_duplicate_single_headers(self) -> None:
        """Two CSeq (or From, Call-ID...) headers get 400 (RFC 4475 section 3.1.2.19)."""
        self.assertFault(_replace(INVITE, b"CSeq: 7 INVITE\r\n", b"CSeq: 7 INVITE\r\nCSeq: 8 INVITE\r\n"), 400, "CSeq")

    def test_cseq_method_mismatch(self) -> None:
        """A CSeq method other than the request method gets 400."""
        self.assertFault(_replace(INVITE, b"CSeq: 7 INVITE", b"CSeq: 7 OPTIONS"), 400, "CSeq method")

    def test_bad_values(self) -> None:
        """Malformed URIs in To, From, Contact and the Request-URI get 400 naming the place."""
        self.assertFault(_replace(INVITE, b"To: Bob <sip:bob@biloxi.example.org>", b"To: Bob <sip:bob@>"), 400, "To")
        self.assertFault(_replace(INVITE, b"From: ", b"From: <sip:a@b c>;tag=1\r\nX-Old-From: "), 400, "From")
        self.assertFault(_replace(INVITE, b"Contact: <sip:", b"Contact: <sip::"), 400, "Contact")
        self.assertFault(_replace(INVITE, b"INVITE sip:bob@", b"INVITE sip:@"), 400, "Request-URI")
        self.assertFault(_replace(INVITE, b"Max-Forwards: 69", b"Max-Forwards: 300"), 400, "Max-Forwards")
        self.assertFault(_replace(INVITE, b"CSeq: 7 INVITE", b"CSeq: 99999999999 INVITE"), 400, "CSeq")

    def test_version(self) -> None:
        """A request in another SIP version gets 505."""
        self.assertFault(_replace(INVITE, b"SIP/2.0\r\n", b"SIP/7.0\r\n"), 505, "version")

    def test_lowercase_version_accepted(self) -> None:
        """The SIP-Version literal is case-insensitive (RFC 3261 section 25: ABNF strings)."""
        self.assertEqual(_parse(_replace(INVITE, b"SIP/2.0\r\n", b"sip/2.0\r\n")).method, "INVITE")  # type: ignore[union-attr]

    def test_unsupported_scheme(self) -> None:
        """A Request-URI with a scheme we do not serve gets 416."""
        self.assertFault(
            _replace(INVITE, b"INVITE sip:bob@biloxi.example.org", b"INVITE http://example.org/"), 416, "http"
        )

    def test_malformed_request_line(self) -> None:
        """Extra spaces in the request line get 400 (RFC 4475 section 3.1.2.7)."""
        self.assertFault(_replace(INVITE, b"INVITE sip:", b"INVITE  sip:"), 400, "Request-Line")

    def test_malformed_header_line(self) -> None:
        """A header line without a colon gets 400."""
        self.assertFault(_replace(INVITE, b"X-Unknown:", b"X-Unknown"), 400, "header line")

    def test_content_length_too_large(self) -> None:
        """A Content-Length beyond the datagram's end gets 400 (RFC 3261 section 18.3)."""
        self.assertFault(_replace(INVITE, b"Content-Length: 4", b"Content-Length: 40"), 400, "Content-Length")

    def test_response_faults_dropped(self) -> None:
        """A malformed response is dropped, never answered (RFC 3261 section 18.1.2)."""
        for data in (
            _replace(RINGING, b"CSeq: 7 INVITE\r\n", b""),
            _replace(RINGING, b"SIP/2.0 180", b"SIP/2.0 800"),
            _replace(RINGING, b"SIP/2.0 180", b"SIP/3.0 180"),
            _replace(RINGING, b"To: Bob <sip:", b"To: Bob <sip::"),
        ):
            error = self.assertRaises(RemoteProtocolError, parse_datagram, data)
            self.assertEqual(error.action, FaultAction.DROP)
            self.assertIsNone(build_error_response(error))

    def test_ack_faults_dropped(self) -> None:
        """A malformed ACK is dropped: an ACK is never answered."""
        data = _replace(_replace(INVITE, b"INVITE sip:", b"ACK sip:"), b"CSeq: 7 INVITE", b"CSeq: 7 ACK")
        self.assertEqual(_parse(data).method, "ACK")  # type: ignore[union-attr]
        for broken in (_replace(data, b"Call-ID: ", b"X-Call-ID: "), _replace(data, b"X-Unknown:", b"X-Unknown")):
            self.assertFault(broken, 400, "", FaultAction.DROP)

    def test_too_large(self) -> None:
        """A datagram over the size limit gets 513."""
        limits = Limits(max_message_bytes=200)
        error = self.assertRaises(MessageTooLarge, parse_datagram, INVITE, limits)
        self.assertEqual(error.status, 513)
        response = build_error_response(error)
        assert response is not None
        self.assertEqual(response.status, 513)

    def test_header_count_limit(self) -> None:
        """More header fields than allowed get 400 naming the fault."""
        error = self.assertRaises(RemoteProtocolError, parse_datagram, INVITE, Limits(max_headers=5))
        self.assertIn("Too many header fields", error.reason)

    def test_line_length_limit(self) -> None:
        """A header line over the limit gets 400."""
        data = _replace(INVITE, b"X-Unknown:", b"X-Long: " + b"a" * 300 + b"\r\nX-Unknown:")
        error = self.assertRaises(RemoteProtocolError, parse_datagram, data, Limits(max_line_bytes=200))
        self.assertIn("too long", error.reason)

    def test_nul_rejected(self) -> None:
        """A NUL in the header section gets 400."""
        self.assertFault(_replace(INVITE, b"keep", b"ke\x00ep"), 400, "NUL")

    def test_contact_star_only_in_register(self) -> None:
        """Contact '*' outside REGISTER gets 400."""
        self.assertFault(
            _replace(INVITE, b"Contact: <sip:alice@pc7.atlanta.example.org;transport=udp>", b"Contact: *"),
            400,
            "Contact",
        )


class StreamFramerTests(SynchronousTestCase):
    """
    L{StreamFramer} cuts streams by Content-Length and recognises keep-alives.
    """

    def events(self, framer: StreamFramer) -> list[Message | KeepAlive]:
        result = []
        while (event := framer.next_event()) is not None:
            result.append(event)
        return result

    def test_messages_back_to_back(self) -> None:
        """Several messages in one chunk come out one by one, bodies intact."""
        framer = StreamFramer()
        framer.feed(INVITE + RINGING + INVITE)
        events = self.events(framer)
        self.assertEqual(events, [_parse(INVITE), _parse(RINGING), _parse(INVITE)])
        self.assertEqual(framer.buffered, 0)
        self.assertFalse(framer.in_message)

    def test_byte_by_byte(self) -> None:
        """A message fed one byte at a time comes out once, at its last byte."""
        framer = StreamFramer()
        for index in range(len(INVITE) - 1):
            framer.feed(INVITE[index : index + 1])
            self.assertIsNone(framer.next_event())
            self.assertTrue(framer.in_message)
        framer.feed(INVITE[-1:])
        self.assertEqual(framer.next_event(), _parse(INVITE))

    def test_ping(self) -> None:
        """A double CRLF between messages is a ping (RFC 5626 section 3.5.1)."""
        framer = StreamFramer()
        framer.feed(b"\r\n\r\n" + INVITE + b"\r\n\r\n")
        self.assertEqual(self.events(framer), [KeepAlive.PING, _parse(INVITE), KeepAlive.PING])

    def test_ping_split(self) -> None:
        """A ping cut in the middle is recognised once it is complete, and not before."""
        framer = StreamFramer()
        framer.feed(b"\r\n")
        self.assertIsNone(framer.next_event())
        self.assertFalse(framer.in_message)
        framer.feed(b"\r\n")
        self.assertEqual(framer.next_event(), KeepAlive.PING)

    def test_single_crlf_before_message_ignored(self) -> None:
        """On an accepted stream a single CRLF before a message is skipped."""
        framer = StreamFramer()
        framer.feed(b"\r\n" + RINGING)
        self.assertEqual(self.events(framer), [_parse(RINGING)])

    def test_pong(self) -> None:
        """On a stream we ping, every CRLF between messages is a pong."""
        framer = StreamFramer(pongs_expected=True)
        framer.feed(b"\r\n" + RINGING + b"\r\n")
        self.assertEqual(self.events(framer), [KeepAlive.PONG, _parse(RINGING), KeepAlive.PONG])

    def test_missing_content_length_closes(self) -> None:
        """A stream message without Content-Length is answered with 400, then the stream closes."""
        framer = StreamFramer()
        framer.feed(_replace(INVITE, b"Content-Length: 4\r\n", b""))
        error = self.assertRaises(RemoteProtocolError, framer.next_event)
        self.assertEqual((error.status, error.action), (400, FaultAction.CLOSE))
        self.assertIn("Content-Length", error.reason)
        self.assertIsNotNone(build_error_response(error))
        framer.feed(INVITE)
        self.assertIs(self.assertRaises(RemoteProtocolError, framer.next_event), error)

    def test_invalid_but_framed_message_keeps_stream(self) -> None:
        """A well-framed invalid request is answered and the next message still comes."""
        framer = StreamFramer()
        framer.feed(_replace(INVITE, b"CSeq: 7 INVITE", b"CSeq: 7 BYE") + RINGING)
        error = self.assertRaises(RemoteProtocolError, framer.next_event)
        self.assertEqual((error.status, error.action), (400, FaultAction.RESPOND))
        self.assertEqual(framer.next_event(), _parse(RINGING))

    def test_bad_response_on_stream_dropped(self) -> None:
        """A well-framed bad response is dropped and the stream goes on."""
        framer = StreamFramer()
        framer.feed(_replace(RINGING, b"Call-ID", b"X-Call-ID") + RINGING)
        error = self.assertRaises(RemoteProtocolError, framer.next_event)
        self.assertEqual(error.action, FaultAction.DROP)
        self.assertEqual(framer.next_event(), _parse(RINGING))

    def test_header_section_limit(self) -> None:
        """A header section that never ends is cut off at the limit and the stream closes."""
        framer = StreamFramer(Limits(max_header_bytes=100))
        framer.feed(b"INVITE sip:a@example.com SIP/2.0\r\n" + b"X: y\r\n" * 20)
        error = self.assertRaises(MessageTooLarge, framer.next_event)
        self.assertEqual((error.status, error.action), (513, FaultAction.CLOSE))

    def test_body_limit(self) -> None:
        """A Content-Length beyond the message limit gets 513 and the stream closes."""
        framer = StreamFramer(Limits(max_message_bytes=1000))
        framer.feed(_replace(INVITE, b"Content-Length: 4", b"Content-Length: 5000"))
        error = self.assertRaises(MessageTooLarge, framer.next_event)
        self.assertEqual((error.status, error.action), (513, FaultAction.CLOSE))
        response = build_error_response(error)
        assert response is not None
        self.assertEqual(response.status, 513)

    def test_garbage_closes(self) -> None:
        """A header section that cannot be split closes the stream."""
        framer = StreamFramer()
        framer.feed(b"\x16\x03\x01\x02\x00 hello\r\nnot a header\r\n\r\n")
        error = self.assertRaises(RemoteProtocolError, framer.next_event)
        self.assertEqual(error.action, FaultAction.CLOSE)

    def test_bad_content_length_closes(self) -> None:
        """A non-numeric Content-Length on a stream closes it."""
        framer = StreamFramer()
        framer.feed(_replace(INVITE, b"Content-Length: 4", b"Content-Length: four"))
        error = self.assertRaises(RemoteProtocolError, framer.next_event)
        self.assertEqual(error.action, FaultAction.CLOSE)
