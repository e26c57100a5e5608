"""
RFC 4475 torture-test coverage for L{sipstack.message}.

Each vector in C{tests/message/data/<case>.sip} is our own message (our names,
hosts, tags and branches, on documentation domains and addresses) exercising
the same oddity as the RFC 4475 message of that name; the bytes are exact,
with CRLF line ends.  Every test checks the precise outcome the RFC expects:
a valid message is read with its odd fields right and survives
C{serialize}/C{parse_datagram}; an invalid one raises L{RemoteProtocolError}
with the RFC's status and action and a reason naming the fault.  Where the
RFC's answer belongs to a later layer (420, 415, 483, 401...), the parser must
accept the message and expose the value that layer needs.

@see: RFC 4475 sections 3.1 to 3.4.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from twisted.trial.unittest import SynchronousTestCase

from sipstack.errors import FaultAction, RemoteProtocolError
from sipstack.message import (
    SIPURI,
    AbsoluteURI,
    KeepAlive,
    Request,
    Response,
    StreamFramer,
    build_error_response,
    parse_datagram,
    serialize,
)
from sipstack.message.message import Message
from sipstack.message.validation import DEFAULT_URI_SCHEMES

_DATA = Path(__file__).parent / "data"

#: Every vector, by RFC 4475 section.
VALID = (
    "wsinv",
    "intmeth",
    "esc01",
    "escnull",
    "esc02",
    "lwsdisp",
    "longreq",
    "dblreq",
    "semiuri",
    "transports",
    "mpart01",
    "unreason",
    "noreason",
)
INVALID = (
    "badinv01",
    "clerr",
    "ncl",
    "scalar02",
    "scalarlg",
    "quotbal",
    "ltgtruri",
    "lwsruri",
    "lwsstart",
    "trws",
    "escruri",
    "baddate",
    "regbadct",
    "badaspec",
    "baddn",
    "badvers",
    "mismatch01",
    "mismatch02",
    "bigcode",
)
TRANSACTION = ("badbranch",)
APPLICATION = (
    "insuf",
    "unkscm",
    "novelsc",
    "unksm2",
    "bext01",
    "invut",
    "regaut01",
    "multi01",
    "mcl01",
    "bcast",
    "zeromf",
    "cparam01",
    "cparam02",
    "regescrt",
    "sdp01",
)
COMPATIBILITY = ("inv2543",)
ALL_VECTORS = VALID + INVALID + TRANSACTION + APPLICATION + COMPATIBILITY

#: Vectors the parser accepts (intmeth too, see L{ValidMessageTests.test_intmeth_quoted_nul}).
ACCEPTED = (
    "wsinv",
    "esc01",
    "escnull",
    "esc02",
    "lwsdisp",
    "longreq",
    "dblreq",
    "semiuri",
    "transports",
    "mpart01",
    "unreason",
    "noreason",
    "escruri",
    "baddate",
    "badbranch",
    "unksm2",
    "bext01",
    "invut",
    "regaut01",
    "bcast",
    "zeromf",
    "cparam01",
    "cparam02",
    "regescrt",
    "sdp01",
    "inv2543",
)

#: Vectors written in canonical form, C{serialize(parse(x)) == x}: every
#: accepted one but the three whose bytes the parser normalises.
CANONICAL = tuple(name for name in ACCEPTED if name not in {"wsinv", "escnull", "dblreq"})

#: The SDP body the vectors with C{application/sdp} carry.
SDP = (
    b"v=0\r\n"
    b"o=- 20518 0 IN IP4 192.0.2.4\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.4\r\n"
    b"t=0 0\r\n"
    b"m=audio 49152 RTP/AVP 0 8\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
)


def vector(name: str) -> bytes:
    """The exact bytes of vector C{name}."""
    return (_DATA / f"{name}.sip").read_bytes()


def _replace(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data, old
    return data.replace(old, new, 1)


def _body_of(data: bytes) -> bytes:
    """Everything after the first blank line of a vector."""
    return data.split(b"\r\n\r\n", 1)[1]


class _TortureTestCase(SynchronousTestCase):
    """
    Helpers shared by the torture tests.
    """

    def parsed(self, data: bytes) -> Message:
        """Parse a datagram that must be a message."""
        message = parse_datagram(data)
        assert message is not None
        return message

    def request(self, data: bytes) -> Request:
        """Parse a datagram that must be a request."""
        message = self.parsed(data)
        assert isinstance(message, Request), message
        return message

    def response(self, data: bytes) -> Response:
        """Parse a datagram that must be a response."""
        message = self.parsed(data)
        assert isinstance(message, Response), message
        return message

    def assert_round_trip(self, message: Message) -> None:
        """C{serialize} gives bytes that parse to an equal message, and is then a fixed point."""
        wire = serialize(message)
        again = self.parsed(wire)
        self.assertEqual(again, message)
        self.assertEqual(serialize(again), wire)

    def assert_rejected(self, data: bytes, status: int, action: FaultAction, word: str) -> RemoteProtocolError:
        """
        C{parse_datagram} raises with this status and action and a reason
        containing C{word}; an error response can be built exactly when the
        action is to respond.
        """
        error: RemoteProtocolError = self.assertRaises(RemoteProtocolError, parse_datagram, data)
        self.assertEqual((error.status, error.action), (status, action), error.reason)
        self.assertIn(word, error.reason)
        answer = build_error_response(error)
        if action is FaultAction.RESPOND:
            assert answer is not None
            self.assertEqual(answer.status, status)
        else:
            self.assertIsNone(answer)
        return error


class VectorFileTests(SynchronousTestCase):
    """
    The vector files themselves.
    """

    def test_every_file_is_tested(self) -> None:
        """
        Every C{.sip} file in the data directory is one of the listed
        vectors, and every listed vector has a file.
        """
        on_disk = sorted(path.stem for path in _DATA.glob("*.sip"))
        self.assertEqual(on_disk, sorted(ALL_VECTORS))

    def test_header_lines_end_in_crlf(self) -> None:
        """
        Every line of every header section ends in CRLF: the vectors are
        exact wire bytes, never LF-only text.
        """
        for name in ALL_VECTORS:
            head = vector(name).split(b"\r\n\r\n", 1)[0]
            self.assertNotIn(b"\n", head.replace(b"\r\n", b""), name)
            self.assertNotIn(b"\r", head.replace(b"\r\n", b""), name)


class ValidMessageTests(_TortureTestCase):
    """
    RFC 4475 section 3.1.1: odd but valid messages, which a parser must accept
    and read correctly.
    """

    def test_wsinv_folding_and_whitespace(self) -> None:
        """
        Folded header lines are unfolded to one space, whitespace around the
        colon, C{/}, C{;} and C{=} is allowed, and numbers may have leading
        zeros (RFC 4475 section 3.1.1.1).
        """
        request = self.request(vector("wsinv"))
        self.assertEqual(request.method, "INVITE")
        self.assertEqual(str(request.uri), "sip:alice.w@lobby.example.com;oddparam")
        self.assertEqual(request.to.uri, SIPURI("sip", "lobby.example.com", user="alice.w"))
        self.assertEqual(request.to.tag, "77aa9c0q")
        self.assertEqual(request.from_.tag, "k1x9z")
        self.assertEqual(request.max_forwards, 42)
        self.assertEqual((request.cseq.number, request.cseq.method), (17, "INVITE"))
        self.assertEqual(request.headers.get("ExoticHeader"), "first part second part")
        self.assertEqual(request.content_length, len(SDP))
        self.assertEqual(request.body, SDP)

    def test_wsinv_escaped_display_names(self) -> None:
        """
        Quoted-pairs in display names are undone: C{\\\\} is a backslash and
        C{\\"} a quote (RFC 4475 section 3.1.1.1).
        """
        request = self.request(vector("wsinv"))
        self.assertEqual(request.from_.display_name, 'Ada \\" L')
        contacts = request.contacts
        assert isinstance(contacts, list)
        self.assertEqual(contacts[0].display_name, 'Twice ""quoted')

    def test_wsinv_compact_forms(self) -> None:
        """
        Compact header names are found under their long names: C{v} is Via,
        C{m} Contact, C{s} Subject (here empty), and the Vias of a C{Via} and
        a C{v} field are read in order (RFC 4475 section 3.1.1.1).
        """
        request = self.request(vector("wsinv"))
        self.assertEqual(request.headers.get("Subject"), "")
        self.assertEqual(
            [(via.transport, via.host, via.branch) for via in request.vias],
            [
                ("UDP", "192.0.2.41", "z9hG4bKws1aa"),
                ("TCP", "relay.example.org", "z9hG4bKws2bb"),
                ("UDP", "192.0.2.42", "z9hG4bKws3cc"),
            ],
        )
        contacts = request.contacts
        assert isinstance(contacts, list)
        self.assertEqual(contacts[0].params, (("custom", "value1"), ("flagparam", None), ("q", "0.25")))
        self.assertEqual(contacts[0].q, 0.25)

    def test_wsinv_unknown_headers_verbatim(self) -> None:
        """
        An unknown header whose value is only separators is kept verbatim, and
        unknown Route URI parameters are kept (RFC 4475 section 3.1.1.1).
        """
        request = self.request(vector("wsinv"))
        self.assertEqual(request.headers.get("OddlySeparated"), ",;;,;;,,")
        [route] = request.routes
        assert isinstance(route.uri, SIPURI)
        self.assertTrue(route.uri.lr)
        self.assertEqual(route.uri.param("flavour"), "mint")
        self.assertTrue(route.uri.has_param("nakedflag"))

    def test_wsinv_round_trip(self) -> None:
        """
        The serialized message has no folding left and parses to an equal
        message (RFC 4475 section 3.1.1.1).
        """
        request = self.request(vector("wsinv"))
        self.assertNotIn(b"\r\n ", serialize(request).split(b"\r\n\r\n")[0])
        self.assert_round_trip(request)

    def test_intmeth_quoted_nul(self) -> None:
        """
        A quoted-pair may escape any octet but CR and LF, NUL included, so the
        To display name C{"...\\<NUL>..."} is valid and the request is
        accepted (RFC 4475 section 3.1.1.2; RFC 3261 section 25.1
        C{quoted-pair}).
        """
        request = self.request(vector("intmeth"))
        self.assertEqual(request.to.display_name, "bell:\x07 nul:\x00 del:\x7f")

    def test_intmeth_token_characters(self) -> None:
        """
        Every token character is allowed in a method, a branch and a header
        name, and C{%} is not an escape there; the user and password of the
        Request-URI, a token display name, a UTF-8 quoted parameter and a
        Call-ID full of C{word} characters are read as written (RFC 4475
        section 3.1.1.2).  The quoted NUL is replaced by a quoted C{0} here so
        that these checks do not depend on L{test_intmeth_quoted_nul}.
        """
        request = self.request(_replace(vector("intmeth"), b"\\\x00", b"\\0"))
        method = "~odd.Method-0123456789_*+`.%meth'!"
        self.assertEqual(request.method, method)
        self.assertEqual(request.cseq.method, method)
        uri = request.uri
        assert isinstance(uri, SIPURI)
        self.assertEqual(uri.user, "x_weird.user~(surely!)&isn't+it$/mad?,/;;*")
        self.assertEqual(uri.password, "&pass+word=1,odd!*pw$wo~d_(yes)")
        self.assertEqual(uri.host, "example.net")
        self.assertEqual(request.top_via.branch, "z9hG4bK-.!%67*_+`'~")
        self.assertEqual(request.to.display_name, "bell:\x07 nul:0 del:\x7f")
        self.assertEqual(request.from_.display_name, "tok1~` tok2'+_ tok3*%!.-")
        self.assertEqual(request.from_.param("fromP''~+*_!.-%"), '"\\"λειτουργεί\\""')
        self.assertEqual(request.from_.tag, "_tg~1'+`*%!-.")
        self.assertEqual(request.call_id, "intmeth.wd%ZK-!.*_+'@wd`~)(><:\\/\"][?}{")
        self.assertEqual(request.headers.get("weird-Hdr-!.%*+_`'~"), "北風と太陽")
        self.assert_round_trip(request)

    def test_esc01_escapes_in_uris(self) -> None:
        """
        C{%HH} escapes in user parts and URI parameters are kept as written and
        mean the characters they encode: an escaped user equals its plain
        form, C{%6C%72} is the C{lr} parameter, and a value is unescaped only
        once (C{%25%34%32} is C{%42}, not C{B}) (RFC 4475 section 3.1.1.3).
        """
        request = self.request(vector("esc01"))
        uri = request.uri
        assert isinstance(uri, SIPURI)
        self.assertEqual(uri.user, "sips%3Abob%40example.org")
        self.assertEqual(uri.user_unescaped, "sips:bob@example.org")
        self.assertEqual(uri.host, "example.net")
        self.assertTrue(request.to.uri.equivalent(SIPURI("sip", "example.org", user="bob")))
        from_uri = request.from_.uri
        assert isinstance(from_uri, SIPURI)
        self.assertEqual(from_uri.user_unescaped, "I am here")
        contacts = request.contacts
        assert isinstance(contacts, list)
        contact = contacts[0].uri
        assert isinstance(contact, SIPURI)
        self.assertEqual(contact.user_unescaped, "call")
        self.assertTrue(contact.lr)
        flavour = contact.param("flavour")
        self.assertEqual(flavour, "c%68oc%25%34%32")
        assert flavour is not None
        self.assertEqual(unquote(flavour), "choc%42")

    def test_escnull_escaped_nul_in_user(self) -> None:
        """
        C{%00} in a user part is a valid escape: the unescaped user keeps
        every character after the NUL, and two contacts differing only in the
        number of NULs are distinct (RFC 4475 section 3.1.1.4).
        """
        request = self.request(vector("escnull"))
        to = request.to.uri
        assert isinstance(to, SIPURI)
        self.assertEqual(to.user_unescaped, "void-\x00-void")
        contacts = request.contacts
        assert isinstance(contacts, list)
        users = []
        for contact in contacts:
            assert isinstance(contact.uri, SIPURI)
            users.append(contact.uri.user_unescaped)
        self.assertEqual(users, ["\x00", "\x00\x00"])
        self.assertFalse(contacts[0].uri.equivalent(contacts[1].uri))
        self.assertEqual(request.content_length, 0)
        self.assert_round_trip(request)

    def test_esc02_percent_that_is_not_an_escape(self) -> None:
        """
        C{%} in a method, a header name, a quoted display name or a Call-ID is
        an ordinary character: C{RE%47IST%45R} is an unknown method, not
        REGISTER, which an endpoint answers with 501 (the UA layer's job), and
        C{C%6Fnt%61ct} is an unknown header, not Contact (RFC 4475 section
        3.1.1.5).
        """
        request = self.request(vector("esc02"))
        self.assertEqual(request.method, "RE%47IST%45R")
        self.assertNotEqual(request.method, "REGISTER")
        self.assertEqual(request.cseq.method, "RE%47IST%45R")
        self.assertEqual(request.to.display_name, "%Z%45 %4a")
        self.assertEqual(request.call_id, "esc02.%zz%Q1@192.0.2.80")
        self.assertEqual(request.headers.get_all("Contact"), ["<sip:resource@192.0.2.80>"])
        self.assertEqual(request.headers.get("C%6Fnt%61ct"), "<sip:decoy@192.0.2.81>")

    def test_lwsdisp_no_space_before_angle(self) -> None:
        """
        A display name, token or quoted, may be followed by C{<} with no
        whitespace (RFC 4475 section 3.1.1.6).
        """
        request = self.request(vector("lwsdisp"))
        self.assertEqual(request.to.display_name, "carol")
        self.assertEqual(request.from_.display_name, "dave")
        self.assertEqual(request.from_.tag, "l5d1")

    def test_longreq_long_values(self) -> None:
        """
        Very long display names, parameter names and values, tags, Call-IDs,
        user parts and header values, and forty Vias, are read whole
        (RFC 4475 section 3.1.1.7).
        """
        request = self.request(vector("longreq"))
        self.assertEqual(request.to.display_name, "Erin " + "exceedingly " * 150 + "verbose")
        to = request.to.uri
        assert isinstance(to, SIPURI)
        self.assertEqual(to.port, 5070)
        self.assertEqual(to.param("knob" + "k" * 400), "dial" + "9" * 600)
        self.assertTrue(to.has_param("flag" + "f" * 300))
        self.assertEqual(request.from_.tag, "t" + "0123456789abcdef" * 60)
        self.assertEqual(request.call_id, "longreq." + "c0ffee" * 300 + "@192.0.2.95")
        vias = request.vias
        self.assertEqual(len(vias), 40)
        self.assertEqual((vias[0].host, vias[-1].host, vias[-1].port), ("hop1.example.net", "192.0.2.40", 5040))
        contacts = request.contacts
        assert isinstance(contacts, list) and isinstance(contacts[0].uri, SIPURI)
        self.assertEqual(contacts[0].uri.user, "u" + "ser" * 300)
        self.assertEqual(request.headers.get("X-Verbose-Extension"), "lorem ipsum " * 300 + "end")
        self.assertEqual(request.body, SDP)

    def test_dblreq_trailing_octets_ignored(self) -> None:
        """
        On a datagram, the octets after the Content-Length of the first
        request (here a whole INVITE) are discarded: the REGISTER is read with
        an empty body (RFC 4475 section 3.1.1.8; RFC 3261 section 18.3).
        """
        request = self.request(vector("dblreq"))
        self.assertEqual(request.method, "REGISTER")
        self.assertEqual(request.call_id, "dblreq.first@192.0.2.100")
        self.assertEqual(request.body, b"")
        self.assert_round_trip(request)

    def test_semiuri_semicolons_in_user(self) -> None:
        """
        A C{;} before the C{@} belongs to the user part, not to the URI
        parameters (RFC 4475 section 3.1.1.9).
        """
        request = self.request(vector("semiuri"))
        uri = request.uri
        assert isinstance(uri, SIPURI)
        self.assertEqual((uri.user, uri.host, uri.parameters), ("ivan;area=u%40example.org", "example.net", ()))
        self.assertEqual(request.to.uri, uri)

    def test_transports_unknown_transport(self) -> None:
        """
        Vias with SCTP, TLS and an unknown transport token are read like any
        other (RFC 4475 section 3.1.1.10).
        """
        request = self.request(vector("transports"))
        self.assertEqual(
            [(via.transport, via.host, via.port) for via in request.vias],
            [
                ("UDP", "t1.example.net", None),
                ("SCTP", "t2.example.net", None),
                ("TLS", "t3.example.net", None),
                ("FROBNICATE", "t4.example.net", 5099),
                ("TCP", "t5.example.net", None),
            ],
        )

    def test_mpart01_binary_multipart_body(self) -> None:
        """
        A multipart body with a binary part holding NULs, CRLFs and blank
        lines is framed by Content-Length alone and kept byte for byte
        (RFC 4475 section 3.1.1.11).
        """
        data = vector("mpart01")
        request = self.request(data)
        self.assertEqual(request.headers.get("Content-Type"), "multipart/mixed;boundary=part-7Yx2")
        self.assertEqual(request.body, _body_of(data))
        self.assertEqual(request.content_length, len(request.body))
        self.assertIn(b"\x00\x00", request.body)
        self.assertTrue(request.body.endswith(b"--part-7Yx2--\r\n"))

    def test_unreason_utf8_reason_phrase(self) -> None:
        """
        A reason phrase may hold UTF-8 text, digits and symbols; it is kept
        exactly (RFC 4475 section 3.1.1.12).
        """
        response = self.response(vector("unreason"))
        self.assertEqual(response.status, 200)
        self.assertEqual(response.reason, "≈ 6 \u00d7 7 ½ — ответ: сорок два! ✓ (ok)")

    def test_noreason_empty_reason_phrase(self) -> None:
        """
        A status line with an empty reason phrase (the space after the code
        still there) is accepted, and written back with that space (RFC 4475
        section 3.1.1.13).
        """
        data = vector("noreason")
        response = self.response(data)
        self.assertEqual((response.status, response.reason), (100, ""))
        self.assertTrue(serialize(response).startswith(b"SIP/2.0 100 \r\n"))

    def test_noreason_without_space(self) -> None:
        """
        Without the space after the code the status line is not valid, but
        RFC 4475 section 3.1.1.13 lets a liberal receiver accept it, as the
        parser does.
        """
        response = self.response(_replace(vector("noreason"), b"SIP/2.0 100 \r\n", b"SIP/2.0 100\r\n"))
        self.assertEqual((response.status, response.reason), (100, ""))

    def test_canonical_vectors_byte_exact(self) -> None:
        """
        Vectors already in canonical form serialize back to exactly their
        bytes (architecture section 2.5).
        """
        for name in CANONICAL:
            data = vector(name)
            self.assertEqual(serialize(self.parsed(data)), data, name)

    def test_accepted_vectors_round_trip(self) -> None:
        """
        Every vector the parser accepts serializes to bytes that parse to an
        equal message, and serialization is then a fixed point.
        """
        for name in ACCEPTED:
            self.assert_round_trip(self.parsed(vector(name)))


class InvalidMessageTests(_TortureTestCase):
    """
    RFC 4475 section 3.1.2: malformed messages, which must be rejected (or, in
    the cases the RFC names, may be accepted liberally) without breaking.
    """

    def test_badinv01_rejected(self) -> None:
        """
        Empty parameters and empty list elements in the Via (C{;;;,;,,}) make
        the request invalid: the fault is a 400 naming the Via (RFC 4475
        section 3.1.2.1).
        """
        error = self.assertRaises(RemoteProtocolError, parse_datagram, vector("badinv01"))
        self.assertEqual(error.status, 400)
        self.assertIn("Via", error.reason)

    def test_badinv01_answered(self) -> None:
        """
        RFC 4475 section 3.1.2.1 expects a 400 Bad Request to be sent for this
        request, so the fault should be answerable.
        """
        self.assert_rejected(vector("badinv01"), 400, FaultAction.RESPOND, "Via")

    def test_badinv01_contact_separators(self) -> None:
        """
        With the Via repaired, the empty Contact parameters (C{;;;;}) alone
        still get a 400 naming the Contact, which can be answered (RFC 4475
        section 3.1.2.1).
        """
        data = _replace(vector("badinv01"), b"192.0.2.160;;;,;,,", b"192.0.2.160;branch=z9hG4bKbadinv01")
        self.assert_rejected(data, 400, FaultAction.RESPOND, "Contact")

    def test_clerr_content_length_too_large(self) -> None:
        """
        A datagram whose Content-Length exceeds the body it carries gets 400
        (RFC 4475 section 3.1.2.2; RFC 3261 section 18.3).
        """
        self.assert_rejected(vector("clerr"), 400, FaultAction.RESPOND, "Content-Length")

    def test_ncl_negative_content_length(self) -> None:
        """
        A negative Content-Length gets 400 on a datagram (RFC 4475 section
        3.1.2.3).
        """
        self.assert_rejected(vector("ncl"), 400, FaultAction.RESPOND, "Content-Length")

    def test_ncl_non_numeric_content_length(self) -> None:
        """
        A Content-Length that is not a number (C{twelve}) is treated like a
        negative one: 400 (RFC 4475 section 3.1.2.3).
        """
        data = _replace(vector("ncl"), b"Content-Length: -777", b"Content-Length: twelve")
        self.assert_rejected(data, 400, FaultAction.RESPOND, "Content-Length")

    def test_scalar02_overlarge_request_values(self) -> None:
        """
        A request with an overlarge CSeq, Max-Forwards, Expires and Contact
        expires gets 400 because of the CSeq (RFC 4475 section 3.1.2.4).
        """
        self.assert_rejected(vector("scalar02"), 400, FaultAction.RESPOND, "CSeq")

    def test_scalar02_overlarge_max_forwards_alone(self) -> None:
        """
        With only Max-Forwards out of range the RFC lets an element either
        treat it as absent or reject it; the parser rejects it with 400 naming
        Max-Forwards (RFC 4475 section 3.1.2.4).
        """
        data = _replace(vector("scalar02"), b"CSeq: 73786976294838206464", b"CSeq: 7")
        self.assert_rejected(data, 400, FaultAction.RESPOND, "Max-Forwards")

    def test_scalar02_overlarge_expiry_alone(self) -> None:
        """
        With only the expiry values out of range the request is accepted: the
        registrar reads them on demand, gets an error, and may apply its
        default expiry (RFC 4475 section 3.1.2.4).
        """
        data = _replace(vector("scalar02"), b"CSeq: 73786976294838206464", b"CSeq: 7")
        data = _replace(data, b"Max-Forwards: 256", b"Max-Forwards: 70")
        request = self.request(data)
        self.assertRaises(RemoteProtocolError, lambda: request.expires)
        contacts = request.contacts
        assert isinstance(contacts, list)
        self.assertRaises(ValueError, lambda: contacts[0].expires)

    def test_scalarlg_overlarge_response_values(self) -> None:
        """
        A response with an overlarge CSeq (and Retry-After, and a four-digit
        warn-code) is dropped, never answered (RFC 4475 section 3.1.2.5).
        """
        self.assert_rejected(vector("scalarlg"), 400, FaultAction.DROP, "CSeq")

    def test_quotbal_unterminated_quote(self) -> None:
        """
        An unterminated quoted display name in To gets 400 naming To
        (RFC 4475 section 3.1.2.6).
        """
        self.assert_rejected(vector("quotbal"), 400, FaultAction.RESPOND, "To")

    def test_ltgtruri_angle_brackets_in_request_uri(self) -> None:
        """
        A Request-URI enclosed in C{<>} gets 400 (RFC 4475 section 3.1.2.7).
        """
        self.assert_rejected(vector("ltgtruri"), 400, FaultAction.RESPOND, "Request-URI")

    def test_lwsruri_whitespace_in_request_uri(self) -> None:
        """
        Whitespace inside the Request-URI (C{; lr}) gets 400 (RFC 4475 section
        3.1.2.8).
        """
        self.assert_rejected(vector("lwsruri"), 400, FaultAction.RESPOND, "Request-Line")

    def test_lwsstart_extra_spaces_in_request_line(self) -> None:
        """
        Several spaces between the Request-Line elements may be rejected or
        tolerated; the parser rejects them with 400 (RFC 4475 section
        3.1.2.9).
        """
        self.assert_rejected(vector("lwsstart"), 400, FaultAction.RESPOND, "Request-Line")

    def test_trws_trailing_spaces_in_request_line(self) -> None:
        """
        Spaces after the SIP-Version may be rejected or tolerated; the parser
        rejects them with 400 (RFC 4475 section 3.1.2.10).
        """
        self.assert_rejected(vector("trws"), 400, FaultAction.RESPOND, "Request-Line")

    def test_escruri_headers_in_request_uri(self) -> None:
        """
        A Request-URI with an escaped header component may be rejected or
        accepted with the headers ignored; the parser accepts it and exposes
        the headers, which a proxy must not forward in the Request-URI nor
        turn into real headers (that is the proxy layer's job) (RFC 4475
        section 3.1.2.11).
        """
        request = self.request(vector("escruri"))
        uri = request.uri
        assert isinstance(uri, SIPURI)
        self.assertEqual(uri.headers, (("Route", "%3Csip:proxy.example.net%3E"),))
        self.assertNotIn("Route", request.headers)

    def test_baddate_non_gmt_date(self) -> None:
        """
        A Date with a zone other than GMT may be rejected by an element that
        uses Date and ignored by others; the parser does not read Date, so it
        accepts the request and keeps the value verbatim (RFC 4475 section
        3.1.2.12).
        """
        request = self.request(vector("baddate"))
        self.assertEqual(request.headers.get("Date"), "Sun, 14 Mar 2010 09:30:00 PST")

    def test_regbadct_addr_spec_with_headers(self) -> None:
        """
        A Contact URI with a header component but no angle brackets gets 400
        naming the Contact (RFC 4475 section 3.1.2.13).
        """
        self.assert_rejected(vector("regbadct"), 400, FaultAction.RESPOND, "Contact")

    def test_badaspec_spaces_in_addr_spec(self) -> None:
        """
        Whitespace inside the angle brackets of To gets 400 naming To
        (RFC 4475 section 3.1.2.14).
        """
        self.assert_rejected(vector("badaspec"), 400, FaultAction.RESPOND, "To")

    def test_baddn_unquoted_comma_in_display_name(self) -> None:
        """
        An unquoted display name with a comma gets 400 naming the header
        (From is checked before To) (RFC 4475 section 3.1.2.15).
        """
        self.assert_rejected(vector("baddn"), 400, FaultAction.RESPOND, "From")

    def test_badvers_unknown_version(self) -> None:
        """
        A request for SIP/9.1 gets 505 (RFC 4475 section 3.1.2.16).
        """
        self.assert_rejected(vector("badvers"), 505, FaultAction.RESPOND, "version")

    def test_mismatch01_cseq_method(self) -> None:
        """
        A CSeq method differing from the request method gets 400 naming CSeq
        (RFC 4475 section 3.1.2.17).
        """
        self.assert_rejected(vector("mismatch01"), 400, FaultAction.RESPOND, "CSeq")

    def test_mismatch02_unknown_method_and_cseq(self) -> None:
        """
        An unknown method whose CSeq names another method: RFC 4475 section
        3.1.2.18 prefers 501 but accepts 400, which the parser answers.
        """
        self.assert_rejected(vector("mismatch02"), 400, FaultAction.RESPOND, "CSeq")

    def test_bigcode_status_code_too_large(self) -> None:
        """
        A response with a status code above 699 is dropped (RFC 4475 section
        3.1.2.19).
        """
        self.assert_rejected(vector("bigcode"), 400, FaultAction.DROP, "Status-Line")


class TransactionLayerTests(_TortureTestCase):
    """
    RFC 4475 section 3.2: messages the parser accepts and the transaction
    layer must handle.
    """

    def test_badbranch_magic_cookie_only(self) -> None:
        """
        A branch made only of the magic cookie is accepted and exposed as is;
        the transaction layer must not take it as an RFC 3261 branch (RFC 4475
        section 3.2.1).
        """
        request = self.request(vector("badbranch"))
        self.assertEqual(request.top_via.branch, "z9hG4bK")


class ApplicationLayerTests(_TortureTestCase):
    """
    RFC 4475 section 3.3: syntactically valid or invalid messages whose answer
    the RFC describes at the application level.
    """

    def test_insuf_missing_headers(self) -> None:
        """
        A request without Call-ID, From and To gets 400 naming a missing
        header, answered with the Via and CSeq it has (RFC 4475 section 3.3.1).
        """
        error = self.assert_rejected(vector("insuf"), 400, FaultAction.RESPOND, "Missing")
        answer = build_error_response(error)
        assert answer is not None
        self.assertEqual(answer.top_via.branch, "z9hG4bKinsuf1")
        self.assertEqual(answer.cseq.number, 193)

    def test_unkscm_unknown_scheme(self) -> None:
        """
        A Request-URI with an unknown scheme gets 416 (RFC 4475 section 3.3.2).
        """
        self.assert_rejected(vector("unkscm"), 416, FaultAction.RESPOND, "scheme")

    def test_unkscm_parses_when_scheme_served(self) -> None:
        """
        The same request is well formed: a server that serves the scheme gets
        the opaque URI (RFC 4475 section 3.3.2).
        """
        message = parse_datagram(vector("unkscm"), uri_schemes=DEFAULT_URI_SCHEMES | {"unheardof-scheme"})
        assert isinstance(message, Request)
        self.assertEqual(message.uri, AbsoluteURI("unheardof-scheme", "completely-opaque-bits"))

    def test_novelsc_atypical_scheme(self) -> None:
        """
        A registered scheme we never serve in a Request-URI (C{soap.beep}) is
        treated as unknown: 416 (RFC 4475 section 3.3.3).
        """
        self.assert_rejected(vector("novelsc"), 416, FaultAction.RESPOND, "soap.beep")

    def test_novelsc_parses_when_scheme_served(self) -> None:
        """
        A server that does serve C{soap.beep} gets the request with the
        opaque URI (RFC 4475 section 3.3.3).
        """
        message = parse_datagram(vector("novelsc"), uri_schemes=DEFAULT_URI_SCHEMES | {"soap.beep"})
        assert isinstance(message, Request)
        self.assertEqual(message.uri, AbsoluteURI("soap.beep", "//192.0.2.99:3002"))

    def test_unksm2_non_sip_uris_in_headers(self) -> None:
        """
        Non-SIP URIs in To, From and Contact are accepted and kept opaque; a
        registrar answers 400 because the To is no SIP AOR (the registrar
        layer's job) (RFC 4475 section 3.3.4).
        """
        request = self.request(vector("unksm2"))
        self.assertEqual(request.to.uri, AbsoluteURI("urn", "ietf:rfc:3261"))
        self.assertEqual(request.from_.uri, AbsoluteURI("https", "//www.example.net/people/nora"))
        self.assertEqual(request.from_.tag, "u2s2")
        contacts = request.contacts
        assert isinstance(contacts, list)
        self.assertEqual(contacts[0].uri, AbsoluteURI("im", "nora@example.net"))

    def test_bext01_unknown_extensions(self) -> None:
        """
        Unknown Require and Proxy-Require options are accepted and listed; the
        UA or proxy layer answers 420 with Unsupported (RFC 4475 section
        3.3.5).
        """
        request = self.request(vector("bext01"))
        self.assertEqual(request.headers.values("Require"), ["frobnication", "extra-crispy"])
        self.assertEqual(request.headers.values("Proxy-Require"), ["warp-drive", "no-such-thing"])

    def test_invut_unknown_content_type(self) -> None:
        """
        A body of unknown type is accepted and kept; the UA layer answers 415
        (RFC 4475 section 3.3.6).
        """
        data = vector("invut")
        request = self.request(data)
        self.assertEqual(request.headers.get("Content-Type"), "application/x-unheard-of")
        self.assertEqual(request.headers.get("Accept"), "text/x-nothing-known")
        self.assertEqual(request.body, _body_of(data))

    def test_regaut01_unknown_auth_scheme(self) -> None:
        """
        An Authorization with an unknown scheme is accepted and kept verbatim
        (commas and all) for a proxy to forward; a registrar that
        authenticates answers 401 with a challenge it understands (the auth
        layer's job) (RFC 4475 section 3.3.7).
        """
        request = self.request(vector("regaut01"))
        self.assertEqual(request.headers.get_all("Authorization"), ['MysteryScheme blob="a, b; c", x=1'])

    def test_multi01_repeated_single_headers(self) -> None:
        """
        Two To, From, Call-ID, CSeq and Max-Forwards headers get 400
        (RFC 4475 section 3.3.8).
        """
        self.assert_rejected(vector("multi01"), 400, FaultAction.RESPOND, "More than one")

    def test_mcl01_conflicting_content_lengths(self) -> None:
        """
        Two different Content-Length values on a datagram get 400 (RFC 4475
        section 3.3.9).
        """
        self.assert_rejected(vector("mcl01"), 400, FaultAction.RESPOND, "Content-Length")

    def test_bcast_broadcast_via(self) -> None:
        """
        A response whose second Via is 255.255.255.255 is well formed and
        accepted, exposing that Via; dropping it (an endpoint has no matching
        transaction, and a proxy must not forward to a broadcast address) is
        the transaction and proxy layers' job (RFC 4475 section 3.3.10).
        """
        response = self.response(vector("bcast"))
        self.assertEqual(response.top_via.received, "192.0.2.198")
        self.assertEqual(response.vias[1].host, "255.255.255.255")

    def test_zeromf_zero_max_forwards(self) -> None:
        """
        Max-Forwards 0 is accepted and exposed: a proxy answers 483, a UA
        processes the request (RFC 4475 section 3.3.11).
        """
        request = self.request(vector("zeromf"))
        self.assertEqual(request.max_forwards, 0)

    def test_cparam01_contact_parameter(self) -> None:
        """
        In an addr-spec Contact, a parameter after the URI is a contact
        parameter, not a URI parameter (RFC 4475 section 3.3.12).
        """
        contacts = self.request(vector("cparam01")).contacts
        assert isinstance(contacts, list)
        uri = contacts[0].uri
        assert isinstance(uri, SIPURI)
        self.assertEqual(contacts[0].params, (("strangeparam", None),))
        self.assertEqual((uri.user, uri.parameters), ("+15550001111", ()))

    def test_cparam02_uri_parameter(self) -> None:
        """
        Inside angle brackets the same parameter is a URI parameter, which a
        registrar must keep in the binding (RFC 4475 section 3.3.13).
        """
        contacts = self.request(vector("cparam02")).contacts
        assert isinstance(contacts, list)
        uri = contacts[0].uri
        assert isinstance(uri, SIPURI)
        self.assertEqual(contacts[0].params, ())
        self.assertEqual(uri.parameters, (("strangeparam", None),))

    def test_regescrt_escaped_header_in_contact(self) -> None:
        """
        A Contact URI with an escaped Route header component is accepted and
        the component kept for the binding (RFC 4475 section 3.3.14).
        """
        contacts = self.request(vector("regescrt")).contacts
        assert isinstance(contacts, list)
        uri = contacts[0].uri
        assert isinstance(uri, SIPURI)
        self.assertEqual(uri.headers, (("Route", "%3Csip:edge.example.net%3E"),))
        self.assertEqual(str(uri), "sip:opal@192.0.2.244?Route=%3Csip:edge.example.net%3E")

    def test_sdp01_unacceptable_accept(self) -> None:
        """
        An INVITE whose Accept excludes SDP, so that no SDP answer may be sent,
        is accepted; the UA layer may answer 406 (RFC 4475 section 3.3.15).
        """
        request = self.request(vector("sdp01"))
        self.assertEqual(request.headers.get("Accept"), "text/x-none-such")
        self.assertEqual(request.body, SDP)


class BackwardCompatibilityTests(_TortureTestCase):
    """
    RFC 4475 section 3.4: RFC 2543 messages.
    """

    def test_inv2543_rfc2543_invite(self) -> None:
        """
        An INVITE with no branch, no From tag, no Content-Length and no
        Max-Forwards is accepted on a datagram; the body is the rest of the
        datagram and the missing Max-Forwards is noted (RFC 4475 section
        3.4.1).
        """
        request = self.request(vector("inv2543"))
        self.assertIsNone(request.top_via.branch)
        self.assertIsNone(request.from_.tag)
        self.assertIsNone(request.max_forwards)
        self.assertIsNone(request.content_length)
        self.assertEqual(request.body, SDP)
        self.assertEqual(len(request.notes), 1)
        self.assertIn("Max-Forwards", request.notes[0])


class StreamTortureTests(_TortureTestCase):
    """
    The vectors whose framing matters, fed to L{StreamFramer}.
    """

    def events(self, data: bytes, chunk: int = 1) -> list[Message | KeepAlive]:
        """Feed C{data} in chunks of C{chunk} bytes and collect every event."""
        framer = StreamFramer()
        events: list[Message | KeepAlive] = []
        for start in range(0, len(data), chunk):
            framer.feed(data[start : start + chunk])
            while (event := framer.next_event()) is not None:
                events.append(event)
        return events

    def test_valid_vectors_framed(self) -> None:
        """
        Every accepted vector with a correct Content-Length, fed one byte at a
        time, gives exactly one message, equal to the datagram parse (the
        framing does not depend on where the stream is cut).
        """
        for name in ACCEPTED:
            if name in ("dblreq", "inv2543"):
                continue  # see test_dblreq_two_requests and test_inv2543_missing_content_length_closes
            data = vector(name)
            self.assertEqual(self.events(data), [self.parsed(data)], name)

    def test_dblreq_two_requests(self) -> None:
        """
        On a stream the octets after the first request are the next message:
        the REGISTER then the INVITE (RFC 4475 section 3.1.1.8 contrasts this
        with a datagram).
        """
        events = self.events(vector("dblreq"), chunk=64)
        self.assertEqual([type(event) for event in events], [Request, Request])
        register, invite = events
        assert isinstance(register, Request) and isinstance(invite, Request)
        self.assertEqual((register.method, invite.method), ("REGISTER", "INVITE"))
        self.assertEqual(invite.body, SDP)

    def test_clerr_waits_for_body(self) -> None:
        """
        On a stream a Content-Length larger than the data received means the
        rest has not arrived: the framer waits, then frames the message when
        it has (RFC 4475 section 3.1.2.2).
        """
        data = vector("clerr")
        framer = StreamFramer()
        framer.feed(data)
        self.assertIsNone(framer.next_event())
        self.assertTrue(framer.in_message)
        framer.feed(b"x" * (7777 - len(_body_of(data))))
        message = framer.next_event()
        assert isinstance(message, Request)
        self.assertEqual(len(message.body), 7777)

    def test_ncl_negative_content_length_closes(self) -> None:
        """
        A negative Content-Length on a stream leaves no way to find the next
        message: the fault is C{CLOSE}, and the framer stays broken
        (RFC 4475 section 3.1.2.3).
        """
        framer = StreamFramer()
        framer.feed(vector("ncl"))
        error = self.assertRaises(RemoteProtocolError, framer.next_event)
        self.assertEqual((error.status, error.action), (400, FaultAction.CLOSE))
        self.assertIn("Content-Length", error.reason)
        self.assertRaises(RemoteProtocolError, framer.next_event)

    def test_ncl_non_numeric_content_length_closes(self) -> None:
        """
        A Content-Length of C{twelve} on a stream is the same framing fault:
        C{CLOSE} (RFC 4475 section 3.1.2.3).
        """
        framer = StreamFramer()
        framer.feed(_replace(vector("ncl"), b"Content-Length: -777", b"Content-Length: twelve"))
        error = self.assertRaises(RemoteProtocolError, framer.next_event)
        self.assertEqual((error.status, error.action), (400, FaultAction.CLOSE))
        self.assertIn("Content-Length", error.reason)

    def test_mcl01_conflicting_content_lengths_close(self) -> None:
        """
        Two different Content-Length values on a stream are a framing fault
        that cannot be recovered from: the connection must be closed
        (C{CLOSE}), not the message answered while the framer goes on reading
        its body as the next message (RFC 4475 section 3.3.9).
        """
        framer = StreamFramer()
        framer.feed(vector("mcl01"))
        error = self.assertRaises(RemoteProtocolError, framer.next_event)
        self.assertEqual((error.status, error.action), (400, FaultAction.CLOSE))
        self.assertIn("Content-Length", error.reason)
        self.assertRaises(RemoteProtocolError, framer.next_event)

    def test_inv2543_missing_content_length_closes(self) -> None:
        """
        A stream message without Content-Length cannot be framed: C{CLOSE}
        (RFC 3261 section 18.3; the RFC 2543 INVITE of RFC 4475 section 3.4.1
        is valid on a datagram only).
        """
        framer = StreamFramer()
        framer.feed(vector("inv2543"))
        error = self.assertRaises(RemoteProtocolError, framer.next_event)
        self.assertEqual((error.status, error.action), (400, FaultAction.CLOSE))
        self.assertIn("Content-Length", error.reason)
