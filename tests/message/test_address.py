"""
Tests for L{sipstack.message.address}: name-addr and addr-spec forms from
RFC 3261 section 20 and the RFC 4475 torture tests, the Contact parameters,
the wildcard, rejection of malformed input and round-trip properties.
"""

from __future__ import annotations

import contextlib
import dataclasses

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipstack.errors import InvalidValue
from sipstack.message.address import (
    WILDCARD,
    NameAddress,
    Wildcard,
    _NameAddressSlots,
    parse_contact_value,
    parse_name_address,
    parse_name_address_list,
)
from sipstack.message.uri import AbsoluteURI, parse_uri
from sipstack.message.values import is_token, quote
from sipstack.testing._header_strategies import name_addresses


def _address(uri: str, display_name: str | None = None, *params: tuple[str, str | None]) -> NameAddress:
    return NameAddress(parse_uri(uri), display_name, params)


_odd_text = st.one_of(
    st.text(max_size=60),
    st.lists(
        st.sampled_from(
            ['"', "\\", "<", ">", ",", ";", "=", " ", "\t", "*", "sip:a@b", "Bob", "tag", "1", "?", ":", "\x00", "é"]
        ),
        max_size=25,
    ).map("".join),
)


class ParseNameAddressTests(SynchronousTestCase):
    """
    Tests for L{parse_name_address}.
    """

    def test_quoted_display_name(self) -> None:
        """
        A quoted display name, a URI in angle brackets and a tag.
        """
        self.assertEqual(
            parse_name_address('"Alice" <sip:alice@atlanta.example.com>;tag=1928301774'),
            _address("sip:alice@atlanta.example.com", "Alice", ("tag", "1928301774")),
        )

    def test_rfc3261_from_examples(self) -> None:
        """
        The From examples of RFC 3261 section 20.20: quoted and token display
        names, whitespace before C{;}, and a bare addr-spec whose C{;tag} is a
        header parameter.
        """
        self.assertEqual(
            parse_name_address('"A. G. Bell" <sip:agb@bell-telephone.com> ;tag=a48s'),
            _address("sip:agb@bell-telephone.com", "A. G. Bell", ("tag", "a48s")),
        )
        self.assertEqual(
            parse_name_address("sip:+12125551212@server.phone2net.com;tag=887s"),
            _address("sip:+12125551212@server.phone2net.com", None, ("tag", "887s")),
        )
        self.assertEqual(
            parse_name_address("Anonymous <sip:c8oqz84zk7z@privacy.org>;tag=hyh8"),
            _address("sip:c8oqz84zk7z@privacy.org", "Anonymous", ("tag", "hyh8")),
        )

    def test_rfc3261_to_example(self) -> None:
        """
        RFC 3261 section 20.39: a display name of several tokens.
        """
        address = parse_name_address("The Operator <sip:operator@cs.columbia.edu>;tag=287447")
        self.assertEqual(address.display_name, "The Operator")
        self.assertEqual(address.tag, "287447")

    def test_addr_spec_params_belong_to_header(self) -> None:
        """
        Outside angle brackets, everything after the first C{;} is a header
        parameter (RFC 3261 section 20.10), even a URI parameter name.
        """
        address = parse_name_address("sip:alice@atlanta.com;transport=tcp;tag=1")
        self.assertEqual(str(address.uri), "sip:alice@atlanta.com")
        self.assertEqual(address.params, (("transport", "tcp"), ("tag", "1")))
        inside = parse_name_address("<sip:alice@atlanta.com;transport=tcp>;tag=1")
        self.assertEqual(str(inside.uri), "sip:alice@atlanta.com;transport=tcp")

    def test_rfc4475_wsinv(self) -> None:
        """
        RFC 4475 section 3.1.1.1: whitespace before and inside the parameters
        of an addr-spec, an escaped quote and backslash in a display name, and
        whitespace everywhere around a name-addr's parameters.
        """
        self.assertEqual(
            parse_name_address("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n"),
            _address("sip:vivekg@chair-dnrc.example.com", None, ("tag", "1918181833n")),
        )
        self.assertEqual(
            parse_name_address('"J Rosenberg \\\\\\""       <sip:jdrosen@example.com>   ;   tag = 98asjd8'),
            _address("sip:jdrosen@example.com", 'J Rosenberg \\"', ("tag", "98asjd8")),
        )
        self.assertEqual(
            parse_name_address_list(
                '"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =       newvalue ;   '
                "secondparam ; q = 0.33"
            ),
            [
                _address(
                    "sip:jdrosen@example.com",
                    'Quoted string ""',
                    ("newparam", "newvalue"),
                    ("secondparam", None),
                    ("q", "0.33"),
                )
            ],
        )

    def test_rfc4475_intmeth(self) -> None:
        """
        RFC 4475 section 3.1.1.2: escaped control characters in a quoted
        display name, a URI user part full of odd characters (including
        C{?}, C{,} and C{;}, allowed inside angle brackets), a display name of
        unusual tokens and parameters of unusual tokens with a UTF-8 value.
        """
        to = parse_name_address(
            '"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:1_unusual.URI~(to-be!sure)&isn\'t+it$/crazy?,/;;*@example.com>'
        )
        self.assertEqual(to.display_name, "BEL:\x07 NUL:\x00 DEL:\x7f")
        self.assertEqual(to.uri, parse_uri("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com"))
        from_ = parse_name_address(
            "token1~` token2'+_ token3*%!.- <sip:mundane@example.com>"
            ";fromParam''~+*_!.-%=\"\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439\""
            ";tag=_token~1'+`*%!-."
        )
        self.assertEqual(from_.display_name, "token1~` token2'+_ token3*%!.-")
        self.assertEqual(from_.tag, "_token~1'+`*%!-.")
        self.assertEqual(from_.param("fromparam''~+*_!.-%"), '"работающий"')

    def test_rfc4475_lwsdisp(self) -> None:
        """
        RFC 4475 section 3.1.1.6: no whitespace between the display name and
        C{<} is valid.
        """
        self.assertEqual(
            parse_name_address("caller<sip:caller@example.com>;tag=323"),
            _address("sip:caller@example.com", "caller", ("tag", "323")),
        )

    def test_rfc4475_escapes(self) -> None:
        """
        RFC 4475 sections 3.1.1.3 to 3.1.1.5: C{%} in a quoted display name is
        text; escaped nulls in an addr-spec's URI are kept.
        """
        self.assertEqual(parse_name_address('"%Z%45" <sip:resource@example.com>').display_name, "%Z%45")
        self.assertEqual(str(parse_name_address("sip:null-%00-null@example.com").uri), "sip:null-%00-null@example.com")

    def test_ipv6(self) -> None:
        """
        RFC 5118: an IPv6 reference in the URI.
        """
        address = parse_name_address('"Caller" <sip:caller@[2001:db8::1]>;tag=1')
        self.assertEqual(str(address), "Caller <sip:caller@[2001:db8::1]>;tag=1")

    def test_other_scheme(self) -> None:
        """
        Any absolute URI may be an address (RFC 3261 section 20.10 has a
        C{mailto:} Contact); a bare C{tel:} URI loses its parameters to the
        header, as the grammar says.
        """
        self.assertEqual(
            parse_name_address('"Mr. Watson" <mailto:watson@bell-telephone.com> ;q=0.1').uri,
            AbsoluteURI("mailto", "watson@bell-telephone.com"),
        )
        address = parse_name_address("tel:+1-201-555-0123;phone-context=x")
        self.assertEqual(address.uri, AbsoluteURI("tel", "+1-201-555-0123"))
        self.assertEqual(address.params, (("phone-context", "x"),))

    def test_display_name_whitespace(self) -> None:
        """
        The words of a token display name are joined by single spaces; an
        empty quoted display name is the empty string, an absent one L{None}.
        """
        self.assertEqual(parse_name_address("Bob \t  Smith   <sip:b@c>").display_name, "Bob Smith")
        self.assertEqual(parse_name_address('"" <sip:b@c>').display_name, "")
        self.assertIsNone(parse_name_address("  <sip:b@c>").display_name)

    def test_escaped_display_name(self) -> None:
        """
        The quoted-pairs of a quoted display name are undone, with or without
        whitespace around the angle brackets; text with a backslash before a
        line break is refused.
        """
        for text in ['"A \\"B\\" \\\\ C" <sip:a@b>;tag=1', ' "A \\"B\\" \\\\ C"  <sip:a@b> ;tag=1']:
            with self.subTest(text=text):
                self.assertEqual(parse_name_address(text), _address("sip:a@b", 'A "B" \\ C', ("tag", "1")))
        self.assertRaises(InvalidValue, parse_name_address, '"A\\\n" <sip:a@b>')

    def test_many_params(self) -> None:
        """
        Header parameters are kept in order however many there are, flags
        with the value L{None}.
        """
        params: tuple[tuple[str, str | None], ...] = (("tag", "1"), ("lr", None), ("q", "0.5"), ("x", None))
        for count in range(len(params) + 1):
            text = "Bob <sip:b@c>" + "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params[:count])
            with self.subTest(text=text):
                self.assertEqual(parse_name_address(text), _address("sip:b@c", "Bob", *params[:count]))
                self.assertEqual(parse_contact_value(text), [_address("sip:b@c", "Bob", *params[:count])])

    def test_commas_inside(self) -> None:
        """
        Commas inside the quoted display name or the angle brackets do not
        make a list.
        """
        for parse in (parse_name_address, lambda text: parse_name_address_list(text)[0]):
            with self.subTest(parse=parse):
                self.assertEqual(
                    parse('"Bell, A." <sip:a,b@c;x=1>;tag=3'), _address("sip:a,b@c;x=1", "Bell, A.", ("tag", "3"))
                )
        self.assertEqual(parse_contact_value('"*, x" <sip:a*b@c>'), [_address("sip:a*b@c", "*, x")])

    def test_slots_layout(self) -> None:
        """
        C{_NameAddressSlots}, which the parser fills in before making it a
        L{NameAddress}, has exactly the slots of L{NameAddress}.
        """
        self.assertEqual(sorted(_NameAddressSlots.__slots__), sorted(f.name for f in dataclasses.fields(NameAddress)))
        self.assertEqual(sorted(_NameAddressSlots.__slots__), sorted(NameAddress.__slots__))
        self.assertEqual(_NameAddressSlots.__basicsize__, NameAddress.__basicsize__)

    def test_true_values(self) -> None:
        """
        Parsed values, canonical or not, have the exact type, equality, hash
        and immutability of constructed ones.
        """
        built = _address("sip:alice@atlanta.example.com", "Alice", ("tag", "1928301774"))
        for text in [
            '"Alice" <sip:alice@atlanta.example.com>;tag=1928301774',
            "Alice\t<sip:alice@atlanta.example.com> ; tag = 1928301774",
        ]:
            with self.subTest(text=text):
                address = parse_name_address(text)
                self.assertIs(type(address), NameAddress)
                self.assertEqual(address, built)
                self.assertEqual(hash(address), hash(built))
                self.assertRaises(AttributeError, setattr, address, "display_name", "x")
                self.assertEqual(address.replace(display_name=None), built.replace(display_name=None))

    def test_list_refused(self) -> None:
        """
        A header that holds one address refuses a list; RFC 4475 section
        3.1.2.15 (an unquoted comma in a display name) is one.
        """
        for text in ["Bell, Alexander <sip:a.g.bell@example.com>;tag=43", "<sip:a@b>, <sip:c@d>"]:
            with self.subTest(text=text):
                self.assertRaises(InvalidValue, parse_name_address, text)
        self.assertEqual(parse_name_address('"Bell, Alexander" <sip:a@b>').display_name, "Bell, Alexander")

    def test_malformed(self) -> None:
        """
        Malformed addresses raise L{InvalidValue}: an unterminated quoted
        display name (RFC 4475 section 3.1.2.6), whitespace inside the angle
        brackets (section 3.1.2.14), an addr-spec with headers (section
        3.1.2.13), a quoted display name without angle brackets, a bad URI,
        bad parameters, nothing at all.
        """
        for text in [
            "",
            "  ",
            '"Mr. J. User <sip:j.user@example.com>',
            '"Watson, Thomas" < sip:t.watson@example.org >',
            "<sip:a@b >",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            '"Bob" sip:bob@example.com',
            "Bob sip:bob@example.com",
            "<sip:a@b",
            "sip:a@b>",
            "<>",
            "<sip:a@b><sip:c@d>",
            "<not a uri>",
            "nouri",
            "<sip:a@b>;",
            "<sip:a@b> tag=1",
            "<sip:a@b>;tag=a b",
            "Bob <sip:a@b>\r\n",
            "B@b <sip:a@b>",
            "*",
        ]:
            with self.subTest(text=text):
                self.assertRaises(InvalidValue, parse_name_address, text)

    @given(name_addresses())
    def test_round_trip(self, address: NameAddress) -> None:
        """
        C{parse_name_address(str(a)) == a} for every address.
        """
        self.assertEqual(parse_name_address(str(address)), address)

    @given(name_addresses(), st.data())
    def test_variants(self, address: NameAddress, data: st.DataObject) -> None:
        """
        Whitespace variants (around C{<}, C{;} and C{=}, between display name
        words) and a quoted spelling of a token display name parse to the same
        value.
        """
        space = st.sampled_from(["", " ", "\t", "  "])
        name = address.display_name
        text = data.draw(space)
        if name is not None:
            words = name.split(" ")
            if all(is_token(word) for word in words) and data.draw(st.booleans()):
                text += data.draw(st.sampled_from([" ", "\t", "   "])).join(words)
            else:
                text += quote(name)
            text += data.draw(space)
        text += f"<{address.uri}>"
        for param_name, value in address.params:
            text += f"{data.draw(space)};{data.draw(space)}{param_name}"
            if value is not None:
                text += f"{data.draw(space)}={data.draw(space)}{value}"
        self.assertEqual(parse_name_address(text + data.draw(space)), address)

    @given(_odd_text)
    def test_never_crashes(self, text: str) -> None:
        """
        Any text parses or raises L{InvalidValue}; parsed values render to
        text that parses the same.
        """
        try:
            address = parse_name_address(text)
        except InvalidValue:
            return
        self.assertEqual(parse_name_address(str(address)), address)


