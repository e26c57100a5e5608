# -*- test-case-name: tests.message.test_parser -*-
"""
From bytes to messages: datagram parsing and stream framing.

Two entry points share one header parser:

  - L{parse_datagram} reads one UDP datagram (RFC 3261 section 18.3: the
    Content-Length, if present, bounds the body; bytes past it are dropped).
  - L{StreamFramer} cuts a TCP/TLS byte stream into messages by
    Content-Length, which streams must carry, and recognises RFC 5626 section
    3.5.1 keep-alives (a double-CRLF ping, a single-CRLF pong).

Every fault is a L{RemoteProtocolError} whose C{status} is the answer and whose
C{action} says whether to answer, drop or close; nothing else escapes for any
input (a property test feeds arbitrary bytes).  The checks that turn a
well-framed message into a valid one live in L{sipstack.message.validation};
the decisions they take are listed in C{docs/message-layer.md}.
"""

from __future__ import annotations

import enum
import re

from sipstack.config import Limits
from sipstack.errors import FaultAction, MessageTooLarge, RemoteProtocolError
from sipstack.message.headers import _KNOWN_KEYS, Headers, canonical_key
from sipstack.message.message import Message
from sipstack.message.validation import DEFAULT_URI_SCHEMES, careful_message, quick_message

__all__ = ["parse_datagram", "StreamFramer", "KeepAlive", "DEFAULT_LIMITS"]

DEFAULT_LIMITS = Limits()


class KeepAlive(enum.Enum):
    """
    An RFC 5626 section 3.5.1 keep-alive seen on a stream between messages.
    """

    #: A double CRLF from the peer: answer with a single CRLF.
    PING = "ping"
    #: A single CRLF answering our ping.
    PONG = "pong"


_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")


def _split_head(text: str, limits: Limits) -> tuple[str, Headers, bool]:
    """
    Split a header block (start line and header lines, no final blank line)
    into the start line and its fields, undoing header folding.

    The common case (CRLF line ends, no folding, no space before the colon)
    takes a quick loop; anything else takes L{_split_lines}, which reads
    every form the grammar allows and names the fault of those it does not.
    The quick loop tries each line in canonical form first (a known name,
    C{": "}, a value with no whitespace around it), which is the cheapest to
    split and lets the message be written back as the very bytes it came in.

    @return: the start line, the header fields, and whether the header lines
        are canonical: each one is exactly C{name ": " value} as
        L{sipstack.message.serializer.serialize} writes it.
    """
    lines = text.split("\r\n")
    start = lines[0]
    if len(lines) - 1 > limits.max_headers:
        raise _fault("Too many header fields", 400, _answerable(start), None)
    fields: list[tuple[str, str]] = []
    append = fields.append
    # The index of Headers: the first position of each key, and every
    # position of the keys seen more than once.
    first: dict[str, int] = {}
    setdefault = first.setdefault
    repeated: dict[str, list[int]] = {}
    known_get = _KNOWN_KEYS.get
    # A block that ends in a bare CR (a blank line of LF alone after CRLF
    # lines, or "\r\r\n" after the last header) loses that CR on the
    # careful path, which reads bare line ends.
    simple = canonical = "\n" not in start and not text.endswith("\r")
    del lines[0]
    for position, line in enumerate(lines):
        name, separator, value = line.partition(": ")
        key = known_get(name)
        # str.strip returns the string itself when there is nothing to strip.
        if key is None or not separator or "\n" in value or value.strip(" \t") is not value:
            name, colon, spaced = line.partition(":")
            key = known_get(name)
            if key is None:
                if not colon or _TOKEN.fullmatch(name) is None:
                    simple = False
                    break
                key = canonical_key(name)
            if not colon or "\n" in spaced:
                simple = False
                break
            value = spaced.strip(" \t")
            if canonical and (spaced[:1] != " " or len(spaced) != len(value) + 1):
                canonical = False
        append((name, value))
        earlier = setdefault(key, position)
        if earlier != position:
            positions = repeated.get(key)
            if positions is None:
                repeated[key] = [earlier, position]
            else:
                positions.append(position)
    if not simple or (len(text) > limits.max_line_bytes and max(map(len, lines)) > limits.max_line_bytes):
        start, fields = _split_lines(text, limits, _answerable(start))
        headers = Headers(fields)
        canonical = False
    else:
        headers = Headers.__new__(Headers)
        headers._fields = tuple(fields)
        headers._first = first
        headers._repeated = repeated
    if "\x00" in text and _raw_nul(text):
        raise _fault("NUL character in the header section", 400, _answerable(start), headers.fields)
    return start, headers, canonical


def _answerable(start: str) -> bool:
    """
    Whether a fault in the message that starts with C{start} can be
    answered: its start line looks like a request's, and not an ACK's
    (RFC 3261 section 17.2.1: an ACK is never answered).
    """
    return not start[:4].upper().startswith("SIP/") and not start.startswith("ACK ")


