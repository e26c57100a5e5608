# -*- test-case-name: tests.services.test_digest -*-
"""
Digest authentication for a registrar (401, C{WWW-Authenticate} and
C{Authorization}) and a proxy (407, C{Proxy-Authenticate} and
C{Proxy-Authorization}): RFC 3261 section 22 with the algorithms of RFC 8760
and the rules of RFC 7616.

The logic is sans-IO: an L{Authenticator} makes challenges and checks
requests, given the users, a realm, a clock and a secret.  The design:

  - B{Algorithms}: SHA-256 and MD5 (for old phones), both offered, SHA-256
    first (RFC 8760 section 2.4), with C{qop=auth}; credentials without
    C{qop} (RFC 2069) carry no nonce count and are refused.
  - B{Users} come from a text file of HA1 hashes (L{parse_users}); no
    password is stored.  L{users_line} makes a line from a password.
  - B{Nonces} are stateless: a timestamp and random bytes, signed with an
    HMAC under the server's secret, so any nonce the server issued is
    recognised without remembering it, until it expires.
  - B{Replays}: the nonce count (C{nc}) of each nonce in use must increase.
    The table of counts is bounded: when it is full the nonce used least
    recently is forgotten and every nonce issued no later than it is from
    then on answered as stale, so a forgotten nonce cannot be replayed.
  - B{Stale}: a nonce that expired, was not issued here (for instance
    before a restart with a new secret) or whose count did not increase is
    answered with C{stale=true}, and only when the digest itself is right,
    so the client retries with a fresh nonce without asking its user, and
    C{stale} tells nobody anything about a password they do not know.
  - B{No user enumeration}: an unknown user is checked against a made-up
    HA1 exactly as a known user is against theirs, and gets the same
    answer as a wrong password; digests are compared in constant time.

@see: RFC 3261 section 22; RFC 7616 sections 3.3-3.5; RFC 8760; docs/services.md.
"""

from __future__ import annotations

import base64
import enum
import getpass
import hashlib
import hmac
import os
import secrets
import struct
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TextIO

from sipstack.clock import Clock
from sipstack.errors import InvalidValue
from sipstack.message import Request, parse_uri
from sipstack.message.auth import Challenge, Credentials, parse_credentials

__all__ = [
    "ALGORITHMS",
    "compute_ha1",
    "compute_response",
    "UserEntry",
    "Users",
    "UsersFileError",
    "parse_users",
    "load_users",
    "users_line",
    "AuthReason",
    "AuthResult",
    "Authenticator",
    "answer_challenge",
    "main",
]

#: The algorithms supported, in the order they are offered, with their hash.
ALGORITHMS: Final[Mapping[str, Callable[[bytes], hashlib._Hash]]] = {
    "SHA-256": hashlib.sha256,
    "MD5": hashlib.md5,
}
# Hexadecimal length of each algorithm's digest.
_HEX_LENGTH: Final = {"SHA-256": 64, "MD5": 32}
_HEX_DIGITS: Final = frozenset("0123456789abcdef")


def _canonical_algorithm(name: str | None) -> str | None:
    """The supported algorithm named C{name} (case-insensitive; absent means MD5), or L{None}."""
    if name is None:
        return "MD5"
    upper = name.upper()
    return upper if upper in ALGORITHMS else None


def _hash(algorithm: str, text: str) -> str:
    return ALGORITHMS[algorithm](text.encode("utf-8")).hexdigest()


def compute_ha1(algorithm: str, user: str, realm: str, password: str) -> str:
    """
    C{H(user:realm:password)} (RFC 7616 section 3.4.2), text encoded as UTF-8.

    @raise KeyError: the algorithm is not in L{ALGORITHMS}.
    """
    return _hash(algorithm, f"{user}:{realm}:{password}")


