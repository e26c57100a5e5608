# -*- test-case-name: tests.message.test_uri -*-
"""
Hypothesis strategies for the URIs of L{sipstack.message.uri}.

Every generated value is valid and canonical (C{str(parse_uri(str(u)))} is
C{str(u)}), and built through the public constructors, so generating one also
exercises their grammar checks.  Sizes are bounded so that a failing example
stays readable; the awkward parts are generated on purpose: escapes in either
hex case, every character of the RFC 3261 section 25.1 character classes,
IPv4 addresses, IPv6 references in several spellings, flag and valued
parameters, the typed parameters with valid values, and header components.
Re-exported by L{sipstack.testing.strategies}.
"""

from __future__ import annotations

import string
from urllib.parse import unquote

from hypothesis import strategies as st

from sipstack.message.uri import SIPURI, URI, AbsoluteURI

__all__ = ["sip_uris", "absolute_uris", "uris", "hosts"]

_ALNUM = string.ascii_letters + string.digits
_MARK = "-_.!~*'()"
_USER_CHARS = _ALNUM + _MARK + "&=+$,;?/"
_PASSWORD_CHARS = _ALNUM + _MARK + "&=+$,"
_PARAM_CHARS = _ALNUM + _MARK + "[]/:&+$"
_HEADER_CHARS = _ALNUM + _MARK + "[]/?:+$"
# Visible ASCII but DQUOTE, "<", ">" and "%" (escapes are generated separately).
_SCHEME_CHARS = string.ascii_lowercase + string.digits + "+-."
_OPAQUE_CHARS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"<>%')
# The parameters whose values the parser checks, generated apart with valid values.
_TYPED = frozenset({"transport", "user", "method", "ttl", "maddr", "lr"})

_escapes = st.builds(
    lambda octet, upper: f"%{octet:02X}" if upper else f"%{octet:02x}", st.integers(0, 255), st.booleans()
)


def _escaped_text(chars: str, min_size: int, max_size: int) -> st.SearchStrategy[str]:
    """Text of C{chars} and escapes, mostly plain characters."""
    piece = st.one_of(st.sampled_from(chars), st.sampled_from(chars), st.sampled_from(chars), _escapes)
    return st.lists(piece, min_size=min_size, max_size=max_size).map("".join)


_LABEL_CHARS = string.ascii_letters + string.digits
_labels = st.builds(
    lambda first, middle, last: first + middle + last if middle or last else first,
    st.sampled_from(_LABEL_CHARS),
    st.text(_LABEL_CHARS + "-", max_size=6),
    st.text(_LABEL_CHARS, max_size=1),
).filter(lambda label: not label.endswith("-"))
_top_labels = st.builds(lambda first, rest: first + rest, st.sampled_from(string.ascii_letters), _labels | st.just(""))
_hostnames = st.builds(
    lambda labels, top, dot: ".".join([*labels, top]) + dot,
    st.lists(_labels, max_size=3),
    _top_labels,
    st.sampled_from(["", "", "", "."]),
)
_ipv6_references = st.builds(
    lambda address, form: f"[{form(address)}]",
    st.ip_addresses(v=6),
    st.sampled_from([str, lambda a: a.exploded, lambda a: a.exploded.upper()]),
)


def hosts() -> st.SearchStrategy[str]:
    """Hosts as a URI may spell them: hostnames, IPv4 addresses and IPv6 references."""
    return st.one_of(_hostnames, st.ip_addresses(v=4).map(str), _ipv6_references)


_other_params = st.tuples(
    _escaped_text(_PARAM_CHARS, 1, 8).filter(lambda name: unquote(name).lower() not in _TYPED),
    st.none() | _escaped_text(_PARAM_CHARS, 1, 10),
)
_typed_params = st.one_of(
    st.tuples(st.sampled_from(["transport", "Transport"]), st.sampled_from(["udp", "tcp", "TLS", "sctp", "ws"])),
    st.tuples(st.just("user"), st.sampled_from(["phone", "ip", "dialstring"])),
    st.tuples(st.just("method"), st.sampled_from(["INVITE", "REGISTER", "x-Custom"])),
    st.tuples(st.just("ttl"), st.integers(0, 255).map(str)),
    st.tuples(st.just("maddr"), hosts()),
    st.tuples(st.sampled_from(["lr", "LR"]), st.none()),
)
_parameters = st.lists(
    st.one_of(_other_params, _typed_params), max_size=4, unique_by=lambda p: unquote(p[0]).lower()
).map(tuple)
_headers = st.lists(st.tuples(_escaped_text(_HEADER_CHARS, 1, 8), _escaped_text(_HEADER_CHARS, 0, 10)), max_size=3).map(
    tuple
)


@st.composite
def sip_uris(draw: st.DrawFn, *, headers: bool = True) -> SIPURI:
    """
    C{sip:} and C{sips:} URIs, with or without userinfo, port, parameters and
    (unless C{headers} is false, as for a Request-URI) header components.
    """
    user = draw(st.none() | _escaped_text(_USER_CHARS, 1, 12))
    password = None if user is None else draw(st.none() | _escaped_text(_PASSWORD_CHARS, 0, 8))
    return SIPURI(
        scheme=draw(st.sampled_from(["sip", "sips"])),
        host=draw(hosts()),
        user=user,
        password=password,
        port=draw(st.none() | st.integers(0, 65535)),
        parameters=draw(_parameters),
        headers=draw(_headers) if headers else (),
    )


def absolute_uris() -> st.SearchStrategy[AbsoluteURI]:
    """URIs of other schemes (C{tel:}, C{urn:}, invented ones), with opaque text and escapes."""
    invented = st.builds(
        lambda first, rest: first + rest, st.sampled_from(string.ascii_lowercase), st.text(_SCHEME_CHARS, max_size=8)
    ).filter(lambda scheme: scheme not in ("sip", "sips"))
    schemes = st.sampled_from(["tel", "urn", "http", "mailto", "soap.beep", "im"]) | invented
    return st.builds(AbsoluteURI, schemes, _escaped_text(_OPAQUE_CHARS, 1, 20))


def uris() -> st.SearchStrategy[URI]:
    """Any URI: mostly SIP and SIPS, sometimes another scheme."""
    return st.one_of(sip_uris(), sip_uris(), absolute_uris())
