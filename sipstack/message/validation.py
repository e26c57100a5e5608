# -*- test-case-name: tests.message.test_validation -*-
"""
From a framed start line and header fields to a valid message.

This is where the parser decides, case by case, whether a message is rejected
or accepted with a note, following RFC 3261 and the robustness principle.  The
decisions, with their reasons, are listed in C{docs/message-layer.md}; in
short:

  - a request missing To, From, Call-ID, CSeq or Via, or with one of them
    malformed or repeated, gets 400 naming the header;
  - a request without any Via is dropped, as a response would match nothing;
    one with a malformed Via gets 400 back at its source (RFC 4475 section
    3.1.2.1);
  - a CSeq method that differs from the request method gets 400;
  - a version other than SIP/2.0 gets 505; a Request-URI scheme we do not
    serve gets 416; a malformed Request-URI, To, From or Contact gets 400;
  - a missing Max-Forwards is accepted with a note (RFC 2543 peers omit it;
    RFC 3261 section 16.6 step 3 lets a proxy add it);
  - a malformed response is dropped (RFC 3261 section 18.1.2), as is any
    faulty ACK, which is never answered.

The typed values parsed for these checks are cached in the message, so a
proxy reading them afterwards pays nothing more.
"""

from __future__ import annotations

import re

from sipstack.errors import (
    FaultAction,
    InvalidValue,
    RemoteProtocolError,
    UnsupportedURIScheme,
    VersionNotSupported,
)
from sipstack.message.address import NameAddress, Wildcard, parse_contact_value, parse_name_address
from sipstack.message.headers import Headers
from sipstack.message.message import (
    CORE_HEADERS,
    CORE_REQUEST_HEADERS,
    Message,
    Request,
    Response,
    _parse_length,
    _parse_max_forwards,
    _RequestSlots,
    _ResponseSlots,
)
from sipstack.message.uri import SIPURI, parse_uri
from sipstack.message.values import CSeq, parse_cseq, split_header_values
from sipstack.message.via import parse_via

__all__ = ["DEFAULT_URI_SCHEMES", "build_message"]

#: Request-URI schemes a SIP server accepts unless told otherwise.
DEFAULT_URI_SCHEMES = frozenset({"sip", "sips", "tel"})

# Request-Line  =  Method SP Request-URI SP SIP-Version CRLF
# SIP-Version   =  "SIP" "/" 1*DIGIT "." 1*DIGIT   (ABNF literals are case-insensitive)
_REQUEST_LINE = re.compile(r"([A-Za-z0-9\-.!%*_+`'~]+) ([^ \t]+) ([Ss][Ii][Pp]/[0-9]+\.[0-9]+)")
# Status-Line  =  SIP-Version SP Status-Code SP Reason-Phrase CRLF
# A missing SP and empty reason ("SIP/2.0 200") is tolerated.
_STATUS_LINE = re.compile(r"([Ss][Ii][Pp]/[0-9]+\.[0-9]+) ([1-6][0-9][0-9])(?: (.*))?", re.DOTALL)

_MISSING_MAX_FORWARDS = "no Max-Forwards (treated as 70)"
_MISSING_MAX_FORWARDS_NOTES = (_MISSING_MAX_FORWARDS,)
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# Methods known to be tokens, so the quick path need not match them.
_METHODS = frozenset(
    [
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "REGISTER",
        "PRACK",
        "SUBSCRIBE",
        "NOTIFY",
        "PUBLISH",
        "INFO",
        "REFER",
        "MESSAGE",
        "UPDATE",
    ]
)


def build_message(
    start: str,
    headers: Headers,
    body: bytes,
    answerable: bool,
    uri_schemes: frozenset[str] = DEFAULT_URI_SCHEMES,
    *,
    wire: bytes | None = None,
) -> Message:
    """
    Build and validate a message from its parts.

    A well-formed message in the usual form is built by a quick path
    (L{quick_message}) that reads only what validation
    needs, with the same parsers; anything it is not sure of, valid or not,
    takes the careful path, which decides and names every fault.

    @param answerable: whether a fault may be answered (a request, not an ACK).
    @param wire: the bytes of the whole message if its header lines are
        canonical (see L{sipstack.message.parser._split_head}); kept on the
        message for L{serialize<sipstack.message.serializer.serialize>} when
        the start line is canonical too.
    @raise RemoteProtocolError: the message is invalid; its action and status
        say what to do.
    """
    message = quick_message(start, headers, body, uri_schemes, wire)
    if message is not None:
        return message
    return careful_message(start, headers, body, answerable, uri_schemes)


