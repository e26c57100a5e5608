"""
Property tests of the message layer as a whole: round trips, never-crash, and
stream framing that does not depend on how the stream was cut.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipstack.config import Limits
from sipstack.errors import FaultAction, RemoteProtocolError
from sipstack.message import KeepAlive, StreamFramer, build_error_response, parse_datagram, parse_uri, serialize
from sipstack.message import parser as parser_module
from sipstack.message.address import parse_name_address
from sipstack.message.headers import Headers
from sipstack.message.message import Message
from sipstack.testing.strategies import messages, name_addresses, requests

#: The statuses a parse fault may carry (architecture section 2.8).
FAULT_STATUSES = {400, 413, 414, 416, 420, 505, 513}


def _check_fault(test: SynchronousTestCase, error: RemoteProtocolError) -> None:
    test.assertIn(error.status, FAULT_STATUSES)
    test.assertTrue(error.reason)
    test.assertNotIn("\n", error.reason)
    response = build_error_response(error)
    if response is not None:
        # The error response is written and copies the request's Vias; it
        # parses back whenever the request had the headers a response needs.
        assert error.request_fields is not None
        data = serialize(response)
        test.assertTrue(data.startswith(f"SIP/2.0 {error.status} ".encode()))
        vias = [value for name, value in error.request_fields if name.lower() in ("via", "v")]
        test.assertEqual(response.headers.get_all("Via"), vias)
        try:
            reparsed = parse_datagram(data)
        except RemoteProtocolError as reparse_error:
            test.assertIs(reparse_error.action, FaultAction.DROP)
        else:
            test.assertEqual(reparsed, response)


def _parse_outcome(test: SynchronousTestCase, data: bytes) -> Message | None:
    try:
        return parse_datagram(data, Limits(max_message_bytes=4096, max_headers=40))
    except RemoteProtocolError as error:
        _check_fault(test, error)
        return None


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid message's bytes, damaged the ways real peers and networks damage them."""
    data = bytearray(serialize(draw(messages())))
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(data)))
        end = draw(st.integers(start, min(len(data), start + 20)))
        kind = draw(st.sampled_from(["cut", "duplicate", "case", "lf", "insert", "truncate"]))
        if kind == "cut":
            del data[start:end]
        elif kind == "duplicate":
            data[start:start] = data[start:end]
        elif kind == "case":
            data[start:end] = bytes(data[start:end]).swapcase()
        elif kind == "lf":
            data = bytearray(bytes(data).replace(b"\r\n", b"\n", draw(st.integers(1, 3))))
        elif kind == "insert":
            data[start:start] = draw(st.binary(min_size=1, max_size=6))
        else:
            del data[start:]
    return bytes(data)


_INVITE = (
    b"INVITE sip:bob@biloxi.example.org SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc7.atlanta.example.org:5060;branch=z9hG4bKa7e1;rport\r\n"
    b"Via: SIP/2.0/TCP edge.example.org;branch=z9hG4bK0e1;received=192.0.2.9\r\n"
    b"Max-Forwards: 69\r\n"
    b'From: "Alice A." <sip:alice@atlanta.example.org>;tag=88sja8x\r\n'
    b"To: Bob <sip:bob@biloxi.example.org>\r\n"
    b"Call-ID: 9a8b7c6d@pc7.atlanta.example.org\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"Contact: <sip:alice@pc7.atlanta.example.org;transport=udp>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)
