"""
Tests for L{sipstack.message.via}: the RFC 3261 and RFC 4475 examples, IPv6
from RFC 5118, the well-known parameters, rejection of malformed input and
round-trip properties.
"""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipstack.errors import InvalidValue
from sipstack.message.via import Via, _ViaSlots, parse_via
from sipstack.testing._header_strategies import vias


def _one(text: str) -> Via:
    [via] = parse_via(text)
    return via


class ParseViaTests(SynchronousTestCase):
    """
    Tests for L{parse_via}.
    """

    def test_rfc3261_example(self) -> None:
        """
        The Via of RFC 3261 section 24.2 (F1) parses into its parts and
        renders back exactly.
        """
        text = "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8"
        via = _one(text)
        self.assertEqual(via, Via("UDP", "pc33.atlanta.com", None, (("branch", "z9hG4bKnashds8"),)))
        self.assertEqual(str(via), text)

    def test_port_and_rport(self) -> None:
        """
        A port and an rport flag (RFC 3581 section 3).
        """
        text = "SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport"
        via = _one(text)
        self.assertEqual(via.sent_by, ("pc33.atlanta.example.com", 5060))
        self.assertEqual(via.branch, "z9hG4bK776asdhds")
        self.assertTrue(via.has_rport)
        self.assertIsNone(via.rport)
        self.assertEqual(str(via), text)

    def test_rfc3261_section_20_42(self) -> None:
        """
        The examples of RFC 3261 section 20.42: maddr, ttl, received and
        compact form values.
        """
        via = _one("SIP/2.0/UDP erlang.bell-telephone.com:5060;branch=z9hG4bK87asdks7")
        self.assertEqual(via.port, 5060)
        via = _one("SIP/2.0/UDP 192.0.2.1:5060 ;received=192.0.2.207;branch=z9hG4bK77asjd")
        self.assertEqual(via.received, "192.0.2.207")
        self.assertEqual(via.branch, "z9hG4bK77asjd")
        via = _one("SIP / 2.0 / UDP first.example.com: 4000;ttl=16;maddr=224.2.0.1 ;branch=z9hG4bKa7c6a8dlze.1")
        self.assertEqual(via.sent_by, ("first.example.com", 4000))
        self.assertEqual(via.ttl, 16)
        self.assertEqual(via.maddr, "224.2.0.1")

    def test_rfc4475_wsinv(self) -> None:
        """
        RFC 4475 section 3.1.1.1: LWS around C{/}, before the host and around
        C{;} and C{=} (the folded lines already joined), and two values in one
        field.
        """
        self.assertEqual(
            parse_via("SIP  /   2.0  /UDP     192.0.2.2;branch=390skdjuw"),
            [Via("UDP", "192.0.2.2", None, (("branch", "390skdjuw"),))],
        )
        self.assertEqual(
            parse_via(
                "SIP  / 2.0  / TCP     spindle.example.com   ;   branch  =   z9hG4bK9ikj8  ,  "
                "SIP  /    2.0   / UDP  192.168.255.111   ; branch=  z9hG4bK30239"
            ),
            [
                Via("TCP", "spindle.example.com", None, (("branch", "z9hG4bK9ikj8"),)),
                Via("UDP", "192.168.255.111", None, (("branch", "z9hG4bK30239"),)),
            ],
        )

    def test_rfc4475_unusual_branch(self) -> None:
        """
        RFC 4475 section 3.1.1.2: a branch made of every token character.
        """
        via = _one("SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~")
        self.assertEqual(via.branch, "z9hG4bK-.!%66*_+`'~")

    def test_rfc4475_transports(self) -> None:
        """
        RFC 4475 section 3.1.1.10: SCTP and unknown transports are kept.
        """
        self.assertEqual(_one("SIP/2.0/SCTP t2.example.com;branch=z9hG4bKkdjuw2").transport, "SCTP")
        self.assertEqual(_one("SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKkdjuw4").transport, "UNKNOWN")

    def test_transport_case(self) -> None:
        """
        The transport and protocol name are upper-cased, so case variants
        give equal values.
        """
        self.assertEqual(_one("sip/2.0/udp host"), _one("SIP/2.0/UDP host"))
        self.assertEqual(str(_one("sip/2.0/tls host")), "SIP/2.0/TLS host")

    def test_other_protocol(self) -> None:
        """
        A protocol other than SIP/2.0 is kept (the message layer decides what
        to do with it; RFC 4475 section 3.1.2.16).
        """
        self.assertEqual(_one("SIP/7.0/UDP host").protocol, "SIP/7.0")
        self.assertEqual(str(_one("xsip/3/UDP host")), "XSIP/3/UDP host")

    def test_ipv6(self) -> None:
        """
        RFC 5118 section 4: an IPv6 reference as the host, with or without a
        port; C{received} bare (as RFC 3261 writes it) or bracketed (as RFC
        5118 section 4.5 shows), read without brackets either way.
        """
        via = _one("SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111")
        self.assertEqual(via.sent_by, ("[2001:db8::9:1]", 6050))
        via = _one("SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3-111")
        self.assertEqual(via.received, "2001:db8::9:255")
        self.assertEqual(via.param("received"), "2001:db8::9:255")
        via = _one("SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3")
        self.assertEqual(via.received, "2001:db8::9:255")
        self.assertEqual(via.param("received"), "[2001:db8::9:255]")

    def test_semicolon_heavy(self) -> None:
        """
        Many parameters, flags, quoted values with C{;} and C{,}, and unknown
        names are all kept in order.
        """
        via = _one('SIP/2.0/TLS h;branch=z9hG4bK1;rport=5061;alias;x-a="b;c, d";ext')
        self.assertEqual(
            via.params,
            (("branch", "z9hG4bK1"), ("rport", "5061"), ("alias", None), ("x-a", '"b;c, d"'), ("ext", None)),
        )
        self.assertEqual(via.rport, 5061)
        self.assertTrue(via.alias)

    def test_several_and_empty_elements(self) -> None:
        """
        One field may hold several Via values; empty elements are skipped.
        """
        self.assertEqual(len(parse_via("SIP/2.0/UDP a, ,SIP/2.0/TCP b,")), 2)

    def test_malformed(self) -> None:
        """
        Malformed Vias raise L{InvalidValue}: a missing part, no space before
        the host, a bad host or port, an IPv6 host without brackets, bad
        parameters, an empty value.
        """
        for text in [
            "",
            " , ",
            "SIP/2.0 host",
            "SIP/2.0/UDP",
            "SIP/2.0/UDPhost",
            "SIP/2.0/UDP host:",
            "SIP/2.0/UDP host:65536",
            "SIP/2.0/UDP host:123456",
            "SIP/2.0/UDP 2001:db8::1",
            "SIP/2.0/UDP [2001:db8::1",
            "SIP/2.0/UDP host;",
            "SIP/2.0/UDP host;branch=",
            "SIP/2.0/UDP host;branch=a b",
            "SIP/2.0/UDP host branch=1",
            "SIP/2.0/UDP a..b",
            "SIP/2.0/UDP -host",
            "SIP/2.0/UDP host\r\n;branch=1",
            'SIP/2.0/UDP h;x="unterminated',
            "SIP//UDP host",
        ]:
            with self.subTest(text=text):
                self.assertRaises(InvalidValue, parse_via, text)

    def test_hostname_labels(self) -> None:
        """
        The canonical form checks the labels of a hostname as the general
        grammar does: hyphens inside a label and a final dot are accepted,
        an empty label or one that starts or ends with a hyphen is not.
        """
        for host in ["a-b.c--d.example.com", "a.b.", "a-1", "_sip._udp.example.com", "[2001:db8::1]", "192.0.2.1"]:
            with self.subTest(host=host):
                self.assertEqual(_one(f"SIP/2.0/UDP {host}:5060;branch=1").host, host)
        for host in ["a-", "a-.b", "a.-b", "a..b", "a-b..c", "a.b-", "a.b.-", ".a", "a:b"]:
            with self.subTest(host=host):
                self.assertRaises(InvalidValue, parse_via, f"SIP/2.0/UDP {host}:5060;branch=1")
                self.assertRaises(InvalidValue, parse_via, f"SIP/2.0/UDP {host}")

    def test_many_params(self) -> None:
        """
        Parameters are kept in order however many there are, flags with the
        value L{None}.
        """
        params: tuple[tuple[str, str | None], ...] = (("a", "1"), ("b", None), ("c", "3"), ("d", None), ("e", "5"))
        for count in range(len(params) + 1):
            text = "SIP/2.0/UDP h" + "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params[:count])
            with self.subTest(text=text):
                self.assertEqual(_one(text), Via("UDP", "h", None, params[:count]))
                self.assertEqual(_one(text.replace(";", " ; ")), Via("UDP", "h", None, params[:count]))

    def test_port_range(self) -> None:
        """
        The port may be 0 to 65535, with or without whitespace around it.
        """
        self.assertEqual(_one("SIP/2.0/UDP h:65535").port, 65535)
        self.assertEqual(_one("SIP/2.0/UDP h:0;rport").port, 0)
        for text in ["SIP/2.0/UDP h:65536;rport", "SIP/2.0/UDP h : 99999", "SIP/2.0/UDP h:99999, SIP/2.0/UDP g"]:
            with self.subTest(text=text):
                self.assertRaises(InvalidValue, parse_via, text)

    def test_list_with_quoted_comma(self) -> None:
        """
        In a list, an element whose quoted parameter holds a comma parses as
        a whole, next to canonical ones.
        """
        self.assertEqual(
            parse_via('SIP/2.0/UDP a;x="1,2", SIP/2.0/TCP b:5060;branch=z9hG4bK1'),
            [Via("UDP", "a", None, (("x", '"1,2"'),)), Via("TCP", "b", 5060, (("branch", "z9hG4bK1"),))],
        )

    def test_slots_layout(self) -> None:
        """
        C{_ViaSlots}, which the parser fills in before making it a L{Via},
        has exactly the slots of L{Via}.
        """
        self.assertEqual(sorted(_ViaSlots.__slots__), sorted(f.name for f in dataclasses.fields(Via)))
        self.assertEqual(sorted(_ViaSlots.__slots__), sorted(Via.__slots__))
        self.assertEqual(_ViaSlots.__basicsize__, Via.__basicsize__)

    def test_true_values(self) -> None:
        """
        Parsed values, canonical or not, have the exact type, equality, hash
        and immutability of constructed ones.
        """
        built = Via("UDP", "h.example.com", 5060, (("branch", "z9hG4bK1"), ("rport", None)))
        for text in [
            "SIP/2.0/UDP h.example.com:5060;branch=z9hG4bK1;rport",
            "SIP/2.0/udp h.example.com : 5060 ;branch=z9hG4bK1 ;rport",
        ]:
            with self.subTest(text=text):
                via = _one(text)
                self.assertIs(type(via), Via)
                self.assertEqual(via, built)
                self.assertEqual(hash(via), hash(built))
                self.assertRaises(AttributeError, setattr, via, "host", "x")
                self.assertEqual(via.replace(port=None), built.replace(port=None))

    @given(vias())
    def test_round_trip(self, via: Via) -> None:
        """
        C{parse_via(str(v)) == [v]} for every Via.
        """
        self.assertEqual(parse_via(str(via)), [via])

    @given(st.lists(vias(), min_size=1, max_size=3), st.sampled_from([",", ", ", " ,\t"]))
    def test_list_round_trip(self, values: list[Via], separator: str) -> None:
        """
        Several Vias joined by commas parse back in order.
        """
        self.assertEqual(parse_via(separator.join(str(via) for via in values)), values)

    @given(vias(), st.data())
    def test_variants(self, via: Via, data: st.DataObject) -> None:
        """
        Case and whitespace variants of a Via (lower-case transport and
        protocol name, LWS around C{/}, C{:}, C{;} and C{=}) parse to the
        same value.
        """
        space = st.sampled_from(["", " ", "\t", "   "])
        name, version = via.protocol.split("/")
        upper = data.draw(st.booleans())

        def case(text: str) -> str:
            return text.upper() if upper else text.lower()

        text = (
            f"{data.draw(space)}{case(name)}{data.draw(space)}/{data.draw(space)}{version}{data.draw(space)}/"
            f"{data.draw(space)}{case(via.transport)} {data.draw(space)}{via.host}"
        )
        if via.port is not None:
            text += f"{data.draw(space)}:{data.draw(space)}{via.port}"
        for param_name, value in via.params:
            text += f"{data.draw(space)};{data.draw(space)}{param_name}"
            if value is not None:
                text += f"{data.draw(space)}={data.draw(space)}{value}"
        self.assertEqual(parse_via(text + data.draw(space)), [via])

    @given(
        st.one_of(
            st.text(max_size=60),
            st.lists(
                st.sampled_from(
                    ["SIP", "/", "2.0", "UDP", " ", "\t", "h.com", ":", "5060", ";", "=", ",", '"', "[::1]", "udp"]
                ),
                max_size=20,
            ).map("".join),
        )
    )
    def test_never_crashes(self, text: str) -> None:
        """
        Any text parses or raises L{InvalidValue}; parsed values render to
        text that parses the same.
        """
        try:
            values = parse_via(text)
        except InvalidValue:
            return
        self.assertEqual(parse_via(", ".join(str(via) for via in values)), values)


