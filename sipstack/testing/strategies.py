# -*- test-case-name: tests.message.test_properties -*-
"""
Hypothesis strategies for SIP values and messages.

Public, as C{hyperlink.hypothesis} is, so applications built on sipstack can
generate messages in their own property tests.  Every strategy is
size-bounded: a failing example stays small enough to read.
"""

from __future__ import annotations

from hypothesis import strategies as st

from sipstack.message.headers import Headers
from sipstack.message.message import Request, Response
from sipstack.testing._header_strategies import cseqs, name_addresses, vias
from sipstack.testing._uri_strategies import absolute_uris, sip_uris, uris

__all__ = [
    "sip_uris",
    "absolute_uris",
    "uris",
    "vias",
    "name_addresses",
    "cseqs",
    "header_names",
    "requests",
    "responses",
    "messages",
    "TOKEN_ALPHABET",
]

TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"

_METHODS = st.sampled_from(["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "MESSAGE", "SUBSCRIBE"])
_tokens = st.text(TOKEN_ALPHABET, min_size=1, max_size=12)

# Values of unknown headers: any text without line breaks, NUL or leading or
# trailing whitespace (which the parser strips, as LWS).
_header_text = st.text(
    st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="\x00\r\n"), max_size=30
).map(lambda text: text.strip(" \t"))


def header_names(long: str, compact: str | None = None) -> st.SearchStrategy[str]:
    """The spellings a peer may use for one header: case variants and compact form."""
    spellings = [long, long.lower(), long.upper()]
    if compact is not None:
        spellings += [compact, compact.upper()]
    return st.sampled_from(spellings)


@st.composite
def _common_fields(draw: st.DrawFn, method: str) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []
    for via in draw(st.lists(vias(), min_size=1, max_size=3)):
        fields.append((draw(header_names("Via", "v")), str(via)))
    fields.append((draw(header_names("From", "f")), str(draw(name_addresses()).with_param("tag", draw(_tokens)))))
    fields.append((draw(header_names("To", "t")), str(draw(name_addresses()))))
    call_id = draw(_tokens) + draw(st.sampled_from(["", "@" + draw(_tokens)]))
    fields.append((draw(header_names("Call-ID", "i")), call_id))
    cseq = draw(cseqs())
    fields.append(("CSeq", f"{cseq.number} {method}"))
    for _ in range(draw(st.integers(0, 2))):
        name = "X-" + draw(_tokens)
        fields.append((name, draw(_header_text)))
    return fields


@st.composite
def requests(draw: st.DrawFn) -> Request:
    """Valid requests, with bodies and matching Content-Length."""
    method = draw(_METHODS)
    fields = draw(_common_fields(method))
    fields.append(("Max-Forwards", str(draw(st.integers(0, 255)))))
    for contact in draw(st.lists(name_addresses(), max_size=2)):
        fields.append((draw(header_names("Contact", "m")), str(contact)))
    body = draw(st.binary(max_size=40))
    fields.append((draw(header_names("Content-Length", "l")), str(len(body))))
    return Request(method=method, uri=draw(sip_uris()), headers=Headers(fields), body=body)


@st.composite
def responses(draw: st.DrawFn) -> Response:
    """Valid responses, with bodies and matching Content-Length."""
    fields = draw(_common_fields(draw(_METHODS)))
    body = draw(st.binary(max_size=40))
    fields.append((draw(header_names("Content-Length", "l")), str(len(body))))
    reason = draw(_header_text)
    return Response(status=draw(st.integers(100, 699)), reason=reason, headers=Headers(fields), body=body)


def messages() -> st.SearchStrategy[Request | Response]:
    """Valid requests and responses."""
    return st.one_of(requests(), responses())
