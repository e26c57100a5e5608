# -*- test-case-name: tests.message.test_auth -*-
"""
Authentication challenges and credentials: the values of WWW-Authenticate,
Proxy-Authenticate, Authorization and Proxy-Authorization.

SIP uses HTTP Digest (RFC 3261 section 22, with the SHA-256 algorithms of
RFC 8760); other schemes are kept generically, by name and parameters, or by
their single C{token68} (as C{Bearer} credentials of RFC 8898).

Parameter values are stored unquoted (the text the digest computation uses)
and L{Challenge} and L{Credentials} render them in the canonical form of the
RFC 3261 grammar: quoted where it quotes them (C{realm}, C{nonce},
C{response}...), bare where it does not (C{algorithm}, C{stale}, C{nc} and the
C{qop} of credentials), so a client that quoted C{qop} by mistake is answered
correctly.  Any other parameter is written bare when it is a token and quoted
otherwise, the two forms being equivalent (RFC 7235 section 2.1).

Decisions on odd input: parameter names compare case-insensitively and may
appear only once (a repeated C{response} or C{realm} is an ambiguity worth
refusing); empty list elements (C{,,}) are skipped; the scheme is matched
case-insensitively and written C{Digest}, C{Basic} or C{Bearer} when it is
one of those; Digest always takes parameters, never a token68; one header
field holds one challenge, as in RFC 3261 (RFC 7235
allows several, but SIP does not).

@see: RFC 3261 sections 20.7, 20.27, 20.28, 20.44, 22 and 25.1; RFC 7235
    section 2.1; RFC 8760; RFC 8898 section 2.3.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Final, TypeVar

from sipstack.errors import InvalidValue
from sipstack.message._grammar import LWS, SWS, TOKEN
from sipstack.message.values import _UNSET, QUOTED, _Unset, excerpt, is_token, quote

__all__ = ["AuthParams", "Challenge", "Credentials", "parse_challenge", "parse_credentials"]

#: The parameters of a challenge or credentials: C{(name, value)} pairs in
#: order, names as written, values unquoted.
AuthParams = tuple[tuple[str, str], ...]

# challenge    =  ("Digest" LWS digest-cln *(COMMA digest-cln)) / other-challenge
# other-challenge  =  auth-scheme LWS auth-param *(COMMA auth-param)
# credentials  =  ("Digest" LWS digest-response) / other-response
_SCHEME_RE: Final = re.compile(rf"{SWS}({TOKEN})(?:{LWS}(.*?))?{SWS}", re.DOTALL)
# token68  =  1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="  (RFC 7235 section 2.1)
_TOKEN68_RE: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# auth-param  =  auth-param-name EQUAL ( token / quoted-string ), after COMMA = SWS "," SWS.
# Leading commas and whitespace skip empty list elements; the look-ahead ends
# each match where a parameter must end, so findall() agrees with fullmatch().
_AUTH_PARAM: Final = rf"[ \t,]*({TOKEN}){SWS}={SWS}({TOKEN}|{QUOTED}){SWS}(?=,|\Z)"
_AUTH_PARAM_RE: Final = re.compile(_AUTH_PARAM)
_AUTH_PARAMS_RE: Final = re.compile(rf"(?:{_AUTH_PARAM})+[ \t,]*")
_QUOTED_PAIR_RE: Final = re.compile(r"\\(.)", re.DOTALL)

_KNOWN_SCHEMES: Final = {"digest": "Digest", "basic": "Basic", "bearer": "Bearer"}
# The parameters the RFC 3261 grammar always quotes.
_QUOTED_IN_CHALLENGE: Final = frozenset({"realm", "nonce", "opaque", "domain", "qop"})
_QUOTED_IN_CREDENTIALS: Final = frozenset({"username", "realm", "nonce", "uri", "response", "cnonce", "opaque"})


def _lookup(params: AuthParams, name: str) -> str | None:
    for key, value in params:
        if key.lower() == name:
            return value
    return None


def _render(scheme: str, params: AuthParams, token68: str | None, quoted: frozenset[str]) -> str:
    if token68 is not None:
        return f"{scheme} {token68}"
    rendered = [
        f"{name}={quote(value) if name.lower() in quoted or not is_token(value) else value}" for name, value in params
    ]
    return f"{scheme} {', '.join(rendered)}"


def _parse(text: str, what: str) -> tuple[str, AuthParams, str | None]:
    """
    Split C{scheme params-or-token68}, unquoting the values.
    """
    match = _SCHEME_RE.fullmatch(text)
    if match is None or not match.group(2):
        raise InvalidValue(f"bad {what} {excerpt(text)}")
    scheme, rest = match.groups()
    scheme = _KNOWN_SCHEMES.get(scheme.lower(), scheme)
    if scheme != "Digest" and _TOKEN68_RE.fullmatch(rest) is not None:
        return scheme, (), rest
    if _AUTH_PARAMS_RE.fullmatch(rest) is None:
        raise InvalidValue(f"bad {what} parameters {excerpt(rest)}")
    params: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, written in _AUTH_PARAM_RE.findall(rest):
        key = name.lower()
        if key in seen:
            raise InvalidValue(f"{what} parameter {name!r} appears twice")
        seen.add(key)
        value = written
        if written.startswith('"'):
            value = written[1:-1]
            if "\\" in value:
                value = _QUOTED_PAIR_RE.sub(r"\1", value)
        params.append((name, value))
    return scheme, tuple(params), None


_Self = TypeVar("_Self", bound="_AuthValue")


@dataclass(frozen=True, slots=True)
class _AuthValue:
    """
    What challenges and credentials share: a scheme, then parameters (or a
    token68), with the parameters both of them carry.

    @ivar scheme: the authentication scheme, e.g. C{"Digest"}.
    @ivar params: the parameters, values unquoted.
    @ivar token68: the single opaque token of a scheme that uses one instead
        of parameters (then C{params} is empty), else L{None}.
    """

    #: The parameters written as quoted strings (RFC 3261 section 25.1).
    _QUOTED: ClassVar[frozenset[str]] = frozenset()

    scheme: str
    params: AuthParams = ()
    token68: str | None = None

    def __str__(self) -> str:
        return _render(self.scheme, self.params, self.token68, self._QUOTED)

    def param(self, name: str) -> str | None:
        """A parameter's unquoted value, or L{None}; names are case-insensitive."""
        return _lookup(self.params, name.lower())

    def replace(
        self: _Self,
        *,
        scheme: str | None = None,
        params: AuthParams | None = None,
        token68: str | _Unset | None = _UNSET,
    ) -> _Self:
        """A copy with the given fields changed (C{token68=None} removes it)."""
        return type(self)(
            self.scheme if scheme is None else scheme,
            self.params if params is None else params,
            self.token68 if isinstance(token68, _Unset) else token68,
        )

    @property
    def realm(self) -> str | None:
        """The protection space, shown to the user (RFC 3261 section 22.1)."""
        return _lookup(self.params, "realm")

    @property
    def nonce(self) -> str | None:
        """The server's nonce (echoed in the credentials)."""
        return _lookup(self.params, "nonce")

    @property
    def opaque(self) -> str | None:
        """Server state, echoed unchanged in the credentials."""
        return _lookup(self.params, "opaque")

    @property
    def algorithm(self) -> str | None:
        """
        The digest algorithm as written (C{MD5}, C{SHA-256}, C{SHA-512-256},
        optionally C{-sess}; RFC 8760 section 2.2), or L{None}, which means
        MD5.
        """
        return _lookup(self.params, "algorithm")


