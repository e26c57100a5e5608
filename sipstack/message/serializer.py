# -*- test-case-name: tests.message.test_serializer -*-
"""
From messages to bytes.

Header fields are written as they are held (name and raw value), so a parsed
message in canonical form serializes to exactly the bytes it came from, and a
proxy forwards headers it does not understand unchanged.
"""

from __future__ import annotations

from sipstack.errors import LocalProtocolError
from sipstack.message.headers import compact_name
from sipstack.message.message import Message, Request

__all__ = ["serialize"]


def serialize(message: Message, *, compact: bool = False) -> bytes:
    """
    The wire form of C{message}.

    @param compact: write header names in their compact form where one exists
        (RFC 3261 section 7.3.3), to keep UDP messages small.
    @raise LocalProtocolError: the message's Content-Length does not match its
        body: sending it would desynchronise a stream.
    """
    if not compact:
        # A message parsed from canonical bytes and not changed since (every
        # change makes a new message without them) is written as it came:
        # what the lines below would produce, without the work.
        wire = message._wire
        if wire is not None:
            return wire
    if isinstance(message, Request):
        start = f"{message.method} {message.uri} {message.version}"
    else:
        start = f"{message.version} {message.status} {message.reason}"
    headers = message.headers
    length = headers.get("Content-Length")
    if length is not None and (not length.isdigit() or int(length) != len(message.body)):
        raise LocalProtocolError(f"Content-Length {length!r} does not match a body of {len(message.body)} bytes")
    if compact:
        lines = [start, *(f"{compact_name(name)}: {value}" for name, value in headers), "\r\n"]
    else:
        lines = [start, *map(": ".join, headers.fields), "\r\n"]
    return "\r\n".join(lines).encode("utf-8", "surrogateescape") + message.body