def careful_message(
    start: str, headers: Headers, body: bytes, answerable: bool, uri_schemes: frozenset[str] = DEFAULT_URI_SCHEMES
) -> Message:
    """
    L{build_message} without the quick path: for a message it has given up on.

    @raise RemoteProtocolError: the message is invalid.
    """
    if start[:4].upper().startswith("SIP/"):
        return _build_response(start, headers, body)
    return _build_request(start, headers, body, answerable, uri_schemes)


# The quick paths ------------------------------------------------------------
#
# They check everything the careful paths check, in whatever order is
# cheapest, and give up (return None) at the first doubt, so that the careful
# path decides every fault and words every error as it always has.  What they
# build is what the careful path builds: the same parsers make the typed
# values, and the cache holds the same entries.  A test compares the two on
# generated and damaged messages.


def quick_message(
    start: str, headers: Headers, body: bytes, uri_schemes: frozenset[str], wire: bytes | None
) -> Message | None:
    """
    The message L{build_message} would build, or L{None} if the quick path
    is not sure of it (the message may be valid or not: only
    L{build_message} decides).

    @param wire: as for L{build_message}; kept if the start line is canonical.
    """
    is_response = start[:8] == "SIP/2.0 "
    if is_response:
        # The careful path's Status-Line pattern, for a version of exactly
        # SIP/2.0 and a reason phrase (without one, serialize() adds a space).
        code = start[8:11]
        if start[11:12] != " " or not ("100" <= code <= "699" and code.isdigit() and code.isascii()):
            return None
        method = uri_text = ""
    else:
        method, _, rest = start.partition(" ")
        uri_text, _, version = rest.partition(" ")
        # The careful path's Request-Line pattern, for a version of exactly
        # SIP/2.0 and a URI without whitespace (which parse_uri refuses).
        if version != "SIP/2.0" or (method not in _METHODS and _TOKEN.fullmatch(method) is None):
            return None
    index = headers._first or headers._index()
    fields = headers._fields
    repeated = headers._repeated
    if repeated and (
        "from" in repeated
        or "to" in repeated
        or "call-id" in repeated
        or "cseq" in repeated
        or "content-length" in repeated
        or "max-forwards" in repeated
    ):
        return None
    via_position = index.get("via")
    from_position = index.get("from")
    to_position = index.get("to")
    call_id_position = index.get("call-id")
    cseq_position = index.get("cseq")
    if (
        via_position is None
        or from_position is None
        or to_position is None
        or call_id_position is None
        or cseq_position is None
    ):
        return None
    call_id = fields[call_id_position][1]
    if not call_id or " " in call_id or "\t" in call_id:
        return None
    position = index.get("content-length")
    try:
        if position is None:
            length = None
        else:
            text = fields[position][1]
            length = int(text) if len(text) < 10 and text.isdigit() and text.isascii() else _parse_length(text)
        if not is_response:
            uri = parse_uri(uri_text)
            if uri.scheme not in uri_schemes:
                return None
        text = fields[via_position][1]
        if "," in text:
            elements = split_header_values(text)
            if not elements:
                return None
            text = elements[0]
        top = parse_via(text)[0]
        from_ = parse_name_address(fields[from_position][1])
        to = parse_name_address(fields[to_position][1])
        cseq = parse_cseq(fields[cseq_position][1])
        if is_response:
            response: _ResponseSlots = _ResponseSlots()
            response.status = int(code)
            response.reason = start[12:]
            response.headers = headers
            response.body = body
            response.version = "SIP/2.0"
            response.notes = ()
            response._cache = {
                "top Via": top,
                "From": from_,
                "To": to,
                "Call-ID": call_id,
                "CSeq": cseq,
                "Content-Length": length,
            }
            response._wire = wire
            response.__class__ = Response  # type: ignore[assignment]  # see _ResponseSlots
            return response  # type: ignore[return-value]  # now a Response
        if cseq.method != method:
            return None
        position = index.get("max-forwards")
        if position is None:
            max_forwards = None
            notes: tuple[str, ...] = _MISSING_MAX_FORWARDS_NOTES
        else:
            text = fields[position][1]
            if len(text) < 4 and text.isdigit() and text.isascii() and int(text) <= 255:
                max_forwards = int(text)
            else:
                max_forwards = _parse_max_forwards(text)
            notes = ()
        contacts: list[NameAddress] | Wildcard = []
        position = index.get("contact")
        if position is not None:
            positions = repeated.get("contact")
            if positions is None:
                contacts = parse_contact_value(fields[position][1])
                if isinstance(contacts, Wildcard) and method != "REGISTER":
                    return None
            else:
                for position in positions:
                    parsed = parse_contact_value(fields[position][1])
                    if isinstance(parsed, Wildcard):
                        return None
                    contacts.extend(parsed)  # type: ignore[union-attr]  # a list, as no field was '*'
    except InvalidValue:
        return None
    request: _RequestSlots = _RequestSlots()
    request.method = method
    request.uri = uri
    request.headers = headers
    request.body = body
    request.version = "SIP/2.0"
    request.notes = notes
    request._cache = {
        "top Via": top,
        "From": from_,
        "To": to,
        "Call-ID": call_id,
        "CSeq": cseq,
        "Content-Length": length,
        "Max-Forwards": max_forwards,
        "Contact": contacts,
    }
    # str(uri) is uri_text but for the scheme, which parse_uri lower-cases,
    # and the port, which loses leading zeros.
    if wire is not None and (
        not uri_text.startswith(uri.scheme) or (isinstance(uri, SIPURI) and uri.port is not None and ":0" in uri_text)
    ):
        wire = None
    request._wire = wire
    request.__class__ = Request  # type: ignore[assignment]  # see _RequestSlots
    return request  # type: ignore[return-value]  # now a Request


