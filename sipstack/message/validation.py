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
from sipstack.message.address import Wildcard
from sipstack.message.headers import Headers
from sipstack.message.message import CORE_HEADERS, CORE_REQUEST_HEADERS, Message, Request, Response
from sipstack.message.uri import parse_uri
from sipstack.message.values import CSeq

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


def build_message(
    start: str,
    headers: Headers,
    body: bytes,
    answerable: bool,
    uri_schemes: frozenset[str] = DEFAULT_URI_SCHEMES,
) -> Message:
    """
    Build and validate a message from its parts.

    @param answerable: whether a fault may be answered (a request, not an ACK).
    @raise RemoteProtocolError: the message is invalid; its action and status
        say what to do.
    """
    if start[:4].upper().startswith("SIP/"):
        return _build_response(start, headers, body)
    return _build_request(start, headers, body, answerable, uri_schemes)


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
