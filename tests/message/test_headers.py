"""
Tests for L{sipstack.message.headers}.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipstack.message.headers import COMPACT_FORMS, Headers, canonical_key, compact_name, long_name


class NameTests(SynchronousTestCase):
    """
    Header names compare case-insensitively and compact forms equal long ones.
    """

    def test_compact_forms_map_to_long_forms(self) -> None:
        """Every compact form of RFC 3261 section 7.3.3 has the long form's key."""
        for short, long in COMPACT_FORMS.items():
            self.assertEqual(canonical_key(short), long.lower())
            self.assertEqual(canonical_key(short.upper()), long.lower())

    def test_long_name_spelling(self) -> None:
        """Long names are spelled as the RFCs spell them, including odd ones."""
        self.assertEqual(long_name("v"), "Via")
        self.assertEqual(long_name("cseq"), "CSeq")
        self.assertEqual(long_name("WWW-AUTHENTICATE"), "WWW-Authenticate")
        self.assertEqual(long_name("call-id"), "Call-ID")
        self.assertEqual(long_name("x-custom-header"), "X-Custom-Header")

    def test_compact_name(self) -> None:
        """A header with a compact form is written compactly; others are not."""
        self.assertEqual(compact_name("Via"), "v")
        self.assertEqual(compact_name("call-id"), "i")
        self.assertEqual(compact_name("CSeq"), "CSeq")

    def test_single_letter_unknown(self) -> None:
        """An unregistered one-letter name is its own key."""
        self.assertEqual(canonical_key("Z"), "z")


class HeadersTests(SynchronousTestCase):
    """
    L{Headers} is an ordered, immutable, case-insensitive multi-map.
    """

    def setUp(self) -> None:
        self.headers = Headers(
            [
                ("Via", "SIP/2.0/UDP a.example.com;branch=z9hG4bK1"),
                ("v", "SIP/2.0/TCP b.example.com;branch=z9hG4bK2, SIP/2.0/UDP c.example.com;branch=z9hG4bK3"),
                ("To", "<sip:bob@example.com>"),
                ("X-Odd", "kept   exactly"),
                ("Route", "<sip:p1.example.com;lr>, <sip:p2.example.com;lr>"),
            ]
        )

    def test_get_first(self) -> None:
        """get returns the first field of a name, whatever its case or form."""
        self.assertEqual(self.headers.get("VIA"), "SIP/2.0/UDP a.example.com;branch=z9hG4bK1")
        self.assertEqual(self.headers.get("t"), "<sip:bob@example.com>")
        self.assertIsNone(self.headers.get("From"))

    def test_get_all_and_count(self) -> None:
        """get_all returns every field of a name as written, long and compact alike."""
        self.assertEqual(len(self.headers.get_all("via")), 2)
        self.assertEqual(self.headers.count("Via"), 2)
        self.assertEqual(self.headers.get_all("Contact"), [])

    def test_values_split_lists(self) -> None:
        """values splits list headers across fields into their elements, in order."""
        self.assertEqual(
            self.headers.values("Via"),
            [
                "SIP/2.0/UDP a.example.com;branch=z9hG4bK1",
                "SIP/2.0/TCP b.example.com;branch=z9hG4bK2",
                "SIP/2.0/UDP c.example.com;branch=z9hG4bK3",
            ],
        )

    def test_contains(self) -> None:
        """Membership is by name, case-insensitively, with compact forms."""
        self.assertIn("x-odd", self.headers)
        self.assertIn("V", self.headers)
        self.assertNotIn("Contact", self.headers)
        self.assertNotIn(42, self.headers)

    def test_unknown_header_kept_exactly(self) -> None:
        """An unknown header keeps its value byte for byte."""
        self.assertEqual(self.headers.get("X-ODD"), "kept   exactly")

    def test_with_added_first(self) -> None:
        """A Via added first goes above the existing Vias, leaving the original untouched."""
        added = self.headers.with_added("Via", "SIP/2.0/TLS new.example.com;branch=z9hG4bK0", first=True)
        self.assertEqual(added.values("Via")[0], "SIP/2.0/TLS new.example.com;branch=z9hG4bK0")
        self.assertEqual(added.fields[0][0], "Via")
        self.assertEqual(self.headers.count("Via"), 2)

    def test_with_added_first_when_absent(self) -> None:
        """A header added first with no field of its name goes to the very top."""
        added = self.headers.with_added("Record-Route", "<sip:p.example.com;lr>", first=True)
        self.assertEqual(added.fields[0], ("Record-Route", "<sip:p.example.com;lr>"))

    def test_with_added_last(self) -> None:
        """Without first, a field goes after the last field of its name, or at the end."""
        added = self.headers.with_added("Via", "SIP/2.0/UDP z.example.com")
        self.assertEqual(added.fields[2], ("Via", "SIP/2.0/UDP z.example.com"))
        added = self.headers.with_added("Contact", "<sip:x@example.com>")
        self.assertEqual(added.fields[-1], ("Contact", "<sip:x@example.com>"))

    def test_with_replaced(self) -> None:
        """with_replaced leaves one field where the first was."""
        replaced = self.headers.with_replaced("via", "SIP/2.0/UDP only.example.com")
        self.assertEqual(replaced.get_all("Via"), ["SIP/2.0/UDP only.example.com"])
        self.assertEqual(replaced.fields[0], ("via", "SIP/2.0/UDP only.example.com"))
        self.assertEqual(len(replaced), len(self.headers) - 1)
        appended = self.headers.with_replaced("Expires", "60")
        self.assertEqual(appended.fields[-1], ("Expires", "60"))

    def test_without(self) -> None:
        """without removes every field of a name, in both forms."""
        self.assertNotIn("Via", self.headers.without("v"))
        self.assertIs(self.headers.without("Contact"), self.headers)

    def test_without_first_value(self) -> None:
        """without_first_value pops one list element, keeping the rest of its field."""
        popped = self.headers.without_first_value("Route")
        self.assertEqual(popped.values("Route"), ["<sip:p2.example.com;lr>"])
        popped = popped.without_first_value("Route")
        self.assertNotIn("Route", popped)
        self.assertIs(popped.without_first_value("Route"), popped)
        vias = self.headers.without_first_value("Via").without_first_value("Via").values("Via")
        self.assertEqual(vias, ["SIP/2.0/UDP c.example.com;branch=z9hG4bK3"])

    def test_equality_and_hash(self) -> None:
        """Headers with the same fields in the same order are equal and hash alike."""
        same = Headers(self.headers.fields)
        self.assertEqual(same, self.headers)
        self.assertEqual(hash(same), hash(self.headers))
        self.assertNotEqual(Headers(reversed(self.headers.fields)), self.headers)
        self.assertNotEqual(self.headers, "not headers")

    @given(
        st.lists(
            st.tuples(st.sampled_from(["Via", "v", "VIA", "To", "t", "X-A", "x-a"]), st.text(max_size=5)),
            max_size=8,
        ),
        st.sampled_from(["via", "to", "x-a"]),
    )
    def test_lookup_matches_linear_scan(self, fields: list[tuple[str, str]], name: str) -> None:
        """The index answers exactly as a scan of the fields by canonical key would."""
        headers = Headers(fields)
        expected = [value for field_name, value in fields if canonical_key(field_name) == name]
        self.assertEqual(headers.get_all(name), expected)
        self.assertEqual(headers.get(name), expected[0] if expected else None)
