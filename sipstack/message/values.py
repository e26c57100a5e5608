# -*- test-case-name: tests.message.test_values -*-
"""
The small grammar pieces that many SIP header values share.

Header text stays raw in L{sipstack.message.headers.Headers}; the typed
values (L{sipstack.message.via.Via}, L{sipstack.message.address.NameAddress},
L{CSeq}...) are parsed on demand from it.  This module holds what they have in
common: splitting a field into its comma-separated elements, generic
C{;name=value} parameter lists, quoted strings and bounded decimal numbers,
plus the CSeq value itself.

Via, From, To, CSeq and Contact are read for every request a server receives,
so the common case runs through one compiled regular expression (or, for
CSeq, a few C{str} methods) with no loop over characters in Python.

Every parser raises L{InvalidValue} for malformed text, never another
exception.  Functions that build values for sending raise L{ValueError}
instead: a bad argument there is a bug in the caller, not a peer's fault.

@see: RFC 3261 section 7.3.1 (header field format) and section 25 (the ABNF).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace
from typing import Final

from sipstack.errors import InvalidValue
from sipstack.message._grammar import IPV6_REFERENCE, LWS, SWS, TOKEN

__all__ = [
    "Params",
    "split_header_values",
    "parse_params",
    "render_params",
    "get_param",
    "has_param",
    "replace_param",
    "remove_param",
    "quote",
    "unquote",
    "is_token",
    "parse_uint",
    "CSeq",
    "CSEQ_MAXIMUM",
    "parse_cseq",
]

#: A generic-param list: C{(name, value)} pairs in order, names and values as
#: written (a quoted value keeps its quotes), C{None} for a flag parameter.
Params = tuple[tuple[str, str | None], ...]


class _Unset(enum.Enum):
    """
    The type of L{_UNSET}, the default of C{replace()} arguments whose field
    may legitimately be set to L{None}.
    """

    UNSET = enum.auto()


_UNSET: Final = _Unset.UNSET


# Not in __all__, so private to sipstack.message by the house rules, but
# shared by its value modules: excerpt(), QUOTED, SIMPLE_PARAMS,
# split_simple_params() and the _UNSET sentinel.


def excerpt(text: str, limit: int = 40) -> str:
    """
    C{repr} of C{text}, cut to C{limit} characters, for error messages.

    The messages can end up in a reason phrase, so they must stay short and
    must not carry raw control characters (C{repr} escapes them).
    """
    if len(text) > limit:
        return repr(text[:limit]) + "..."
    return repr(text)


# The language of _grammar.QUOTED_STRING, written as an "unrolled loop" so
# the engine does not try an alternation for every character (about 30%
# faster on the hot path).
QUOTED: Final = r'"[^"\\\r\n]*(?:\\[^\r\n][^"\\\r\n]*)*"'

# Splitting a field on top-level commas ------------------------------------

# One list element: runs of ordinary characters, quoted strings and <...>
# (an angle-bracketed URI may hold commas and quotes).  Alternatives start
# with distinct characters, so matching is linear.
_ELEMENT_RE: Final = re.compile(rf'(?:[^",<]+|{QUOTED}|<[^>]*>)*')


def split_header_values(text: str) -> list[str]:
    """
    Split a header field value into its comma-separated elements.

    Commas inside a quoted string or between C{<} and C{>} do not separate
    elements.  Each element is stripped of surrounding whitespace.  Empty
    elements (C{"a, , b"}, a trailing comma) are skipped, the leniency of
    RFC 7230 section 7; so a value of only commas and whitespace gives an
    empty list, which callers reject when their grammar needs an element.

    Only headers whose grammar is a comma-separated list may be split:
    Date and the authentication headers hold commas of their own.  The
    elements are split, not checked: their own parsers do that (a value
    without any comma is returned whole, whatever its quotes).

    @see: RFC 3261 section 7.3.1.
    @raise InvalidValue: a quoted string or C{<} is not terminated.
    """
    if "," not in text:
        text = text.strip(" \t")
        return [text] if text else []
    if '"' not in text and "<" not in text:
        return [element for element in (part.strip(" \t") for part in text.split(",")) if element]
    elements: list[str] = []
    position = 0
    length = len(text)
    match = _ELEMENT_RE.match
    while True:
        end = match(text, position).end()  # type: ignore[union-attr]  # the pattern also matches ""
        element = text[position:end].strip(" \t")
        if element:
            elements.append(element)
        if end == length:
            return elements
        if text[end] != ",":
            what = "quoted string" if text[end] == '"' else "<"
            raise InvalidValue(f"unterminated {what} in {excerpt(text)}")
        position = end + 1


# Generic parameters --------------------------------------------------------

# gen-value  =  token / host / quoted-string
# host is a hostname (which token covers), an IPv4 address (likewise) or an
# IPv6 reference.  A bare IPv6 address is accepted too: RFC 3261 writes the
# Via "received" parameter without brackets.
_GEN_VALUE: Final = rf"{TOKEN}|{IPV6_REFERENCE}|{QUOTED}|[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*"
# generic-param  =  token [ EQUAL gen-value ], after SEMI = SWS ";" SWS.
# The look-ahead makes each match end where a parameter must end, so
# findall() splits exactly as the validating fullmatch() did.
_PARAM: Final = rf"{SWS};{SWS}({TOKEN})(?:{SWS}={SWS}({_GEN_VALUE}))?(?={SWS}(?:;|\Z))"
_PARAM_RE: Final = re.compile(_PARAM)
_PARAMS_RE: Final = re.compile(rf"(?:{_PARAM})*{SWS}")
# The common case, with no whitespace and no quoted or IPv6 values, is split
# with str methods once this pattern has matched; other modules embed it in
# their own fast-path patterns.
SIMPLE_PARAMS: Final = rf"(?:;{TOKEN}(?:={TOKEN})?)*"
_SIMPLE_PARAMS_RE: Final = re.compile(SIMPLE_PARAMS)
_TOKEN_RE: Final = re.compile(TOKEN)
_GEN_VALUE_RE: Final = re.compile(_GEN_VALUE)


def parse_params(text: str) -> Params:
    """
    Parse a list of generic parameters, each introduced by C{;}.

    Whitespace is allowed around C{;} and C{=}.  Names and values are kept as
    written (a quoted value keeps its quotes and escapes), so
    L{render_params} gives the same text back for canonical input; a flag
    parameter (no C{=}) has the value L{None}.

    @param text: the text after the element the parameters qualify, e.g.
        C{";branch=z9hG4bK776;rport"}; the empty string gives C{()}.
    @see: RFC 3261 section 25.1 (C{generic-param}).
    @raise InvalidValue: the text is not a parameter list.
    """
    if not text:
        return ()
    if _SIMPLE_PARAMS_RE.fullmatch(text) is not None:
        return split_simple_params(text)
    if _PARAMS_RE.fullmatch(text) is None:
        raise InvalidValue(f"bad parameters {excerpt(text)}")
    return tuple([(name, value or None) for name, value in _PARAM_RE.findall(text)])


def split_simple_params(text: str) -> Params:
    """
    Split a non-empty parameter list already matched by L{SIMPLE_PARAMS}.
    """
    params: list[tuple[str, str | None]] = []
    for item in text[1:].split(";"):
        name, equals, value = item.partition("=")
        params.append((name, value) if equals else (name, None))
    return tuple(params)


def render_params(params: Params) -> str:
    """
    The text of a parameter list, each parameter preceded by C{;}.
    """
    return "".join([f";{name}" if value is None else f";{name}={value}" for name, value in params])


def get_param(params: Params, name: str) -> str | None:
    """
    The value of the first parameter called C{name}, compared
    case-insensitively (RFC 3261 section 7.3.1).

    @return: the value as written, or L{None} when the parameter is absent or
        is a flag (use L{has_param} to tell the two apart).
    """
    name = name.lower()
    for key, value in params:
        if key == name or key.lower() == name:
            return value
    return None


def has_param(params: Params, name: str) -> bool:
    """
    Whether a parameter called C{name} (case-insensitively) is present.
    """
    name = name.lower()
    return any(key == name or key.lower() == name for key, _ in params)


def replace_param(params: Params, name: str, value: str | None = None) -> Params:
    """
    Set a parameter: the first one of that name (case-insensitively) takes the
    new name and value, later ones are dropped; if there is none, it is
    appended.

    @param value: the value as it will be written (quote it with L{quote} if
        it is not a token or host), or L{None} for a flag.
    @raise ValueError: C{name} is not a token or C{value} is not a token,
        host or quoted string.
    """
    if _TOKEN_RE.fullmatch(name) is None:
        raise ValueError(f"parameter name {name!r} is not a token")
    if value is not None and _GEN_VALUE_RE.fullmatch(value) is None:
        raise ValueError(f"parameter value {value!r} is not a token, host or quoted string")
    lowered = name.lower()
    result: list[tuple[str, str | None]] = []
    found = False
    for item in params:
        if item[0].lower() == lowered:
            if not found:
                result.append((name, value))
                found = True
        else:
            result.append(item)
    if not found:
        result.append((name, value))
    return tuple(result)


def remove_param(params: Params, name: str) -> Params:
    """
    Drop every parameter called C{name} (case-insensitively).
    """
    lowered = name.lower()
    return tuple([item for item in params if item[0].lower() != lowered])


# Quoted strings and tokens -------------------------------------------------

_QUOTED_STRING_RE: Final = re.compile(QUOTED)
_QUOTED_PAIR_RE: Final = re.compile(r"\\(.)", re.DOTALL)
_NEEDS_ESCAPE_RE: Final = re.compile(r'(["\\])')


def unquote(text: str) -> str:
    """
    The content of a quoted string, with each quoted-pair (C{\\x}) replaced
    by the character it escapes.

    @param text: the quoted string, quotes included, e.g. C{'"J \\\\"R\\\\""'}.
    @see: RFC 3261 section 25.1 (C{quoted-string}, C{quoted-pair}).
    @raise InvalidValue: C{text} is not exactly one quoted string.
    """
    if _QUOTED_STRING_RE.fullmatch(text) is None:
        raise InvalidValue(f"bad quoted string {excerpt(text)}")
    inner = text[1:-1]
    if "\\" not in inner:
        return inner
    return _QUOTED_PAIR_RE.sub(r"\1", inner)


def quote(text: str) -> str:
    """
    A quoted string whose content is C{text}: C{"} and C{\\} are escaped.

    @raise ValueError: C{text} contains CR or LF, which a quoted string
        cannot carry, even escaped.
    """
    if "\r" in text or "\n" in text:
        raise ValueError(f"cannot quote CR or LF in {text!r}")
    if '"' in text or "\\" in text:
        text = _NEEDS_ESCAPE_RE.sub(r"\\\1", text)
    return f'"{text}"'


def is_token(text: str) -> bool:
    """
    Whether C{text} is a non-empty token (RFC 3261 section 25.1).
    """
    return _TOKEN_RE.fullmatch(text) is not None


# Numbers -------------------------------------------------------------------

# Leading zeros are allowed ("0068" in RFC 4475 section 3.1.1.1); the
# significant digits are capped before int() so a huge number costs nothing.
_UINT_RE: Final = re.compile(r"[ \t]*0*([0-9]{1,20})[ \t]*")
_MANY_DIGITS_RE: Final = re.compile(r"[ \t]*[0-9]+[ \t]*")


def parse_uint(text: str, *, maximum: int, what: str) -> int:
    """
    Parse a decimal number, C{1*DIGIT}, between 0 and C{maximum}.

    Surrounding whitespace is allowed; signs, spaces inside and non-ASCII
    digits are not.  Typical maxima: 255 for Max-Forwards, C{2**32 - 1} for
    Expires and Content-Length (RFC 3261 sections 20.22, 20.19 and 20.14).

    @param what: what the number is, for the error message.
    @raise InvalidValue: not a number, or larger than C{maximum} (RFC 4475
        section 3.1.2.4 sends overlarge values that must be refused).
    """
    match = _UINT_RE.fullmatch(text)
    if match is None:
        if _MANY_DIGITS_RE.fullmatch(text) is not None:
            raise InvalidValue(f"{what} {excerpt(text.strip())} is larger than {maximum}")
        raise InvalidValue(f"{what} {excerpt(text)} is not a number")
    number = int(match.group(1))
    if number > maximum:
        raise InvalidValue(f"{what} {number} is larger than {maximum}")
    return number


# CSeq ----------------------------------------------------------------------

#: The largest CSeq sequence number (RFC 3261 section 8.1.1.5).
CSEQ_MAXIMUM: Final = 2**31 - 1

# CSeq  =  "CSeq" HCOLON 1*DIGIT LWS Method
_CSEQ_RE: Final = re.compile(rf"{SWS}0*([0-9]{{1,20}}){LWS}({TOKEN}){SWS}")


@dataclass(frozen=True, slots=True)
class CSeq:
    """
    The CSeq header: a sequence number and the method it counts.

    It orders requests within a dialog and tells which request a response
    answers (RFC 3261 sections 8.1.1.5 and 20.16).

    @ivar number: the sequence number, 0 to 2**31 - 1.
    @ivar method: the method, compared case-sensitively: it must match the
        method of the request exactly (RFC 3261 section 8.1.1.5).
    """

    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"

    def replace(self, *, number: int | None = None, method: str | None = None) -> CSeq:
        """A copy with the given fields changed."""
        return replace(
            self,
            number=self.number if number is None else number,
            method=self.method if method is None else method,
        )


class _CSeqSlots:
    """
    The slot layout of L{CSeq} without its frozen C{__setattr__}, for
    L{parse_cseq} to fill in with plain attribute stores before it sets the
    C{__class__} to L{CSeq} (CPython allows that between classes with the same
    slots; a test checks that they stay the same).  The result is a true
    L{CSeq}; this costs half of two C{object.__setattr__} calls.  (The same
    device as L{sipstack.message.uri._SIPURISlots}.)
    """

    __slots__ = ("method", "number")
    number: int
    method: str


def parse_cseq(text: str) -> CSeq:
    """
    Parse a CSeq value such as C{"314159 INVITE"}.

    @see: RFC 3261 sections 8.1.1.5 and 20.16.
    @raise InvalidValue: not C{number LWS method}, or the number is larger
        than 2**31 - 1 (RFC 4475 section 3.1.2.4).
    """
    # The canonical form without a regular expression: at most nine ASCII
    # digits (so no more than CSEQ_MAXIMUM), one space and ASCII letters (a
    # token).  ASCII digits are all isdigit() admits in ASCII text, and
    # isascii() costs nothing in CPython (a flag of the string).
    number_text, _, method = text.partition(" ")
    if len(number_text) < 10 and number_text.isdigit() and method.isalpha() and text.isascii():
        fast: _CSeqSlots = _CSeqSlots()
        fast.number = int(number_text)
        fast.method = method
        fast.__class__ = CSeq  # type: ignore[assignment]  # see _CSeqSlots
        return fast  # type: ignore[return-value]  # now a CSeq, as mypy cannot know
    match = _CSEQ_RE.fullmatch(text)
    if match is None:
        raise InvalidValue(f"bad CSeq {excerpt(text)}")
    number_text, method = match.groups()
    number = int(number_text)
    if number > CSEQ_MAXIMUM:
        raise InvalidValue(f"CSeq number {number} is larger than {CSEQ_MAXIMUM}")
    cseq: _CSeqSlots = _CSeqSlots()
    cseq.number = number
    cseq.method = method
    cseq.__class__ = CSeq  # type: ignore[assignment]  # see _CSeqSlots
    return cseq  # type: ignore[return-value]  # now a CSeq, as mypy cannot know
