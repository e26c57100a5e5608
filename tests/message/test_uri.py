"""
Tests for L{sipstack.message.uri}: the RFC 3261 section 19.1.3 examples, the
section 19.1.4 comparison rules, the URIs of the RFC 4475 and RFC 5118
torture tests, rejection of malformed input, and round-trip properties.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipstack.errors import InvalidValue
from sipstack.message.uri import (
    SIPURI,
    URI,
    AbsoluteURI,
    _AbsoluteURISlots,
    _parse_sip,
    _SIPURISlots,
    parse_sip_uri,
    parse_uri,
)
from sipstack.testing._uri_strategies import absolute_uris, hosts, sip_uris, uris


def _sip(text: str) -> SIPURI:
    uri = parse_uri(text)
    assert isinstance(uri, SIPURI), uri
    return uri


class _Helpers(SynchronousTestCase):
    def assertRoundTrip(self, text: str) -> URI:
        """Parse C{text}, check it serializes back unchanged, and return it."""
        uri = parse_uri(text)
        self.assertEqual(str(uri), text)
        return uri

    def assertRejected(self, *texts: str) -> None:
        """Each of C{texts} raises L{InvalidValue} with a message, and nothing else."""
        for text in texts:
            try:
                uri = parse_uri(text)
            except InvalidValue as e:
                self.assertTrue(str(e), f"no message for {text!r}")
            else:
                self.fail(f"{text!r} was accepted as {uri!r}")

    def assertEquivalent(self, *texts: str) -> None:
        """Every pair of C{texts} is equivalent, both ways."""
        for a in texts:
            for b in texts:
                self.assertTrue(parse_uri(a).equivalent(parse_uri(b)), f"{a} is not equivalent to {b}")

    def assertNotEquivalent(self, a: str, b: str) -> None:
        """C{a} and C{b} are not equivalent, both ways."""
        self.assertFalse(parse_uri(a).equivalent(parse_uri(b)), f"{a} is equivalent to {b}")
        self.assertFalse(parse_uri(b).equivalent(parse_uri(a)), f"{b} is equivalent to {a}")


class RFC3261ExampleTests(_Helpers):
    """
    The examples of RFC 3261 section 19.1.3, each parsed into its parts and
    written back unchanged.
    """

    def test_simple(self) -> None:
        """C{sip:alice@atlanta.com} has a user and a host and nothing else."""
        self.assertEqual(self.assertRoundTrip("sip:alice@atlanta.com"), SIPURI("sip", "atlanta.com", "alice"))

    def test_password_and_transport(self) -> None:
        """A password follows the user after C{:}, and C{transport} is a URI parameter."""
        uri = _sip("sip:alice:secretword@atlanta.com;transport=tcp")
        self.assertEqual((uri.user, uri.password, uri.host), ("alice", "secretword", "atlanta.com"))
        self.assertEqual(uri.parameters, (("transport", "tcp"),))
        self.assertEqual(uri.transport, "tcp")
        self.assertRoundTrip("sip:alice:secretword@atlanta.com;transport=tcp")

    def test_sips_with_headers(self) -> None:
        """Header components are kept in order with their escapes; C{sips:} is secure."""
        uri = _sip("sips:alice@atlanta.com?subject=project%20x&priority=urgent")
        self.assertEqual(uri.scheme, "sips")
        self.assertTrue(uri.secure)
        self.assertEqual(uri.headers, (("subject", "project%20x"), ("priority", "urgent")))
        self.assertRoundTrip("sips:alice@atlanta.com?subject=project%20x&priority=urgent")

    def test_telephone_subscriber(self) -> None:
        """A telephone number user part with a password and C{user=phone}."""
        uri = _sip("sip:+1-212-555-1212:1234@gateway.com;user=phone")
        self.assertEqual((uri.user, uri.password), ("+1-212-555-1212", "1234"))
        self.assertEqual(uri.user_param, "phone")
        self.assertRoundTrip("sip:+1-212-555-1212:1234@gateway.com;user=phone")

    def test_sips_number(self) -> None:
        """C{sips:1212@gateway.com} has a numeric user."""
        self.assertEqual(self.assertRoundTrip("sips:1212@gateway.com"), SIPURI("sips", "gateway.com", "1212"))

    def test_ipv4_host(self) -> None:
        """An IPv4 address is a host."""
        self.assertEqual(self.assertRoundTrip("sip:alice@192.0.2.4"), SIPURI("sip", "192.0.2.4", "alice"))

    def test_no_user_method_and_escaped_header(self) -> None:
        """Without userinfo the user is L{None}; an escaped C{@} in a header does not start userinfo."""
        uri = _sip("sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com")
        self.assertIsNone(uri.user)
        self.assertEqual(uri.host, "atlanta.com")
        self.assertEqual(uri.method, "REGISTER")
        self.assertEqual(uri.headers, (("to", "alice%40atlanta.com"),))
        self.assertRoundTrip("sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com")

    def test_semicolon_in_user(self) -> None:
        """C{;} before the C{@} belongs to the user part, not to the parameters."""
        uri = _sip("sip:alice;day=tuesday@atlanta.com")
        self.assertEqual((uri.user, uri.host, uri.parameters), ("alice;day=tuesday", "atlanta.com", ()))
        self.assertRoundTrip("sip:alice;day=tuesday@atlanta.com")


class EquivalenceTests(_Helpers):
    """
    L{SIPURI.equivalent} follows RFC 3261 section 19.1.4, including every
    example given there.
    """

    def test_rfc_escaped_user_and_case(self) -> None:
        """C{%61lice} is C{alice}; host, parameter name and value compare case-insensitively."""
        self.assertEquivalent("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp")

    def test_rfc_unknown_params_ignored(self) -> None:
        """A parameter other than transport/user/ttl/method/maddr present in one URI only is ignored."""
        self.assertEquivalent("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5")
        self.assertEquivalent("sip:carol@chicago.com", "sip:carol@chicago.com;security=on")
        self.assertEquivalent("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on")

    def test_rfc_parameter_order(self) -> None:
        """The order of parameters does not matter."""
        self.assertEquivalent(
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
        )

    def test_rfc_header_order(self) -> None:
        """The order of header components does not matter."""
        self.assertEquivalent(
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
        )

    def test_rfc_user_case(self) -> None:
        """User parts compare case-sensitively."""
        self.assertNotEquivalent("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP")

    def test_rfc_default_port(self) -> None:
        """An absent port does not match an explicit default port."""
        self.assertNotEquivalent("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060")

    def test_rfc_transport_in_one(self) -> None:
        """A transport parameter present in one URI only prevents a match."""
        self.assertNotEquivalent("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp")

    def test_rfc_port_and_transport(self) -> None:
        """A port and a transport present in one URI only prevent a match."""
        self.assertNotEquivalent("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp")

    def test_rfc_header_in_one(self) -> None:
        """A header component present in one URI only prevents a match."""
        self.assertNotEquivalent("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting")

    def test_rfc_resolved_address(self) -> None:
        """A host does not match the address it resolves to."""
        self.assertNotEquivalent("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4")

    def test_rfc_not_transitive(self) -> None:
        """As the RFC notes, equivalence is not transitive: C{security=on} and C{security=off} differ."""
        self.assertEquivalent("sip:carol@chicago.com", "sip:carol@chicago.com;security=on")
        self.assertEquivalent("sip:carol@chicago.com", "sip:carol@chicago.com;security=off")
        self.assertNotEquivalent("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off")

    def test_scheme(self) -> None:
        """A SIP URI never matches a SIPS URI, nor a URI of another scheme."""
        self.assertNotEquivalent("sip:alice@atlanta.com", "sips:alice@atlanta.com")
        self.assertNotEquivalent("sip:alice@atlanta.com", "tel:alice@atlanta.com")

    def test_strict_params(self) -> None:
        """C{user}, C{ttl}, C{method} and C{maddr} in one URI only prevent a match; C{lr} does not."""
        for param in ("user=phone", "ttl=1", "method=INVITE", "maddr=239.1.1.1"):
            self.assertNotEquivalent("sip:1@gw.example.com", f"sip:1@gw.example.com;{param}")
        self.assertEquivalent("sip:1@gw.example.com", "sip:1@gw.example.com;lr")

    def test_escaped_reserved(self) -> None:
        """An escaped reserved character is not the character itself; escape hex case does not matter."""
        self.assertNotEquivalent("sip:a%3Bb@example.com", "sip:a;b@example.com")
        self.assertEquivalent("sip:a%3Bb@example.com", "sip:a%3bb@example.com")
        self.assertEquivalent("sip:a%7E@example.com", "sip:a~@example.com")

    def test_userinfo_presence(self) -> None:
        """A URI without a user or password does not match one with it."""
        self.assertNotEquivalent("sip:example.com", "sip:alice@example.com")
        self.assertNotEquivalent("sip:alice@example.com", "sip:alice:@example.com")
        self.assertNotEquivalent("sip:alice:Secret@example.com", "sip:alice:secret@example.com")

    def test_ip_textual_forms(self) -> None:
        """IPv6 references match whatever their spelling (RFC 5954 section 4), IPv4 likewise."""
        self.assertEquivalent("sip:[2001:DB8::1]:5060", "sip:[2001:db8:0:0:0:0:0:1]:5060")
        self.assertEquivalent("sip:192.0.2.1", "sip:192.000.002.001")
        self.assertNotEquivalent("sip:[2001:db8::1]", "sip:[2001:db8::2]")

    def test_headers(self) -> None:
        """Header names compare case-insensitively, values case-sensitively after escape normalization."""
        self.assertEquivalent("sip:a@b.example?Subject=hi%7e", "sip:a@b.example?subject=hi~")
        self.assertNotEquivalent("sip:a@b.example?subject=Hi", "sip:a@b.example?subject=hi")

    def test_escaped_param_names(self) -> None:
        """Parameter names compare after unescaping (RFC 4475 section 3.1.1.3)."""
        self.assertEquivalent("sip:a@b.example;%6C%72;n%61me=v%61lue", "sip:a@b.example;lr;name=value")


class TortureTests(_Helpers):
    """
    The URIs of RFC 4475 section 3 and RFC 5118: valid ones parse and write
    back unchanged, invalid ones are rejected.
    """

    def test_esc01(self) -> None:
        """RFC 4475 3.1.1.3: escapes in the user part are kept as written and decode on request."""
        uri = _sip(str(self.assertRoundTrip("sip:sips%3Auser%40example.com@example.net")))
        self.assertEqual((uri.user, uri.host), ("sips%3Auser%40example.com", "example.net"))
        self.assertEqual(uri.user_unescaped, "sips:user@example.com")
        self.assertEqual(_sip("sip:%75se%72@example.com").user_unescaped, "user")
        self.assertEqual(_sip("sip:I%20have%20spaces@example.net").user_unescaped, "I have spaces")

    def test_esc01_contact(self) -> None:
        """RFC 4475 3.1.1.3: escaped parameter names and values; C{%6C%72} is C{lr}."""
        uri = _sip(str(self.assertRoundTrip("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31")))
        self.assertEqual(uri.parameters, (("%6C%72", None), ("n%61me", "v%61lue%25%34%31")))
        self.assertTrue(uri.lr)
        self.assertEqual(uri.param("name"), "v%61lue%25%34%31")
        self.assertEqual(uri.user_unescaped, "caller")

    def test_escnull(self) -> None:
        """RFC 4475 3.1.1.4: escaped NULs are valid and decode to NUL characters."""
        self.assertEqual(_sip("sip:null-%00-null@example.com").user_unescaped, "null-\x00-null")
        self.assertRoundTrip("sip:%00@host5.example.com")
        self.assertRoundTrip("sip:%00%00@host5.example.com")
        self.assertNotEquivalent("sip:%00@host5.example.com", "sip:%00%00@host5.example.com")

    def test_intmeth(self) -> None:
        """RFC 4475 3.1.1.2: every character the user and password productions allow."""
        text = (
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
            ":&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com"
        )
        uri = _sip(str(self.assertRoundTrip(text)))
        self.assertEqual(uri.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        self.assertEqual(uri.password, "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        self.assertEqual((uri.host, uri.parameters, uri.headers), ("example.com", (), ()))

    def test_semiuri(self) -> None:
        """RFC 4475 3.1.1.9: C{;par=u%40example.net} before the C{@} is part of the user."""
        uri = _sip(str(self.assertRoundTrip("sip:user;par=u%40example.net@example.com")))
        self.assertEqual((uri.user, uri.host, uri.parameters), ("user;par=u%40example.net", "example.com", ()))

    def test_longreq(self) -> None:
        """RFC 4475 3.1.1.7: long parameter names and values, and a long valueless one."""
        name = "longparam" + "name" * 25
        text = f"sip:user@example.com:6000;unknownparam1=very{'long' * 20}value;{name}=shortvalue;{'x' * 100}"
        uri = _sip(str(self.assertRoundTrip(text)))
        self.assertEqual(uri.port, 6000)
        self.assertEqual(uri.param(name), "shortvalue")
        self.assertTrue(uri.has_param("x" * 100))

    def test_inv2543(self) -> None:
        """RFC 4475 3.1.1.13: C{user=phone} and C{maddr} as an RFC 2543 client sends them."""
        self.assertEqual(_sip("sip:+13035551111@ift.client.example.net;user=phone").user_param, "phone")
        self.assertEqual(_sip("sip:UserB@example.com;maddr=ss1.example.com").maddr, "ss1.example.com")

    def test_escruri(self) -> None:
        """RFC 4475 3.1.2.11: headers in a Request-URI parse (refusing them is the message layer's job)."""
        uri = _sip(str(self.assertRoundTrip("sip:user@example.com?Route=%3Csip:example.com%3E")))
        self.assertEqual(uri.headers, (("Route", "%3Csip:example.com%3E"),))

    def test_ltgtruri(self) -> None:
        """RFC 4475 3.1.2.7: a Request-URI enclosed in angle brackets is not a URI."""
        self.assertRejected("<sip:user@example.com>")

    def test_lwsruri(self) -> None:
        """RFC 4475 3.1.2.8 and 3.1.2.14: whitespace inside or around a URI is rejected."""
        self.assertRejected("sip:user@example.com; lr", " sip:t.watson@example.org ", "sip:user@example.com ")

    def test_unkscm(self) -> None:
        """RFC 4475 3.3.2: an unknown scheme is kept as an opaque absolute URI, its scheme lower-cased."""
        uri = parse_uri("nobodyKnowsThisScheme:totallyopaquecontent")
        self.assertEqual(uri, AbsoluteURI("nobodyknowsthisscheme", "totallyopaquecontent"))
        self.assertEqual(str(uri), "nobodyknowsthisscheme:totallyopaquecontent")

    def test_novelsc(self) -> None:
        """RFC 4475 3.3.3: a scheme with a dot and a hierarchical part."""
        uri = parse_uri("soap.beep://192.0.2.103:3002")
        self.assertEqual(uri, AbsoluteURI("soap.beep", "//192.0.2.103:3002"))

    def test_unksm2(self) -> None:
        """RFC 4475 3.3.4: unknown schemes in To, From and Contact."""
        for text, scheme in [
            ("isbn:2983792873", "isbn"),
            ("http://www.example.com", "http"),
            ("name:John_Smith", "name"),
        ]:
            uri = self.assertRoundTrip(text)
            self.assertIsInstance(uri, AbsoluteURI)
            self.assertEqual(uri.scheme, scheme)

    def test_rfc5118_ipv6(self) -> None:
        """RFC 5118 4.1, 4.3 and 4.4: IPv6 references, with and without a port."""
        self.assertEqual(_sip("sip:[2001:db8::10]").host, "[2001:db8::10]")
        self.assertEqual(_sip("sip:caller@[2001:db8::42]").host, "[2001:db8::42]")
        ambiguous = _sip("sip:[2001:db8::10:5070]")
        self.assertEqual((ambiguous.host, ambiguous.port), ("[2001:db8::10:5070]", None))
        explicit = _sip("sip:[2001:db8::10]:5070")
        self.assertEqual(
            (explicit.host, explicit.port, explicit.host_port), ("[2001:db8::10]", 5070, "[2001:db8::10]:5070")
        )
        self.assertEqual(_sip("sip:user@[::ffff:192.0.2.10]").host, "[::ffff:192.0.2.10]")
        self.assertRoundTrip("sip:[::1]:5060;transport=tcp")

    def test_rfc5118_ipv6_bad(self) -> None:
        """RFC 5118 4.2: an IPv6 address without brackets is rejected, as are bad references."""
        self.assertRejected("sip:2001:db8::10", "sip:[2001:db8:::10]", "sip:[2001:db8::10", "sip:[::1%25eth0]")


class RejectionTests(_Helpers):
    """
    Malformed input raises L{InvalidValue} naming the fault, never another
    exception.
    """

    def test_not_a_uri(self) -> None:
        """Text without a valid scheme and colon, or with nothing after the colon."""
        self.assertRejected("", "sip", "alice@atlanta.com", "1tel:123", "tel:", ":x", "-x:y", "t el:1")

    def test_no_host(self) -> None:
        """A SIP URI needs a host; the user part may not be empty when C{@} is present."""
        self.assertRejected("sip:", "sips:", "sip:alice@", "sip:@example.com", "sip::pw@example.com", "sip:;lr")

    def test_bad_characters(self) -> None:
        """Whitespace, control characters, C{<>"} and non-ASCII are not allowed."""
        self.assertRejected(
            "sip:al ice@example.com", "sip:alice@exa\tmple.com", "sip:alice@example.com\r\n", 'sip:"a"@example.com'
        )
        self.assertRejected("sip:alice@exämple.com", "sip:ålice@example.com", "tel:1<2", "tel:\x00", "urn:a\x7fb")

    def test_bad_escape(self) -> None:
        """Every C{%} must start two hexadecimal digits."""
        self.assertRejected("sip:a%2@example.com", "sip:a%zz@example.com", "sip:a@example.com;x=%", "tel:%4")

    def test_bad_host(self) -> None:
        """Hostnames follow the grammar; numeric hosts must be IPv4 addresses with octets up to 255."""
        self.assertRejected("sip:-example.com", "sip:example..com", "sip:exa_mple$.com", "sip:a@.com")
        self.assertRejected("sip:999.1.1.1", "sip:256.0.0.1", "sip:1.2.3", "sip:1.2.3.4.5", "sip:1.2.3.4.", "sip:1234")

    def test_bad_ipv6(self) -> None:
        """IPv6 references are checked with the C{ipaddress} module."""
        self.assertRejected("sip:[1::2::3]", "sip:[12345::1]", "sip:[::1", "sip:::1]", "sip:[]", "sip:[1.2.3.4]")

    def test_bad_port(self) -> None:
        """Ports are 0 to 65535 and not empty."""
        self.assertRejected("sip:example.com:", "sip:example.com:65536", "sip:example.com:99999999999999999999")
        self.assertRejected("sip:example.com:5o60", "sip:example.com:-1", "sip:example.com:5060:5060")
        self.assertEqual(_sip("sip:example.com:0").port, 0)
        self.assertEqual(_sip("sip:example.com:65535").port, 65535)

    def test_too_many_ats(self) -> None:
        """C{@} may not appear after the host (it must be escaped in parameters and headers)."""
        self.assertRejected("sip:a@b@example.com", "sip:a@example.com?to=a@b", "sip:a@example.com;x=a@b")

    def test_bad_parameters(self) -> None:
        """Empty names or values, characters outside paramchar, and duplicate names are rejected."""
        self.assertRejected("sip:a@b.example;", "sip:a@b.example;;lr", "sip:a@b.example;x=", "sip:a@b.example;=x")
        self.assertRejected("sip:a@b.example;x=a=b", "sip:a@b.example;x=a,b", "sip:a@b.example;lr;LR")
        self.assertRejected("sip:a@b.example;lr;%6c%72")

    def test_bad_typed_parameters(self) -> None:
        """C{ttl} must be 0 to 255 and C{maddr} a valid host."""
        self.assertRejected("sip:a@b.example;ttl=256", "sip:a@b.example;ttl=x", "sip:a@b.example;ttl=0001")
        self.assertRejected("sip:a@b.example;maddr=a:b", "sip:a@b.example;maddr=[::1", "sip:a@b.example;maddr=1.2.3")

    def test_bad_headers(self) -> None:
        """Header components need a name and C{=}; C{&} separates them."""
        self.assertRejected("sip:a@b.example?", "sip:a@b.example?x", "sip:a@b.example?=x", "sip:a@b.example?x=1&")

    def test_bad_userinfo(self) -> None:
        """Characters outside the user and password productions are rejected."""
        self.assertRejected("sip:a:b:c@example.com", "sip:a:b;c@example.com", "sip:a[b@example.com", "sip:a:#@x.com")

    def test_parse_sip_uri(self) -> None:
        """L{parse_sip_uri} accepts only C{sip:} and C{sips:}."""
        self.assertEqual(parse_sip_uri("SIPS:a@b.example"), SIPURI("sips", "b.example", "a"))
        self.assertRaises(InvalidValue, parse_sip_uri, "tel:+1234")
        self.assertRaises(InvalidValue, parse_sip_uri, "sip:a b")

    def test_message_is_safe(self) -> None:
        """The message quotes the input, so a CR or LF cannot reach a reason phrase raw."""
        with self.assertRaises(InvalidValue) as caught:
            parse_uri("sip:a@b\r\nVia: x")
        self.assertNotIn("\r", str(caught.exception))
        self.assertNotIn("\n", str(caught.exception))


class LenientTests(_Helpers):
    """
    The odd-but-harmless input accepted on purpose.
    """

    def test_scheme_case(self) -> None:
        """The scheme is case-insensitive and lower-cased."""
        self.assertEqual(_sip("SIP:alice@atlanta.com"), _sip("sip:alice@atlanta.com"))
        self.assertEqual(_sip("Sips:alice@atlanta.com").scheme, "sips")
        self.assertEqual(parse_uri("TEL:+1"), AbsoluteURI("tel", "+1"))

    def test_hash_in_user(self) -> None:
        """An unescaped C{#} in the user part (a dialled service code) is accepted."""
        self.assertEqual(
            self.assertRoundTrip("sip:*31#5551234@pbx.example.com"), SIPURI("sip", "pbx.example.com", "*31#5551234")
        )

    def test_empty_password_and_header_value(self) -> None:
        """The grammar allows an empty password and an empty header value."""
        uri = _sip(str(self.assertRoundTrip("sip:alice:@atlanta.com?subject=")))
        self.assertEqual((uri.password, uri.headers), ("", (("subject", ""),)))

    def test_hostnames(self) -> None:
        """Underscores, a trailing dot and numeric labels before an alphabetic top label."""
        for host in ("_sip._udp.example.com", "example.com.", "123.example.com", "a", "0.0.0.0"):
            self.assertEqual(_sip(f"sip:{host}").host, host)

    def test_lr_with_value(self) -> None:
        """C{lr=on}, as sent by some older proxies, still marks a loose router."""
        self.assertTrue(_sip("sip:p.example.com;lr=on").lr)


class AccessorTests(SynchronousTestCase):
    """
    The typed accessors and parameter editing of L{SIPURI}.
    """

    def test_param_lookup(self) -> None:
        """L{SIPURI.param} matches names case-insensitively; flags and absent ones give L{None}."""
        uri = _sip("sip:a@b.example;Transport=TCP;lr;X-Foo=Bar")
        self.assertEqual(uri.param("transport"), "TCP")
        self.assertEqual(uri.param("x-foo"), "Bar")
        self.assertIsNone(uri.param("lr"))
        self.assertIsNone(uri.param("maddr"))
        self.assertTrue(uri.has_param("LR"))
        self.assertFalse(uri.has_param("maddr"))

    def test_typed_properties(self) -> None:
        """transport and user are lower-cased, ttl is an int, method and maddr are as written."""
        uri = _sip("sips:a@b.example;transport=TLS;user=Phone;ttl=15;method=INVITE;maddr=239.255.255.1;lr")
        self.assertEqual((uri.transport, uri.user_param, uri.ttl), ("tls", "phone", 15))
        self.assertEqual((uri.method, uri.maddr, uri.lr, uri.secure), ("INVITE", "239.255.255.1", True, True))
        bare = _sip("sip:b.example")
        self.assertEqual((bare.transport, bare.user_param, bare.ttl, bare.method, bare.maddr), (None,) * 5)
        self.assertEqual(
            (bare.lr, bare.secure, bare.user_unescaped, bare.password_unescaped), (False, False, None, None)
        )

    def test_unescaped(self) -> None:
        """Escapes decode as UTF-8, with surrogateescape for bytes that are not UTF-8."""
        uri = _sip("sip:J%C3%BCrgen:p%40ss%FF@b.example")
        self.assertEqual(uri.user_unescaped, "Jürgen")
        self.assertEqual(uri.password_unescaped, "p@ss\udcff")

    def test_host_port(self) -> None:
        """L{SIPURI.host_port} adds the port only when present."""
        self.assertEqual(_sip("sip:a@b.example").host_port, "b.example")
        self.assertEqual(_sip("sip:a@[::1]:5061").host_port, "[::1]:5061")

    def test_with_param(self) -> None:
        """L{SIPURI.with_param} appends a new parameter or replaces an existing one in place."""
        uri = _sip("sip:a@b.example;Transport=udp;x=1")
        self.assertEqual(str(uri.with_param("lr")), "sip:a@b.example;Transport=udp;x=1;lr")
        self.assertEqual(str(uri.with_param("transport", "tcp")), "sip:a@b.example;transport=tcp;x=1")
        self.assertEqual(str(uri.with_param("x")), "sip:a@b.example;Transport=udp;x")

    def test_without_param(self) -> None:
        """L{SIPURI.without_param} removes a parameter whatever its case, and ignores absent ones."""
        uri = _sip("sip:a@b.example;Transport=udp;lr")
        self.assertEqual(str(uri.without_param("transport")), "sip:a@b.example;lr")
        self.assertEqual(uri.without_param("maddr"), uri)

    def test_bad_param_edit(self) -> None:
        """Editing parameters cannot produce an invalid URI."""
        uri = _sip("sip:a@b.example;lr")
        for name, value in [("x", ""), ("a b", None), ("x", "a;b"), ("ttl", "300"), ("m%", None), ("maddr", "a@b")]:
            self.assertRaises(InvalidValue, uri.with_param, name, value)


class ConstructionTests(SynchronousTestCase):
    """
    Building L{SIPURI} and L{AbsoluteURI} values directly checks them against
    the grammar.
    """

    def test_replace(self) -> None:
        """L{SIPURI.replace} changes the named fields and keeps the others."""
        uri = _sip("sip:alice@atlanta.com;transport=tcp")
        changed = uri.replace(scheme="sips", port=5061, user=None)
        self.assertEqual(str(changed), "sips:atlanta.com:5061;transport=tcp")
        self.assertEqual(str(uri), "sip:alice@atlanta.com;transport=tcp")

    def test_invalid_fields(self) -> None:
        """Each invalid field raises L{InvalidValue}."""
        uri = SIPURI("sip", "example.com")
        bad: list[Callable[[], object]] = [
            lambda: uri.replace(scheme="SIP"),
            lambda: uri.replace(scheme="tel"),
            lambda: uri.replace(host=""),
            lambda: uri.replace(host="a b"),
            lambda: uri.replace(host="[::g]"),
            lambda: uri.replace(host="999.0.0.1"),
            lambda: uri.replace(user=""),
            lambda: uri.replace(user="a@b"),
            lambda: uri.replace(user="a:b"),
            lambda: uri.replace(password="x"),
            lambda: uri.replace(port=65536),
            lambda: uri.replace(port=-1),
            lambda: uri.replace(parameters=(("a", ""),)),
            lambda: uri.replace(parameters=(("a=b", "c"),)),
            lambda: uri.replace(parameters=(("lr", None), ("LR", None))),
            lambda: uri.replace(headers=(("", "x"),)),
            lambda: uri.replace(headers=(("a", "b&c=d"),)),
        ]
        for build in bad:
            self.assertRaises(InvalidValue, build)

    def test_absolute_uri(self) -> None:
        """L{AbsoluteURI} needs a lower-case scheme other than sip/sips and opaque text without spaces."""
        self.assertEqual(str(AbsoluteURI("tel", "+1-201-555-0123")), "tel:+1-201-555-0123")
        for scheme, opaque in [("TEL", "1"), ("sip", "a@b"), ("sips", "a@b"), ("1x", "1"), ("tel", ""), ("tel", "a b")]:
            self.assertRaises(InvalidValue, AbsoluteURI, scheme, opaque)

    def test_structural_equality(self) -> None:
        """C{==} and hashing compare the text as written, unlike L{SIPURI.equivalent}."""
        self.assertNotEqual(_sip("sip:%61@b.example"), _sip("sip:a@b.example"))
        self.assertEqual(
            hash(_sip("sip:a@b.example;lr")), hash(SIPURI("sip", "b.example", "a", parameters=(("lr", None),)))
        )


class AddressOfRecordTests(SynchronousTestCase):
    """
    L{SIPURI.address_of_record} gives the registrar key of RFC 3261 section
    10.3 step 5.
    """

    def test_strips(self) -> None:
        """Parameters, headers and password go; scheme, user, host and port stay."""
        uri = _sip("sips:alice:pw@Atlanta.COM:5061;transport=tls;lr?subject=x")
        self.assertEqual(str(uri.address_of_record()), "sips:alice@atlanta.com:5061")

    def test_canonical_escapes(self) -> None:
        """Users that unescape to the same text give the same key, escaped only where needed."""
        keys = {str(_sip(text).address_of_record()) for text in ("sip:%61lice@a.example", "sip:alice@A.example")}
        self.assertEqual(keys, {"sip:alice@a.example"})
        self.assertEqual(str(_sip("sip:a%3bb%20c%2A@a.example").address_of_record()), "sip:a;b%20c*@a.example")
        self.assertEqual(
            str(_sip("sip:sips%3auser%40x@a.example").address_of_record()), "sip:sips%3Auser%40x@a.example"
        )

    def test_host_forms(self) -> None:
        """IPv6 references take their compressed form; a URI without user keeps none."""
        self.assertEqual(str(_sip("sip:[2001:DB8:0::1]").address_of_record()), "sip:[2001:db8::1]")


class PropertyTests(SynchronousTestCase):
    """
    Properties over generated URIs and arbitrary text.
    """

    @given(uris())
    def test_round_trip(self, uri: URI) -> None:
        """Parsing the text of a generated URI gives it back, and that text is a fixed point."""
        self.assertEqual(parse_uri(str(uri)), uri)
        self.assertEqual(str(parse_uri(str(uri))), str(uri))

    @given(st.text(max_size=60))
    def test_arbitrary_text(self, text: str) -> None:
        """Any text gives a URI or L{InvalidValue}, nothing else."""
        try:
            uri = parse_uri(text)
        except InvalidValue:
            return
        self.assertEqual(str(uri), str(parse_uri(str(uri))))

    @given(st.text(alphabet="sip:@;=?&%[]:.0123456789abcdefABCDEF#-_!~*'()/+$,", max_size=40).map(lambda t: "sip:" + t))
    def test_arbitrary_sip_text(self, text: str) -> None:
        """Text that starts like a SIP URI and uses only its punctuation gives a URI or L{InvalidValue}."""
        try:
            uri = parse_uri(text)
        except InvalidValue:
            return
        self.assertIsInstance(uri, SIPURI)
        self.assertEqual(parse_uri(str(uri)), uri)

    @given(uris())
    def test_reflexive(self, uri: URI) -> None:
        """Every URI is equivalent to itself."""
        self.assertTrue(uri.equivalent(uri))

    @given(uris(), uris())
    def test_symmetric(self, a: URI, b: URI) -> None:
        """Equivalence is symmetric."""
        self.assertEqual(a.equivalent(b), b.equivalent(a))

    @given(sip_uris(), st.data())
    def test_symmetric_variants(self, uri: SIPURI, data: st.DataObject) -> None:
        """Case and parameter-order variants of one URI are equivalent both ways."""
        variant = uri.replace(
            host=uri.host.upper(),
            parameters=tuple(data.draw(st.permutations(uri.parameters))),
            headers=uri.headers[::-1],
        )
        self.assertTrue(uri.equivalent(variant))
        self.assertTrue(variant.equivalent(uri))

    @given(sip_uris())
    def test_address_of_record(self, uri: SIPURI) -> None:
        """The address of record is a fixed point and has no parameters, headers or password."""
        aor = uri.address_of_record()
        self.assertEqual(aor.address_of_record(), aor)
        self.assertEqual((aor.parameters, aor.headers, aor.password), ((), (), None))

    @given(hosts())
    def test_hosts(self, host: str) -> None:
        """Every generated host is accepted as a host and as an maddr."""
        self.assertEqual(_sip(f"sip:{host};maddr={host}").maddr, host)

    @given(absolute_uris())
    def test_absolute(self, uri: AbsoluteURI) -> None:
        """Generated absolute URIs are never taken for SIP URIs."""
        self.assertIsInstance(parse_uri(str(uri)), AbsoluteURI)


def _careful(text: str) -> SIPURI:
    """Parse a C{sip:} or C{sips:} URI on the careful path alone, as L{parse_uri} does when its fast path fails."""
    if text[:4].lower() == "sip:":
        return _parse_sip(text, "sip", 4)
    return _parse_sip(text, "sips", 5)


def _outcome(parse: Callable[[str], URI], text: str) -> object:
    """What C{parse} makes of C{text}: the URI with its exact type, or the message of the L{InvalidValue}."""
    try:
        uri = parse(text)
    except InvalidValue as e:
        return str(e)
    return (type(uri), uri, hash(uri))


class FastPathTests(_Helpers):
    """
    L{parse_uri} takes a fast path for the common SIP URIs and falls back to
    the careful path for everything else; the two must agree on every input,
    down to the error message, and the fast path must build true L{SIPURI}
    and L{AbsoluteURI} values.
    """

    def assertSameAsCareful(self, *texts: str) -> None:
        """Each of C{texts} parses, or fails with the same message, with and without the fast path."""
        for text in texts:
            self.assertEqual(_outcome(parse_uri, text), _outcome(_careful, text), text)

    def test_slot_layout(self) -> None:
        """The classes the fast path fills in have the slots of the classes it turns them into."""
        self.assertEqual(sorted(_SIPURISlots.__slots__), sorted(f.name for f in dataclasses.fields(SIPURI)))
        self.assertEqual(sorted(_SIPURISlots.__slots__), sorted(SIPURI.__slots__))
        self.assertEqual(_SIPURISlots.__basicsize__, SIPURI.__basicsize__)
        self.assertEqual(sorted(_AbsoluteURISlots.__slots__), sorted(f.name for f in dataclasses.fields(AbsoluteURI)))
        self.assertEqual(sorted(_AbsoluteURISlots.__slots__), sorted(AbsoluteURI.__slots__))
        self.assertEqual(_AbsoluteURISlots.__basicsize__, AbsoluteURI.__basicsize__)

    def test_true_values(self) -> None:
        """Fast-path values have the exact type, equality, hash and immutability of constructed ones."""
        uri = parse_uri("sip:alice:pw@atlanta.example.com:5060;transport=tcp;lr?subject=x")
        built = SIPURI(
            "sip", "atlanta.example.com", "alice", "pw", 5060, (("transport", "tcp"), ("lr", None)), (("subject", "x"),)
        )
        self.assertIs(type(uri), SIPURI)
        self.assertEqual(uri, built)
        self.assertEqual(hash(uri), hash(built))
        self.assertEqual(repr(uri), repr(built))
        self.assertRaises(dataclasses.FrozenInstanceError, setattr, uri, "host", "x")
        tel = parse_uri("tel:+1-201-555-0123")
        self.assertIs(type(tel), AbsoluteURI)
        self.assertEqual(
            (tel, hash(tel)), (AbsoluteURI("tel", "+1-201-555-0123"), hash(AbsoluteURI("tel", "+1-201-555-0123")))
        )
        self.assertRaises(dataclasses.FrozenInstanceError, setattr, tel, "opaque", "x")

    def test_common_uris(self) -> None:
        """The URIs of everyday messages parse as on the careful path."""
        self.assertSameAsCareful(
            "sip:alice@atlanta.example.com;transport=tcp",
            "sip:bob@biloxi.example.com",
            "sip:alice@192.0.2.101:5060",
            "sip:p1.atlanta.example.com;lr",
            "sips:[2001:db8::1]:5061;lr",
            "sip:+12125551212@gw.example.net;user=phone",
            "sip:p1.example.com;transport=tcp;lr",
            "sip:alice:secret@atlanta.example.com?subject=hi&priority=urgent",
        )

    def test_ports(self) -> None:
        """Up to five digits and 65535, leading zeros allowed, as the careful path decides."""
        self.assertEqual(_sip("sip:example.com:05060").port, 5060)
        self.assertEqual(_sip("sip:example.com:00000").port, 0)
        self.assertRejected("sip:example.com:000000", "sip:example.com:65536", "sip:example.com:70000")
        self.assertSameAsCareful(
            *(f"sip:a@example.com:{port};lr" for port in ("0", "9", "65535", "65536", "65540", "99999"))
        )
        self.assertSameAsCareful("sip:a@example.com:06553", "sip:a@example.com:000000", "sip:a@example.com:123456")

    def test_numeric_hosts(self) -> None:
        """Dotted quads with octets up to 255 (leading zeros allowed); other numeric hosts are rejected."""
        for host in ("0.0.0.0", "255.255.255.255", "001.002.003.004", "199.249.250.9", "1.2.3.4.example.com", "1-2.3"):
            self.assertEqual(_sip(f"sip:{host}:5060").host, host)
        self.assertRejected("sip:256.0.0.1", "sip:1.260.0.1", "sip:1.2.3.300", "sip:1.2.3.4.", "sip:0001.2.3.4")
        self.assertSameAsCareful("sip:a@256.0.0.1", "sip:a@1.2.3.4.5", "sip:1.2.3", "sip:a@0.0.0.0;lr", "sip:9")

    def test_ipv6_references(self) -> None:
        """Every spelling of an IPv6 reference is judged as the C{ipaddress} module judges it."""
        valid = ["::", "::1", "1::", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1::8", "1:2:3::6:7:8"]
        valid += ["1::3:4:5:6:7:8", "1:2:3:4:5:6::8", "::ffff:192.0.2.10", "ABCD:ef01::1", "0000:0:0:0:0:0:0:0001"]
        invalid = ["1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "1::2::3", ":1::2", "1::2:", "12345::1", "1:2:3:4:5:6:7:8::"]
        invalid += ["::1:2:3:4:5:6:7:8", "1:2:3:4::5:6:7:8", ":", ":::", "1.2.3.4", "::1.2.3", "g::1"]
        for address in valid:
            self.assertEqual(_sip(f"sip:[{address}]:5061;lr").host, f"[{address}]")
        self.assertRejected(*(f"sip:[{address}]" for address in invalid))
        self.assertSameAsCareful(*(f"sips:a@[{address}]" for address in valid + invalid))

    @given(st.text(alphabet="0123456789abcdefABCDEF:", max_size=42))
    def test_ipv6_property(self, address: str) -> None:
        """A hexadecimal reference is accepted exactly when the C{ipaddress} module accepts the address."""
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            self.assertRejected(f"sip:[{address}]")
        else:
            self.assertEqual(_sip(f"sip:[{address}]").host, f"[{address}]")
        self.assertSameAsCareful(f"sip:[{address}]:5060")

    def test_one_or_two_parameters(self) -> None:
        """Duplicates and typed values are checked whether there are one, two or more parameters."""
        self.assertEqual(_sip("sip:a.example;ttl").parameters, (("ttl", None),))
        self.assertEqual(_sip("sip:a.example;TTL=5;lr").ttl, 5)
        self.assertEqual(_sip("sip:a.example;lr;maddr=239.1.1.1").maddr, "239.1.1.1")
        self.assertRejected("sip:a.example;lr;LR", "sip:a.example;ttl=300", "sip:a.example;lr;ttl=1000")
        self.assertRejected("sip:a.example;maddr=a:b", "sip:a.example;lr;Maddr=[::1]:5", "sip:a.example;a;b;A")
        self.assertSameAsCareful(
            "sip:a.example;lr;LR",
            "sip:a.example;Lr;lr=on",
            "sip:a.example;ttl=300",
            "sip:a.example;lr;ttl=0001",
            "sip:a.example;maddr=a:b;lr",
            "sip:a.example;lr;maddr=1.2.3",
            "sip:a.example;a=1;b=2;c=3;B",
            "sip:a.example;a=1;b=2;c=3",
            "sip:a.example;ttl;maddr",
            "sip:a.example;x=[::1];y=/+$&:",
        )

    def test_not_fast(self) -> None:
        """Input the fast pattern leaves alone still parses, or fails, as on the careful path."""
        self.assertSameAsCareful(
            "SIP:alice@atlanta.com",
            "Sips:alice@atlanta.com",
            "sip:%61lice@atlanta.com;n%61me=v%61lue?subject=project%20x",
            "sip:a%2@example.com",
            "sip:a@example.com;x=%",
            "sip:alice@example.com.",
            "sip:-example.com",
            "sip:a..b.example",
            "sip:a.-b.example",
            "sip:a-.example",
            "sip:a@b.example-",
            "sip:a@b.example..",
            "sip:a@.example",
            "sip:a@b@example.com",
            "sip:a@example.com?to=a@b",
            "sip:user@example.com ",
            "sip:alice@exämple.com",
        )

    @given(uris())
    def test_generated_uris(self, uri: URI) -> None:
        """Generated URIs parse as on the careful path."""
        if isinstance(uri, SIPURI):
            self.assertSameAsCareful(str(uri))

    @given(st.text(alphabet="sip:@;=?&%[]:.0123456789abcdefABCDEF#-_!~*'()/+$, lrtLR", max_size=40))
    def test_arbitrary_sip_text(self, text: str) -> None:
        """Text that starts like a SIP URI parses, or fails with the same message, as on the careful path."""
        self.assertSameAsCareful("sip:" + text, "sips:" + text)
