# -*- test-case-name: tests.message.test_via,tests.message.test_address,tests.message.test_auth -*-
"""
Hypothesis strategies for the header values of L{sipstack.message.values},
L{sipstack.message.via}, L{sipstack.message.address} and
L{sipstack.message.auth}.

Every generated value is canonical: C{parse(str(value)) == value}.  Sizes are
bounded so that a failing example stays readable, and the awkward parts are
generated on purpose: every token character, quoted values with escapes and
non-ASCII text, IPv6 references and bare IPv6 values, flag parameters, empty
display names, unknown transports and schemes.  Re-exported by
L{sipstack.testing.strategies}.
"""

from __future__ import annotations

from hypothesis import strategies as st

from sipstack.message.address import NameAddress
from sipstack.message.auth import Challenge, Credentials
from sipstack.message.values import CSEQ_MAXIMUM, CSeq, Params, quote
from sipstack.message.via import Via
from sipstack.testing._uri_strategies import hosts, uris

__all__ = [
    "tokens",
    "params",
    "vias",
    "name_addresses",
    "display_names",
    "cseqs",
    "challenges",
    "credentials",
]

_TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
# Text a quoted string can carry: anything but CR and LF.  Control characters
# are left out as well, because whole messages built from these values must
# pass the message parser, which refuses them in header values.
_TEXT = st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=12)


def tokens(max_size: int = 10) -> st.SearchStrategy[str]:
    """Tokens (RFC 3261 section 25.1), drawn from every token character."""
    return st.text(_TOKEN_CHARS, min_size=1, max_size=max_size)


_param_values = st.one_of(
    st.none(),
    tokens(),
    _TEXT.map(quote),
    hosts(),
    st.ip_addresses(v=6).map(str),
)


def params() -> st.SearchStrategy[Params]:
    """
    Generic-param lists: flags, tokens, quoted strings (with escapes), hosts
    and bare IPv6 addresses (as in C{received}).
    """
    return st.lists(st.tuples(tokens(), _param_values), max_size=4).map(tuple)


_transports = st.one_of(
    st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS", "WSS"]),
    tokens(8).map(str.upper),
)
_protocols = st.one_of(
    st.just("SIP/2.0"),
    st.tuples(tokens(5), tokens(5)).map(lambda parts: f"{parts[0].upper()}/{parts[1]}"),
)


def vias() -> st.SearchStrategy[Via]:
    """Via values, with hostnames, IPv4 and IPv6 hosts, unknown transports and any parameters."""
    return st.builds(
        Via,
        transport=_transports,
        host=hosts(),
        port=st.none() | st.integers(0, 65535),
        params=params(),
        protocol=_protocols,
    )


def display_names() -> st.SearchStrategy[str | None]:
    """Absent, empty, token-word and arbitrary display names."""
    words = st.lists(tokens(), min_size=1, max_size=3).map(" ".join)
    return st.one_of(st.none(), st.just(""), words, _TEXT)


def name_addresses() -> st.SearchStrategy[NameAddress]:
    """Addresses with any URI, display name and header parameters."""
    return st.builds(NameAddress, uri=uris(), display_name=display_names(), params=params())


def cseqs() -> st.SearchStrategy[CSeq]:
    """CSeq values over the whole number range, with standard and extension methods."""
    methods = st.one_of(st.sampled_from(["INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS"]), tokens())
    return st.builds(CSeq, st.integers(0, CSEQ_MAXIMUM), methods)


_auth_params = st.lists(
    st.tuples(
        st.one_of(st.sampled_from(["realm", "nonce", "opaque", "qop", "algorithm", "username", "uri", "nc"]), tokens()),
        st.one_of(tokens(), _TEXT),
    ),
    min_size=1,
    max_size=5,
    unique_by=lambda param: param[0].lower(),
).map(tuple)
_schemes = st.one_of(
    st.sampled_from(["Digest", "Digest", "Bearer"]),
    tokens().filter(lambda scheme: scheme.lower() not in ("digest", "basic", "bearer")),
)
_token68s = st.from_regex(r"[A-Za-z0-9\-._~+/]{1,16}={0,2}", fullmatch=True)


_token68_schemes = _schemes.filter(lambda scheme: scheme != "Digest")


def challenges() -> st.SearchStrategy[Challenge]:
    """Challenges with parameters (values of any text) or, but for Digest, a token68."""
    return st.one_of(
        st.builds(Challenge, _schemes, _auth_params),
        st.builds(Challenge, _token68_schemes, st.just(()), _token68s),
    )


def credentials() -> st.SearchStrategy[Credentials]:
    """Credentials with parameters (values of any text) or, but for Digest, a token68."""
    return st.one_of(
        st.builds(Credentials, _schemes, _auth_params),
        st.builds(Credentials, _token68_schemes, st.just(()), _token68s),
    )
