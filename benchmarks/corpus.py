"""
The messages the parse benchmark times, with the values a correct parser reads from them.

They are what a proxy handles most: an INVITE with SDP as a second proxy sees
it (two Vias, Record-Route, Route, Contact, Allow, Supported), a REGISTER with
Digest credentials (qop=auth), the 200 OK and 180 Ringing that answer the
INVITE, and an OPTIONS ping.  They stay within what C{twisted.protocols.sip}
can read (C{sip:} URIs, IPv4, no C{<} in Contact parameters) so that both
parsers run over the same bytes, and they are canonical, so that both must
re-serialize them byte for byte.  The expected values are written by hand, not
taken from either parser.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Fields", "CorpusEntry", "CORPUS"]

#: The fields a proxy reads, in this order: top Via branch and host, From tag,
#: From URI user and host, To URI user and host, CSeq number and method,
#: Call-ID, first Contact URI user and host.
Fields = tuple[str | None, str, str | None, str | None, str, str | None, str, int, str, str, str | None, str]


@dataclass(frozen=True, slots=True)
class CorpusEntry:
    """
    One message of the corpus and what any correct parser must read from it.

    @ivar name: a short label for reports.
    @ivar data: the datagram, CRLF line ends, canonical (so sipstack must
        re-serialize it exactly).
    @ivar expected: the L{Fields} written by hand, independent of both parsers.
    """

    name: str
    data: bytes
    expected: Fields


def _message(head: str, body: str = "") -> bytes:
    """
    A datagram from readable source text: LF becomes CRLF, and Content-Length
    is computed, so that editing the SDP cannot leave a wrong length behind.
    """
    lines = head.strip("\n").split("\n")
    wire_body = body.lstrip("\n").replace("\n", "\r\n").encode("utf-8")
    lines.append(f"Content-Length: {len(wire_body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + wire_body


_OFFER = """
v=0
o=alice 2890844526 2890844526 IN IP4 192.0.2.101
s=-
c=IN IP4 192.0.2.101
t=0 0
m=audio 49172 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
"""

_ANSWER = """
v=0
o=bob 2808844564 2808844564 IN IP4 192.0.2.4
s=-
c=IN IP4 192.0.2.4
t=0 0
m=audio 3456 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
"""

# The INVITE as a second proxy receives it: the first proxy has added its Via
# and Record-Route, and the caller preloaded a Route to the second.
_INVITE = _message(
    """
INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP p1.atlanta.example.com:5060;branch=z9hG4bK2d4790.1
Via: SIP/2.0/UDP 192.0.2.101:5060;received=192.0.2.101;rport=5060;branch=z9hG4bK74bf9
Max-Forwards: 69
Record-Route: <sip:p1.atlanta.example.com;lr>
Route: <sip:p2.biloxi.example.com;lr>
From: "Alice Liddell" <sip:alice@atlanta.example.com>;tag=9fxced76sl
To: Bob <sip:bob@biloxi.example.com>
Call-ID: 3848276298220188511@atlanta.example.com
CSeq: 314159 INVITE
Contact: <sip:alice@192.0.2.101:5060;transport=udp>
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, UPDATE, PRACK
Supported: replaces, timer, 100rel
User-Agent: ExamplePhone/4.2
Content-Type: application/sdp
""",
    _OFFER,
)

_REGISTER = _message(
    """
REGISTER sip:biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bKnashds7;rport
Max-Forwards: 70
From: Bob <sip:bob@biloxi.example.com>;tag=a73kszlfl
To: Bob <sip:bob@biloxi.example.com>
Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.4
CSeq: 2 REGISTER
Contact: <sip:bob@192.0.2.4:5060;transport=udp>;expires=3600
Authorization: Digest username="bob", realm="biloxi.example.com", \
nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="sip:biloxi.example.com", \
response="6629fae49393a05397450978507c4ef1", algorithm=MD5, cnonce="0a4f113b", \
qop=auth, nc=00000001, opaque="5ccc069c403ebaf9f0171e9517f40e41"
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, UPDATE, PRACK
User-Agent: ExamplePhone/4.2
""",
)

_OK = _message(
    """
