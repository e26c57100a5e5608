# -*- test-case-name: tests.message.test_message -*-
"""
SIP requests and responses as immutable values.

A message keeps its header fields as text (L{Headers}) and parses the typed
values a proxy or registrar needs (Via, From, To, CSeq, Contact...) on first
use, caching the result: the idea of reSIProcate's lazy parser.  A header the
application never reads is never parsed, and a header it does not know is
forwarded exactly as it came.

A typed accessor that meets a malformed value raises L{RemoteProtocolError}
with status 400 and a reason naming the header, so whichever layer reads it
can answer the peer with a precise error.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from sipstack.errors import InvalidValue, LocalProtocolError, RemoteProtocolError
from sipstack.message.address import (
    NameAddress,
    Wildcard,
    parse_contact_value,
    parse_name_address,
    parse_name_address_list,
)
from sipstack.message.headers import Headers
from sipstack.message.uri import URI
from sipstack.message.values import CSeq, parse_cseq, parse_uint, split_header_values
from sipstack.message.via import Via, parse_via

__all__ = ["Request", "Response", "Message", "build_response", "build_error_response", "REASON_PHRASES", "new_tag"]

_T = TypeVar("_T")

#: Marks a typed value not parsed yet (L{None} means "header absent").
_MISSING: Any = object()

#: Default reason phrases (RFC 3261 section 21 and later RFCs).
REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    423: "Interval Too Brief",
    428: "Use Identity Header",
    429: "Provide Referrer Identity",
    430: "Flow Failed",
    433: "Anonymity Disallowed",
    439: "First Hop Lacks Outbound Support",
    440: "Max-Breadth Exceeded",
    469: "Bad Info Package",
    470: "Consent Needed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    555: "Push Notification Service Not Supported",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",
    608: "Rejected",
}


def new_tag() -> str:
    """
    A fresh From/To tag: 64 random bits, as RFC 3261 section 19.3 asks for
    ("at least 32 bits of randomness").
    """
    return secrets.token_hex(8)


class _TypedHeaders:
    """
    The typed, cached header accessors shared by requests and responses.
    """

    __slots__ = ()
    headers: Headers
    _cache: dict[str, Any]

    def _typed(self, name: str, parse: Callable[[str], _T]) -> _T | None:
        """Parse the single header C{name} once; L{None} when it is absent."""
        cache = self._cache
        cached = cache.get(name, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[no-any-return]  # the cache holds what parse returned
        headers = self.headers
        key = name.lower()
        position = headers._index().get(key)
        if position is None:
            result = None
        elif key in headers._repeated:
            raise RemoteProtocolError(f"More than one {name} header")
        else:
            try:
                result = parse(headers._fields[position][1])
            except InvalidValue as error:
                raise RemoteProtocolError(f"Bad {name} header: {error}") from None
        cache[name] = result
        return result

    def _typed_list(self, name: str, parse: Callable[[str], list[_T]]) -> list[_T]:
        """Parse every field of list header C{name} once, in order."""
        cache = self._cache
        cached = cache.get(name, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[no-any-return]  # the cache holds what parse returned
        result: list[_T] = []
        try:
            for value in self.headers.get_all(name):
                result.extend(parse(value))
        except InvalidValue as error:
            raise RemoteProtocolError(f"Bad {name} header: {error}") from None
        cache[name] = result
        return result

    def _required(self, name: str, value: _T | None) -> _T:
        if value is None:
            raise RemoteProtocolError(f"Missing {name} header")
        return value

    @property
    def vias(self) -> list[Via]:
        """Every Via, top first (RFC 3261 section 20.42)."""
        return self._typed_list("Via", parse_via)

    @property
    def top_via(self) -> Via:
        """
        The topmost Via: the one that names the previous hop.

        Only this one is parsed when the others are not asked for: a proxy
        forwards the rest of a response's Vias as they are (RFC 3261 section
        16.7 step 3), so it need not read them.

        @raise RemoteProtocolError: there is no Via, or it is malformed.
        """
        cache = self._cache
        top: Via | None = cache.get("top Via")
        if top is not None:
            return top
        vias = cache.get("Via")
        if vias is not None:
            if not vias:
                raise RemoteProtocolError("Missing Via header")
            return vias[0]  # type: ignore[no-any-return]  # the cache holds what vias stored
        field = self.headers.get("via")
        if field is None:
            raise RemoteProtocolError("Missing Via header")
        try:
            if "," in field:
                elements = split_header_values(field)
                field = elements[0] if elements else ""
            top = parse_via(field)[0]
        except InvalidValue as error:
            raise RemoteProtocolError(f"Bad Via header: {error}") from None
        cache["top Via"] = top
        return top

    def _prefetch(self, names: tuple[tuple[str, str, Callable[[str], object]], ...]) -> None:
        """
        Parse the single-valued headers C{names} (key, name, parser) into the
        cache in one pass: what the parser's validation does for every
        message, so it is worth a loop without the accessors' overhead.

        @raise RemoteProtocolError: one of them is repeated or malformed.
        """
        headers = self.headers
        index = headers._index()
        repeated = headers._repeated
        fields = headers._fields
        cache = self._cache
        for key, name, parse in names:
            position = index.get(key)
            if position is None:
                cache[name] = None
            elif key in repeated:
                raise RemoteProtocolError(f"More than one {name} header")
            else:
                try:
                    cache[name] = parse(fields[position][1])
                except InvalidValue as error:
                    raise RemoteProtocolError(f"Bad {name} header: {error}") from None

    # The accessors of required headers read the cache first: the parser has
    # filled it in, and a proxy reads them for every message.

    @property
    def from_(self) -> NameAddress:
        """The From header (RFC 3261 section 20.20)."""
        value: NameAddress | None = self._cache.get("From")
        if value is None:
            return self._required("From", self._typed("From", parse_name_address))
        return value

    @property
    def to(self) -> NameAddress:
        """The To header (RFC 3261 section 20.39)."""
        value: NameAddress | None = self._cache.get("To")
        if value is None:
            return self._required("To", self._typed("To", parse_name_address))
        return value

    @property
    def call_id(self) -> str:
        """The Call-ID (RFC 3261 section 20.8), compared byte for byte."""
        value: str | None = self._cache.get("Call-ID")
        if value is None:
            return self._required("Call-ID", self._typed("Call-ID", _parse_call_id))
        return value

    @property
    def cseq(self) -> CSeq:
        """The CSeq (RFC 3261 section 20.16)."""
        value: CSeq | None = self._cache.get("CSeq")
        if value is None:
            return self._required("CSeq", self._typed("CSeq", parse_cseq))
        return value

    @property
    def max_forwards(self) -> int | None:
        """The Max-Forwards value (0-255), or L{None} when absent."""
        return self._typed("Max-Forwards", _parse_max_forwards)

    @property
    def content_length(self) -> int | None:
        """The Content-Length value, or L{None} when absent."""
        return self._typed("Content-Length", _parse_length)

    @property
    def expires(self) -> int | None:
        """The Expires header in seconds, or L{None} when absent."""
        return self._typed("Expires", _parse_expires)

    @property
    def contacts(self) -> list[NameAddress] | Wildcard:
        """
        Every Contact, in order, or the wildcard C{*} (RFC 3261 section 10.2.2).

        @raise RemoteProtocolError: a malformed Contact, or C{*} combined with
            other contacts.
        """
        cache = self._cache
        cached = cache.get("Contact", _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[no-any-return]  # the cache holds what was stored below
        result: list[NameAddress] | Wildcard = []
        fields = self.headers.get_all("Contact")
        try:
            for value in fields:
                parsed = parse_contact_value(value)
                if isinstance(parsed, Wildcard):
                    if len(fields) > 1:
                        raise InvalidValue("'*' must be the only Contact")
                    result = parsed
                else:
                    assert isinstance(result, list)
                    result.extend(parsed)
        except InvalidValue as error:
            raise RemoteProtocolError(f"Bad Contact header: {error}") from None
        cache["Contact"] = result
        return result

    @property
    def routes(self) -> list[NameAddress]:
        """Every Route, in order (RFC 3261 section 20.34)."""
        return self._typed_list("Route", parse_name_address_list)

    @property
    def record_routes(self) -> list[NameAddress]:
        """Every Record-Route, in order (RFC 3261 section 20.30)."""
        return self._typed_list("Record-Route", parse_name_address_list)


def _parse_call_id(text: str) -> str:
    # callid  =  word [ "@" word ]; we only insist it is one non-empty word
    # without whitespace, and compare it as an opaque string.
    if not text or " " in text or "\t" in text:
        raise InvalidValue("a Call-ID is one word with no spaces")
    return text


def _parse_max_forwards(text: str) -> int:
    return parse_uint(text, maximum=255, what="Max-Forwards")


def _parse_length(text: str) -> int:
    return parse_uint(text, maximum=2**32 - 1, what="Content-Length")


def _parse_expires(text: str) -> int:
    return parse_uint(text, maximum=2**32 - 1, what="Expires")


#: The single-valued headers the parser checks in every message: (lookup
#: key, name, parser).
CORE_HEADERS: tuple[tuple[str, str, Callable[[str], object]], ...] = (
    ("from", "From", parse_name_address),
    ("to", "To", parse_name_address),
    ("call-id", "Call-ID", _parse_call_id),
    ("cseq", "CSeq", parse_cseq),
    ("content-length", "Content-Length", _parse_length),
)

#: The same, plus Max-Forwards, for requests.
CORE_REQUEST_HEADERS = (*CORE_HEADERS, ("max-forwards", "Max-Forwards", _parse_max_forwards))


@dataclass(frozen=True, slots=True, kw_only=True)
class Request(_TypedHeaders):
    """
    A SIP request (RFC 3261 section 7.1).

    @ivar method: the method, case-sensitive (RFC 3261 section 7.1).
    @ivar uri: the Request-URI.
    @ivar headers: the header fields.
    @ivar body: the message body, as bytes.
    @ivar version: the SIP-Version as written (C{"SIP/2.0"}).
    @ivar notes: what the parser accepted though it was not quite right (for
        example a missing Max-Forwards); never compared.
    """

    method: str
    uri: URI
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = "SIP/2.0"
    notes: tuple[str, ...] = field(default=(), compare=False)
    _cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    _wire: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def replace(self, **changes: Any) -> Request:
        """A copy with some fields changed (typed values are parsed anew)."""
        return replace(self, **changes)

    def with_body(self, body: bytes, content_type: str | None = None) -> Request:
        """A copy with this body, and a Content-Length (and Content-Type) to match."""
        return self.replace(body=body, headers=_body_headers(self.headers, body, content_type))

    def with_top_via(self, via: Via) -> Request:
        """
        A copy whose top Via is C{via} (or that gains C{via} as its only Via).

        The transport layer stamps C{received}/C{rport} on every request it
        receives and the transport and sent-by on every one it sends, so this
        keeps the values already parsed instead of parsing them again.
        """
        headers = self.headers
        if "via" in headers:
            headers = headers.without_first_value("Via")
        copy = self.replace(headers=headers.with_added("Via", str(via), first=True))
        cache = copy._cache
        cache.update(self._cache)
        cache["top Via"] = via
        vias = cache.pop("Via", None)
        if vias:
            cache["Via"] = [via, *vias[1:]]
        return copy


@dataclass(frozen=True, slots=True, kw_only=True)
class Response(_TypedHeaders):
    """
    A SIP response (RFC 3261 section 7.2).

    @ivar status: the status code, 100-699.
    @ivar reason: the reason phrase (may be empty).
    @ivar headers: the header fields.
    @ivar body: the message body, as bytes.
    @ivar version: the SIP-Version as written (C{"SIP/2.0"}).
    @ivar notes: what the parser accepted though it was not quite right.
    """

    status: int
    reason: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = "SIP/2.0"
    notes: tuple[str, ...] = field(default=(), compare=False)
    _cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    _wire: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 699:
            raise LocalProtocolError(f"status {self.status} is not in 100-699")

    def replace(self, **changes: Any) -> Response:
        """A copy with some fields changed (typed values are parsed anew)."""
        return replace(self, **changes)

    def with_body(self, body: bytes, content_type: str | None = None) -> Response:
        """A copy with this body, and a Content-Length (and Content-Type) to match."""
        return self.replace(body=body, headers=_body_headers(self.headers, body, content_type))

    @property
    def provisional(self) -> bool:
        """Whether this is a 1xx response."""
        return self.status < 200


Message = Request | Response

# Building parsed messages --------------------------------------------------
#
# The parser builds one message per datagram and knows its fields are valid,
# so it skips the frozen __init__ (eight object.__setattr__ calls, about a
# microsecond) with the device of sipstack.message.uri._SIPURISlots: it fills
# in an instance of a plain class with the same slots, then makes it a Request
# or Response (CPython allows __class__ assignment between such classes; tests
# check that the layouts stay the same).  See validation.quick_message.


class _RequestSlots(_TypedHeaders):
    """The slot layout of L{Request} without its frozen C{__setattr__}."""

    __slots__ = ("_cache", "_wire", "body", "headers", "method", "notes", "uri", "version")
    method: str
    uri: URI
    headers: Headers
    body: bytes
    version: str
    notes: tuple[str, ...]
    _wire: bytes | None


class _ResponseSlots(_TypedHeaders):
    """The slot layout of L{Response} without its frozen C{__setattr__}."""

    __slots__ = ("_cache", "_wire", "body", "headers", "notes", "reason", "status", "version")
    status: int
    reason: str
    headers: Headers
    body: bytes
    version: str
    notes: tuple[str, ...]
    _wire: bytes | None


def _body_headers(headers: Headers, body: bytes, content_type: str | None) -> Headers:
    headers = headers.with_replaced("Content-Length", str(len(body)))
    if content_type is not None:
        headers = headers.with_replaced("Content-Type", content_type)
    return headers


# The headers RFC 3261 section 8.2.6.2 copies from a request into a response.
_COPIED = ("Via", "From", "To", "Call-ID", "CSeq")


def build_error_response(error: RemoteProtocolError) -> Response | None:
    """
    The response answering a request that failed to parse or validate, or
    L{None} when the error allows no response (a malformed response, an ACK,
    or a request with no Via to copy).
    """
    if error.request_fields is None:
        return None
    headers = Headers(error.request_fields)
    if "Via" not in headers:
        # A response without a Via is not SIP: nothing could match it.
        return None
    return _response_from_headers(headers, error.status, error.reason, to_tag=None)


def build_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """
    A response to C{request}, built per RFC 3261 section 8.2.6.

    Via, From, Call-ID and CSeq are copied exactly; To is copied and, for
    anything but 100 Trying, given a tag when it has none (C{to_tag}, or a
    fresh random one); 100 Trying copies Timestamp (section 8.2.6.1).  The
    extra C{headers} are appended, and a Content-Length always ends the
    header block, so the response can be sent on any transport as it is.
    """
    if request.method == "ACK":
        raise LocalProtocolError("an ACK is never answered (RFC 3261 section 17.2.1)")
    response = _response_from_headers(request.headers, status, reason, to_tag=to_tag, extra=headers)
    if body:
        response = response.with_body(body)
    # The copied headers are the request's, byte for byte: reuse what was
    # already parsed of them rather than parse them again.
    cache, parsed = response._cache, request._cache
    for name in ("top Via", "Via", "From", "Call-ID", "CSeq"):
        value = parsed.get(name)
        if value is not None:
            cache[name] = value
    return response


def _response_from_headers(
    request_headers: Headers,
    status: int,
    reason: str | None,
    *,
    to_tag: str | None,
    extra: Iterable[tuple[str, str]] = (),
) -> Response:
    fields: list[tuple[str, str]] = []
    for name, value in request_headers:
        key = name.lower()
        if key in ("via", "v", "from", "f", "call-id", "i", "cseq"):
            fields.append((name, value))
        elif key in ("to", "t"):
            fields.append((name, value if status == 100 else _tagged(value, to_tag)))
        elif status == 100 and key == "timestamp":
            fields.append((name, value))
    fields.extend(extra)
    fields.append(("Content-Length", "0"))
    if reason is None:
        reason = REASON_PHRASES.get(status, "")
    return Response(status=status, reason=reason, headers=Headers(fields))


def _tagged(to_value: str, to_tag: str | None) -> str:
    try:
        to = parse_name_address(to_value)
    except InvalidValue:
        # An error response to a request with a broken To: copy it unchanged.
        return to_value
    if to.tag is not None:
        return to_value
    return f"{to_value};tag={to_tag or new_tag()}"