# The careful paths ----------------------------------------------------------


def _reject(error: RemoteProtocolError, headers: Headers, answerable: bool) -> RemoteProtocolError:
    if not answerable:
        return type(error)(error.reason, error.status, action=FaultAction.DROP)
    return type(error)(error.reason, error.status, action=FaultAction.RESPOND, request_fields=headers.fields)


def _build_request(start: str, headers: Headers, body: bytes, answerable: bool, uri_schemes: frozenset[str]) -> Request:
    match = _REQUEST_LINE.fullmatch(start)
    if match is None:
        raise _reject(RemoteProtocolError("Malformed Request-Line"), headers, answerable)
    method, uri_text, version = match.groups()
    if version.upper() != "SIP/2.0":
        raise _reject(VersionNotSupported(f"SIP version {version} not supported"), headers, answerable)
    try:
        uri = parse_uri(uri_text)
    except InvalidValue as error:
        raise _reject(RemoteProtocolError(f"Bad Request-URI: {error}"), headers, answerable) from None
    notes = () if "Max-Forwards" in headers else (_MISSING_MAX_FORWARDS,)
    request = Request(method=method, uri=uri, headers=headers, body=body, version=version, notes=notes)
    try:
        # Without any Via a response would match nothing at the client.  A
        # malformed Via is still answered (RFC 4475 section 3.1.2.1): the
        # response copies the Vias as written and goes back to the source.
        if "Via" not in headers:
            raise RemoteProtocolError("Missing Via header", action=FaultAction.DROP)
        request.top_via  # noqa: B018  (parsed and cached for the reader)
        request._prefetch(CORE_REQUEST_HEADERS)
        cseq = _check_required(request)
        if cseq.method != method:
            raise RemoteProtocolError(f"CSeq method {cseq.method} does not match the request method")
        if uri.scheme not in uri_schemes:
            raise UnsupportedURIScheme(f"URI scheme {uri.scheme} not supported")
        contacts = request.contacts
        if isinstance(contacts, Wildcard) and method != "REGISTER":
            raise RemoteProtocolError("Contact '*' is allowed only in REGISTER")
    except RemoteProtocolError as error:
        if error.action is FaultAction.DROP:
            raise RemoteProtocolError(error.reason, error.status, action=FaultAction.DROP) from None
        raise _reject(error, headers, answerable) from None
    return request


def _check_required(message: Message) -> CSeq:
    """Check that the headers every message needs are there (already parsed)."""
    cache = message._cache
    for name in ("From", "To", "Call-ID"):
        if cache[name] is None:
            raise RemoteProtocolError(f"Missing {name} header")
    cseq: CSeq | None = cache["CSeq"]
    if cseq is None:
        raise RemoteProtocolError("Missing CSeq header")
    return cseq


def _build_response(start: str, headers: Headers, body: bytes) -> Response:
    match = _STATUS_LINE.fullmatch(start)
    if match is None:
        raise RemoteProtocolError("Malformed Status-Line", action=FaultAction.DROP)
    version, status, reason = match.groups()
    if version.upper() != "SIP/2.0":
        raise VersionNotSupported(f"SIP version {version} not supported", action=FaultAction.DROP)
    response = Response(status=int(status), reason=reason or "", headers=headers, body=body, version=version)
    try:
        response.top_via  # noqa: B018
        response._prefetch(CORE_HEADERS)
        _check_required(response)
    except RemoteProtocolError as error:
        raise RemoteProtocolError(error.reason, error.status, action=FaultAction.DROP) from None
    return response
