"""
SIP messages: values, parsing, framing and serialization (the sans-IO core).

Everything here is pure Python with no I/O: bytes in, messages out, and back.
"""

from sipstack.message.address import WILDCARD, NameAddress, Wildcard
from sipstack.message.headers import Headers
from sipstack.message.message import (
    REASON_PHRASES,
    Message,
    Request,
    Response,
    build_error_response,
    build_response,
    new_tag,
)
from sipstack.message.parser import KeepAlive, StreamFramer, parse_datagram
from sipstack.message.serializer import serialize
from sipstack.message.uri import SIPURI, URI, AbsoluteURI, parse_uri
from sipstack.message.values import CSeq
from sipstack.message.via import Via

__all__ = [
    "Message",
    "Request",
    "Response",
    "Headers",
    "URI",
    "SIPURI",
    "AbsoluteURI",
    "parse_uri",
    "Via",
    "NameAddress",
    "Wildcard",
    "WILDCARD",
    "CSeq",
    "parse_datagram",
    "StreamFramer",
    "KeepAlive",
    "serialize",
    "build_response",
    "build_error_response",
    "new_tag",
    "REASON_PHRASES",
]
