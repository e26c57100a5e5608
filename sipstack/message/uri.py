# -*- test-case-name: tests.message.test_uri -*-
"""
SIP and SIPS URIs, and every other URI kept as an opaque absolute URI.

Every Request-URI, To, From and Contact goes through L{parse_uri}, so parsing
is a few compiled regular expressions and no per-character Python loop: the
URIs most messages carry match one pattern and need almost no further work,
and anything that pattern does not match takes a careful path, which accepts
exactly the same language and names the fault in what it rejects.  The
values are immutable and keep the text as written (escapes, parameter case),
so C{str(parse_uri(s)) == s} for canonical input and a proxy forwards what it
received; the RFC's comparison rules live in L{SIPURI.equivalent}, not in
C{==}, which is plain structural equality.

Decisions on odd input, each one deliberate:
  - The scheme is case-insensitive (C{SIP:} is accepted) and lower-cased.
  - A host made only of digits and dots must be a dotted-quad IPv4 address
    with octets of at most 255: C{999.1.1.1} or C{1.2.3} is not an IPv4
    address, and RFC 3261 section 25.1 forbids a numeric top label, so it is
    rejected rather than taken for a hostname.
  - An IPv6 reference must hold an address the C{ipaddress} module accepts;
    zone identifiers (C{%25eth0}) are not part of the SIP grammar.
  - Ports are 0 to 65535; C{sip:host:} (empty port) is rejected.
  - Every C{%} must start a two-digit hexadecimal escape.
  - A parameter name may appear only once (RFC 3261 section 19.1.1), compared
    case-insensitively after unescaping; C{ttl} must be 0 to 255 and C{maddr}
    a valid host, since routing uses them; a parameter value may not be empty.
  - The user part admits the whole C{user} production, including C{;} and
    C{?} of telephone-subscribers (RFC 4475 section 3.1.1.9), and, as a
    leniency for phones that dial C{#31#}, an unescaped C{#}.
  - C{@} may appear only once, unescaped, since no part after the host
    admits it; so the userinfo ends at the first C{@}.
  - No whitespace, controls or angle brackets: C{<sip:a@b>} and
    C{" sip:a@b"} are not URIs (RFC 4475 sections 3.1.2.7 and 3.1.2.14).

@see: RFC 3261 sections 19.1 and 25.1, RFC 4475 section 3.1, RFC 5118, RFC 5954.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass
from typing import TypeAlias, TypedDict, Unpack
from urllib.parse import quote, unquote

from sipstack.errors import InvalidValue
from sipstack.message._grammar import HOST, IPV4_ADDRESS

__all__ = ["SIPURI", "AbsoluteURI", "URI", "parse_uri", "parse_sip_uri"]

# unreserved  =  alphanum / mark
# mark        =  "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")"
_UNRESERVED = r"A-Za-z0-9\-_.!~*'()"
# user             =  1*( unreserved / escaped / user-unreserved )
# user-unreserved  =  "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
# password         =  *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
# ("%" is admitted here and its escapes checked once over the whole text; "#" is a leniency.)
_USERINFO = re.compile(rf"([{_UNRESERVED}&=+$,;?/%#]+)(?::([{_UNRESERVED}&=+$,%]*))?")
# other-param      =  pname [ "=" pvalue ];  pname = 1*paramchar;  pvalue = 1*paramchar
# paramchar        =  param-unreserved / unreserved / escaped
# param-unreserved =  "[" / "]" / "/" / ":" / "&" / "+" / "$"
_PARAMCHARS = rf"[{_UNRESERVED}\[\]/:&+$%]+"
_PARAMS = re.compile(rf"(?:;{_PARAMCHARS}(?:={_PARAMCHARS})?)*")
# header  =  hname "=" hvalue;  hname = 1*( hnv-unreserved / unreserved / escaped );  hvalue = *( ... )
# hnv-unreserved  =  "[" / "]" / "/" / "?" / ":" / "+" / "$"
_HNV = rf"[{_UNRESERVED}\[\]/?:+$%]"
_HEADER = rf"{_HNV}+={_HNV}*"
# hostport [ uri-parameters ] [ headers ], everything after the "@"
_SIP_TAIL = re.compile(rf"({HOST})(?::([0-9]+))?({_PARAMS.pattern})(?:\?({_HEADER}(?:&{_HEADER})*))?")
# absoluteURI: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then any visible ASCII but DQUOTE, "<", ">"
_ABSOLUTE = re.compile(r"([A-Za-z][A-Za-z0-9+\-.]*):([!#-;=?-~]+)")
_HOST = re.compile(HOST)
_DIAGNOSE = re.compile(rf"({HOST})?(?::[0-9]+)?{_PARAMS.pattern}")
_IPV4 = re.compile(IPV4_ADDRESS)
_NUMERIC = re.compile(r"[0-9.]+")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
# The fast path of parse_uri: one pattern for the URIs nearly every message carries.  It matches a subset of what
# the careful path (_parse_sip) accepts, splitting it the same way, and leaves nothing for Python to check but the
# typed parameters and duplicate names: it admits no "%" (so there is no escape to check), only lower-case schemes,
# ports up to 65535, and hosts already proven valid, which are an IPv6 reference in one of the pure-hexadecimal
# forms of RFC 3986 (which the ipaddress module accepts exactly; an embedded IPv4 address takes the careful path),
# a dotted quad with octets up to 255, or a hostname that is not all digits and dots.  Possessive quantifiers
# ("++", "*+", "?+") never give back what they consumed, which is safe because each piece ends at a character it
# cannot contain and each optional part starts with one no later part can start with; it spares the match from
# backtracking, and the regex engine from saving state to backtrack to.  Whatever the pattern rejects takes the
# careful path, which names the fault, so the fast path changes no result and no error message.
_H16 = "[0-9A-Fa-f]{1,4}+"
_IPV6_HEX = (
    rf"{_H16}(?::{_H16}){{7}}"  # eight groups, no "::"
    rf"|::(?:{_H16}(?::{_H16}){{0,6}})?"  # "::" first: at most seven groups follow
    rf"|{_H16}(?::{_H16}){{0,6}}::"  # "::" last
    rf"|(?=(?:[0-9A-Fa-f]*:){{2,7}}[0-9A-Fa-f]*\])"  # "::" inside: at most seven colons, so seven groups
    rf"{_H16}(?::{_H16}){{0,5}}::{_H16}(?::{_H16}){{0,5}}"
)
# 0 to 255, leading zeros allowed: the language of "[01]?[0-9]{1,2}|2[0-4][0-9]|25[0-5]", without backtracking.
_OCTET = r"(?:[01][0-9]{0,2}+|2(?:[0-4][0-9]?+|5[0-5]?+|[6-9])?+|[3-9][0-9]?+)"
_IPV4_OCTETS = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")
# HOSTNAME with its labels flattened (alphanumeric runs joined by one "." or by hyphens, then an optional final
# "."), refusing a host of digits and dots only: that must be a dotted quad, tried before.
_FAST_HOSTNAME = r"(?![0-9.]++(?![A-Za-z_\-]))[A-Za-z0-9_]++(?:(?:\.|-++)[A-Za-z0-9_]++)*+\.?"
_FAST_PARAMCHARS = rf"[{_UNRESERVED}\[\]/:&+$]++"
_FAST_HEADER = rf"[{_UNRESERVED}\[\]/?:+$]++=[{_UNRESERVED}\[\]/?:+$]*+"
# (The source is shared with sipstack.message.address, which embeds it in its pattern for a name-addr.)
FAST_SIP_SOURCE = (
    r"sip(?P<secure>s?):"
    rf"(?:(?P<user>[{_UNRESERVED}&=+$,;?/#]++)(?::(?P<password>[{_UNRESERVED}&=+$,]*+))?+@)?+"
    rf"(?P<host>\[(?:{_IPV6_HEX})\]|{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}(?![A-Za-z0-9_.\-])|{_FAST_HOSTNAME})"
    r"(?::(?P<port>[0-9]{1,4}+(?![0-9])|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?+"
    # The first two parameters apart, the others together.
    rf"(?:;(?P<name1>{_FAST_PARAMCHARS})(?:=(?P<value1>{_FAST_PARAMCHARS}))?+"
    rf"(?:;(?P<name2>{_FAST_PARAMCHARS})(?:=(?P<value2>{_FAST_PARAMCHARS}))?+"
    rf"(?P<more>(?:;{_FAST_PARAMCHARS}(?:={_FAST_PARAMCHARS})?+)++)?+)?+)?+"
    rf"(?:\?(?P<headers>{_FAST_HEADER}(?:&{_FAST_HEADER})*+))?+"
)
_FAST_SIP = re.compile(FAST_SIP_SOURCE)
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# RFC 2396 unreserved characters (for SIP) and RFC 3986 ones (for other schemes): an escape of one of these is
# equivalent to the character itself; an escape of anything else, reserved characters included, is not.
_SIP_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()")
_GENERIC_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
# The parameters that never match when present in only one URI (RFC 3261 section 19.1.4).
_STRICT_PARAMS = frozenset({"transport", "user", "ttl", "method", "maddr"})
# The parameters whose values _parse_params checks.
_TYPED_PARAMS = frozenset({"ttl", "maddr"})


class _SIPURIFields(TypedDict, total=False):
    scheme: str
    host: str
    user: str | None
    password: str | None
    port: int | None
    parameters: tuple[tuple[str, str | None], ...]
    headers: tuple[tuple[str, str], ...]


def _show(text: str) -> str:
    """Quote C{text} for an error message, safely (no CR/LF) and briefly."""
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _canon(text: str, plain: frozenset[str] = _SIP_PLAIN) -> str:
    """Unescape what needs no escape and upper-case other escapes, for comparison (RFC 3261 section 19.1.4)."""
    if "%" not in text:
        return text

    def one(m: re.Match[str]) -> str:
        char = chr(int(m.group(1), 16))
        return char if char in plain else "%" + m.group(1).upper()

    return _ESCAPE.sub(one, text)


def _key(name: str) -> str:
    """The comparison key of a parameter or header name: unescaped, case-insensitive."""
    return (_canon(name) if "%" in name else name).lower()


def _check_host(host: str) -> None:
    """Check what the host regex cannot: IPv6 references, and numeric hosts as dotted quads (see above)."""
    if host[0] == "[":
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise InvalidValue(f"SIP URI has an invalid IPv6 reference {_show(host)}") from None
    elif host[-1] in "0123456789." and _NUMERIC.fullmatch(host) and not _IPV4_OCTETS.fullmatch(host):
        raise InvalidValue(f"SIP URI has an invalid IPv4 address {_show(host)}")


def _host_key(host: str) -> str:
    """The comparison form of a host: lower case, IP addresses in one textual form (RFC 5954 section 4)."""
    if host[0] == "[":
        return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
    host = host.lower()
    if _IPV4.fullmatch(host):
        return ".".join(str(int(octet)) for octet in host.split("."))
    return host


@dataclass(frozen=True, slots=True)
class SIPURI:
    """
    A C{sip:} or C{sips:} URI (RFC 3261 section 19.1), as written.

    Two values are C{==} when they are written the same way (up to scheme case
    and port digits); use L{equivalent} for the RFC 3261 section 19.1.4 rules.
    The constructor checks its fields against the grammar by serializing and
    parsing them again, so a built URI can always be written on the wire.

    @ivar scheme: C{"sip"} or C{"sips"}.
    @ivar host: a hostname, IPv4 address or bracketed IPv6 reference, as written.
    @ivar user: the user part with its escapes kept, or L{None} without userinfo.
    @ivar password: the password with its escapes kept, or L{None}.
    @ivar port: the port, or L{None} when absent (which is not the same as 5060).
    @ivar parameters: the URI parameters in order, names and values as written;
        a value of L{None} is a flag parameter such as C{lr}.
    @ivar headers: the header components (C{?name=value&...}) in order, as written.
    @raise InvalidValue: if a field does not fit the grammar.
    """

    scheme: str
    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    parameters: tuple[tuple[str, str | None], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.scheme not in ("sip", "sips"):
            raise InvalidValue(f"SIPURI scheme must be 'sip' or 'sips', not {self.scheme!r}")
        _check_roundtrip(self, parse_sip_uri(str(self)))

    def __str__(self) -> str:
        userinfo = "" if self.user is None else f"{self.user}{'' if self.password is None else ':' + self.password}@"
        port = "" if self.port is None else f":{self.port}"
        params = "".join(f";{name}" if value is None else f";{name}={value}" for name, value in self.parameters)
        headers = "?" + "&".join(f"{name}={value}" for name, value in self.headers) if self.headers else ""
        return f"{self.scheme}:{userinfo}{self.host}{port}{params}{headers}"

    def replace(self, **changes: Unpack[_SIPURIFields]) -> SIPURI:
        """
        Return a copy with the given fields changed (as C{hyperlink.URL.replace}).

        @raise InvalidValue: if the result does not fit the grammar.
        """
        return dataclasses.replace(self, **changes)

    def param(self, name: str) -> str | None:
        """
        The value of parameter C{name}, as written, or L{None} if it is absent
        or a flag.  Names match case-insensitively and after unescaping, so
        C{%6C%72} is C{lr} (RFC 4475 section 3.1.1.3).
        """
        key = name.lower()
        for pname, value in self.parameters:
            if _key(pname) == key:
                return value
        return None

    def has_param(self, name: str) -> bool:
        """Whether parameter C{name} is present, with or without a value."""
        key = name.lower()
        return any(_key(pname) == key for pname, _ in self.parameters)

    def with_param(self, name: str, value: str | None = None) -> SIPURI:
        """
        Return a copy with parameter C{name} set to C{value} (L{None} for a
        flag), in place of an existing one or else appended.

        @raise InvalidValue: if the name or value does not fit the grammar.
        """
        key, new = name.lower(), (name, value)
        if not self.has_param(name):
            return self.replace(parameters=(*self.parameters, new))
        return self.replace(parameters=tuple(new if _key(p[0]) == key else p for p in self.parameters))

    def without_param(self, name: str) -> SIPURI:
        """Return a copy without parameter C{name} (matched as in L{param})."""
        key = name.lower()
        return self.replace(parameters=tuple(p for p in self.parameters if _key(p[0]) != key))

    @property
    def transport(self) -> str | None:
        """The C{transport} parameter, lower-cased (RFC 3261 section 19.1.1), or L{None}."""
        value = self.param("transport")
        return None if value is None else value.lower()

    @property
    def maddr(self) -> str | None:
        """The C{maddr} parameter: the host to send to instead of C{host} (RFC 3261 section 19.1.1)."""
        return self.param("maddr")

    @property
    def ttl(self) -> int | None:
        """The C{ttl} parameter for multicast (0 to 255, checked on parsing), or L{None}."""
        value = self.param("ttl")
        return None if value is None else int(value)

    @property
    def user_param(self) -> str | None:
        """The C{user} parameter, lower-cased (C{"phone"} marks a telephone-subscriber), or L{None}."""
        value = self.param("user")
        return None if value is None else value.lower()

    @property
    def method(self) -> str | None:
        """The C{method} parameter, as written (methods are case-sensitive), or L{None}."""
        return self.param("method")

    @property
    def lr(self) -> bool:
        """Whether the C{lr} parameter marks a loose router (RFC 3261 section 19.1.1)."""
        return self.has_param("lr")

    @property
    def secure(self) -> bool:
        """Whether this is a C{sips:} URI, which requires TLS on every hop (RFC 3261 section 26.2.2)."""
        return self.scheme == "sips"

    @property
    def user_unescaped(self) -> str | None:
        """The user part with escapes decoded (UTF-8, surrogateescape for other bytes)."""
        return None if self.user is None else unquote(self.user, errors="surrogateescape")

    @property
    def password_unescaped(self) -> str | None:
        """The password with escapes decoded (UTF-8, surrogateescape for other bytes)."""
        return None if self.password is None else unquote(self.password, errors="surrogateescape")

    @property
    def host_port(self) -> str:
        """C{host} or C{host:port}, as in a Via sent-by or a Host header."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def equivalent(self, other: URI) -> bool:
        """
        Compare with the rules of RFC 3261 section 19.1.4 (and RFC 5954 section
        4 for IP addresses).

        The scheme, user, password, host and port must match, the userinfo
        case-sensitively and the rest case-insensitively, after unescaping the
        escapes that need not be escaped (C{%61lice} is C{alice}, but C{%3B} is
        not C{;}); an absent port or user never matches a present one.  A
        C{transport}, C{user}, C{ttl}, C{method} or C{maddr} parameter present
        in one URI must be present and equal in the other; other parameters
        are compared only when present in both.  Headers must match as a set
        (names case-insensitive, values case-sensitive, RFC 3261 section 20
        leaving header-specific rules to each header).  The relation is not
        transitive, as the RFC notes.
        """
        if not isinstance(other, SIPURI) or self._fixed_key() != other._fixed_key():
            return False
        ours, others = self._param_key(), other._param_key()
        for key in ours.keys() | others.keys():
            if key in ours and key in others:
                if ours[key] != others[key]:
                    return False
            elif key in _STRICT_PARAMS:
                return False
        return True

    def _fixed_key(self) -> tuple[object, ...]:
        """What must match exactly for L{equivalent}: all but the parameters."""
        user = None if self.user is None else _canon(self.user)
        password = None if self.password is None else _canon(self.password)
        headers = sorted((_key(name), _canon(value)) for name, value in self.headers)
        return (self.scheme, user, password, _host_key(self.host), self.port, headers)

    def _param_key(self) -> dict[str, str | None]:
        return {_key(name): None if value is None else _canon(value).lower() for name, value in self.parameters}

    def address_of_record(self) -> SIPURI:
        """
        The canonical form a registrar keys bindings by (RFC 3261 section 10.3
        step 5): scheme, the user unescaped and then escaped only where the
        grammar requires (with upper-case hex), the host lower-cased (IPv6 in
        compressed form) and the port if present; no password, parameters or
        headers.
        """
        user = self.user_unescaped
        if user is not None:
            user = quote(user, safe="!*'()&=+$,;?/", errors="surrogateescape")
        return SIPURI(self.scheme, _host_key(self.host), user, None, self.port)