def _raw_nul(text: str) -> bool:
    """
    Whether C{text} has a NUL that is not a quoted-pair (RFC 3261 section
    25.1 lets a backslash escape any octet but CR and LF inside a quoted
    string: RFC 4475 section 3.1.1.2 has one).
    """
    position = text.find("\x00")
    while position >= 0:
        if position == 0 or text[position - 1] != "\\":
            return True
        position = text.find("\x00", position + 1)
    return False


def _split_lines(text: str, limits: Limits, answerable: bool) -> tuple[str, list[tuple[str, str]]]:
    """
    Split a header block line by line: bare LF line ends, folded lines and
    whitespace before the colon are read; anything else raises its fault.
    """
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if len(lines) - 1 > limits.max_headers:
        raise _fault("Too many header fields", 400, answerable, None)
    fields: list[tuple[str, str]] = []
    for line in lines[1:]:
        if len(line) > limits.max_line_bytes:
            raise _fault("Header line too long", 400, answerable, None)
        if line[:1] in (" ", "\t"):
            if not fields:
                raise _fault("Continuation line before the first header", 400, answerable, None)
            name, value = fields[-1]
            more = line.strip(" \t")
            fields[-1] = (name, f"{value} {more}" if value and more else value or more)
            continue
        colon = line.find(":")
        if colon <= 0:
            raise _fault(f"Malformed header line {line[:40]!r}", 400, answerable, tuple(fields))
        name = line[:colon].rstrip(" \t")
        if _TOKEN.fullmatch(name) is None:
            raise _fault(f"Malformed header name {name[:40]!r}", 400, answerable, tuple(fields))
        fields.append((name, line[colon + 1 :].strip(" \t")))
    if len(fields) > limits.max_headers:
        raise _fault("Too many header fields", 400, answerable, None)
    return lines[0], fields


def _fault(
    reason: str,
    status: int,
    answerable: bool,
    fields: tuple[tuple[str, str], ...] | None,
    *,
    action: FaultAction = FaultAction.RESPOND,
    error_class: type[RemoteProtocolError] = RemoteProtocolError,
) -> RemoteProtocolError:
    if not answerable:
        return error_class(reason, status, action=FaultAction.DROP)
    return error_class(reason, status, action=action, request_fields=fields)


def parse_datagram(
    data: bytes, limits: Limits = DEFAULT_LIMITS, *, uri_schemes: frozenset[str] = DEFAULT_URI_SCHEMES
) -> Message | None:
    """
    Parse one datagram into a message.

    @param limits: the size limits to enforce.
    @param uri_schemes: Request-URI schemes accepted; others get 416.
    @return: the message, or L{None} for a datagram that is only whitespace
        (a keep-alive, RFC 5626 section 3.5.1 style).
    @raise RemoteProtocolError: the datagram is not a valid message.
    """
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")
        if not data:
            return None
    head, crlf, body = data.partition(b"\r\n\r\n")
    if not crlf:
        end = data.find(b"\n\n")
        if end >= 0:
            head, body = data[:end], data[end + 2 :]
        else:
            # No blank line: tolerated when the datagram is all headers.
            head, body = data.rstrip(b"\r\n"), b""
    start, headers, canonical = _split_head(head.decode("utf-8", "surrogateescape"), limits)
    if len(data) > limits.max_message_bytes:
        raise _fault("Message too large", 513, _answerable(start), headers.fields, error_class=MessageTooLarge)
    # The datagram as serialize() would write the message, if it is canonical.
    wire = data if canonical and crlf else None
    position = headers._index().get("content-length")
    if position is not None:
        # RFC 3261 section 18.3: bytes after the body are discarded; a body
        # shorter than Content-Length is an error (400 for a request).
        length_text = headers._fields[position][1]
        length = int(length_text) if length_text.isdigit() and length_text.isascii() else -1
        if length != len(body):
            if length > len(body):
                raise _fault("Content-Length larger than the body received", 400, _answerable(start), headers.fields)
            if length >= 0:
                body = body[:length]
                wire = None
    return quick_message(start, headers, body, uri_schemes, wire) or careful_message(
        start, headers, body, _answerable(start), uri_schemes
    )


