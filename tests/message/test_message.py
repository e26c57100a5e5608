"""
Tests for L{sipstack.message.message}: typed accessors and building responses.
"""

from __future__ import annotations

import dataclasses

from twisted.trial.unittest import SynchronousTestCase

from sipstack.errors import LocalProtocolError, RemoteProtocolError
from sipstack.message import (
    WILDCARD,
    Headers,
    Request,
    Response,
    Via,
    build_response,
    parse_datagram,
    parse_uri,
    serialize,
)
from sipstack.message.message import _RequestSlots, _ResponseSlots

REGISTER = (
    b"REGISTER sip:registrar.example.net SIP/2.0\r\n"
    b"Via: SIP/2.0/TLS ua.example.net:5061;branch=z9hG4bKr1;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:carol@example.net>\r\n"
    b"From: <sip:carol@example.net>;tag=5fd1\r\n"
    b"Call-ID: reg-1@ua.example.net\r\n"
    b"CSeq: 41 REGISTER\r\n"
    b"Timestamp: 54\r\n"
    b"Contact: <sip:carol@192.0.2.7:5061;transport=tls>;expires=600;q=0.7;"
    b'+sip.instance="<urn:uuid:00000000-0000-1000-8000-000a95a0e128>";reg-id=1\r\n'
    b"Contact: <sip:carol@198.51.100.7>\r\n"
    b"Expires: 3600\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def _register() -> Request:
    request = parse_datagram(REGISTER)
    assert isinstance(request, Request)
    return request


class AccessorTests(SynchronousTestCase):
    """
    Typed header values are parsed on demand, cached, and errors name the header.
    """

    def test_contacts(self) -> None:
        """Every Contact is read with its parameters."""
        contacts = _register().contacts
        assert isinstance(contacts, list)
        self.assertEqual(len(contacts), 2)
        self.assertEqual(contacts[0].expires, 600)
        self.assertEqual(contacts[0].q, 0.7)
        self.assertEqual(contacts[0].reg_id, 1)
        self.assertEqual(contacts[0].instance, "<urn:uuid:00000000-0000-1000-8000-000a95a0e128>")
        self.assertIsNone(contacts[1].expires)
        self.assertEqual(_register().expires, 3600)

    def test_wildcard_contact(self) -> None:
        """Contact '*' in a REGISTER reads as the wildcard."""
        data = REGISTER.replace(b"Contact: <sip:carol@198.51.100.7>\r\n", b"")
        start = data.index(b"Contact:")
        data = data[:start] + b"Contact: *" + data[data.index(b"\r\n", start) :]
        request = parse_datagram(data)
        assert request is not None
        self.assertIs(request.contacts, WILDCARD)

    def test_values_cached(self) -> None:
        """A typed value is parsed once: reading it twice gives the same object."""
        request = _register()
        self.assertIs(request.top_via, request.top_via)
        self.assertIs(request.from_, request.from_)

    def test_replace_reparses(self) -> None:
        """replace() gives a message whose typed values come from its new headers."""
        request = _register()
        request.call_id  # noqa: B018
        changed = request.replace(headers=request.headers.with_replaced("Call-ID", "other@x"))
        self.assertEqual(changed.call_id, "other@x")
        self.assertEqual(request.call_id, "reg-1@ua.example.net")

    def test_malformed_value_names_header(self) -> None:
        """A malformed value read lazily raises a 400 naming the header."""
        request = Request(
            method="OPTIONS",
            uri=parse_uri("sip:a@example.com"),
            headers=Headers([("Route", "<sip:broken"), ("Expires", "soon")]),
        )
        error = self.assertRaises(RemoteProtocolError, lambda: request.routes)
        self.assertEqual(error.status, 400)
        self.assertIn("Route", error.reason)
        self.assertIn("Expires", self.assertRaises(RemoteProtocolError, lambda: request.expires).reason)
        self.assertEqual(self.assertRaises(RemoteProtocolError, lambda: request.cseq).reason, "Missing CSeq header")

    def test_equality_ignores_cache_and_notes(self) -> None:
        """Messages compare by their content, not by what was read from them."""
        first, second = _register(), _register()
        first.contacts  # noqa: B018
        self.assertEqual(first, second)

    def test_bad_status(self) -> None:
        """A response status outside 100-699 is a local error."""
        self.assertRaises(LocalProtocolError, Response, status=99)

    def test_with_body(self) -> None:
        """with_body sets Content-Length and Content-Type to match."""
        request = _register().with_body(b"hello", "text/plain")
        self.assertEqual(request.content_length, 5)
        self.assertEqual(request.headers.get("Content-Type"), "text/plain")
        self.assertEqual(parse_datagram(serialize(request)), request)


class ParsedMessageTests(SynchronousTestCase):
    """
    Messages the parser builds are true L{Request} and L{Response} values, and
    one written back as it came stops being written so once it is changed.
    """

    def test_slots_layout(self) -> None:
        """
        C{_RequestSlots} and C{_ResponseSlots}, which the parser fills in
        before making them messages, have exactly the slots of L{Request} and
        L{Response}.
        """
        for slots, cls in ((_RequestSlots, Request), (_ResponseSlots, Response)):
            self.assertEqual(sorted(slots.__slots__), sorted(f.name for f in dataclasses.fields(cls)))
            self.assertEqual(sorted(slots.__slots__), sorted(cls.__slots__))
            self.assertEqual(slots.__basicsize__, cls.__basicsize__)

    def test_true_values(self) -> None:
        """A parsed message has the exact type, equality, hash and immutability of a constructed one."""
        request = _register()
        self.assertIs(type(request), Request)
        built = Request(method=request.method, uri=request.uri, headers=request.headers, body=request.body)
        self.assertEqual(request, built)
        self.assertEqual(hash(request), hash(built))
        self.assertRaises(dataclasses.FrozenInstanceError, setattr, request, "method", "BYE")
        self.assertEqual(repr(request), repr(built))

    def test_canonical_bytes_kept(self) -> None:
        """An unchanged canonical message is written as the very bytes it came in."""
        self.assertIs(serialize(_register()), REGISTER)

    def test_changes_drop_bytes(self) -> None:
        """
        Every way of changing a message gives one that is written from its
        values: the change shows in the bytes.
        """
        request = _register()
        via = Via("UDP", "proxy.example.net", params=(("branch", "z9hG4bKp1"),))
        changed: list[Request] = [
            request.replace(method="REGISTER"),
            request.replace(headers=request.headers.with_added("Via", str(via), first=True)),
            request.with_body(b"x", "text/plain"),
            request.with_top_via(via),
        ]
        for copy in changed:
            data = serialize(copy)
            built = Request(method=copy.method, uri=copy.uri, headers=copy.headers, body=copy.body)
            self.assertEqual(data, serialize(built))
        self.assertIn(b"proxy.example.net", serialize(changed[-1]))
        self.assertTrue(serialize(changed[2]).endswith(b"\r\n\r\nx"))

    def test_compact_ignores_bytes(self) -> None:
        """Compact serialization writes the compact names, whatever the message came in as."""
        data = serialize(_register(), compact=True)
        self.assertIn(b"\r\nv: SIP/2.0/TLS", data)
        self.assertIn(b"\r\nm: <sip:carol@198.51.100.7>", data)


class BuildResponseTests(SynchronousTestCase):
    """
    build_response follows RFC 3261 section 8.2.6.
    """

    def test_copies_headers(self) -> None:
        """Via (all, in order), From, Call-ID and CSeq are copied exactly; To gets a tag."""
        request = _register()
        response = build_response(request, 200, to_tag="abc")
        self.assertEqual(response.reason, "OK")
        for name in ("Via", "From", "Call-ID", "CSeq"):
            self.assertEqual(response.headers.get_all(name), request.headers.get_all(name))
        self.assertEqual(response.to.tag, "abc")
        self.assertEqual(response.to.uri, request.to.uri)
        self.assertNotIn("Contact", response.headers)
        self.assertNotIn("Timestamp", response.headers)
        self.assertEqual(response.content_length, 0)

    def test_random_tag(self) -> None:
        """Without to_tag, each response gets a fresh random tag."""
        request = _register()
        first, second = build_response(request, 486), build_response(request, 486)
        self.assertIsNotNone(first.to.tag)
        self.assertNotEqual(first.to.tag, second.to.tag)

    def test_existing_tag_kept(self) -> None:
        """A To that already has a tag (in-dialog request) keeps it."""
        request = _register()
        tagged = request.replace(headers=request.headers.with_replaced("To", "<sip:carol@example.net>;tag=keep"))
        self.assertEqual(build_response(tagged, 200, to_tag="new").to.tag, "keep")

    def test_trying(self) -> None:
        """100 Trying adds no To tag and copies Timestamp (RFC 3261 section 8.2.6.1)."""
        response = build_response(_register(), 100)
        self.assertIsNone(response.to.tag)
        self.assertEqual(response.headers.get("Timestamp"), "54")

    def test_extra_headers_and_body(self) -> None:
        """Extra headers are added and a body gets a matching Content-Length."""
        response = build_response(_register(), 200, "Fine", headers=[("Expires", "10")], body=b"xyz")
        self.assertEqual(response.reason, "Fine")
        self.assertEqual(response.expires, 10)
        self.assertEqual(response.content_length, 3)
        self.assertEqual(parse_datagram(serialize(response)), response)

    def test_unknown_status_reason(self) -> None:
        """A status with no registered phrase gets an empty reason."""
        self.assertEqual(build_response(_register(), 499).reason, "")

    def test_ack_never_answered(self) -> None:
        """Building a response to an ACK is a local error."""
        ack = _register().replace(method="ACK")
        self.assertRaises(LocalProtocolError, build_response, ack, 200)