_RINGING = (
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/UDP pc7.atlanta.example.org:5060;branch=z9hG4bKa7e1;received=192.0.2.1;rport=5060\r\n"
    b'From: "Alice A." <sip:alice@atlanta.example.org>;tag=88sja8x\r\n'
    b"To: Bob <sip:bob@biloxi.example.org>;tag=314159\r\n"
    b"Call-ID: 9a8b7c6d@pc7.atlanta.example.org\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)
_REGISTER = (
    b"REGISTER sip:example.org SIP/2.0\r\n"
    b"v: SIP/2.0/TLS ua.example.org:5061;branch=z9hG4bKr1;rport\r\n"
    b"t: <sip:carol@example.org>\r\n"
    b"f: <sip:carol@example.org>;tag=5fd1\r\n"
    b"i: reg-1@ua.example.org\r\n"
    b"CSeq: 41 REGISTER\r\n"
    b"m: <sip:carol@192.0.2.7:5061;transport=tls>;expires=600;q=0.7\r\n"
    b"m: <sip:carol@198.51.100.7>\r\n"
    b"l: 0\r\n"
    b"\r\n"
)

#: Header names (as written by the message strategies) that may appear only once.
_SINGLE_NAMES = {b"from", b"f", b"to", b"t", b"call-id", b"i", b"cseq", b"max-forwards", b"content-length", b"l"}


@st.composite
def respaced(draw: st.DrawFn) -> bytes:
    """
    A valid message's bytes, changed the ways that keep it valid but not
    canonical (or that look as if they might): spacing around header values,
    the case of the URI scheme and version, leading zeros in ports, a missing
    reason phrase, repeated or reordered lines.
    """
    head, _, body = serialize(draw(messages())).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(1, len(lines) - 1))
        name, _, value = lines[index].partition(b": ")
        kind = draw(
            st.sampled_from(
                ["colon", "trailing", "start", "duplicate", "duplicate", "swap", "port", "empty", "compact", "case"]
            )
        )
        if kind == "duplicate" and draw(st.booleans()):
            # Most often one that must not be repeated.
            single = [i for i, line in enumerate(lines) if line.split(b":")[0].lower() in _SINGLE_NAMES]
            index = draw(st.sampled_from(single)) if single else index
        if kind == "colon":
            lines[index] = name + draw(st.sampled_from([b":", b":  ", b":\t", b" : ", b"\t:", b": \t"])) + value
        elif kind == "trailing":
            lines[index] += draw(st.sampled_from([b" ", b"\t", b" \t"]))
        elif kind == "start":
            old, new = draw(
                st.sampled_from(
                    [(b"sip:", b"SIP:"), (b"sips:", b"Sips:"), (b"SIP/2.0", b"sip/2.0"), (b" ", b"  "), (b" ", b"")]
                )
            )
            lines[0] = lines[0].replace(old, new, 1)
        elif kind == "duplicate":
            lines.insert(index, lines[index])
        elif kind == "swap":
            lines[1], lines[index] = lines[index], lines[1]
        elif kind == "port":
            # A leading zero in the first port (or password, or IPv6 group) of the start line or of a line.
            line = draw(st.sampled_from([0, index]))
            lines[line] = re.sub(rb":([0-9])", rb":0\1", lines[line], count=1)
        elif kind == "empty":
            lines.insert(index, draw(st.sampled_from([b"Subject: ", b"Subject:", b"X-Empty:  "])))
        elif kind == "compact":
            lines[index] = value
        else:
            lines[index] = name.swapcase() + b": " + value
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _careful_split(text: str, limits: Limits) -> tuple[str, Headers, bool]:
    """C{_split_head} without its quick loop: every header block is split line by line."""
    start = text.split("\r\n", 1)[0]
    answerable = parser_module._answerable(start)
    start, fields = parser_module._split_lines(text, limits, answerable)
    headers = Headers(fields)
    if "\x00" in text and parser_module._raw_nul(text):
        raise parser_module._fault("NUL character in the header section", 400, answerable, headers.fields)
    return start, headers, False


@contextmanager
def _careful_only() -> Iterator[None]:
    """Turn the parser's quick paths off: every message takes the careful ones."""
    namespace = vars(parser_module)
    saved = {name: namespace[name] for name in ("quick_message", "_split_head")}
    namespace["quick_message"] = lambda *args: None
    namespace["_split_head"] = _careful_split
    try:
        yield
    finally:
        namespace.update(saved)


def _outcome(data: bytes) -> tuple[Any, ...]:
    """Everything observable about parsing C{data}, and writing back what it gives."""
    try:
        message = parse_datagram(data, Limits(max_message_bytes=4096, max_headers=40))
    except RemoteProtocolError as error:
        return ("fault", type(error), error.status, error.reason, error.action, error.request_fields)
    if message is None:
        return ("keep-alive",)
    return ("message", type(message), message, message.notes, message._cache, serialize(message))