@dataclass(frozen=True, slots=True)
class AbsoluteURI:
    """
    A URI of any scheme but C{sip} and C{sips} (C{tel:}, C{urn:}, C{http:}, ...),
    kept opaque: RFC 3261 section 25.1 admits any C{absoluteURI} in the
    Request-URI and name-addr, and a proxy must carry it unchanged
    (RFC 4475 section 3.3.2).

    @ivar scheme: the scheme, lower-cased.
    @ivar opaque: everything after the first C{:}, as written.
    @raise InvalidValue: if a field does not fit the grammar.
    """

    scheme: str
    opaque: str

    def __post_init__(self) -> None:
        if self.scheme in ("sip", "sips"):
            raise InvalidValue(f"{self.scheme}: URIs are SIPURI values, not AbsoluteURI")
        _check_roundtrip(self, parse_uri(str(self)))

    def __str__(self) -> str:
        return f"{self.scheme}:{self.opaque}"

    def equivalent(self, other: URI) -> bool:
        """
        Compare with the generic rules of RFC 3986 section 6.2.2: the schemes
        match and the rest matches after normalizing percent-escapes.
        Scheme-specific rules (RFC 3966 for C{tel:}) are not applied.
        """
        return (
            isinstance(other, AbsoluteURI)
            and self.scheme == other.scheme
            and _canon(self.opaque, _GENERIC_PLAIN) == _canon(other.opaque, _GENERIC_PLAIN)
        )