@dataclass(frozen=True, slots=True)
class Challenge(_AuthValue):
    """
    A challenge from WWW-Authenticate (a UAS or registrar, status 401) or
    Proxy-Authenticate (a proxy, status 407).

    @see: RFC 3261 sections 20.27, 20.44 and 22.1.
    """

    _QUOTED: ClassVar[frozenset[str]] = _QUOTED_IN_CHALLENGE

    @property
    def qop_options(self) -> tuple[str, ...]:
        """The qop values offered (C{"auth"}, C{"auth-int"}), possibly none."""
        value = _lookup(self.params, "qop")
        if value is None:
            return ()
        return tuple(option for option in (part.strip(" \t") for part in value.split(",")) if option)

    @property
    def stale(self) -> bool:
        """
        Whether the previous credentials were refused only because their
        nonce had expired, so the client may retry without asking the user.
        Only C{true} (in any case) counts; anything else reads as false.
        """
        value = _lookup(self.params, "stale")
        return value is not None and value.lower() == "true"

    @property
    def domain(self) -> tuple[str, ...]:
        """The URIs of the protection space (space-separated), possibly none."""
        value = _lookup(self.params, "domain")
        return () if value is None else tuple(value.split())


@dataclass(frozen=True, slots=True)
class Credentials(_AuthValue):
    """
    Credentials from Authorization (for a UAS or registrar) or
    Proxy-Authorization (for a proxy).

    @see: RFC 3261 sections 20.7, 20.28 and 22.2; C{token68} carries
        C{Bearer} tokens (RFC 8898).
    """

    _QUOTED: ClassVar[frozenset[str]] = _QUOTED_IN_CREDENTIALS

    @property
    def username(self) -> str | None:
        """The user's name in the realm."""
        return _lookup(self.params, "username")

    @property
    def uri(self) -> str | None:
        """The C{digest-uri}: the Request-URI as the client saw it."""
        return _lookup(self.params, "uri")

    @property
    def response(self) -> str | None:
        """The request digest, in lower-case hexadecimal."""
        return _lookup(self.params, "response")

    @property
    def cnonce(self) -> str | None:
        """The client nonce, present when C{qop} is."""
        return _lookup(self.params, "cnonce")

    @property
    def qop(self) -> str | None:
        """The quality of protection chosen, or L{None} (RFC 2069 mode)."""
        return _lookup(self.params, "qop")

    @property
    def nc(self) -> str | None:
        """The nonce count as written: eight hexadecimal digits."""
        return _lookup(self.params, "nc")


def parse_challenge(text: str) -> Challenge:
    """
    Parse the value of a WWW-Authenticate or Proxy-Authenticate header.

    @see: RFC 3261 section 25.1 (C{challenge}).
    @raise InvalidValue: not a scheme followed by parameters (or a token68),
        or a parameter appears twice.
    """
    return Challenge(*_parse(text, "challenge"))


def parse_credentials(text: str) -> Credentials:
    """
    Parse the value of an Authorization or Proxy-Authorization header.

    @see: RFC 3261 section 25.1 (C{credentials}).
    @raise InvalidValue: not a scheme followed by parameters (or a token68),
        or a parameter appears twice.
    """
    return Credentials(*_parse(text, "credentials"))
