"""
Tests for L{sipstack.message.auth}: the challenges and credentials of RFC 3261
section 20, RFC 7616 / RFC 8760 SHA-256 digests, RFC 8898 Bearer tokens,
canonical rendering, rejection of malformed input and round-trip properties.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipstack.errors import InvalidValue
from sipstack.message.auth import Challenge, Credentials, parse_challenge, parse_credentials
from sipstack.message.values import is_token, quote
from sipstack.testing._header_strategies import challenges, credentials

_RFC3261_CHALLENGE = (
    'Digest realm="atlanta.com", domain="sip:boxesbybob.com", qop="auth", '
    'nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=FALSE, algorithm=MD5'
)
_RFC7616_CREDENTIALS = (
    'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, '
    'cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, '
    'response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)

_odd_text = st.one_of(
    st.text(max_size=60),
    st.lists(
        st.sampled_from(["Digest", " ", "\t", "realm", "=", '"', "\\", ",", "a b", "x", "==", "/", ";", "\r\n", "é"]),
        max_size=20,
    ).map("".join),
)


def _spaced(scheme: str, params: tuple[tuple[str, str], ...], data: st.DataObject) -> str:
    """Write parameters with random whitespace, empty elements and quoting."""
    space = st.sampled_from(["", " ", "\t", "  "])
    rendered = []
    for name, value in params:
        written = value if is_token(value) and data.draw(st.booleans()) else quote(value)
        rendered.append(f"{name}{data.draw(space)}={data.draw(space)}{written}")
    separator = data.draw(st.sampled_from([",", " , ", ",\t", ", ,"]))
    return f"{data.draw(space)}{scheme}{data.draw(st.sampled_from([' ', '  ', chr(9)]))}{separator.join(rendered)}"


class ChallengeTests(SynchronousTestCase):
    """
    Tests for L{Challenge} and L{parse_challenge}.
    """

    def test_rfc3261_example(self) -> None:
        """
        The WWW-Authenticate example of RFC 3261 section 20.44: values are
        unquoted, and the canonical rendering gives the same text back.
        """
        challenge = parse_challenge(_RFC3261_CHALLENGE)
        self.assertEqual(challenge.scheme, "Digest")
        self.assertEqual(challenge.realm, "atlanta.com")
        self.assertEqual(challenge.domain, ("sip:boxesbybob.com",))
        self.assertEqual(challenge.qop_options, ("auth",))
        self.assertEqual(challenge.nonce, "f84f1cec41e6cbe5aea9c8e88d359")
        self.assertEqual(challenge.opaque, "")
        self.assertFalse(challenge.stale)
        self.assertEqual(challenge.algorithm, "MD5")
        self.assertEqual(str(challenge), _RFC3261_CHALLENGE)

    def test_folded_whitespace(self) -> None:
        """
        Whitespace around C{=} and C{,} (the folded lines of the RFC examples,
        once joined) does not change the challenge.
        """
        spaced = parse_challenge(
            'Digest  realm = "atlanta.com" ,\t domain="sip:boxesbybob.com",  qop="auth",   '
            'nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="",stale=FALSE , algorithm=MD5 '
        )
        self.assertEqual(spaced, parse_challenge(_RFC3261_CHALLENGE))

    def test_sha256_options(self) -> None:
        """
        An RFC 8760 challenge offers SHA-256 and several qop options, quoted
        together with a comma inside.
        """
        challenge = parse_challenge(
            'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
            'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"'
        )
        self.assertEqual(challenge.algorithm, "SHA-256")
        self.assertEqual(challenge.qop_options, ("auth", "auth-int"))

    def test_stale(self) -> None:
        """
        C{stale} is true only for C{true}, in any case.
        """
        self.assertTrue(parse_challenge('Digest nonce="x", stale=TRUE').stale)
        self.assertTrue(parse_challenge('Digest nonce="x", stale="true"').stale)
        self.assertFalse(parse_challenge('Digest nonce="x", stale=yes').stale)
        self.assertFalse(parse_challenge('Digest nonce="x"').stale)

    def test_absent(self) -> None:
        """
        Absent parameters read as L{None} or empty.
        """
        challenge = parse_challenge('Digest realm="a"')
        self.assertIsNone(challenge.nonce)
        self.assertIsNone(challenge.opaque)
        self.assertIsNone(challenge.algorithm)
        self.assertEqual(challenge.qop_options, ())
        self.assertEqual(challenge.domain, ())

    def test_scheme_case(self) -> None:
        """
        The scheme and parameter names are case-insensitive; Digest is always
        written C{Digest}.
        """
        challenge = parse_challenge('dIgEsT REALM="a", Nonce="b"')
        self.assertEqual(challenge.scheme, "Digest")
        self.assertEqual(challenge.realm, "a")
        self.assertEqual(challenge.param("nonce"), "b")

    def test_canonical_rendering(self) -> None:
        """
        Rendering quotes C{realm}, C{nonce}, C{opaque}, C{domain} and C{qop}
        even if they were sent bare, and writes C{stale} and C{algorithm}
        bare; other parameters are bare when they are tokens.
        """
        challenge = parse_challenge('Digest realm=a, nonce=b, qop=auth, stale="false", algorithm="MD5", x="y", z="1 2"')
        self.assertEqual(
            str(challenge), 'Digest realm="a", nonce="b", qop="auth", stale=false, algorithm=MD5, x=y, z="1 2"'
        )

    def test_escapes(self) -> None:
        """
        Quoted-pairs are undone when parsing and redone when rendering.
        """
        challenge = parse_challenge('Digest realm="a \\"b\\" \\\\c"')
        self.assertEqual(challenge.realm, 'a "b" \\c')
        self.assertEqual(str(challenge), 'Digest realm="a \\"b\\" \\\\c"')

    def test_other_scheme(self) -> None:
        """
        Unknown schemes keep their name and parameters (RFC 8898 Bearer
        challenges have parameters).
        """
        challenge = parse_challenge('Bearer realm="atlanta.example.com", scope="abc", authz_server="https://as/t"')
        self.assertEqual(challenge.scheme, "Bearer")
        self.assertEqual(challenge.param("authz_server"), "https://as/t")
        self.assertEqual(parse_challenge("NewAuth a=b").params, (("a", "b"),))

    def test_empty_elements(self) -> None:
        """
        Empty list elements between parameters are skipped.
        """
        self.assertEqual(parse_challenge('Digest realm="a",, nonce="b",').params, (("realm", "a"), ("nonce", "b")))

    def test_replace(self) -> None:
        """
        L{Challenge.replace} changes only the given fields.
        """
        challenge = Challenge("Digest", (("realm", "a"),))
        self.assertEqual(challenge.replace(params=(("realm", "b"),)), Challenge("Digest", (("realm", "b"),)))
        self.assertEqual(challenge.replace(), challenge)
        self.assertEqual(
            Challenge("X", (), "t").replace(token68=None, params=(("a", "b"),)), Challenge("X", (("a", "b"),))
        )

    def test_malformed(self) -> None:
        """
        Malformed challenges raise L{InvalidValue}: no parameters, a missing
        C{=} or comma, a bare value with a space, an unterminated quoted
        string, a repeated parameter, a second challenge in the same field, a
        line break.
        """
        for text in [
            "",
            "Digest",
            "Digest ",
            'realm="a"',
            "Digest realm",
            'Digest realm="a" nonce="b"',
            "Digest realm=a b",
            'Digest realm="a',
            'Digest realm="a", REALM="b"',
            'Digest realm="a", Basic realm="b"',
            'Digest realm="a\r\nb"',
            "Digest =x",
            'Digest realm=""x',
            "Digest, realm=a=",
        ]:
            with self.subTest(text=text):
                self.assertRaises(InvalidValue, parse_challenge, text)

    @given(challenges())
    def test_round_trip(self, challenge: Challenge) -> None:
        """
        C{parse_challenge(str(c)) == c} for every challenge.
        """
        self.assertEqual(parse_challenge(str(challenge)), challenge)

    @given(challenges().filter(lambda challenge: challenge.token68 is None), st.data())
    def test_variants(self, challenge: Challenge, data: st.DataObject) -> None:
        """
        Whitespace, empty elements, quoting of token values and the case of
        the scheme do not change the challenge.
        """
        scheme = challenge.scheme
        if scheme == "Digest":
            scheme = data.draw(st.sampled_from(["Digest", "digest", "DIGEST"]))
        self.assertEqual(parse_challenge(_spaced(scheme, challenge.params, data)), challenge)

    @given(_odd_text)
    def test_never_crashes(self, text: str) -> None:
        """
        Any text parses or raises L{InvalidValue}; what parses renders to
        text that parses the same.
        """
        try:
            challenge = parse_challenge(text)
        except InvalidValue:
            return
        self.assertEqual(parse_challenge(str(challenge)), challenge)


class CredentialsTests(SynchronousTestCase):
    """
    Tests for L{Credentials} and L{parse_credentials}.
    """

    def test_rfc3261_example(self) -> None:
        """
        The Authorization example of RFC 3261 section 20.7.
        """
        text = (
            'Digest username="Alice", realm="atlanta.com", nonce="84a4cc6f3082121f32b42a2187831a9e", '
            'response="7587245234b3434cc3412213e5f113a5432"'
        )
        credentials = parse_credentials(text)
        self.assertEqual(credentials.username, "Alice")
        self.assertEqual(credentials.realm, "atlanta.com")
        self.assertEqual(credentials.nonce, "84a4cc6f3082121f32b42a2187831a9e")
        self.assertEqual(credentials.response, "7587245234b3434cc3412213e5f113a5432")
        self.assertEqual(str(credentials), text)

    def test_sha256(self) -> None:
        """
        The RFC 7616 section 3.9.1 SHA-256 credentials (the form RFC 8760
        brings to SIP): every field reads back, and rendering is exact.
        """
        credentials = parse_credentials(_RFC7616_CREDENTIALS)
        self.assertEqual(credentials.uri, "/dir/index.html")
        self.assertEqual(credentials.algorithm, "SHA-256")
        self.assertEqual(credentials.nc, "00000001")
        self.assertEqual(credentials.cnonce, "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")
        self.assertEqual(credentials.qop, "auth")
        self.assertEqual(credentials.opaque, "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
        self.assertEqual(str(credentials), _RFC7616_CREDENTIALS)

    def test_uri_with_commas(self) -> None:
        """
        A quoted C{uri} may hold commas and C{=}: it stays one value.
        """
        credentials = parse_credentials('Digest username="bob", uri="sip:a,b@c;x=y", response="0"')
        self.assertEqual(credentials.uri, "sip:a,b@c;x=y")

    def test_canonical_rendering(self) -> None:
        """
        Rendering writes C{qop}, C{nc} and C{algorithm} bare (a client that
        quoted C{qop} is answered canonically) and quotes C{username},
        C{uri} and the other RFC 3261 quoted parameters.
        """
        credentials = parse_credentials('Digest username=bob, uri=x, qop="auth", nc="00000001", algorithm="MD5"')
        self.assertEqual(str(credentials), 'Digest username="bob", uri="x", qop=auth, nc=00000001, algorithm=MD5')

    def test_absent(self) -> None:
        """
        Absent parameters read as L{None}.
        """
        credentials = parse_credentials('Digest username="bob"')
        for value in [credentials.realm, credentials.nonce, credentials.uri, credentials.response, credentials.qop]:
            self.assertIsNone(value)
        self.assertIsNone(credentials.nc)
        self.assertIsNone(credentials.cnonce)

    def test_token68(self) -> None:
        """
        RFC 8898 Bearer credentials carry one token68 instead of parameters.
        """
        credentials = parse_credentials("Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2ln-_==")
        self.assertEqual(credentials, Credentials("Bearer", (), "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2ln-_=="))
        self.assertEqual(str(credentials), "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2ln-_==")
        self.assertEqual(parse_credentials("basic dXNlcjpwYXNz").scheme, "Basic")

    def test_duplicate_refused(self) -> None:
        """
        A parameter given twice, such as two C{response} values, is refused
        rather than guessed at.
        """
        self.assertRaises(InvalidValue, parse_credentials, 'Digest response="a", Response="b"')

    def test_malformed(self) -> None:
        """
        Malformed credentials raise L{InvalidValue}.
        """
        for text in [
            "",
            "Digest",
            "Digest abc==",
            'Digest username="a" realm="b"',
            "Bearer a b",
            "Bearer a=b=c",
            "Digest uri=sip:a@b",
        ]:
            with self.subTest(text=text):
                self.assertRaises(InvalidValue, parse_credentials, text)

    @given(credentials())
    def test_round_trip(self, value: Credentials) -> None:
        """
        C{parse_credentials(str(c)) == c} for every credentials value.
        """
        self.assertEqual(parse_credentials(str(value)), value)

    @given(credentials().filter(lambda value: value.token68 is None), st.data())
    def test_variants(self, value: Credentials, data: st.DataObject) -> None:
        """
        Whitespace, empty elements, quoting of token values and the case of
        the scheme do not change the credentials.
        """
        scheme = value.scheme
        if scheme == "Digest":
            scheme = data.draw(st.sampled_from(["Digest", "digest", "DIGEST"]))
        self.assertEqual(parse_credentials(_spaced(scheme, value.params, data)), value)

    @given(_odd_text)
    def test_never_crashes(self, text: str) -> None:
        """
        Any text parses or raises L{InvalidValue}; what parses renders to
        text that parses the same.
        """
        try:
            value = parse_credentials(text)
        except InvalidValue:
            return
        self.assertEqual(parse_credentials(str(value)), value)