class ParseNameAddressListTests(SynchronousTestCase):
    """
    Tests for L{parse_name_address_list} and L{parse_contact_value}.
    """

    def test_rfc3261_contact(self) -> None:
        """
        The Contact example of RFC 3261 section 20.10: two addresses with
        display names containing C{.}, q and expires, whitespace before C{;}.
        """
        contacts = parse_name_address_list(
            '"Mr. Watson" <sip:watson@worcester.bell-telephone.com>;q=0.7; expires=3600, '
            '"Mr. Watson" <mailto:watson@bell-telephone.com> ;q=0.1'
        )
        self.assertEqual([contact.q for contact in contacts], [0.7, 0.1])
        self.assertEqual([contact.expires for contact in contacts], [3600, None])

    def test_rfc3261_route(self) -> None:
        """
        The Route example of RFC 3261 section 20.34.
        """
        routes = parse_name_address_list("<sip:bigbox3.site3.atlanta.com;lr>,<sip:server10.biloxi.com;lr>")
        self.assertEqual(
            [str(route) for route in routes], ["<sip:bigbox3.site3.atlanta.com;lr>", "<sip:server10.biloxi.com;lr>"]
        )

    def test_rfc4475_route(self) -> None:
        """
        RFC 4475 section 3.1.1.1: a Route with unknown URI parameters.
        """
        [route] = parse_name_address_list("<sip:services.example.com;lr;unknownwith=value;unknown-no-value>")
        self.assertEqual(route.params, ())

    def test_empty_elements(self) -> None:
        """
        Empty elements are skipped, but a value with no address is refused.
        """
        self.assertEqual(len(parse_name_address_list("<sip:a@b>, ,<sip:c@d>,")), 2)
        self.assertRaises(InvalidValue, parse_name_address_list, " , ")
        self.assertRaises(InvalidValue, parse_name_address_list, "")

    def test_wildcard(self) -> None:
        """
        C{*} alone, with optional whitespace, is the wildcard (RFC 3261
        section 10.2.2); it renders as C{*}.
        """
        self.assertIs(parse_contact_value("*"), WILDCARD)
        self.assertIs(parse_contact_value(" \t* "), WILDCARD)
        self.assertIsInstance(WILDCARD, Wildcard)
        self.assertEqual(str(WILDCARD), "*")

    def test_wildcard_not_alone(self) -> None:
        """
        C{*} with another contact or with parameters is refused.
        """
        for text in ["*, <sip:a@b>", "<sip:a@b>, *", "*;expires=0", "**", "* *"]:
            with self.subTest(text=text):
                self.assertRaises(InvalidValue, parse_contact_value, text)

    def test_contact_list(self) -> None:
        """
        A Contact value that is not C{*} is a list of addresses, which may
        have C{*} inside their URIs.
        """
        self.assertEqual(
            parse_contact_value("<sip:a*b@c>;expires=0, sip:d@e"),
            [_address("sip:a*b@c", None, ("expires", "0")), _address("sip:d@e")],
        )

    @given(st.lists(name_addresses(), min_size=1, max_size=3), st.sampled_from([",", ", ", " ,\t"]))
    def test_round_trip(self, addresses: list[NameAddress], separator: str) -> None:
        """
        Several addresses joined by commas parse back in order.
        """
        text = separator.join(str(address) for address in addresses)
        self.assertEqual(parse_name_address_list(text), addresses)
        self.assertEqual(parse_contact_value(text), addresses)

    @given(_odd_text)
    def test_never_crashes(self, text: str) -> None:
        """
        Any text parses or raises L{InvalidValue}.
        """
        for parse in (parse_name_address_list, parse_contact_value):
            with contextlib.suppress(InvalidValue):
                parse(text)


