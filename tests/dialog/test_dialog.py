"""
Tests for L{sipstack.dialog}: dialog state from the request and 2xx at
either end (RFC 3261 section 12.1), requests within the dialog with loose
and strict routing (section 12.2.1.1), sequence numbers, and the request
builder outside dialogs (section 8.1.1).
"""

from __future__ import annotations

import random

from twisted.trial.unittest import SynchronousTestCase

from sipstack.dialog import Dialog, DialogId, build_request
from sipstack.errors import LocalProtocolError
from sipstack.message import Request, Response, build_response, parse_datagram, parse_uri


def _invite(record_routes: tuple[str, ...] = (), uri: str = "sip:bob@biloxi.example.com") -> Request:
    lines = "".join(f"Record-Route: {route}\r\n" for route in record_routes)
    data = (
        f"INVITE {uri} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
        f"{lines}"
        "Max-Forwards: 70\r\n"
        "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        "To: Bob <sip:bob@biloxi.example.com>\r\n"
        "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        "CSeq: 314159 INVITE\r\n"
        "Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    request = parse_datagram(data)
    assert isinstance(request, Request)
    return request


def _ok(invite: Request, record_routes: tuple[str, ...] = ()) -> Response:
    headers = [("Record-Route", route) for route in record_routes]
    headers.append(("Contact", "<sip:bob@192.0.2.4>"))
    return build_response(invite, 200, to_tag="a6c85cf", headers=headers)


ROUTES = ("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>")


class UACDialogTests(SynchronousTestCase):
    """The caller's dialog, from its INVITE and the 2xx (RFC 3261 section 12.1.2)."""

    def test_state(self) -> None:
        """IDs, URIs, remote target from Contact, route set reversed, CSeq of the INVITE."""
        invite = _invite()
        dialog = Dialog.from_uac(invite, _ok(invite, ROUTES))
        self.assertEqual(dialog.id, DialogId("a84b4c76e66710@pc33.atlanta.example.com", "1928301774", "a6c85cf"))
        self.assertEqual(str(dialog.remote_target), "sip:bob@192.0.2.4")
        routes = [str(route.uri) for route in dialog.route_set]
        self.assertEqual(routes, ["sip:p2.example.com;lr", "sip:p1.example.com;lr"])
        self.assertEqual((dialog.local_cseq, dialog.remote_cseq), (314159, None))
        self.assertIsNone(dialog.local_uri.tag)
        self.assertEqual(str(dialog.remote_uri.uri), "sip:bob@biloxi.example.com")
        self.assertFalse(dialog.secure)

    def test_bye_loose(self) -> None:
        """A BYE goes to the remote target with the route set as Route headers, and the next CSeq."""
        invite = _invite()
        dialog = Dialog.from_uac(invite, _ok(invite, ROUTES))
        bye = dialog.create_request("BYE")
        self.assertEqual(str(bye.uri), "sip:bob@192.0.2.4")
        self.assertEqual(bye.headers.get_all("Route"), ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"])
        self.assertEqual((bye.cseq.number, bye.cseq.method), (314160, "BYE"))
        self.assertEqual((bye.from_.tag, bye.to.tag, bye.call_id), ("1928301774", "a6c85cf", invite.call_id))
        self.assertNotIn("Via", bye.headers)
        self.assertEqual(bye.headers.get("Content-Length"), "0")

    def test_ack_cseq(self) -> None:
        """The ACK of the 2xx repeats the INVITE's CSeq number; it does not use up a number."""
        invite = _invite()
        dialog = Dialog.from_uac(invite, _ok(invite))
        ack = dialog.create_request("ACK")
        self.assertEqual((ack.cseq.number, ack.cseq.method), (314159, "ACK"))
        self.assertEqual(dialog.create_request("BYE").cseq.number, 314160)

    def test_reinvite(self) -> None:
        """A re-INVITE takes the next number, carries our Contact, and its ACK repeats its number."""
        invite = _invite()
        dialog = Dialog.from_uac(invite, _ok(invite))
        reinvite = dialog.create_request("INVITE", body=b"v=0\r\n", content_type="application/sdp")
        self.assertEqual(reinvite.cseq.number, 314160)
        self.assertEqual(reinvite.headers.get("Contact"), "<sip:alice@pc33.atlanta.example.com>")
        self.assertEqual(reinvite.body, b"v=0\r\n")
        self.assertEqual(dialog.create_request("ACK").cseq.number, 314160)

    def test_no_route_set(self) -> None:
        """Without Record-Route there are no Route headers."""
        invite = _invite()
        bye = Dialog.from_uac(invite, _ok(invite)).create_request("BYE")
        self.assertEqual(bye.headers.get_all("Route"), [])

    def test_strict_router(self) -> None:
        """
        A first route without lr is a strict router: it becomes the
        Request-URI (without the method parameter), and the remote target
        is the last Route (section 12.2.1.1).
        """
        invite = _invite()
        routes = ("<sip:p1.example.com;lr>", "<sip:strict.example.com;method=INVITE>")
        bye = Dialog.from_uac(invite, _ok(invite, routes)).create_request("BYE")
        self.assertEqual(str(bye.uri), "sip:strict.example.com")
        self.assertEqual(bye.headers.get_all("Route"), ["<sip:p1.example.com;lr>", "<sip:bob@192.0.2.4>"])

    def test_secure(self) -> None:
        """A sips: Request-URI sent over TLS makes a secure dialog; over anything else it does not."""
        invite = _invite(uri="sips:bob@biloxi.example.com")
        self.assertTrue(Dialog.from_uac(invite, _ok(invite), over_tls=True).secure)
        self.assertFalse(Dialog.from_uac(invite, _ok(invite), over_tls=False).secure)

    def test_no_tag(self) -> None:
        """
        A 2xx without a To tag (an RFC 2543 peer) makes a dialog with the null
        remote tag (RFC 3261 section 12.1.2); our own request without a From
        tag is a local error.
        """
        invite = _invite()
        response = _ok(invite).replace(headers=_ok(invite).headers.with_replaced("To", "<sip:bob@b.example.com>"))
        dialog = Dialog.from_uac(invite, response)
        self.assertEqual(dialog.id.remote_tag, "")
        untagged = invite.replace(headers=invite.headers.with_replaced("From", "<sip:alice@a.example.com>"))
        self.assertRaises(LocalProtocolError, Dialog.from_uac, untagged, _ok(invite))

    def test_cancel_refused(self) -> None:
        """CANCEL is not built within a dialog, and ACK needs an INVITE."""
        invite = _invite()
        dialog = Dialog.from_uac(invite, _ok(invite))
        self.assertRaises(LocalProtocolError, dialog.create_request, "CANCEL")
        subscribe = invite.replace(method="SUBSCRIBE", headers=invite.headers.with_replaced("CSeq", "1 SUBSCRIBE"))
        self.assertRaises(LocalProtocolError, Dialog.from_uac(subscribe, _ok(invite)).create_request, "ACK")

    def test_target_refresh_response(self) -> None:
        """The Contact of a 2xx to a re-INVITE updates the remote target."""
        invite = _invite()
        dialog = Dialog.from_uac(invite, _ok(invite))
        refreshed = build_response(invite, 200, to_tag="a6c85cf", headers=[("Contact", "<sip:bob@192.0.2.9>")])
        dialog.receive_response(refreshed, "INVITE")
        self.assertEqual(str(dialog.remote_target), "sip:bob@192.0.2.9")


class UASDialogTests(SynchronousTestCase):
    """The callee's dialog, from the INVITE and its own 2xx (RFC 3261 section 12.1.1)."""

    def test_rfc2543_peer(self) -> None:
        """
        An INVITE without a From tag or a Contact (an RFC 2543 peer) makes a
        dialog with the null remote tag, reached at its From URI.
        """
        invite = _invite()
        headers = invite.headers.without("Contact").with_replaced("From", "<sip:alice@atlanta.example.com>")
        old = invite.replace(headers=headers)
        dialog = Dialog.from_uas(old, _ok(old))
        self.assertEqual(dialog.id.remote_tag, "")
        self.assertEqual(str(dialog.remote_target), "sip:alice@atlanta.example.com")

    def test_state(self) -> None:
        """Tags swapped, route set in order, remote target from the request's Contact, remote CSeq set."""
        invite = _invite(ROUTES)
        dialog = Dialog.from_uas(invite, _ok(invite), rng=random.Random(1))
        self.assertEqual(dialog.id, DialogId(invite.call_id, "a6c85cf", "1928301774"))
        self.assertEqual([str(route) for route in dialog.route_set], list(ROUTES))
        self.assertEqual(str(dialog.remote_target), "sip:alice@pc33.atlanta.example.com")
        self.assertEqual((dialog.local_cseq, dialog.remote_cseq), (None, 314159))
        self.assertEqual(str(dialog.local_contact), "<sip:bob@192.0.2.4>")

    def test_bye_from_callee(self) -> None:
        """The callee's BYE: From has its tag, To the caller's; CSeq starts at a random value."""
        invite = _invite(ROUTES)
        dialog = Dialog.from_uas(invite, _ok(invite), rng=random.Random(1))
        bye = dialog.create_request("BYE")
        self.assertEqual((bye.from_.tag, bye.to.tag), ("a6c85cf", "1928301774"))
        self.assertEqual(str(bye.uri), "sip:alice@pc33.atlanta.example.com")
        self.assertEqual(bye.headers.get_all("Route"), list(ROUTES))
        first = bye.cseq.number
        self.assertTrue(1 <= first < 2**31)
        self.assertEqual(dialog.create_request("INFO").cseq.number, first + 1)

    def test_remote_cseq(self) -> None:
        """A request with a lower CSeq is refused (section 12.2.2); a higher one is recorded."""
        invite = _invite()
        dialog = Dialog.from_uas(invite, _ok(invite))
        lower = invite.replace(method="BYE", headers=invite.headers.with_replaced("CSeq", "5 BYE"))
        higher = invite.replace(method="BYE", headers=invite.headers.with_replaced("CSeq", "314160 BYE"))
        self.assertFalse(dialog.receive_request(lower))
        self.assertTrue(dialog.receive_request(higher))
        self.assertEqual(dialog.remote_cseq, 314160)

    def test_incoming_id(self) -> None:
        """DialogId.of_incoming takes our tag from To and theirs from From; None without a To tag."""
        invite = _invite()
        self.assertIsNone(DialogId.of_incoming(invite))
        bye = Dialog.from_uac(invite, _ok(invite)).create_request("BYE")
        self.assertEqual(DialogId.of_incoming(bye), DialogId(invite.call_id, "a6c85cf", "1928301774"))


class BuildRequestTests(SynchronousTestCase):
    """build_request: a request outside a dialog (RFC 3261 section 8.1.1)."""

    def test_fields(self) -> None:
        """From gets a tag, Call-ID is fresh, CSeq, Max-Forwards, Contact and body are set; no Via."""
        request = build_request(
            "MESSAGE",
            "sip:bob@example.com",
            from_="<sip:alice@example.com>",
            to="<sip:bob@example.com>",
            contact="<sip:alice@192.0.2.1>",
            body=b"hello",
            content_type="text/plain",
        )
        self.assertEqual(request.method, "MESSAGE")
        self.assertEqual(request.uri, parse_uri("sip:bob@example.com"))
        self.assertIsNotNone(request.from_.tag)
        self.assertIsNone(request.to.tag)
        self.assertEqual((request.cseq.number, request.cseq.method), (1, "MESSAGE"))
        self.assertEqual(request.max_forwards, 70)
        self.assertEqual(request.headers.get("Content-Type"), "text/plain")
        self.assertEqual(request.content_length, 5)
        self.assertNotIn("Via", request.headers)
        other = build_request("MESSAGE", "sip:bob@example.com", from_="<sip:a@b.c>", to="<sip:d@e.f>")
        self.assertNotEqual(other.call_id, request.call_id)


class EarlyDialogTests(SynchronousTestCase):
    """
    Dialogs made from a 101-199 response are early, and the 2xx confirms
    them (RFC 3261 sections 12.1 and 13.2.2.4).
    """

    def _ringing(self, invite: Request) -> Response:
        headers = [("Record-Route", "<sip:early.example.com;lr>"), ("Contact", "<sip:bob@198.51.100.7>")]
        return build_response(invite, 180, to_tag="a6c85cf", headers=headers)

    def test_uac_confirm(self) -> None:
        """At the UAC the 2xx recomputes the route set and the remote target; the CSeq is kept."""
        invite = _invite()
        dialog = Dialog.from_uac(invite, self._ringing(invite))
        self.assertTrue(dialog.early)
        self.assertTrue(dialog.uac)
        self.assertEqual(str(dialog.remote_target), "sip:bob@198.51.100.7")
        dialog.create_request("INFO")
        dialog.confirm(_ok(invite, ROUTES))
        self.assertFalse(dialog.early)
        self.assertEqual(str(dialog.remote_target), "sip:bob@192.0.2.4")
        self.assertEqual(
            [str(route.uri) for route in dialog.route_set], ["sip:p2.example.com;lr", "sip:p1.example.com;lr"]
        )
        self.assertEqual(dialog.local_cseq, 314160)

    def test_uas_confirm(self) -> None:
        """At the UAS our 2xx's Contact becomes the local contact; the remote target and routes stay."""
        invite = _invite(ROUTES)
        ringing = build_response(invite, 180, to_tag="a6c85cf")
        dialog = Dialog.from_uas(invite, ringing)
        self.assertTrue(dialog.early)
        self.assertFalse(dialog.uac)
        self.assertIsNone(dialog.local_contact)
        dialog.confirm(_ok(invite))
        self.assertFalse(dialog.early)
        self.assertEqual(str(dialog.local_contact), "<sip:bob@192.0.2.4>")
        self.assertEqual(str(dialog.remote_target), "sip:alice@pc33.atlanta.example.com")
        self.assertEqual(len(dialog.route_set), 2)

    def test_confirmed_unchanged(self) -> None:
        """Confirming a confirmed dialog changes nothing (a re-INVITE's 2xx goes through receive_response)."""
        invite = _invite()
        dialog = Dialog.from_uac(invite, _ok(invite))
        other = build_response(invite, 200, to_tag="a6c85cf", headers=[("Contact", "<sip:elsewhere@192.0.2.9>")])
        dialog.confirm(other)
        self.assertEqual(str(dialog.remote_target), "sip:bob@192.0.2.4")