SIP/2.0 200 OK
Via: SIP/2.0/UDP p1.atlanta.example.com:5060;branch=z9hG4bK2d4790.1
Via: SIP/2.0/UDP 192.0.2.101:5060;received=192.0.2.101;rport=5060;branch=z9hG4bK74bf9
Record-Route: <sip:p2.biloxi.example.com;lr>
Record-Route: <sip:p1.atlanta.example.com;lr>
From: "Alice Liddell" <sip:alice@atlanta.example.com>;tag=9fxced76sl
To: Bob <sip:bob@biloxi.example.com>;tag=8321234356
Call-ID: 3848276298220188511@atlanta.example.com
CSeq: 314159 INVITE
Contact: <sip:bob@192.0.2.4:5060;transport=udp>
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, UPDATE, PRACK
Supported: replaces, timer
Content-Type: application/sdp
""",
    _ANSWER,
)

_RINGING = _message(
    """
SIP/2.0 180 Ringing
Via: SIP/2.0/UDP p1.atlanta.example.com:5060;branch=z9hG4bK2d4790.1
Via: SIP/2.0/UDP 192.0.2.101:5060;received=192.0.2.101;rport=5060;branch=z9hG4bK74bf9
Record-Route: <sip:p2.biloxi.example.com;lr>
Record-Route: <sip:p1.atlanta.example.com;lr>
From: "Alice Liddell" <sip:alice@atlanta.example.com>;tag=9fxced76sl
To: Bob <sip:bob@biloxi.example.com>;tag=8321234356
Call-ID: 3848276298220188511@atlanta.example.com
CSeq: 314159 INVITE
Contact: <sip:bob@192.0.2.4:5060;transport=udp>
""",
)

_OPTIONS = _message(
    """
OPTIONS sip:carol@chicago.example.com SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bKhjhs8ass877
Max-Forwards: 70
To: <sip:carol@chicago.example.com>
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710
CSeq: 63104 OPTIONS
Contact: <sip:alice@pc33.atlanta.example.com>
Accept: application/sdp
""",
)

_INVITE_CALL = "3848276298220188511@atlanta.example.com"

#: The messages, with the values each parser must read from them.
CORPUS: tuple[CorpusEntry, ...] = (
    CorpusEntry(
        "INVITE",
        _INVITE,
        (
            "z9hG4bK2d4790.1", "p1.atlanta.example.com", "9fxced76sl", "alice", "atlanta.example.com",
            "bob", "biloxi.example.com", 314159, "INVITE", _INVITE_CALL, "alice", "192.0.2.101",
        ),
    ),
    CorpusEntry(
        "REGISTER",
        _REGISTER,
        (
            "z9hG4bKnashds7", "192.0.2.4", "a73kszlfl", "bob", "biloxi.example.com",
            "bob", "biloxi.example.com", 2, "REGISTER", "1j9FpLxk3uxtm8tn@192.0.2.4", "bob", "192.0.2.4",
        ),
    ),
    CorpusEntry(
        "200 OK",
        _OK,
        (
            "z9hG4bK2d4790.1", "p1.atlanta.example.com", "9fxced76sl", "alice", "atlanta.example.com",
            "bob", "biloxi.example.com", 314159, "INVITE", _INVITE_CALL, "bob", "192.0.2.4",
        ),
    ),
    CorpusEntry(
        "180 Ringing",
        _RINGING,
        (
            "z9hG4bK2d4790.1", "p1.atlanta.example.com", "9fxced76sl", "alice", "atlanta.example.com",
            "bob", "biloxi.example.com", 314159, "INVITE", _INVITE_CALL, "bob", "192.0.2.4",
        ),
    ),
    CorpusEntry(
        "OPTIONS",
        _OPTIONS,
        (
            "z9hG4bKhjhs8ass877", "pc33.atlanta.example.com", "1928301774", "alice", "atlanta.example.com",
            "carol", "chicago.example.com", 63104, "OPTIONS", "a84b4c76e66710", "alice", "pc33.atlanta.example.com",
        ),
    ),
)  # fmt: skip