class NameAddressTests(SynchronousTestCase):
    """
    Tests for the L{NameAddress} value.
    """

    def test_str(self) -> None:
        """
        An address always renders as a name-addr; the display name is bare
        when it is tokens separated by single spaces, quoted (with escapes)
        otherwise.
        """
        uri = parse_uri("sip:a@b")
        self.assertEqual(str(NameAddress(uri)), "<sip:a@b>")
        self.assertEqual(str(NameAddress(uri, "A. G. Bell", (("tag", "1"),))), "A. G. Bell <sip:a@b>;tag=1")
        self.assertEqual(str(NameAddress(uri, "Bell, A")), '"Bell, A" <sip:a@b>')
        self.assertEqual(str(NameAddress(uri, 'J "R" \\')), '"J \\"R\\" \\\\" <sip:a@b>')
        self.assertEqual(str(NameAddress(uri, "")), '"" <sip:a@b>')
        self.assertEqual(str(NameAddress(uri, "a  b")), '"a  b" <sip:a@b>')
        self.assertEqual(str(parse_name_address("sip:a@b;tag=1")), "<sip:a@b>;tag=1")

    def test_q(self) -> None:
        """
        C{q} reads as a float when it is a qvalue (RFC 3261 section 25.1);
        anything else raises L{InvalidValue}.
        """
        for value, expected in [("0", 0.0), ("0.5", 0.5), ("1", 1.0), ("1.000", 1.0), ("0.001", 0.001), ("0.", 0.0)]:
            with self.subTest(value=value):
                self.assertEqual(parse_name_address(f"<sip:a@b>;q={value}").q, expected)
        self.assertIsNone(parse_name_address("<sip:a@b>").q)
        for text in ["1.5", "0.1234", "2", ".5", "1.001", "x", '"0.5"']:
            with self.subTest(text=text):
                self.assertRaises(InvalidValue, getattr, parse_name_address(f"<sip:a@b>;q={text}"), "q")
        self.assertRaises(InvalidValue, getattr, parse_name_address("<sip:a@b>;q"), "q")

    def test_expires(self) -> None:
        """
        C{expires} reads as seconds up to 2**32 - 1; RFC 4475 section 3.1.2.4
        sends 280297596632815, which is refused when read.
        """
        self.assertEqual(parse_name_address("<sip:a@b>;expires=3600").expires, 3600)
        self.assertIsNone(parse_name_address("<sip:a@b>").expires)
        for text in ["280297596632815", "-1", "x"]:
            with self.subTest(text=text):
                self.assertRaises(InvalidValue, getattr, parse_name_address(f"<sip:a@b>;expires={text}"), "expires")
        self.assertRaises(InvalidValue, getattr, parse_name_address("<sip:a@b>;expires"), "expires")

    def test_outbound_params(self) -> None:
        """
        The RFC 5626 section 4.2 Contact parameters: C{+sip.instance}
        unquoted and C{reg-id} as a number from 1.
        """
        contact = parse_name_address(
            "<sip:line1@192.0.2.2;transport=tcp>; reg-id=1;"
            '+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"'
        )
        self.assertEqual(contact.instance, "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>")
        self.assertEqual(contact.reg_id, 1)
        plain = parse_name_address("<sip:a@b>")
        self.assertIsNone(plain.instance)
        self.assertIsNone(plain.reg_id)
        for text in ["0", "2147483648", "x"]:
            with self.subTest(text=text):
                self.assertRaises(InvalidValue, getattr, parse_name_address(f"<sip:a@b>;reg-id={text}"), "reg_id")

    def test_params(self) -> None:
        """
        Parameters are read case-insensitively, set in place or appended,
        removed, and values are checked.
        """
        address = parse_name_address("<sip:a@b>;TAG=x;lr")
        self.assertEqual(address.tag, "x")
        self.assertTrue(address.has_param("LR"))
        self.assertIsNone(address.param("lr"))
        self.assertEqual(str(address.with_param("tag", "y")), "<sip:a@b>;tag=y;lr")
        self.assertEqual(str(address.with_param("expires", "0")), "<sip:a@b>;TAG=x;lr;expires=0")
        self.assertEqual(str(address.without_param("Tag")), "<sip:a@b>;lr")
        self.assertRaises(ValueError, address.with_param, "tag", "a;b")

    def test_replace(self) -> None:
        """
        L{NameAddress.replace} changes only the given fields;
        C{display_name=None} removes the display name.
        """
        address = parse_name_address("Bob <sip:a@b>;tag=1")
        self.assertEqual(str(address.replace(display_name=None)), "<sip:a@b>;tag=1")
        self.assertEqual(str(address.replace(uri=parse_uri("sip:c@d"))), "Bob <sip:c@d>;tag=1")
        self.assertEqual(str(address.replace(params=())), "Bob <sip:a@b>")
        self.assertEqual(address.replace(), address)