class ViaTests(SynchronousTestCase):
    """
    Tests for the L{Via} value.
    """

    def test_str(self) -> None:
        """
        A Via renders as C{protocol/transport host[:port];params}.
        """
        self.assertEqual(
            str(Via("TCP", "[2001:db8::1]", 5061, (("branch", "z9hG4bKx"), ("rport", None)))),
            "SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bKx;rport",
        )

    def test_param_case_insensitive(self) -> None:
        """
        Parameter names compare case-insensitively (RFC 3261 section 7.3.1).
        """
        via = _one("SIP/2.0/UDP h;BRANCH=z9hG4bKx;RPort=1;Received=192.0.2.1")
        self.assertEqual(via.branch, "z9hG4bKx")
        self.assertEqual(via.rport, 1)
        self.assertEqual(via.received, "192.0.2.1")
        self.assertTrue(via.has_param("branch"))

    def test_absent_params(self) -> None:
        """
        Absent parameters read as L{None} or false.
        """
        via = Via("UDP", "h")
        for value in [via.branch, via.received, via.maddr, via.ttl, via.rport]:
            self.assertIsNone(value)
        self.assertFalse(via.has_rport)
        self.assertFalse(via.alias)

    def test_bad_typed_params(self) -> None:
        """
        A ttl or rport that is not a number in range raises L{InvalidValue}
        when read.
        """
        for text, attribute in [
            ("SIP/2.0/UDP h;ttl=256", "ttl"),
            ("SIP/2.0/UDP h;ttl", "ttl"),
            ("SIP/2.0/UDP h;ttl=x", "ttl"),
            ("SIP/2.0/UDP h;rport=65536", "rport"),
            ("SIP/2.0/UDP h;rport=-1", "rport"),
        ]:
            with self.subTest(text=text):
                via = _one(text)
                self.assertRaises(InvalidValue, getattr, via, attribute)

    def test_with_param(self) -> None:
        """
        L{Via.with_param} replaces a parameter in place (as a server fills in
        C{rport}, RFC 3581 section 4) or appends one (C{received}, RFC 3261
        section 18.2.1).
        """
        via = _one("SIP/2.0/UDP h;rport;branch=z9hG4bKx")
        updated = via.with_param("rport", "5070").with_param("received", "2001:db8::1")
        self.assertEqual(str(updated), "SIP/2.0/UDP h;rport=5070;branch=z9hG4bKx;received=2001:db8::1")
        self.assertEqual(str(via), "SIP/2.0/UDP h;rport;branch=z9hG4bKx")

    def test_with_param_checks(self) -> None:
        """
        L{Via.with_param} refuses a value that would break the header.
        """
        self.assertRaises(ValueError, Via("UDP", "h").with_param, "received", "1.2.3.4, SIP/2.0/UDP evil")

    def test_without_param(self) -> None:
        """
        L{Via.without_param} removes the parameter, whatever its case.
        """
        self.assertEqual(str(_one("SIP/2.0/UDP h;Maddr=x;branch=1").without_param("maddr")), "SIP/2.0/UDP h;branch=1")

    def test_replace(self) -> None:
        """
        L{Via.replace} changes only the given fields; C{port=None} removes the
        port.
        """
        via = _one("SIP/2.0/UDP h:5060;branch=1")
        self.assertEqual(str(via.replace(transport="TCP")), "SIP/2.0/TCP h:5060;branch=1")
        self.assertEqual(str(via.replace(port=None)), "SIP/2.0/UDP h;branch=1")
        self.assertEqual(str(via.replace(host="x", params=())), "SIP/2.0/UDP x:5060")
        self.assertEqual(via.replace(), via)

    def test_immutable(self) -> None:
        """
        A Via cannot be changed in place.
        """
        via = Via("UDP", "h")
        self.assertRaises(AttributeError, setattr, via, "host", "x")