class QuickPathTests(SynchronousTestCase):
    """
    The parser's quick path and its careful path give the same outcome: the
    same message with the same notes and typed values, the same bytes when
    it is written back (for the quick path, possibly the bytes it came in),
    or the same fault.
    """

    def assertSameOutcome(self, data: bytes) -> None:
        quick = _outcome(data)
        with _careful_only():
            careful = _outcome(data)
        self.assertEqual(quick, careful)

    def test_every_line(self) -> None:
        """
        Each header line of a request and a response repeated, removed,
        emptied or spaced oddly, and each start line changed: every way out
        of the quick path, one at a time.
        """
        for data in (_INVITE, _RINGING, _REGISTER):
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            variants = [
                [lines[0].replace(old, new, 1), *lines[1:]]
                for old, new in [
                    (b"sip:", b"SIP:"),
                    (b"SIP/2.0", b"sip/2.0"),
                    (b"SIP/2.0", b"SIP/2.1"),
                    (b" ", b"  "),
                    (b"INVITE", b"INV ITE"),
                    (b"sip:", b"mailto:"),
                    (b"example.org", b"example.org:0"),
                    (b"180 Ringing", b"180"),
                    (b"180", b"099"),
                    (b"180", "1\u06630".encode()),
                ]
            ]
            for index in range(1, len(lines)):
                name, _, value = lines[index].partition(b": ")
                for line in (
                    lines[index],
                    b"",
                    name + b":",
                    name + b": ",
                    name + b":" + value,
                    name + b":  " + value,
                    lines[index] + b" ",
                    name + b": " + value + b", " + value,
                    name + b": " + value + b",",
                    name + b": ,",
                    name + b": *",
                ):
                    variants.append([*lines[: index + 1], line, *lines[index + 1 :]])
                    variants.append([*lines[:index], line, *lines[index + 1 :]])
                for end in (b"\n", b"\r", b"\n ", b"\r\n ", b"\x00"):
                    # The line joined to the one before by a bare LF or CR, folded, or with a NUL.
                    variants.append([*lines[: index - 1], lines[index - 1] + end + lines[index], *lines[index + 1 :]])
            for variant in variants:
                self.assertSameOutcome(b"\r\n".join(variant) + b"\r\n\r\n" + body)

    @given(messages())
    def test_valid(self, message: Message) -> None:
        """Valid messages, compact or not."""
        self.assertSameOutcome(serialize(message))
        self.assertSameOutcome(serialize(message, compact=True))

    @given(respaced())
    def test_respaced(self, data: bytes) -> None:
        """Valid messages in forms that are not canonical, and some that are not valid."""
        self.assertSameOutcome(data)

    def test_known_name_without_colon(self) -> None:
        """
        A line that is a known header name and nothing else has no colon: both
        paths refuse it as malformed (the quick path once read it as an empty
        value, a fault of a different name).
        """
        for name in (b"Content-Length", b"Via", b"To", b"i"):
            data = _REGISTER.replace(b"\r\n\r\n", b"\r\n" + name + b"\r\n\r\n", 1)
            self.assertSameOutcome(data)
            with self.assertRaises(RemoteProtocolError) as caught:
                parse_datagram(data)
            self.assertEqual(caught.exception.reason, f"Malformed header line {name.decode()!r}")

    def test_bare_cr_ends_the_block(self) -> None:
        """
        A header block ending in a bare CR (CRLF lines and a blank line of LF
        alone, or "\\r\\r\\n" after the last header) is read as the careful
        path reads it: the CR is a line end, not part of the last value.
        """
        head, _, body = _REGISTER.partition(b"\r\n\r\n")
        for ending in (b"\r\n\n", b"\r\r\n\r\n"):
            data = head + ending + body
            self.assertSameOutcome(data)
            message = parse_datagram(data)
            assert message is not None
            self.assertFalse(any(value.endswith("\r") for _, value in message.headers.fields))
        framer = StreamFramer()
        framer.feed(head + b"\r\r\n\r\n" + body)
        self.assertIsInstance(framer.next_event(), Message)

    @given(mutated())
    def test_mutated(self, data: bytes) -> None:
        """Damaged messages."""
        self.assertSameOutcome(data)

    @given(st.binary(max_size=300))
    def test_arbitrary(self, data: bytes) -> None:
        """Arbitrary bytes."""
        self.assertSameOutcome(data)

    @given(respaced())
    def test_parsed_index(self, data: bytes) -> None:
        """The index the parser builds for the headers is the one they would build themselves."""
        try:
            message = parse_datagram(data)
        except RemoteProtocolError:
            return
        assert message is not None
        rebuilt = Headers(message.headers.fields)
        self.assertEqual(message.headers._index(), rebuilt._index())
        self.assertEqual(message.headers._repeated, rebuilt._repeated)

    @given(name_addresses(), st.sampled_from(["", ";tag=1", ";expires=60;q=0.5"]))
    def test_name_address_uri(self, address: Any, params: str) -> None:
        """The URI split by the name-addr pattern is the URI parse_uri makes of the text between <>."""
        parsed = parse_name_address(f"<{address.uri}>{params}")
        self.assertEqual(parsed.uri, parse_uri(str(address.uri)))


