"""
Tests for L{sipstack.services.digest}: the RFC 7616 example computations,
challenges, the checks of credentials (replays, nonce counts, stale and
forged nonces, user enumeration, the digest-uri), the bounded nonce-count
table, the users file and the command line that writes it.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipstack.message import Headers, Request, parse_uri
from sipstack.message.auth import Challenge, Credentials, parse_challenge, parse_credentials
from sipstack.services.digest import (
    Authenticator,
    AuthReason,
    AuthResult,
    UsersFileError,
    answer_challenge,
    compute_ha1,
    compute_response,
    load_users,
    main,
    parse_users,
    users_line,
)

# RFC 7616 section 3.9.1.
RFC_USER = "Mufasa"
RFC_REALM = "http-auth@example.org"
RFC_PASSWORD = "Circle of Life"
RFC_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC_URI = "/dir/index.html"
RFC_RESPONSES = {
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
}

REALM = "example.com"
REQUEST_URI = "sip:example.com"
SECRET = b"0123456789abcdef0123456789abcdef"
USERS = parse_users(
    "\n".join(
        [
            users_line("alice", REALM, "wonderland"),
            users_line("bob", REALM, "builder"),
            users_line("alice", "other.example", "elsewhere"),
            # carol may only use SHA-256.
            "carol:example.com::" + compute_ha1("SHA-256", "carol", REALM, "sha-only"),
        ]
    )
)


def register(*authorization: str, header: str = "Authorization", uri: str = REQUEST_URI) -> Request:
    """A REGISTER with these credentials."""
    return Request(method="REGISTER", uri=parse_uri(uri), headers=Headers([(header, value) for value in authorization]))


class ComputationTests(SynchronousTestCase):
    """The digest computations, against the published example of RFC 7616 section 3.9.1."""

    def test_rfc7616_responses(self) -> None:
        """The response for Mufasa is the one the RFC prints, for MD5 and for SHA-256."""
        for algorithm, expected in RFC_RESPONSES.items():
            ha1 = compute_ha1(algorithm, RFC_USER, RFC_REALM, RFC_PASSWORD)
            response = compute_response(
                algorithm, ha1, nonce=RFC_NONCE, nc="00000001", cnonce=RFC_CNONCE, qop="auth", method="GET", uri=RFC_URI
            )
            self.assertEqual(response, expected, algorithm)

    def test_rfc7616_client(self) -> None:
        """answer_challenge answers the RFC's challenges with the RFC's credentials."""
        for algorithm, expected in RFC_RESPONSES.items():
            challenge = parse_challenge(
                f'Digest realm="{RFC_REALM}", qop="auth, auth-int", algorithm={algorithm}, '
                f'nonce="{RFC_NONCE}", opaque="{RFC_OPAQUE}"'
            )
            credentials = answer_challenge(challenge, "GET", RFC_URI, RFC_USER, RFC_PASSWORD, cnonce=RFC_CNONCE)
            self.assertEqual(credentials.response, expected)
            self.assertEqual(
                (credentials.username, credentials.realm, credentials.uri, credentials.nc, credentials.qop),
                (RFC_USER, RFC_REALM, RFC_URI, "00000001", "auth"),
            )
            self.assertEqual((credentials.algorithm, credentials.opaque), (algorithm, RFC_OPAQUE))

    def test_rfc7616_server(self) -> None:
        """
        The server finds the RFC's digest right: with the nonce not issued
        here the verdict is stale, never bad credentials; with a wrong
        password it is bad credentials.
        """
        users = parse_users(users_line(RFC_USER, RFC_REALM, RFC_PASSWORD))
        authenticator = Authenticator(users, RFC_REALM, Clock(), SECRET)
        credentials = parse_credentials(
            f'Digest username="{RFC_USER}", realm="{RFC_REALM}", uri="{RFC_URI}", algorithm=SHA-256, '
            f'nonce="{RFC_NONCE}", nc=00000001, cnonce="{RFC_CNONCE}", qop=auth, '
            f'response="{RFC_RESPONSES["SHA-256"]}", opaque="{RFC_OPAQUE}"'
        )
        self.assertEqual(
            authenticator.verify("GET", RFC_URI, credentials), AuthResult(False, None, True, AuthReason.STALE_NONCE)
        )
        wrong = parse_users(users_line(RFC_USER, RFC_REALM, "Circle of Lies"))
        self.assertEqual(
            Authenticator(wrong, RFC_REALM, Clock(), SECRET).verify("GET", RFC_URI, credentials),
            AuthResult(False, None, False, AuthReason.BAD_CREDENTIALS),
        )

    def test_rfc7616_ha1_line(self) -> None:
        """A users line holds H(user:realm:password) for MD5 and SHA-256."""
        line = users_line(RFC_USER, RFC_REALM, RFC_PASSWORD)
        user, realm, md5, sha256 = line.split(":")
        self.assertEqual((user, realm), (RFC_USER, RFC_REALM))
        self.assertEqual(md5, compute_ha1("MD5", user, realm, RFC_PASSWORD))
        self.assertEqual(sha256, compute_ha1("SHA-256", user, realm, RFC_PASSWORD))
        # The HA1 of the RFC 2617 section 3.5 example.
        self.assertEqual(
            compute_ha1("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life"), "939e7578ed9e3c518a452acee763bce9"
        )


class AuthenticatorTests(SynchronousTestCase):
    """Challenges, and the verdict on requests answering them."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.auth = Authenticator(USERS, REALM, self.clock, SECRET, nonce_lifetime=300)

    def answer(
        self,
        user: str = "alice",
        password: str = "wonderland",
        *,
        algorithm: str = "SHA-256",
        nc: int = 1,
        challenge: Challenge | None = None,
        uri: str = REQUEST_URI,
        method: str = "REGISTER",
    ) -> Credentials:
        if challenge is None:
            challenge = next(c for c in self.auth.challenge() if c.algorithm == algorithm)
        return answer_challenge(challenge, method, uri, user, password, nc=nc)

    def check(self, credentials: Credentials | str, uri: str = REQUEST_URI) -> AuthResult:
        return self.auth.check(register(str(credentials), uri=uri))

    def test_challenge(self) -> None:
        """Two challenges, SHA-256 then MD5, each with qop=auth, the realm and its own nonce."""
        challenges = self.auth.challenge()
        self.assertEqual([c.algorithm for c in challenges], ["SHA-256", "MD5"])
        for challenge in challenges:
            self.assertEqual((challenge.scheme, challenge.realm, challenge.qop_options), ("Digest", REALM, ("auth",)))
            self.assertFalse(challenge.stale)
            self.assertEqual(parse_challenge(str(challenge)), challenge)
        self.assertNotEqual(challenges[0].nonce, challenges[1].nonce)
        self.assertEqual([c.stale for c in self.auth.challenge(stale=True)], [True, True])
        self.assertNotEqual(self.auth.challenge()[0].nonce, challenges[0].nonce)

    def test_ok(self) -> None:
        """A right answer, with either algorithm, authenticates the user; nc may then increase."""
        for algorithm in ("SHA-256", "MD5"):
            challenge = next(c for c in self.auth.challenge() if c.algorithm == algorithm)
            for nc in (1, 2, 7):
                self.assertEqual(
                    self.check(self.answer(challenge=challenge, nc=nc)), AuthResult(True, "alice", False, AuthReason.OK)
                )

    def test_proxy_authorization(self) -> None:
        """A proxy reads Proxy-Authorization, and ignores credentials for other realms."""
        other = answer_challenge(
            Challenge("Digest", (("realm", "upstream.example"), ("nonce", "abc"), ("qop", "auth"))),
            "INVITE",
            "sip:bob@example.com",
            "alice",
            "x",
        )
        mine = self.answer(method="INVITE", uri="sip:bob@example.com")
        request = Request(
            method="INVITE",
            uri=parse_uri("sip:bob@example.com"),
            headers=Headers([("Proxy-Authorization", str(other)), ("Proxy-Authorization", str(mine))]),
        )
        self.assertEqual(self.auth.check(request, "Proxy-Authorization").user, "alice")
        self.assertEqual(self.auth.check(request).reason, AuthReason.NO_CREDENTIALS)
        only_other = request.replace(headers=Headers([("Proxy-Authorization", str(other))]))
        self.assertEqual(
            self.auth.check(only_other, "Proxy-Authorization"),
            AuthResult(False, None, False, AuthReason.NO_CREDENTIALS),
        )

    def test_no_credentials(self) -> None:
        """No Authorization, or one that does not parse, or another scheme: challenge."""
        for request in (
            register(),
            register("Digest"),
            register("Bearer abc.def"),
            register('Digest realm="example.com", realm="x"'),
        ):
            self.assertEqual(self.auth.check(request), AuthResult(False, None, False, AuthReason.NO_CREDENTIALS))

    def test_replay(self) -> None:
        """The same credentials twice: the second time is a replay, answered stale (the password was right)."""
        credentials = self.answer()
        self.assertTrue(self.check(credentials).ok)
        self.assertEqual(self.check(credentials), AuthResult(False, None, True, AuthReason.REPLAYED))

    def test_nc_must_increase(self) -> None:
        """A nonce count not above the highest seen is refused; a higher one is accepted."""
        challenge = self.auth.challenge()[0]
        self.assertTrue(self.check(self.answer(challenge=challenge, nc=5)).ok)
        for nc in (4, 5, 1):
            self.assertEqual(self.check(self.answer(challenge=challenge, nc=nc)).reason, AuthReason.REPLAYED)
        self.assertTrue(self.check(self.answer(challenge=challenge, nc=6)).ok)

    def test_stale(self) -> None:
        """
        An expired nonce with the right digest is stale; with a wrong one it
        is bad credentials, so stale reveals nothing about passwords.
        """
        challenge = self.auth.challenge()[0]
        self.assertTrue(self.check(self.answer(challenge=challenge)).ok)
        self.clock.advance(299)
        self.assertTrue(self.check(self.answer(challenge=challenge, nc=2)).ok)
        self.clock.advance(1)
        self.assertEqual(
            self.check(self.answer(challenge=challenge, nc=3)), AuthResult(False, None, True, AuthReason.STALE_NONCE)
        )
        wrong = self.answer(password="guess", challenge=challenge, nc=4)
        self.assertEqual(self.check(wrong), AuthResult(False, None, False, AuthReason.BAD_CREDENTIALS))
        # A fresh challenge works again.
        self.assertTrue(self.check(self.answer()).ok)

    def test_nonce_from_the_future(self) -> None:
        """A nonce stamped later than now plus its lifetime (a clock stepped back) is stale."""
        challenge = self.auth.challenge()[0]
        self.clock.rightNow -= 301
        self.assertEqual(self.check(self.answer(challenge=challenge)).reason, AuthReason.STALE_NONCE)

    def test_tampered_nonce(self) -> None:
        """
        A nonce this server did not sign is never accepted: stale when the
        digest over it is right (a restart with a new secret), bad
        credentials when the digest was made for another nonce.
        """
        challenge = self.auth.challenge()[0]
        nonce = challenge.nonce or ""
        forged_nonce = nonce[:10] + ("A" if nonce[10] != "A" else "B") + nonce[11:]
        forged = challenge.replace(params=tuple((n, forged_nonce if n == "nonce" else v) for n, v in challenge.params))
        self.assertEqual(
            self.check(self.answer(challenge=forged)), AuthResult(False, None, True, AuthReason.STALE_NONCE)
        )
        swapped = self.answer(challenge=challenge)
        swapped = swapped.replace(params=tuple((n, forged_nonce if n == "nonce" else v) for n, v in swapped.params))
        self.assertEqual(self.check(swapped), AuthResult(False, None, False, AuthReason.BAD_CREDENTIALS))
        for garbage in ("", "short", "Zm9v" * 12, "\u00e9" * 48, "!" * 48):
            bogus = challenge.replace(params=tuple((n, garbage if n == "nonce" else v) for n, v in challenge.params))
            self.assertEqual(self.check(self.answer(challenge=bogus)).reason, AuthReason.STALE_NONCE, garbage)

    def test_nonce_bound_to_realm_and_secret(self) -> None:
        """Another realm or another secret does not accept this authenticator's nonces."""
        challenge = self.auth.challenge()[0]
        for other in (
            Authenticator(USERS, REALM, self.clock, b"another secret, 16 bytes or more"),
            Authenticator(USERS, "other.example", self.clock, SECRET),
        ):
            realm = other.realm
            moved = challenge.replace(params=tuple((n, realm if n == "realm" else v) for n, v in challenge.params))
            password = "wonderland" if realm == REALM else "elsewhere"
            credentials = answer_challenge(moved, "REGISTER", REQUEST_URI, "alice", password)
            self.assertEqual(other.verify("REGISTER", REQUEST_URI, credentials).reason, AuthReason.STALE_NONCE)

    def test_no_user_enumeration(self) -> None:
        """An unknown user, a wrong password and an algorithm the user lacks get the very same answer."""
        results = {
            self.check(self.answer("mallory", "wonderland")),
            self.check(self.answer("alice", "wonderland!")),
            self.check(self.answer("carol", "sha-only", algorithm="MD5")),
            self.check(self.answer("bob", "wonderland")),
            self.check(self.answer("Alice", "wonderland")),
        }
        self.assertEqual(results, {AuthResult(False, None, False, AuthReason.BAD_CREDENTIALS)})
        # Also when the nonce has expired: an unknown user is never told "stale".
        challenge = self.auth.challenge()[0]
        self.clock.advance(1000)
        self.assertEqual(
            {self.check(self.answer(u, "nope", challenge=challenge)) for u in ("mallory", "alice")},
            {AuthResult(False, None, False, AuthReason.BAD_CREDENTIALS)},
        )
        self.assertTrue(self.check(self.answer("carol", "sha-only")).ok)

    def test_uri_must_match(self) -> None:
        """The digest-uri must be the Request-URI (an equivalent spelling will do)."""
        credentials = self.answer(uri="sip:evil.example")
        self.assertEqual(self.check(credentials), AuthResult(False, None, False, AuthReason.URI_MISMATCH))
        self.assertTrue(self.check(self.answer(uri="sip:EXAMPLE.com")).ok)
        self.assertEqual(self.check(self.answer(uri="not a uri")).reason, AuthReason.URI_MISMATCH)

    def test_method_is_covered(self) -> None:
        """Credentials computed for another method are bad credentials."""
        self.assertEqual(self.check(self.answer(method="INVITE")).reason, AuthReason.BAD_CREDENTIALS)

    def test_malformed_or_unsupported(self) -> None:
        """Missing parameters are malformed; no qop, auth-int or -sess algorithms are unsupported."""
        good = self.answer()

        def without(name: str) -> Credentials:
            return good.replace(params=tuple((n, v) for n, v in good.params if n != name))

        def changed(name: str, value: str) -> Credentials:
            return good.replace(params=tuple((n, value if n == name else v) for n, v in good.params))

        for name in ("username", "nonce", "uri", "response", "cnonce", "nc"):
            self.assertEqual(self.check(without(name)).reason, AuthReason.MALFORMED, name)
        for bad_nc in ("1", "0000000g", "000000001"):
            self.assertEqual(self.check(changed("nc", bad_nc)).reason, AuthReason.MALFORMED, bad_nc)
        self.assertEqual(self.check(without("qop")).reason, AuthReason.UNSUPPORTED)
        self.assertEqual(self.check(changed("qop", "auth-int")).reason, AuthReason.UNSUPPORTED)
        self.assertEqual(self.check(changed("algorithm", "SHA-256-sess")).reason, AuthReason.UNSUPPORTED)
        self.assertEqual(self.check(changed("algorithm", "SHA-512-256")).reason, AuthReason.UNSUPPORTED)
        self.assertTrue(self.check(changed("algorithm", "sha-256")).ok)

    def test_missing_algorithm_means_md5(self) -> None:
        """Credentials without an algorithm are MD5 (RFC 3261); MD5 can be switched off."""
        credentials = self.answer(algorithm="MD5")
        bare = credentials.replace(params=tuple((n, v) for n, v in credentials.params if n != "algorithm"))
        self.assertTrue(self.check(bare).ok)
        strict = Authenticator(USERS, REALM, self.clock, SECRET, algorithms=("SHA-256",))
        self.assertEqual([c.algorithm for c in strict.challenge()], ["SHA-256"])
        challenge = self.auth.challenge()[1]
        self.assertEqual(strict.check(register(str(self.answer(challenge=challenge)))).reason, AuthReason.UNSUPPORTED)

    def test_bounded_nonce_table(self) -> None:
        """
        The nonce-count table never holds more than its bound; a nonce it
        forgot is answered stale, so its old counts cannot be replayed.
        """
        auth = Authenticator(USERS, REALM, self.clock, SECRET, max_tracked_nonces=2)
        challenges = []
        for _ in range(3):
            challenges.append(auth.challenge()[0])
            self.clock.advance(1)
        for challenge in challenges:
            credentials = answer_challenge(challenge, "REGISTER", REQUEST_URI, "alice", "wonderland", nc=3)
            self.assertTrue(auth.verify("REGISTER", REQUEST_URI, credentials).ok)
        self.assertEqual(len(auth._counts), 2)
        forgotten = answer_challenge(challenges[0], "REGISTER", REQUEST_URI, "alice", "wonderland", nc=4)
        self.assertEqual(
            auth.verify("REGISTER", REQUEST_URI, forgotten), AuthResult(False, None, True, AuthReason.STALE_NONCE)
        )
        # Remembered nonces still count, and a nonce issued after the forgotten one works.
        kept = answer_challenge(challenges[2], "REGISTER", REQUEST_URI, "alice", "wonderland", nc=3)
        self.assertEqual(auth.verify("REGISTER", REQUEST_URI, kept).reason, AuthReason.REPLAYED)
        fresh = answer_challenge(auth.challenge()[0], "REGISTER", REQUEST_URI, "alice", "wonderland")
        self.assertTrue(auth.verify("REGISTER", REQUEST_URI, fresh).ok)

    def test_expired_nonces_forgotten(self) -> None:
        """Counts of expired nonces are dropped, without making fresh nonces stale."""
        for _ in range(5):
            self.assertTrue(self.check(self.answer()).ok)
        self.assertEqual(len(self.auth._counts), 5)
        self.clock.advance(301)
        self.assertTrue(self.check(self.answer()).ok)
        self.assertEqual(len(self.auth._counts), 1)

    def test_bad_arguments(self) -> None:
        """The authenticator refuses a short secret, an empty realm, bad bounds and unknown algorithms."""
        for kwargs in (
            {"secret": b"short"},
            {"realm": ""},
            {"nonce_lifetime": 0},
            {"max_tracked_nonces": 0},
            {"algorithms": ("SHA-1",)},
            {"algorithms": ()},
        ):
            arguments = {"users": USERS, "realm": REALM, "clock": self.clock, "secret": SECRET, **kwargs}
            self.assertRaises(ValueError, Authenticator, **arguments)