#: Any URI a SIP message can carry (RFC 3261 section 25.1: C{SIP-URI / SIPS-URI / absoluteURI}).
URI: TypeAlias = SIPURI | AbsoluteURI


class _SIPURISlots:
    """
    The slot layout of L{SIPURI} without its frozen C{__setattr__}, for L{parse_uri} to fill in.

    Storing seven fields through C{object.__setattr__} (the frozen class's
    own C{__setattr__} refuses) costs about 0.55 us, a third of what a whole
    parse may take.  So the parser fills in an instance of this class with
    plain attribute stores, then sets its C{__class__} to L{SIPURI}, which
    CPython allows between classes with the same slots (a test checks that
    they stay the same): about 0.15 us in all.  The result is a true
    L{SIPURI}, of that exact type, as immutable as any, with the same
    equality and hash.
    """

    __slots__ = ("headers", "host", "parameters", "password", "port", "scheme", "user")
    scheme: str
    host: str
    user: str | None
    password: str | None
    port: int | None
    parameters: tuple[tuple[str, str | None], ...]
    headers: tuple[tuple[str, str], ...]


class _AbsoluteURISlots:
    """The slot layout of L{AbsoluteURI}, filled in the same way (see L{_SIPURISlots})."""

    __slots__ = ("opaque", "scheme")
    scheme: str
    opaque: str


