"""
Tests for L{sipstack.message.values}: list splitting, generic parameters,
quoted strings, bounded numbers and CSeq.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipstack.errors import InvalidValue
from sipstack.message._grammar import QUOTED_STRING
from sipstack.message.values import (
    CSEQ_MAXIMUM,
    QUOTED,
    CSeq,
    _CSeqSlots,
    get_param,
    has_param,
    is_token,
    parse_cseq,
    parse_params,
    parse_uint,
    quote,
    remove_param,
    render_params,
    replace_param,
    split_header_values,
    unquote,
)
from sipstack.testing._header_strategies import cseqs, params

#: Text in which the grammar's special characters are frequent.
_odd_text = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from([*';,="\\<> \t:[]0123456789aZ-.*', "\r", "\n", "\x00", "é"]), max_size=30).map("".join),
)


class SplitHeaderValuesTests(SynchronousTestCase):
    """
    Tests for L{split_header_values}.
    """

    def test_single(self) -> None:
        """
        A value without commas is one element, stripped of surrounding
        whitespace.
        """
        self.assertEqual(split_header_values("  <sip:a@b>;tag=1 \t"), ["<sip:a@b>;tag=1"])

    def test_plain_list(self) -> None:
        """
        Commas separate elements; the whitespace around each is removed
        (RFC 3261 section 7.3.1).
        """
        self.assertEqual(
            split_header_values("SIP/2.0/UDP a;branch=1 ,  SIP/2.0/TCP b"), ["SIP/2.0/UDP a;branch=1", "SIP/2.0/TCP b"]
        )

    def test_quoted_comma(self) -> None:
        """
        A comma inside a quoted string does not separate elements (RFC 4475
        section 3.1.2.15 has C{"Bell, Alexander"}).
        """
        self.assertEqual(
            split_header_values('"Bell, Alexander" <sip:a.g.bell@example.com>, <sip:b@c>'),
            ['"Bell, Alexander" <sip:a.g.bell@example.com>', "<sip:b@c>"],
        )

    def test_escaped_quote(self) -> None:
        """
        An escaped quote does not end the quoted string.
        """
        self.assertEqual(split_header_values(r'"a\", b" <sip:x>, <sip:y>'), [r'"a\", b" <sip:x>', "<sip:y>"])

    def test_angle_comma(self) -> None:
        """
        A comma between C{<} and C{>} belongs to the URI.
        """
        self.assertEqual(split_header_values("<sip:a@b;x=1,2>;q=0.5, <sip:c>"), ["<sip:a@b;x=1,2>;q=0.5", "<sip:c>"])

    def test_empty_elements_skipped(self) -> None:
        """
        Empty elements between commas are ignored, as RFC 7230 section 7
        allows; a value of only commas gives no element.
        """
        self.assertEqual(split_header_values("a, , b,"), ["a", "b"])
        self.assertEqual(split_header_values('"x", ,<y>,'), ['"x"', "<y>"])
        self.assertEqual(split_header_values(" , ,"), [])
        self.assertEqual(split_header_values(""), [])

    def test_unterminated(self) -> None:
        """
        An unterminated quoted string or C{<} in a list is refused.
        """
        for text in ['"a, b', "<sip:a, b", 'a, "b']:
            with self.subTest(text=text):
                self.assertRaises(InvalidValue, split_header_values, text)

    @given(_odd_text)
    def test_never_crashes(self, text: str) -> None:
        """
        Any text splits into stripped, non-empty elements or raises
        L{InvalidValue}.
        """
        try:
            elements = split_header_values(text)
        except InvalidValue:
            return
        for element in elements:
            self.assertTrue(element)
            self.assertEqual(element, element.strip(" \t"))


class ParamsTests(SynchronousTestCase):
    """
    Tests for L{parse_params}, L{render_params} and the parameter helpers.
    """

    def test_empty(self) -> None:
        """
        No text is no parameter; whitespace alone is none either.
        """
        self.assertEqual(parse_params(""), ())
        self.assertEqual(parse_params("  "), ())

    def test_simple(self) -> None:
        """
        Valued and flag parameters, in order; a flag has the value L{None}.
        """
        self.assertEqual(
            parse_params(";branch=z9hG4bK776asdhds;rport"), (("branch", "z9hG4bK776asdhds"), ("rport", None))
        )

    def test_whitespace(self) -> None:
        """
        Whitespace is allowed around C{;} and C{=} (SEMI and EQUAL, RFC 3261
        section 25.1), as RFC 4475 section 3.1.1.1 sends it.
        """
        self.assertEqual(
            parse_params(" ; newparam =      newvalue ;  secondparam ; q = 0.33 "),
            (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33")),
        )

    def test_quoted_kept(self) -> None:
        """
        A quoted value keeps its quotes and escapes, so rendering is exact;
        C{;} and C{,} inside it are content.
        """
        text = ';+sip.instance="<urn:uuid:f81d4fae>";methods="INVITE, BYE";x="a\\"b;c"'
        parsed = parse_params(text)
        self.assertEqual(
            parsed, (("+sip.instance", '"<urn:uuid:f81d4fae>"'), ("methods", '"INVITE, BYE"'), ("x", '"a\\"b;c"'))
        )
        self.assertEqual(render_params(parsed), text)

    def test_unusual_tokens(self) -> None:
        """
        Names and values may use every token character (RFC 4475 section
        3.1.1.2), and values may be non-ASCII when quoted.
        """
        text = ";fromParam''~+*_!.-%=\"работающий\";tag=_token~1'+`*%!-."
        self.assertEqual(parse_params(text), (("fromParam''~+*_!.-%", '"работающий"'), ("tag", "_token~1'+`*%!-.")))

    def test_ipv6_values(self) -> None:
        """
        A value may be an IPv6 reference or, as RFC 3261 writes C{received},
        a bare IPv6 address.
        """
        self.assertEqual(
            parse_params(";received=2001:db8::9:255;maddr=[2001:db8::1]"),
            (("received", "2001:db8::9:255"), ("maddr", "[2001:db8::1]")),
        )

    def test_malformed(self) -> None:
        """
        Text that is not a parameter list raises L{InvalidValue}: a missing
        C{;}, an empty name or value, a trailing C{;}, a value with a space,
        an unterminated quoted string, a line break.
        """
        for text in [
            "a",
            ";",
            ";a=",
            ";=b",
            ";a;",
            ";a b",
            ";a=b c",
            ';a="b',
            ";x=fe:zz",
            ";a=b\r\n",
            ";a=<b>",
            ";a==b",
        ]:
            with self.subTest(text=text):
                self.assertRaises(InvalidValue, parse_params, text)

    def test_get_param(self) -> None:
        """
        Names compare case-insensitively; a flag and an absent parameter both
        read as L{None}, which L{has_param} tells apart.
        """
        parsed = parse_params(";Branch=x;LR")
        self.assertEqual(get_param(parsed, "branch"), "x")
        self.assertIsNone(get_param(parsed, "lr"))
        self.assertTrue(has_param(parsed, "lr"))
        self.assertFalse(has_param(parsed, "maddr"))
        self.assertIsNone(get_param(parsed, "maddr"))

    def test_replace_param(self) -> None:
        """
        L{replace_param} replaces the first parameter of that name in place,
        drops later duplicates, or appends.
        """
        parsed = (("a", "1"), ("B", None), ("c", "2"), ("b", "3"))
        self.assertEqual(replace_param(parsed, "b", "9"), (("a", "1"), ("b", "9"), ("c", "2")))
        self.assertEqual(replace_param(parsed, "d"), (*parsed, ("d", None)))

    def test_replace_param_checks(self) -> None:
        """
        L{replace_param} refuses a name that is not a token and a value that
        is not a token, host or quoted string (which could inject text into
        the header), with L{ValueError}.
        """
        self.assertRaises(ValueError, replace_param, (), "a b", None)
        self.assertRaises(ValueError, replace_param, (), "a", "x;y=z")
        self.assertRaises(ValueError, replace_param, (), "a", "x\r\nVia: evil")

    def test_remove_param(self) -> None:
        """
        L{remove_param} drops every parameter of that name, case-insensitively.
        """
        self.assertEqual(remove_param((("a", "1"), ("B", None), ("b", "2")), "b"), (("a", "1"),))

    @given(params())
    def test_round_trip(self, value: tuple[tuple[str, str | None], ...]) -> None:
        """
        Rendering then parsing gives the same parameters.
        """
        self.assertEqual(parse_params(render_params(value)), value)

    @given(params(), st.data())
    def test_whitespace_variants(self, value: tuple[tuple[str, str | None], ...], data: st.DataObject) -> None:
        """
        Whitespace around C{;} and C{=} does not change the parameters.
        """
        space = st.sampled_from(["", " ", "\t", "  "])
        text = "".join(
            f"{data.draw(space)};{data.draw(space)}{name}"
            + ("" if param is None else f"{data.draw(space)}={data.draw(space)}{param}")
            for name, param in value
        )
        self.assertEqual(parse_params(text + data.draw(space)), value)

    @given(_odd_text)
    def test_never_crashes(self, text: str) -> None:
        """
        Any text parses or raises L{InvalidValue}; what parses renders back
        to text that parses the same.
        """
        try:
            parsed = parse_params(text)
        except InvalidValue:
            return
        self.assertEqual(parse_params(render_params(parsed)), parsed)


class QuoteTests(SynchronousTestCase):
    """
    Tests for L{quote}, L{unquote} and L{is_token}.
    """

    def test_unquote_plain(self) -> None:
        """
        The content of a quoted string without escapes is returned as is.
        """
        self.assertEqual(unquote('"Alice Smith"'), "Alice Smith")
        self.assertEqual(unquote('""'), "")

    def test_unquote_escapes(self) -> None:
        """
        Each quoted-pair stands for the character after the backslash (RFC
        4475 section 3.1.1.1: C{"J Rosenberg \\\\\\""} is C{J Rosenberg \\"}).
        """
        self.assertEqual(unquote(r'"J Rosenberg \\\""'), 'J Rosenberg \\"')
        self.assertEqual(unquote(r'"\a\b"'), "ab")

    def test_unquote_malformed(self) -> None:
        """
        Anything but exactly one quoted string raises L{InvalidValue}.
        """
        for text in ["abc", '"abc', 'abc"', '"a"b"', '"a\\"', '"a\r\nb"', '"a" ', '"a""b"', ""]:
            with self.subTest(text=text):
                self.assertRaises(InvalidValue, unquote, text)

    def test_quote(self) -> None:
        """
        L{quote} escapes only C{"} and C{\\}.
        """
        self.assertEqual(quote('a "b" \\ c'), '"a \\"b\\" \\\\ c"')
        self.assertEqual(quote(""), '""')

    def test_quote_line_break(self) -> None:
        """
        CR and LF cannot be carried by a quoted string: L{ValueError}.
        """
        self.assertRaises(ValueError, quote, "a\r\nb")

    @given(st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"])))
    def test_round_trip(self, text: str) -> None:
        """
        L{unquote} undoes L{quote}.
        """
        self.assertEqual(unquote(quote(text)), text)

    @given(_odd_text)
    def test_unrolled_pattern(self, text: str) -> None:
        """
        The faster L{QUOTED} pattern matches exactly what the grammar's
        C{QUOTED_STRING} matches.
        """
        self.assertEqual(re.fullmatch(QUOTED, text) is None, re.fullmatch(QUOTED_STRING, text) is None)

    def test_is_token(self) -> None:
        """
        Tokens are non-empty runs of the token characters.
        """
        self.assertTrue(is_token("z9hG4bK-.!%*_+`'~"))
        for text in ["", "a b", "a;b", "a:b", "é", '"a"']:
            with self.subTest(text=text):
                self.assertFalse(is_token(text))


class ParseUintTests(SynchronousTestCase):
    """
    Tests for L{parse_uint}.
    """

    def test_valid(self) -> None:
        """
        Decimal digits, with leading zeros (RFC 4475 section 3.1.1.1 sends
        Max-Forwards C{0068}) and surrounding whitespace.
        """
        self.assertEqual(parse_uint("70", maximum=255, what="Max-Forwards"), 70)
        self.assertEqual(parse_uint("0068", maximum=255, what="Max-Forwards"), 68)
        self.assertEqual(parse_uint(" 0 ", maximum=255, what="Max-Forwards"), 0)
        self.assertEqual(parse_uint("4294967295", maximum=2**32 - 1, what="Expires"), 2**32 - 1)
        self.assertEqual(parse_uint("0" * 50 + "7", maximum=255, what="Max-Forwards"), 7)

    def test_too_large(self) -> None:
        """
        A value above the maximum is refused, however many digits it has
        (RFC 4475 section 3.1.2.4: Max-Forwards 300, a 27-digit Expires).
        """
        for text in ["256", "300", "1" * 27, "9" * 5000]:
            with self.subTest(text=text[:30]):
                error = self.assertRaises(InvalidValue, parse_uint, text, maximum=255, what="Max-Forwards")
                self.assertIn("Max-Forwards", str(error))
                self.assertIn("larger", str(error))

    def test_not_a_number(self) -> None:
        """
        Signs, spaces inside, non-ASCII digits, hexadecimal and empty text are
        refused, naming what was expected.
        """
        for text in ["", " ", "-1", "+1", "1 0", "0x10", "١٢", "1.0", "²", "12a"]:
            with self.subTest(text=text):
                error = self.assertRaises(InvalidValue, parse_uint, text, maximum=2**32 - 1, what="Expires")
                self.assertIn("Expires", str(error))

    @given(st.integers(0, 2**32 - 1))
    def test_round_trip(self, number: int) -> None:
        """
        Every number in range parses back from its decimal text.
        """
        self.assertEqual(parse_uint(str(number), maximum=2**32 - 1, what="Expires"), number)

    @given(_odd_text)
    def test_never_crashes(self, text: str) -> None:
        """
        Any text gives a number in range or raises L{InvalidValue}.
        """
        try:
            number = parse_uint(text, maximum=255, what="Max-Forwards")
        except InvalidValue:
            return
        self.assertTrue(0 <= number <= 255)


class CSeqTests(SynchronousTestCase):
    """
    Tests for L{CSeq} and L{parse_cseq}.
    """

    def test_parse(self) -> None:
        """
        A CSeq is a number and a method (RFC 3261 section 20.16).
        """
        self.assertEqual(parse_cseq("314159 INVITE"), CSeq(314159, "INVITE"))

    def test_str(self) -> None:
        """
        A CSeq renders as C{number SP method}.
        """
        self.assertEqual(str(CSeq(4711, "INVITE")), "4711 INVITE")

    def test_whitespace_and_zeros(self) -> None:
        """
        Leading zeros and any whitespace between and around the parts are
        accepted (RFC 4475 section 3.1.1.1: C{0009} and a folded line).
        """
        self.assertEqual(parse_cseq("  0009 \t  INVITE "), CSeq(9, "INVITE"))

    def test_method_case_kept(self) -> None:
        """
        The method is case-sensitive and kept as written, including unusual
        tokens (RFC 4475 section 3.1.1.2).
        """
        method = "!interesting-Method0123456789_*+`.%indeed'~"
        self.assertEqual(parse_cseq(f"139122385 {method}"), CSeq(139122385, method))
        self.assertEqual(parse_cseq("1 invite").method, "invite")

    def test_range(self) -> None:
        """
        The number may be 0 to 2**31 - 1 (RFC 3261 section 8.1.1.5); RFC 4475
        section 3.1.2.4 sends 36893488147419103232, which is refused.
        """
        self.assertEqual(parse_cseq(f"{CSEQ_MAXIMUM} ACK").number, CSEQ_MAXIMUM)
        self.assertEqual(parse_cseq("0 ACK").number, 0)
        for text in [f"{CSEQ_MAXIMUM + 1} ACK", "36893488147419103232 INVITE", "9" * 5000 + " INVITE"]:
            with self.subTest(text=text[:30]):
                self.assertRaises(InvalidValue, parse_cseq, text)

    def test_malformed(self) -> None:
        """
        Anything but C{number LWS method} raises L{InvalidValue}.
        """
        for text in ["", "INVITE", "1", "1INVITE", "-1 INVITE", "1 INVITE BYE", "1 IN;VITE", "1.0 INVITE", "x 1"]:
            with self.subTest(text=text):
                self.assertRaises(InvalidValue, parse_cseq, text)

    def test_ascii_only(self) -> None:
        """
        Only ASCII digits make the number and only a token the method:
        other Unicode digits and letters are refused.
        """
        for text in [
            "\u0661 INVITE",
            "1\u0662 INVITE",
            "\uff11 INVITE",
            "\u00b2 INVITE",
            "1 INVIT\u00c9",
            "1 \u0130NVITE",
        ]:
            with self.subTest(text=text):
                self.assertRaises(InvalidValue, parse_cseq, text)

    def test_long_numbers(self) -> None:
        """
        Numbers of ten digits or more, or with many leading zeros, are read
        as well as short ones.
        """
        self.assertEqual(parse_cseq("1000000000 INVITE"), CSeq(1000000000, "INVITE"))
        self.assertEqual(parse_cseq("0000000000000000000042 BYE"), CSeq(42, "BYE"))
        self.assertEqual(parse_cseq("0 ACK"), CSeq(0, "ACK"))

    def test_slots_layout(self) -> None:
        """
        C{_CSeqSlots}, which the parser fills in before making it a L{CSeq},
        has exactly the slots of L{CSeq}.
        """
        self.assertEqual(sorted(_CSeqSlots.__slots__), sorted(f.name for f in dataclasses.fields(CSeq)))
        self.assertEqual(sorted(_CSeqSlots.__slots__), sorted(CSeq.__slots__))
        self.assertEqual(_CSeqSlots.__basicsize__, CSeq.__basicsize__)

    def test_true_values(self) -> None:
        """
        Parsed values, canonical or not, have the exact type, equality, hash
        and immutability of constructed ones.
        """
        for text in ["314159 INVITE", " 314159\tINVITE ", "2147483647 INVITE"]:
            with self.subTest(text=text):
                cseq = parse_cseq(text)
                built = CSeq(cseq.number, "INVITE")
                self.assertIs(type(cseq), CSeq)
                self.assertEqual(cseq, built)
                self.assertEqual(hash(cseq), hash(built))
                self.assertRaises(AttributeError, setattr, cseq, "number", 1)
                self.assertEqual(cseq.replace(method="ACK"), built.replace(method="ACK"))

    def test_replace(self) -> None:
        """
        L{CSeq.replace} changes only the given fields.
        """
        cseq = CSeq(1, "INVITE")
        self.assertEqual(cseq.replace(number=2), CSeq(2, "INVITE"))
        self.assertEqual(cseq.replace(method="ACK"), CSeq(1, "ACK"))

    @given(cseqs())
    def test_round_trip(self, cseq: CSeq) -> None:
        """
        C{parse_cseq(str(c)) == c} for every CSeq.
        """
        self.assertEqual(parse_cseq(str(cseq)), cseq)

    @given(_odd_text)
    def test_never_crashes(self, text: str) -> None:
        """
        Any text parses or raises L{InvalidValue}.
        """
        with contextlib.suppress(InvalidValue):
            parse_cseq(text)