def compute_response(
    algorithm: str, ha1: str, *, nonce: str, nc: str, cnonce: str, qop: str, method: str, uri: str
) -> str:
    """
    The C{response} of credentials with C{qop=auth} (RFC 7616 section
    3.4.1): C{H(HA1:nonce:nc:cnonce:qop:H(method:uri))}, in lower-case
    hexadecimal.

    @raise KeyError: the algorithm is not in L{ALGORITHMS}.
    """
    ha2 = _hash(algorithm, f"{method}:{uri}")
    return _hash(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


# The users file


class UsersFileError(ValueError):
    """
    A users file could not be read.

    @ivar source: the file's name (or what stands for it).
    @ivar line: the number of the offending line, from 1.
    """

    def __init__(self, source: str, line: int, message: str) -> None:
        super().__init__(f"{source}, line {line}: {message}")
        self.source = source
        self.line = line


@dataclass(frozen=True, slots=True)
class UserEntry:
    """
    One user of one realm, with an HA1 per algorithm.

    @ivar user: the user name (the C{username} of the credentials).
    @ivar realm: the realm.
    @ivar ha1: HA1 in lower-case hexadecimal, by algorithm name; an
        algorithm left out cannot be used by this user.
    """

    user: str
    realm: str
    ha1: Mapping[str, str]


class Users:
    """The users of a users file, by user name and realm."""

    def __init__(self, entries: Sequence[UserEntry] = ()) -> None:
        self._entries: dict[tuple[str, str], UserEntry] = {}
        for entry in entries:
            self._entries[entry.user, entry.realm] = entry

    def get(self, user: str, realm: str) -> UserEntry | None:
        """The entry for C{user} in C{realm} (both case-sensitive), or L{None}."""
        return self._entries.get((user, realm))

    def realms(self) -> frozenset[str]:
        """Every realm with at least one user."""
        return frozenset(realm for _, realm in self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[UserEntry]:
        return iter(self._entries.values())


def users_line(user: str, realm: str, password: str) -> str:
    """
    A line of a users file for C{user} in C{realm} (no newline):
    C{user:realm:MD5-HA1:SHA-256-HA1}.

    @raise ValueError: the user is empty or holds C{:}, whitespace or a
        control character, or the realm is empty, has leading or trailing
        whitespace, or holds a control character.
    """
    _check_names(user, realm)
    return f"{user}:{realm}:{compute_ha1('MD5', user, realm, password)}:{compute_ha1('SHA-256', user, realm, password)}"


def _check_names(user: str, realm: str) -> None:
    if not user or any(char == ":" or char.isspace() or not char.isprintable() for char in user):
        raise ValueError(f"bad user name {user!r}: it must be non-empty, without ':', spaces or control characters")
    if not realm or realm.strip() != realm or not realm.isprintable():
        raise ValueError(f"bad realm {realm!r}: it must be non-empty, without control characters or outer spaces")


def parse_users(text: str, source: str = "<users>") -> Users:
    """
    Read a users file.

    One user per line, C{user:realm:MD5-HA1:SHA-256-HA1}, where each HA1
    is C{H(user:realm:password)} in hexadecimal (any case) and either may be
    empty to refuse that algorithm to the user (not both).  The user name
    may not contain C{:} (the realm may, the HA1s being the last two
    fields).  Blank lines and lines starting with C{#} are ignored.  A user
    may appear once per realm.

    @param source: the file name, for error messages.
    @raise UsersFileError: a line is malformed; the message names the line.
    """
    entries: dict[tuple[str, str], UserEntry] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head, *hashes = line.rsplit(":", 2)
        user, colon, realm = head.partition(":")
        if len(hashes) != 2 or not colon:
            raise UsersFileError(source, number, "expected user:realm:MD5-HA1:SHA-256-HA1")
        try:
            _check_names(user, realm)
        except ValueError as error:
            raise UsersFileError(source, number, str(error)) from None
        ha1: dict[str, str] = {}
        for algorithm, written in zip(("MD5", "SHA-256"), hashes, strict=True):
            value = written.strip().lower()
            if not value:
                continue
            if len(value) != _HEX_LENGTH[algorithm] or not _HEX_DIGITS.issuperset(value):
                raise UsersFileError(
                    source, number, f"the {algorithm} HA1 must be {_HEX_LENGTH[algorithm]} hexadecimal digits"
                )
            ha1[algorithm] = value
        if not ha1:
            raise UsersFileError(source, number, "no HA1 for any algorithm")
        if (user, realm) in entries:
            raise UsersFileError(source, number, f"user {user!r} appears twice in realm {realm!r}")
        entries[user, realm] = UserEntry(user, realm, ha1)
    return Users(list(entries.values()))


def load_users(path: str | os.PathLike[str]) -> Users:
    """
    Read the users file at C{path} (UTF-8).

    @raise OSError: the file cannot be read.
    @raise UsersFileError: a line is malformed.
    """
    with open(path, encoding="utf-8") as file:
        return parse_users(file.read(), os.fspath(path))


# Checking requests


class AuthReason(enum.Enum):
    """Why a request was or was not authenticated."""

    #: The credentials are good.
    OK = "ok"
    #: No credentials for this realm: challenge.
    NO_CREDENTIALS = "no credentials"
    #: Credentials for this realm lack a parameter or carry a bad one (the
    #: caller may answer 400).
    MALFORMED = "malformed credentials"
    #: An algorithm or qop this server does not offer.
    UNSUPPORTED = "unsupported algorithm or qop"
    #: The C{uri} parameter is not the Request-URI (the caller may answer 400).
    URI_MISMATCH = "uri does not match the Request-URI"
    #: Unknown user or wrong password; deliberately one reason.
    BAD_CREDENTIALS = "bad credentials"
    #: The digest is right but the nonce expired or was not issued here.
    STALE_NONCE = "stale nonce"
    #: The digest is right but the nonce count did not increase.
    REPLAYED = "nonce count did not increase"


@dataclass(frozen=True, slots=True)
class AuthResult:
    """
    The verdict on a request's credentials.

    @ivar ok: whether the request is authenticated.
    @ivar user: the authenticated user, or L{None} when not C{ok} (even when
        the user is known, so that a failure tells nothing about users).
    @ivar stale: when not C{ok}, whether to challenge with C{stale=true}.
    @ivar reason: the reason, for the caller's choice of status and for logs.
    """

    ok: bool
    user: str | None
    stale: bool
    reason: AuthReason


_NONCE_CONTEXT: Final = b"sipstack digest nonce v1\x00"
_NONCE_RANDOM: Final = 12
_NONCE_MAC: Final = 16
_NONCE_BYTES: Final = 8 + _NONCE_RANDOM + _NONCE_MAC
_NC_DIGITS: Final = frozenset("0123456789abcdefABCDEF")


class Authenticator:
    """
    Challenges and checks requests for one realm.

    @ivar users: the users; only those of C{realm} can authenticate.
    @ivar realm: the realm offered in challenges and required in credentials.
    @ivar clock: the source of time, for nonce expiry.
    @ivar nonce_lifetime: seconds a nonce stays valid.
    """

    def __init__(
        self,
        users: Users,
        realm: str,
        clock: Clock,
        secret: bytes,
        *,
        nonce_lifetime: float = 300.0,
        max_tracked_nonces: int = 65536,
        algorithms: Sequence[str] = ("SHA-256", "MD5"),
    ) -> None:
        """
        @param secret: the key nonces are signed with: at least 16 random
            bytes, the same across restarts if nonces issued before one
            should stay valid (otherwise clients just retry on C{stale}).
        @param max_tracked_nonces: the most nonces whose count is tracked.
        @param algorithms: the algorithms offered and accepted, in order.
        @raise ValueError: a bad realm, secret, lifetime, bound or algorithm.
        """
        if not realm or not realm.isprintable():
            raise ValueError(f"bad realm {realm!r}")
        if len(secret) < 16:
            raise ValueError("the nonce secret must be at least 16 bytes")
        if nonce_lifetime <= 0 or max_tracked_nonces < 1:
            raise ValueError("nonce_lifetime and max_tracked_nonces must be positive")
        unknown = [name for name in algorithms if name not in ALGORITHMS]
        if unknown or not algorithms:
            raise ValueError(f"unsupported algorithms {unknown!r}; choose among {list(ALGORITHMS)}")
        self.users = users
        self.realm = realm
        self.clock = clock
        self.nonce_lifetime = nonce_lifetime
        self._secret = secret
        self._algorithms = tuple(algorithms)
        self._max_tracked = max_tracked_nonces
        # nonce -> (issued at, highest nc seen), least recently used first.
        self._counts: OrderedDict[str, tuple[float, int]] = OrderedDict()
        # Every nonce issued at or before this time and not in _counts may
        # have been forgotten, so is answered as stale.
        self._forgotten_until = float("-inf")

    # Challenges

    def challenge(self, stale: bool = False) -> list[Challenge]:
        """
        The challenges for a 401 (C{WWW-Authenticate}) or 407
        (C{Proxy-Authenticate}), one header field each, in order: one per
        algorithm, each with a fresh nonce.
        """
        challenges = []
        for algorithm in self._algorithms:
            params: list[tuple[str, str]] = [
                ("realm", self.realm),
                ("nonce", self._new_nonce()),
                ("algorithm", algorithm),
                ("qop", "auth"),
            ]
            if stale:
                params.append(("stale", "true"))
            challenges.append(Challenge("Digest", tuple(params)))
        return challenges

    def _mac(self, body: bytes) -> bytes:
        message = _NONCE_CONTEXT + self.realm.encode("utf-8") + b"\x00" + body
        return hmac.new(self._secret, message, hashlib.sha256).digest()[:_NONCE_MAC]

    def _new_nonce(self) -> str:
        body = struct.pack(">Q", max(0, int(self.clock.seconds() * 1000))) + secrets.token_bytes(_NONCE_RANDOM)
        return base64.urlsafe_b64encode(body + self._mac(body)).decode("ascii")

    def _nonce_time(self, nonce: str) -> float | None:
        """When C{nonce} was issued, if this authenticator issued it; else L{None}."""
        if len(nonce) != _NONCE_BYTES * 4 // 3:
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            return None
        body, mac = raw[:-_NONCE_MAC], raw[-_NONCE_MAC:]
        if len(raw) != _NONCE_BYTES or not hmac.compare_digest(mac, self._mac(body)):
            return None
        (milliseconds,) = struct.unpack(">Q", body[:8])
        return float(milliseconds) / 1000

    # Checking

    def check(self, request: Request, header_name: str = "Authorization") -> AuthResult:
        """
        Check the credentials of C{request} for this realm in C{header_name}
        (C{Authorization} for a registrar or UAS, C{Proxy-Authorization} for
        a proxy).  Credentials for other realms are ignored (they are for
        other proxies); fields that do not parse are too.
        """
        for value in request.headers.get_all(header_name):
            try:
                credentials = parse_credentials(value)
            except InvalidValue:
                continue
            if credentials.scheme == "Digest" and credentials.realm == self.realm:
                return self.verify(request.method, str(request.uri), credentials)
        return AuthResult(False, None, False, AuthReason.NO_CREDENTIALS)

    def verify(self, method: str, request_uri: str, credentials: Credentials) -> AuthResult:
        """
        Check C{credentials} (for this realm) of a request with this method
        and Request-URI; see the module's description for the rules.
        """
        username, nonce, uri = credentials.username, credentials.nonce, credentials.uri
        response, cnonce, nc, qop = credentials.response, credentials.cnonce, credentials.nc, credentials.qop
        if username is None or nonce is None or uri is None or response is None:
            return AuthResult(False, None, False, AuthReason.MALFORMED)
        algorithm = _canonical_algorithm(credentials.algorithm)
        if algorithm not in self._algorithms or qop is None or qop.lower() != "auth":
            return AuthResult(False, None, False, AuthReason.UNSUPPORTED)
        if cnonce is None or nc is None or len(nc) != 8 or not _NC_DIGITS.issuperset(nc):
            return AuthResult(False, None, False, AuthReason.MALFORMED)
        if not _same_uri(uri, request_uri):
            return AuthResult(False, None, False, AuthReason.URI_MISMATCH)
        # An unknown user is checked against an HA1 nobody knows, made for
        # every request so that known and unknown users take the same work.
        decoy = self._decoy_ha1(algorithm, username)
        entry = self.users.get(username, self.realm)
        ha1 = (None if entry is None else entry.ha1.get(algorithm)) or decoy
        expected = compute_response(algorithm, ha1, nonce=nonce, nc=nc, cnonce=cnonce, qop=qop, method=method, uri=uri)
        good = hmac.compare_digest(expected.encode("ascii"), response.lower().encode("utf-8", "replace"))
        if not good or entry is None or algorithm not in entry.ha1:
            return AuthResult(False, None, False, AuthReason.BAD_CREDENTIALS)
        return self._count(nonce, int(nc, 16), username)

    def _decoy_ha1(self, algorithm: str, username: str) -> str:
        key = hmac.new(self._secret, b"decoy\x00" + username.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return ALGORITHMS[algorithm](key.digest()).hexdigest()

    def _count(self, nonce: str, count: int, user: str) -> AuthResult:
        """The verdict on a right digest, from its nonce and nonce count."""
        now = self.clock.seconds()
        issued = self._nonce_time(nonce)
        if issued is None or not now - self.nonce_lifetime < issued <= now + self.nonce_lifetime:
            self._counts.pop(nonce, None)
            return AuthResult(False, None, True, AuthReason.STALE_NONCE)
        self._forget_expired(now)
        seen = self._counts.get(nonce)
        if seen is None:
            if issued <= self._forgotten_until:
                return AuthResult(False, None, True, AuthReason.STALE_NONCE)
        elif count <= seen[1]:
            return AuthResult(False, None, True, AuthReason.REPLAYED)
        self._counts[nonce] = (issued, count)
        self._counts.move_to_end(nonce)
        while len(self._counts) > self._max_tracked:
            _, (forgotten, _) = self._counts.popitem(last=False)
            self._forgotten_until = max(self._forgotten_until, forgotten)
        return AuthResult(True, user, False, AuthReason.OK)

    def _forget_expired(self, now: float) -> None:
        # Expired nonces are refused by their time anyway; drop them from the
        # least recently used end while they are expired.
        counts = self._counts
        while counts:
            nonce, (issued, _) = next(iter(counts.items()))
            if issued > now - self.nonce_lifetime:
                break
            del counts[nonce]


def _same_uri(uri: str, request_uri: str) -> bool:
    """Whether the C{uri} parameter names the Request-URI (RFC 3261 section 22.4, RFC 7616 section 3.4.6)."""
    if uri == request_uri:
        return True
    try:
        return parse_uri(uri).equivalent(parse_uri(request_uri))
    except InvalidValue:
        return False


# The client side


def answer_challenge(
    challenge: Challenge,
    method: str,
    uri: str,
    user: str,
    password: str,
    *,
    nc: int = 1,
    cnonce: str | None = None,
) -> Credentials:
    """
    Credentials answering a Digest C{challenge} for a request with this
    method and Request-URI, with C{qop=auth}: what a UA puts in
    C{Authorization} or C{Proxy-Authorization}.

    @raise ValueError: the challenge is not Digest, lacks a realm or nonce,
        does not offer C{qop=auth}, or names an unsupported algorithm.
    """
    realm, nonce = challenge.realm, challenge.nonce
    algorithm = _canonical_algorithm(challenge.algorithm)
    if challenge.scheme != "Digest" or realm is None or nonce is None:
        raise ValueError("not a Digest challenge with a realm and a nonce")
    if algorithm is None:
        raise ValueError(f"unsupported algorithm {challenge.algorithm!r}")
    if "auth" not in challenge.qop_options:
        raise ValueError("the challenge does not offer qop=auth")
    cnonce = secrets.token_hex(8) if cnonce is None else cnonce
    nc_text = f"{nc:08x}"
    ha1 = compute_ha1(algorithm, user, realm, password)
    response = compute_response(
        algorithm, ha1, nonce=nonce, nc=nc_text, cnonce=cnonce, qop="auth", method=method, uri=uri
    )
    params: list[tuple[str, str]] = [
        ("username", user),
        ("realm", realm),
        ("nonce", nonce),
        ("uri", uri),
        ("response", response),
        ("algorithm", algorithm),
        ("cnonce", cnonce),
        ("qop", "auth"),
        ("nc", nc_text),
    ]
    if challenge.opaque is not None:
        params.append(("opaque", challenge.opaque))
    return Credentials("Digest", tuple(params))


# The command line

_USAGE: Final = """\
usage: python -m sipstack.services.digest USER REALM

Print a line of a users file (user:realm:MD5-HA1:SHA-256-HA1) for USER in
REALM.  The password is read from the terminal without echo, or from the
first line of standard input when that is not a terminal.
"""


def main(
    argv: Sequence[str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """
    C{python -m sipstack.services.digest USER REALM}: print a users-file
    line for USER in REALM, reading the password from the terminal (without
    echo) or, when standard input is not a terminal, from its first line.
    """
    argv = sys.argv[1:] if argv is None else argv
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    if list(argv[:1]) in (["-h"], ["--help"]):
        stdout.write(_USAGE)
        return 0
    if len(argv) != 2:
        stderr.write(_USAGE)
        return 2
    user, realm = argv
    if stdin.isatty():
        password = getpass.getpass(f"Password for {user} in {realm}: ")
    else:
        password = stdin.readline().rstrip("\r\n")
    try:
        line = users_line(user, realm, password)
    except ValueError as error:
        stderr.write(f"{error}\n")
        return 2
    stdout.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