def _check_roundtrip(built: URI, parsed: URI) -> None:
    """Name the first field of a constructed URI that does not survive serialization."""
    for field in dataclasses.fields(built) if parsed != built else ():
        if getattr(built, field.name) != getattr(parsed, field.name, None):
            raise InvalidValue(f"{type(built).__name__} {field.name} {getattr(built, field.name)!r} is not valid")


def parse_uri(text: str) -> URI:
    """
    Parse a URI as it appears in a Request-URI, a name-addr or an addr-spec.

    @return: a L{SIPURI} for C{sip:} and C{sips:} (in any case), otherwise an
        L{AbsoluteURI}.
    @raise InvalidValue: naming the fault, if C{text} is not a valid URI
        (this is the only exception raised).
    @see: RFC 3261 section 25.1.
    """
    m = _FAST_SIP.fullmatch(text)
    if m is not None:
        secure, user, password, host, port_text, name1, value1, name2, value2, more, headers_text = m.groups()
        return fast_sip_uri(
            secure, user, password, host, port_text, name1, value1, name2, value2, more, headers_text, text
        )
    m = _ABSOLUTE.fullmatch(text)
    if m is not None:
        scheme = m.group(1).lower()
        if scheme not in {"sip", "sips"}:
            if "%" in text and _BAD_ESCAPE.search(text):
                raise InvalidValue(f"URI has a '%' that starts no escape: {_show(text)}")
            absolute: _AbsoluteURISlots = _AbsoluteURISlots()
            absolute.scheme = scheme
            absolute.opaque = m.group(2)
            absolute.__class__ = AbsoluteURI  # type: ignore[assignment]  # see _SIPURISlots
            return absolute  # type: ignore[return-value]  # now an AbsoluteURI
    head = text[:5].lower()
    if head.startswith("sip:"):
        return _parse_sip(text, "sip", 4)
    if head == "sips:":
        return _parse_sip(text, "sips", 5)
    what = "has no scheme, ':' and text" if _ABSOLUTE.match(text) is None else 'has a space, control or <>"'
    raise InvalidValue(f"URI {what}: {_show(text)}")