class RoundTripTests(SynchronousTestCase):
    """
    Serializing then parsing gives back the same message.
    """

    @given(messages())
    def test_parse_serialize(self, message: Message) -> None:
        """parse(serialize(m)) == m for generated valid messages."""
        self.assertEqual(parse_datagram(serialize(message)), message)

    @given(messages())
    def test_serialize_fixed_point(self, message: Message) -> None:
        """serialize(parse(serialize(m))) is serialize(m), byte for byte."""
        data = serialize(message)
        parsed = parse_datagram(data)
        assert parsed is not None
        self.assertEqual(serialize(parsed), data)

    @given(messages())
    def test_compact_serialization(self, message: Message) -> None:
        """Compact header names parse to the same typed values as long ones."""
        parsed = parse_datagram(serialize(message, compact=True))
        assert parsed is not None
        self.assertEqual(parsed.vias, message.vias)
        self.assertEqual(parsed.from_, message.from_)
        self.assertEqual(parsed.to, message.to)
        self.assertEqual(parsed.call_id, message.call_id)
        self.assertEqual(parsed.content_length, len(message.body))


class NeverCrashTests(SynchronousTestCase):
    """
    Any input gives a message or a RemoteProtocolError with a defined outcome.
    """

    @given(st.binary(max_size=600))
    @example(b"INVITE sip:a@b SIP/2.0\r\n\r\n")
    @example(b"SIP/2.0 200\r\n\r\n")
    @example(b"\r\n \r\n")
    @example(b"A: b\r\n c")
    def test_arbitrary_bytes(self, data: bytes) -> None:
        """Arbitrary bytes never raise anything but RemoteProtocolError."""
        _parse_outcome(self, data)

    @given(mutated())
    def test_mutated_messages(self, data: bytes) -> None:
        """Damaged valid messages never raise anything but RemoteProtocolError."""
        _parse_outcome(self, data)

    @given(st.lists(st.one_of(mutated(), st.binary(max_size=80)), max_size=4), st.booleans())
    def test_framer_arbitrary_stream(self, chunks: list[bytes], pongs: bool) -> None:
        """A stream of damaged messages gives events or RemoteProtocolError only."""
        framer = StreamFramer(Limits(max_message_bytes=4096, max_header_bytes=2048), pongs_expected=pongs)
        for chunk in chunks:
            framer.feed(chunk)
            while True:
                try:
                    event = framer.next_event()
                except RemoteProtocolError as error:
                    _check_fault(self, error)
                    if error.action is FaultAction.CLOSE:
                        return
                    continue
                if event is None:
                    break


def _frame_all(chunks: list[bytes], pongs: bool) -> list[Message | KeepAlive | str]:
    """Every event of a stream fed in these chunks; faults appear as their reason."""
    framer = StreamFramer(pongs_expected=pongs)
    events: list[Message | KeepAlive | str] = []
    for chunk in chunks:
        framer.feed(chunk)
        while True:
            try:
                event = framer.next_event()
            except RemoteProtocolError as error:
                events.append(error.reason)
                if error.action is FaultAction.CLOSE:
                    return events
                continue
            if event is None:
                break
            events.append(event)
    return events


class FramingTests(SynchronousTestCase):
    """
    The framer's output depends on the bytes, not on where the stream was cut.
    """

    @given(
        st.lists(st.one_of(requests(), st.sampled_from([b"\r\n\r\n", b"\r\n"])), min_size=1, max_size=5),
        st.lists(st.integers(0, 3000), max_size=8),
        st.booleans(),
    )
    def test_cut_independence(self, items: list[Message | bytes], cuts: list[int], pongs: bool) -> None:
        """Feeding the stream in any chunks gives the events of feeding it whole."""
        stream = b"".join(item if isinstance(item, bytes) else serialize(item) for item in items)
        positions = sorted({min(cut, len(stream)) for cut in cuts})
        chunks = [stream[start:end] for start, end in zip([0, *positions], [*positions, len(stream)], strict=True)]
        self.assertEqual(_frame_all(chunks, pongs), _frame_all([stream], pongs))

    @given(st.lists(requests(), min_size=1, max_size=4))
    def test_stream_round_trip(self, sent: list[Message]) -> None:
        """Messages written back to back on a stream come out equal, in order."""
        stream = b"".join(serialize(message) for message in sent)
        self.assertEqual(_frame_all([stream], False), sent)