class StreamFramer:
    """
    Cut a byte stream into SIP messages (RFC 3261 section 18.3).

    Feed bytes with L{feed}; call L{next_event} until it returns L{None}.
    Events are messages and L{KeepAlive} values.  A fault whose action is
    C{CLOSE} breaks the framer for good (every later call raises it again); a
    C{RESPOND} fault concerns one well-framed message, and the framer goes on.

    The framer's output does not depend on how the stream was cut into
    chunks: where a short run of CRLFs could be either a keep-alive or the
    start of one, it waits for the next byte.

    @ivar pongs_expected: whether this stream is one we opened and ping, so a
        single CRLF is a pong; on streams we accepted a double CRLF is a ping
        and a single CRLF before a message is ignored (RFC 3261 section 7.5).
    """

    def __init__(
        self,
        limits: Limits = DEFAULT_LIMITS,
        *,
        pongs_expected: bool = False,
        uri_schemes: frozenset[str] = DEFAULT_URI_SCHEMES,
    ) -> None:
        self._limits = limits
        self._uri_schemes = uri_schemes
        self.pongs_expected = pongs_expected
        self._buffer = bytearray()
        self._scanned = 0
        self._head: tuple[str, Headers, bytes | None] | None = None
        self._body_length = 0
        self._broken: RemoteProtocolError | None = None

    @property
    def buffered(self) -> int:
        """How many bytes are waiting to be framed."""
        return len(self._buffer)

    @property
    def in_message(self) -> bool:
        """
        Whether part of a message has arrived and the rest has not: the state
        a partial-message (slow-loris) timeout watches.
        """
        return self._head is not None or bool(self._buffer.strip(b"\r\n"))

    def feed(self, data: bytes) -> None:
        """Add bytes received from the stream."""
        if self._broken is None:
            self._buffer += data

    def next_event(self) -> Message | KeepAlive | None:
        """
        The next complete message or keep-alive, or L{None} if more bytes are
        needed.

        @raise RemoteProtocolError: the next message is invalid (C{RESPOND}:
            answer it and go on) or the stream cannot be framed (C{CLOSE}).
        """
        if self._broken is not None:
            raise self._broken
        try:
            frame = self._next_frame()
        except RemoteProtocolError as error:
            error.action = FaultAction.CLOSE
            self._broken = error
            self._buffer.clear()
            raise
        if frame is None or isinstance(frame, KeepAlive):
            return frame
        # A well-framed message: its own faults (RESPOND or DROP) leave the
        # stream usable.
        start, headers, body, wire = frame
        return quick_message(start, headers, body, self._uri_schemes, wire) or careful_message(
            start, headers, body, _answerable(start), self._uri_schemes
        )

    def _next_frame(self) -> tuple[str, Headers, bytes, bytes | None] | KeepAlive | None:
        buffer = self._buffer
        if self._head is None:
            while buffer[:1] == b"\r":
                if self.pongs_expected:
                    if len(buffer) < 2:
                        return None
                    if buffer[1:2] == b"\n":
                        del buffer[:2]
                        return KeepAlive.PONG
                    break
                if buffer[:4] == b"\r\n\r\n":
                    del buffer[:4]
                    return KeepAlive.PING
                if len(buffer) < 4 and b"\r\n\r\n".startswith(bytes(buffer)):
                    return None
                if buffer[:2] == b"\r\n":
                    del buffer[:2]
                    continue
                break
            if not buffer:
                return None
            end = buffer.find(b"\r\n\r\n", max(0, self._scanned - 3))
            if end < 0:
                self._scanned = len(buffer)
                if len(buffer) > self._limits.max_header_bytes:
                    raise MessageTooLarge("Header section too large", action=FaultAction.CLOSE)
                return None
            self._scanned = 0
            if end > self._limits.max_header_bytes:
                raise MessageTooLarge("Header section too large", action=FaultAction.CLOSE)
            head_bytes = bytes(buffer[:end])
            start, headers, canonical = self._split(head_bytes)
            del buffer[: end + 4]
            fields = headers.fields
            answerable = _answerable(start)
            lengths = headers.get_all("content-length")
            if len(set(lengths)) > 1:
                # Two different lengths: no way to know where the next
                # message starts (RFC 4475 section 3.3.9).
                raise _fault("Conflicting Content-Length headers", 400, answerable, fields)
            length_text = lengths[0] if lengths else None
            if length_text is None:
                raise _fault("Missing Content-Length (required on streams)", 400, answerable, tuple(fields))
            if not (length_text.isdigit() and length_text.isascii()):
                raise _fault("Bad Content-Length header", 400, answerable, tuple(fields))
            length = int(length_text)
            if end + 4 + length > self._limits.max_message_bytes:
                raise _fault("Message too large", 513, answerable, tuple(fields), error_class=MessageTooLarge)
            # Kept to write a canonical message back as it came (see serialize).
            self._head = (start, headers, head_bytes if canonical else None)
            self._body_length = length
        if len(buffer) < self._body_length:
            return None
        start, headers, canonical_head = self._head
        body = bytes(buffer[: self._body_length])
        del buffer[: self._body_length]
        self._head = None
        wire = None if canonical_head is None else b"".join((canonical_head, b"\r\n\r\n", body))
        return start, headers, body, wire

    def _split(self, head: bytes) -> tuple[str, Headers, bool]:
        # A fault here leaves no Content-Length to find the next message by:
        # next_event turns it into CLOSE.
        return _split_head(head.decode("utf-8", "surrogateescape"), self._limits)