def fast_sip_uri(  # noqa: PLR0917  (a match's groups, passed as they come: called for most URIs)
    secure: str,
    user: str | None,
    password: str | None,
    host: str,
    port_text: str | None,
    name1: str | None,
    value1: str | None,
    name2: str | None,
    value2: str | None,
    more: str | None,
    headers_text: str | None,
    text: str,
) -> SIPURI:
    """
    The L{SIPURI} of a match of L{FAST_SIP_SOURCE}, given its groups in order.

    @param text: the whole URI (what the pattern matched).
    @raise InvalidValue: a typed parameter is invalid, or a parameter name
        is repeated (the fast pattern only checks the characters).
    """
    fast: _SIPURISlots = _SIPURISlots()
    fast.scheme = "sips" if secure else "sip"
    fast.host = host
    fast.user = user
    fast.password = password
    fast.port = None if port_text is None else int(port_text)
    # One or two parameters are split already; a typed one (to check), a name given twice (an error) or
    # a third parameter take the general splitter, which raises as the careful path would.
    if name1 is None:
        fast.parameters = ()
    elif name2 is None and name1.lower() not in _TYPED_PARAMS:
        fast.parameters = ((name1, value1),)
    elif (
        more is None
        and name2 is not None
        and (key1 := name1.lower()) != (key2 := name2.lower())
        and key1 not in _TYPED_PARAMS
        and key2 not in _TYPED_PARAMS
    ):
        fast.parameters = ((name1, value1), (name2, value2))
    else:
        # The parameters start at the first ";" after the userinfo (the only "@": no later part admits one),
        # as the host and port admit none.
        host_start = text.index("@") + 1 if user is not None else 4
        fast.parameters = _parse_params(text[text.index(";", host_start) :].partition("?")[0], text)
    fast.headers = (
        tuple((n, v) for n, _, v in (h.partition("=") for h in headers_text.split("&"))) if headers_text else ()
    )
    fast.__class__ = SIPURI  # type: ignore[assignment]  # see _SIPURISlots
    return fast  # type: ignore[return-value]  # now a SIPURI, as mypy cannot know


