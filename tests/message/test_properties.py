"""
Property tests of the message layer as a whole: round trips, never-crash, and
stream framing that does not depend on how the stream was cut.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipstack.config import Limits
from sipstack.errors import FaultAction, RemoteProtocolError
from sipstack.message import KeepAlive, StreamFramer, build_error_response, parse_datagram, serialize
from sipstack.message.message import Message
from sipstack.testing.strategies import messages, requests

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