class AnswerTests(SynchronousTestCase):
    """The client side refuses challenges it cannot answer."""

    def test_unanswerable(self) -> None:
        for text in (
            'Digest realm="r", nonce="n"',
            'Digest realm="r", nonce="n", qop="auth-int"',
            'Digest realm="r", qop="auth"',
            'Digest realm="r", nonce="n", qop="auth", algorithm=SHA-512-256',
            "Basic realm=r",
        ):
            self.assertRaises(ValueError, answer_challenge, parse_challenge(text), "REGISTER", REQUEST_URI, "a", "b")


MD5_HA1 = compute_ha1("MD5", "alice", REALM, "wonderland")
SHA_HA1 = compute_ha1("SHA-256", "alice", REALM, "wonderland")


class UsersFileTests(SynchronousTestCase):
    """The users file: comments, optional algorithms, and errors that name their line."""

    def test_parse(self) -> None:
        text = f"""
# Users of example.com
   # indented comment

alice:{REALM}:{MD5_HA1.upper()}:{SHA_HA1}
bob:sip:example.net:{MD5_HA1}:
carol:{REALM}::{SHA_HA1}
"""
        users = parse_users(text)
        self.assertEqual(len(users), 3)
        alice = users.get("alice", REALM)
        assert alice is not None
        self.assertEqual(dict(alice.ha1), {"MD5": MD5_HA1, "SHA-256": SHA_HA1})
        bob = users.get("bob", "sip:example.net")
        assert bob is not None
        self.assertEqual(dict(bob.ha1), {"MD5": MD5_HA1})
        carol = users.get("carol", REALM)
        assert carol is not None
        self.assertEqual(list(carol.ha1), ["SHA-256"])
        self.assertIsNone(users.get("alice", "sip:example.net"))
        self.assertIsNone(users.get("Alice", REALM))
        self.assertEqual(users.realms(), {REALM, "sip:example.net"})
        self.assertEqual(sorted(entry.user for entry in users), ["alice", "bob", "carol"])

    def test_errors_name_the_line(self) -> None:
        cases = {
            "alice": "expected user:realm:MD5-HA1:SHA-256-HA1",
            f"alice:{MD5_HA1}:{SHA_HA1}": "expected user:realm",
            f"alice:{REALM}:{MD5_HA1[:-1]}:{SHA_HA1}": "MD5 HA1 must be 32 hexadecimal digits",
            f"alice:{REALM}:{MD5_HA1}:{SHA_HA1[:-1]}x": "SHA-256 HA1 must be 64 hexadecimal digits",
            f"alice:{REALM}::": "no HA1",
            f":{REALM}:{MD5_HA1}:{SHA_HA1}": "bad user name",
            f"al ice:{REALM}:{MD5_HA1}:{SHA_HA1}": "bad user name",
            f"alice::{MD5_HA1}:{SHA_HA1}": "bad realm",
        }
        for line, message in cases.items():
            text = f"# header\n\nbob:{REALM}:{MD5_HA1}:{SHA_HA1}\n{line}\n"
            with self.assertRaises(UsersFileError) as caught:
                parse_users(text, "users.txt")
            self.assertEqual(caught.exception.line, 4, line)
            self.assertIn("users.txt, line 4: ", str(caught.exception))
            self.assertIn(message, str(caught.exception), line)

    def test_duplicate(self) -> None:
        line = f"alice:{REALM}:{MD5_HA1}:{SHA_HA1}"
        with self.assertRaises(UsersFileError) as caught:
            parse_users(f"{line}\n{line}\n")
        self.assertEqual(caught.exception.line, 2)
        self.assertIn("appears twice", str(caught.exception))

    def test_load(self) -> None:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "users"
            path.write_text("# users\n" + users_line("\u00e9lise", REALM, "p\u00e4ss") + "\n", encoding="utf-8")
            users = load_users(path)
        entry = users.get("\u00e9lise", REALM)
        assert entry is not None
        self.assertEqual(entry.ha1["SHA-256"], compute_ha1("SHA-256", "\u00e9lise", REALM, "p\u00e4ss"))
        with self.assertRaises(UsersFileError) as caught, tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "users"
            path.write_text("bad\n")
            load_users(path)
        self.assertIn("users, line 1", str(caught.exception))

    def test_users_line_refuses(self) -> None:
        for user, realm in (("a:b", REALM), ("", REALM), ("a b", REALM), ("a", ""), ("a", " x"), ("a", "x\n")):
            self.assertRaises(ValueError, users_line, user, realm, "pw")

    def test_line_authenticates(self) -> None:
        """A line made by users_line lets its user in with that password only."""
        auth = Authenticator(parse_users(users_line("dave", REALM, "s3cret")), REALM, Clock(), SECRET)
        for password, ok in (("s3cret", True), ("S3cret", False)):
            for challenge in auth.challenge():
                credentials = answer_challenge(challenge, "REGISTER", REQUEST_URI, "dave", password)
                self.assertEqual(auth.verify("REGISTER", REQUEST_URI, credentials).ok, ok)


class _Input(io.StringIO):
    def isatty(self) -> bool:
        return False


class CommandLineTests(SynchronousTestCase):
    """C{python -m sipstack.services.digest USER REALM} prints a users line."""

    def test_line_from_stdin(self) -> None:
        out = io.StringIO()
        self.assertEqual(main(["alice", REALM], _Input("wonderland\n"), out), 0)
        self.assertEqual(out.getvalue(), users_line("alice", REALM, "wonderland") + "\n")
        self.assertEqual(len(parse_users(out.getvalue())), 1)

    def test_usage(self) -> None:
        out = io.StringIO()
        self.assertEqual(main(["--help"], _Input(""), out), 0)
        self.assertIn("usage:", out.getvalue())
        errors = io.StringIO()
        self.assertEqual(main(["alice"], _Input(""), io.StringIO(), errors), 2)
        self.assertIn("usage:", errors.getvalue())
        self.assertEqual(main(["a:b", REALM], _Input("pw\n"), io.StringIO(), errors), 2)
        self.assertIn("bad user name", errors.getvalue())