def parse_sip_uri(text: str) -> SIPURI:
    """
    Parse a URI that must be C{sip:} or C{sips:}, as in a Route, a Record-Route
    or a REGISTER Request-URI.

    @raise InvalidValue: naming the fault, if C{text} is not a valid SIP or SIPS URI.
    @see: RFC 3261 section 25.1.
    """
    uri = parse_uri(text)
    if isinstance(uri, AbsoluteURI):
        raise InvalidValue(f"not a SIP or SIPS URI: {_show(text)}")
    return uri


def _parse_sip(text: str, scheme: str, start: int) -> SIPURI:
    """Parse C{text} from C{start}, just after C{sip:} or C{sips:}."""
    if "%" in text and _BAD_ESCAPE.search(text, start):
        raise InvalidValue(f"SIP URI has a '%' that starts no escape: {_show(text)}")
    user = password = None
    at = text.find("@", start)
    if at >= 0:
        m = _USERINFO.fullmatch(text, start, at)
        if m is None:
            what = "an empty user" if text[start:at][:1] in ("", ":") else "an invalid user or password"
            raise InvalidValue(f"SIP URI has {what}: {_show(text)}")
        user, password = m.group(1), m.group(2)
        start = at + 1
    m = _SIP_TAIL.fullmatch(text, start)
    if m is None:
        raise InvalidValue(f"SIP URI has {_tail_fault(text, start)}: {_show(text)}")
    host, port_text, params_text, headers_text = m.groups()
    _check_host(host)
    port = None
    if port_text is not None:
        if len(port_text) > 5 or int(port_text) > 65535:
            raise InvalidValue(f"SIP URI port {port_text} is out of range: {_show(text)}")
        port = int(port_text)
    parameters = _parse_params(params_text, text) if params_text else ()
    headers: tuple[tuple[str, str], ...] = ()
    if headers_text:
        headers = tuple((n, v) for n, _, v in (h.partition("=") for h in headers_text.split("&")))
    uri: _SIPURISlots = _SIPURISlots()
    uri.scheme = scheme
    uri.host = host
    uri.user = user
    uri.password = password
    uri.port = port
    uri.parameters = parameters
    uri.headers = headers
    uri.__class__ = SIPURI  # type: ignore[assignment]  # see _SIPURISlots
    return uri  # type: ignore[return-value]  # now a SIPURI


