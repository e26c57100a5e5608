# -*- test-case-name: tests.message.test_address -*-
"""
Addresses with a display name and parameters: From, To, Contact, Route,
Record-Route, Path, Refer-To, P-Asserted-Identity...

An address is written either as a C{name-addr}, C{["Display Name"] <uri>},
or as a bare C{addr-spec}.  The difference matters: outside angle brackets,
everything after the first C{;} belongs to the header, not to the URI
(RFC 3261 section 20.10), so C{sip:a@b;tag=1} is the URI C{sip:a@b} with a
tag.  L{NameAddress} always renders the C{name-addr} form, which is never
ambiguous.

From, To and Contact are read for every request a server receives, so the
canonical forms are recognised by one compiled pattern each and only odd
input (whitespace around C{;} and C{=}, quoted or IPv6 parameter values)
goes through the general parser.

Decisions on odd input:
  - A token display name is kept with its words joined by single spaces;
    no space is needed before C{<} (RFC 4475 section 3.1.1.6).
  - Whitespace inside the angle brackets is refused (RFC 4475
    section 3.1.2.14), as is a bare addr-spec with C{?} headers (section
    3.1.2.13) or a quoted display name with no angle brackets.
  - C{*} in a Contact must be alone (RFC 3261 section 10.2.2).

@see: RFC 3261 sections 20.10, 20.20, 20.39 and 25.1; RFC 4475 section 3.1.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final

from sipstack.errors import InvalidValue
from sipstack.message._grammar import LWS, SWS, TOKEN
from sipstack.message.uri import FAST_SIP_SOURCE, URI, fast_sip_uri, parse_uri
from sipstack.message.values import (
    _UNSET,
    QUOTED,
    Params,
    _Unset,
    excerpt,
    get_param,
    has_param,
    parse_params,
    parse_uint,
    quote,
    remove_param,
    render_params,
    replace_param,
    split_header_values,
    split_simple_params,
    unquote,
)

__all__ = [
    "NameAddress",
    "Wildcard",
    "WILDCARD",
    "parse_name_address",
    "parse_name_address_list",
    "parse_contact_value",
]

# name-addr     =  [ display-name ] LAQUOT addr-spec RAQUOT
# display-name  =  *(token LWS) / quoted-string
# LAQUOT = SWS "<";  RAQUOT = ">" SWS
# The canonical form first: one space at most before "<", no whitespace
# around ";" and "=", parameter values that are tokens.  The quoted display
# name is captured without its quotes, the first parameter apart (a flag
# leaves its value group None, as split_simple_params() makes it), the others
# together.  Possessive quantifiers ("++", "*+", "?+") never give back what
# they consumed, which is safe because each piece ends at a character it
# cannot contain (a token display name gives back nothing "<" could follow),
# and spares the match from backtracking.
#
# Between "<" and ">", the fast pattern of a SIP URI is tried first, so that
# the URI nearly every address holds is split by the same match (one call to
# the regex engine instead of two); any other text without "<", ">" or
# whitespace goes to parse_uri() as it is.  So the pattern matches what
# "<([^<> \t]++)>" would, and the URI comes out as parse_uri() would make it:
# the SIP URI pattern admits none of these four characters, and what follows
# it (">" here, the end of the text in parse_uri) is a character none of its
# parts or look-aheads accepts, so it splits the URI the same way.
_FAST_TOKEN: Final = r"[A-Za-z0-9\-.!%*_+`'~]++"
_FAST_NAME_ADDR_RE: Final = re.compile(
    r'(?:"([^"\\\r\n]*+(?:\\[^\r\n][^"\\\r\n]*+)*+)" ?+'
    rf"|({_FAST_TOKEN}(?: {_FAST_TOKEN})*+) ?+)?+"
    rf"<(?:({FAST_SIP_SOURCE})|([^<> \t]++))>"
    rf"(?:;({_FAST_TOKEN})(?:=({_FAST_TOKEN}))?+((?:;{_FAST_TOKEN}(?:={_FAST_TOKEN})?+)++)?+)?+"
)
_NAME_ADDR_RE: Final = re.compile(
    rf"{SWS}(?:({QUOTED}){SWS}|((?:{TOKEN}{LWS})*{TOKEN}){SWS})?<([^<>]*)>(.*)", re.DOTALL
)
# addr-spec outside angle brackets: the URI ends at the first ";" or space.
_ADDR_SPEC_RE: Final = re.compile(rf"{SWS}([^ \t;<>\"]+)(.*)", re.DOTALL)
_TOKENS_RE: Final = re.compile(rf"{TOKEN}(?: {TOKEN})*")
# qvalue  =  ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
_QVALUE_RE: Final = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
_QUOTED_PAIR_RE: Final = re.compile(r"\\(.)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class NameAddress:
    """
    An address with an optional display name and header parameters.

    The constructor trusts its arguments; text from the network goes through
    the parse functions, and L{with_param} checks what it adds.

    @ivar uri: the address.
    @ivar display_name: the display name as text (quotes removed, escapes
        undone), C{""} for an empty quoted name, L{None} when absent.
    @ivar params: the header parameters after the address (C{tag},
        C{expires}, C{q}...), names and values as written; see
        L{sipstack.message.values.parse_params}.
    """

    uri: URI
    display_name: str | None = None
    params: Params = ()

    def __str__(self) -> str:
        params = render_params(self.params) if self.params else ""
        name = self.display_name
        if name is None:
            return f"<{self.uri}>{params}"
        if _TOKENS_RE.fullmatch(name) is None:
            name = quote(name)
        return f"{name} <{self.uri}>{params}"

    # Parameters

    def param(self, name: str) -> str | None:
        """
        The value of a header parameter as written (a quoted value keeps its
        quotes), or L{None} when it is absent or a flag; names compare
        case-insensitively.
        """
        return get_param(self.params, name)

    def has_param(self, name: str) -> bool:
        """Whether the header parameter is present (with or without a value)."""
        return has_param(self.params, name)

    def with_param(self, name: str, value: str | None = None) -> NameAddress:
        """
        A copy with the header parameter set, replacing one of the same name
        (case-insensitively) in place or appended; L{None} makes a flag.

        @raise ValueError: the name is not a token, or the value is not a
            token, host or quoted string.
        """
        return NameAddress(self.uri, self.display_name, replace_param(self.params, name, value))

    def without_param(self, name: str) -> NameAddress:
        """A copy without any header parameter of this name."""
        return NameAddress(self.uri, self.display_name, remove_param(self.params, name))

    def replace(
        self,
        *,
        uri: URI | None = None,
        display_name: str | _Unset | None = _UNSET,
        params: Params | None = None,
    ) -> NameAddress:
        """A copy with the given fields changed (C{display_name=None} removes it)."""
        return NameAddress(
            self.uri if uri is None else uri,
            self.display_name if isinstance(display_name, _Unset) else display_name,
            self.params if params is None else params,
        )

    # Well-known parameters

    @property
    def tag(self) -> str | None:
        """The dialog tag of a From or To (RFC 3261 section 19.3)."""
        # get_param(self.params, "tag") in line: a proxy reads it for every message.
        for key, value in self.params:
            if key == "tag" or key.lower() == "tag":
                return value
        return None

    @property
    def expires(self) -> int | None:
        """
        The C{expires} parameter of a Contact, in seconds (RFC 3261
        section 20.10), or L{None} when absent.

        @raise InvalidValue: the value is not a number up to 2**32 - 1; a
            registrar may then apply its default (RFC 3261 section 10.3 step
            7, RFC 4475 section 3.1.2.4).
        """
        if not has_param(self.params, "expires"):
            return None
        return parse_uint(get_param(self.params, "expires") or "", maximum=2**32 - 1, what="expires parameter")

    @property
    def q(self) -> float | None:
        """
        The preference of a Contact, 0 to 1 (RFC 3261 section 20.10), or
        L{None} when absent.

        @raise InvalidValue: the value is not a C{qvalue} (at most three
            decimals, no more than 1).
        """
        if not has_param(self.params, "q"):
            return None
        value = get_param(self.params, "q") or ""
        if _QVALUE_RE.fullmatch(value) is None:
            raise InvalidValue(f"q parameter {excerpt(value)} is not a qvalue")
        return float(value)

    @property
    def instance(self) -> str | None:
        """
        The C{+sip.instance} Contact parameter with its quotes removed, e.g.
        C{"<urn:uuid:...>"} (RFC 5626 section 4.1), or L{None}.

        @raise InvalidValue: the value is a malformed quoted string.
        """
        value = get_param(self.params, "+sip.instance")
        if value is not None and value.startswith('"'):
            return unquote(value)
        return value

    @property
    def reg_id(self) -> int | None:
        """
        The C{reg-id} Contact parameter, 1 to 2**31 - 1 (RFC 5626
        section 4.2), or L{None} when absent.

        @raise InvalidValue: the value is not in that range.
        """
        if not has_param(self.params, "reg-id"):
            return None
        number = parse_uint(get_param(self.params, "reg-id") or "", maximum=2**31 - 1, what="reg-id parameter")
        if number == 0:
            raise InvalidValue("reg-id parameter must not be 0")
        return number


class _NameAddressSlots:
    """
    The slot layout of L{NameAddress} without its frozen C{__setattr__}, for
    the parser to fill in.

    The parser fills in an instance of this class with plain attribute
    stores, then sets its C{__class__} to L{NameAddress}, which CPython allows
    between classes with the same slots (a test checks that they stay the
    same): about 0.1 us, against 0.25 us through C{object.__setattr__}.  The
    result is a true L{NameAddress}, of that exact type, as immutable as any,
    with the same equality and hash.  (The same device as
    L{sipstack.message.uri._SIPURISlots}.)
    """

    __slots__ = ("display_name", "params", "uri")
    uri: URI
    display_name: str | None
    params: Params


def _make(uri: URI, display_name: str | None, params: Params) -> NameAddress:
    # Parsed values are valid by construction; skip the frozen __init__.
    address: _NameAddressSlots = _NameAddressSlots()
    address.uri = uri
    address.display_name = display_name
    address.params = params
    address.__class__ = NameAddress  # type: ignore[assignment]  # see _NameAddressSlots
    return address  # type: ignore[return-value]  # now a NameAddress, as mypy cannot know


def _from_fast(match: re.Match[str]) -> NameAddress:
    """The L{NameAddress} of a match of C{_FAST_NAME_ADDR_RE}."""
    (
        quoted,
        tokens,
        sip_text,
        secure,
        user,
        password,
        host,
        port_text,
        uri_name1,
        uri_value1,
        uri_name2,
        uri_value2,
        uri_more,
        uri_headers,
        other_text,
        name1,
        value1,
        more,
    ) = match.groups()
    address: _NameAddressSlots = _NameAddressSlots()
    if sip_text is not None:
        address.uri = fast_sip_uri(
            secure,
            user,
            password,
            host,
            port_text,
            uri_name1,
            uri_value1,
            uri_name2,
            uri_value2,
            uri_more,
            uri_headers,
            sip_text,
        )
    else:
        address.uri = parse_uri(other_text)
    # The pattern has checked the quoted string and admits single spaces only
    # between tokens, so there is nothing to normalise.
    if quoted is None:
        address.display_name = tokens
    elif "\\" not in quoted:
        address.display_name = quoted
    else:
        address.display_name = _QUOTED_PAIR_RE.sub(r"\1", quoted)
    if name1 is None:
        address.params = ()
    elif more is None:
        address.params = ((name1, value1),)
    else:
        address.params = ((name1, value1), *split_simple_params(more))
    address.__class__ = NameAddress  # type: ignore[assignment]  # see _NameAddressSlots
    return address  # type: ignore[return-value]  # now a NameAddress, as mypy cannot know


def _angle_uri(text: str, inner: str) -> URI:
    if inner.strip(" \t") != inner:
        raise InvalidValue(f"whitespace inside <> in {excerpt(text)}")
    return parse_uri(inner)


def _display_name(quoted: str | None, tokens: str | None) -> str | None:
    if quoted is not None:
        return quoted[1:-1] if "\\" not in quoted else unquote(quoted)
    if tokens is not None and ("\t" in tokens or "  " in tokens):
        return " ".join(tokens.split())
    return tokens


def _parse_element(text: str) -> NameAddress:
    """Parse one name-addr or addr-spec, with its parameters."""
    fast = _FAST_NAME_ADDR_RE.fullmatch(text)
    if fast is not None:
        return _from_fast(fast)
    return _parse_general(text)


def _parse_general(text: str) -> NameAddress:
    """Parse one name-addr or addr-spec that the canonical pattern did not match."""
    match = _NAME_ADDR_RE.fullmatch(text)
    if match is not None:
        quoted, tokens, inner, params_text = match.groups()
        return _make(_angle_uri(text, inner), _display_name(quoted, tokens), parse_params(params_text))
    if "<" in text or '"' in text:
        raise InvalidValue(f"bad name-addr {excerpt(text)}")
    match = _ADDR_SPEC_RE.fullmatch(text)
    if match is None:
        raise InvalidValue(f"no address in {excerpt(text)}")
    uri_text, params_text = match.groups()
    if "?" in uri_text:
        raise InvalidValue(f"a URI with headers must be enclosed in <>: {excerpt(text)}")
    return _make(parse_uri(uri_text), None, parse_params(params_text))


def parse_name_address(text: str) -> NameAddress:
    """
    Parse a header that holds exactly one address: From, To, Refer-To,
    P-Asserted-Identity...

    @see: RFC 3261 sections 20.20 and 20.39.
    @raise InvalidValue: the text is not one address with parameters (a
        list of several is refused too).
    """
    # A match of the canonical pattern is one element, whatever its commas
    # (inside the quoted name or the URI), so it need not be split.
    fast = _FAST_NAME_ADDR_RE.fullmatch(text)
    if fast is not None:
        return _from_fast(fast)
    if "," in text:
        elements = split_header_values(text)
        if len(elements) != 1:
            raise InvalidValue(f"expected one address, not {len(elements)}: {excerpt(text)}")
        return _parse_element(elements[0])
    return _parse_general(text)


def parse_name_address_list(text: str) -> list[NameAddress]:
    """
    Parse a header field that holds a comma-separated list of addresses:
    Contact, Route, Record-Route, Path...

    @see: RFC 3261 sections 7.3.1, 20.10 and 20.34.
    @raise InvalidValue: an element is malformed, or there is none.
    """
    fast = _FAST_NAME_ADDR_RE.fullmatch(text)
    if fast is not None:
        return [_from_fast(fast)]
    return _parse_list(text)


def _parse_list(text: str) -> list[NameAddress]:
    """L{parse_name_address_list} once the canonical pattern has not matched the whole text."""
    elements = split_header_values(text)
    if not elements:
        raise InvalidValue("no address in an empty value")
    return [_parse_element(element) for element in elements]


class Wildcard(enum.Enum):
    """
    The type of L{WILDCARD}, the C{Contact: *} of a REGISTER that removes
    every binding (RFC 3261 section 10.2.2).
    """

    WILDCARD = "*"

    def __str__(self) -> str:
        return "*"


#: The Contact wildcard C{*}.
WILDCARD: Final = Wildcard.WILDCARD


def parse_contact_value(text: str) -> list[NameAddress] | Wildcard:
    """
    Parse one Contact header field: L{WILDCARD} or a list of addresses.

    @see: RFC 3261 sections 10.2.2 and 20.10.
    @raise InvalidValue: a malformed address, or C{*} alongside addresses.
    """
    # One canonical address, the usual case: neither the wildcard nor a list
    # (a "*" or "," it holds is inside the quoted name or the URI).
    fast = _FAST_NAME_ADDR_RE.fullmatch(text)
    if fast is not None:
        return [_from_fast(fast)]
    if "*" in text:
        stripped = text.strip(" \t")
        if stripped == "*":
            return WILDCARD
        if "*" in split_header_values(text):
            raise InvalidValue(f"'*' must be the only Contact: {excerpt(text)}")
    return _parse_list(text)