def _parse_params(params_text: str, text: str) -> tuple[tuple[str, str | None], ...]:
    """Split C{;name=value;flag}, already matched by the grammar, and check names and typed values."""
    seen: set[str] = set()
    parameters: list[tuple[str, str | None]] = []
    for item in params_text[1:].split(";"):
        name, equals, value = item.partition("=")
        key = (_canon(name) if "%" in name else name).lower()  # _key(name), inlined
        if key in seen:
            raise InvalidValue(f"SIP URI parameter {name!r} appears twice: {_show(text)}")
        seen.add(key)
        if not equals:
            parameters.append((name, None))
            continue
        if key == "ttl" and not (len(value) <= 3 and value.isdigit() and int(value) <= 255):
            raise InvalidValue(f"SIP URI ttl {value!r} is not 0 to 255: {_show(text)}")
        if key == "maddr":
            if _HOST.fullmatch(value) is None:
                raise InvalidValue(f"SIP URI maddr {value!r} is not a host: {_show(text)}")
            _check_host(value)
        parameters.append((name, value))
    return tuple(parameters)


def _tail_fault(text: str, start: int) -> str:
    """Say what is wrong after the userinfo, once the full pattern has failed (the slow path)."""
    m = _DIAGNOSE.match(text, start)
    if m is None or m.group(1) is None:
        return "no host" if start == len(text) else "an invalid host"
    pos = m.end()
    faults = {":": "an invalid port", ";": "an invalid parameter", "=": "an empty parameter value"}
    faults.update({"?": "an invalid header component", "@": "more than one '@'"})
    return faults.get(text[pos : pos + 1], f"an unexpected {text[pos : pos + 1]!r} at offset {pos}")
