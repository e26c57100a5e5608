"""
Tests for L{sipstack.transaction.states}: the states, and the keys that match
messages to transactions (RFC 3261 sections 17.1.3 and 17.2.3).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sipstack.errors import LocalProtocolError
from sipstack.message import Request
from sipstack.message.message import Response
from sipstack.routing import BRANCH_COOKIE as ROUTING_BRANCH_COOKIE
from sipstack.transaction import (
    BRANCH_COOKIE,
    TransactionKey,
    TransactionState,
    cancel_target_key,
    client_key,
    client_key_for_response,
    server_key,
)

from . import make_request, make_response


def _with_via(request: Request, via: str) -> Request:
    """C{request} with its first Via field replaced by C{via}."""
    headers = request.headers.without_first_value("Via").with_added("Via", via, first=True)
    return request.replace(headers=headers)


def _response_with_via(response: Response, via: str) -> Response:
    headers = response.headers.without_first_value("Via").with_added("Via", via, first=True)
    return response.replace(headers=headers)


LEGACY_VIA = "SIP/2.0/UDP client.atlanta.example.com:5060;branch=1234;received=192.0.2.1"


class TransactionStateTests(SynchronousTestCase):
    """
    The states are the seven of RFC 3261 section 17 and RFC 6026.
    """

    def test_states(self) -> None:
        """Every state is named as in the RFC figures."""
        self.assertEqual(
            [state.value for state in TransactionState],
            ["Calling", "Trying", "Proceeding", "Completed", "Confirmed", "Accepted", "Terminated"],
        )

    def test_cookie(self) -> None:
        """The transaction layer's magic cookie is the routing layer's (section 8.1.1.7)."""
        self.assertEqual(BRANCH_COOKIE, ROUTING_BRANCH_COOKIE)


class ServerKeyTests(SynchronousTestCase):
    """
    Server transactions are matched by branch, sent-by and method (RFC 3261
    section 17.2.3).
    """

    def test_rfc3261_key(self) -> None:
        """A branch with the magic cookie gives a branch, sent-by, method key."""
        key = server_key(make_request("INVITE"))
        self.assertEqual(
            key,
            TransactionKey(method="INVITE", branch="z9hG4bK74bf9", sent_by=("client.atlanta.example.com", 5060)),
        )
        self.assertTrue(key.rfc3261)

    def test_retransmission(self) -> None:
        """A retransmitted request gets the same key."""
        self.assertEqual(server_key(make_request("INVITE")), server_key(make_request("INVITE")))

    def test_ack_matches_invite(self) -> None:
        """The ACK of a non-2xx response (same branch, To tag added) matches its INVITE."""
        ack = make_request("ACK", to_tag="8321234356")
        self.assertEqual(server_key(ack), server_key(make_request("INVITE")))

    def test_ack_for_2xx_does_not_match(self) -> None:
        """The ACK of a 2xx has a new branch, so it matches no INVITE transaction."""
        ack = make_request("ACK", branch="z9hG4bKnew", to_tag="8321234356")
        self.assertNotEqual(server_key(ack), server_key(make_request("INVITE")))

    def test_cancel_is_distinct(self) -> None:
        """A CANCEL has the INVITE's branch but its own transaction."""
        self.assertNotEqual(server_key(make_request("CANCEL")), server_key(make_request("INVITE")))
        self.assertEqual(server_key(make_request("CANCEL")).method, "CANCEL")

    def test_cancel_target(self) -> None:
        """cancel_target_key finds the INVITE a CANCEL cancels (section 9.2)."""
        self.assertEqual(cancel_target_key(make_request("CANCEL")), server_key(make_request("INVITE")))

    def test_cancel_target_of_other_method(self) -> None:
        """Only a CANCEL has a cancel target."""
        self.assertRaises(LocalProtocolError, cancel_target_key, make_request("BYE"))

    def test_method(self) -> None:
        """Requests with the same branch but different methods are different transactions."""
        self.assertNotEqual(server_key(make_request("BYE")), server_key(make_request("OPTIONS")))

    def test_sent_by(self) -> None:
        """The same branch from another sent-by is another transaction."""
        other = _with_via(make_request("INVITE"), "SIP/2.0/UDP other.example.com:5060;branch=z9hG4bK74bf9")
        self.assertNotEqual(server_key(other), server_key(make_request("INVITE")))

    def test_sent_by_host_case(self) -> None:
        """The sent-by host compares case-insensitively."""
        upper = _with_via(make_request("INVITE"), "SIP/2.0/UDP CLIENT.Atlanta.example.com:5060;branch=z9hG4bK74bf9")
        self.assertEqual(server_key(upper), server_key(make_request("INVITE")))

    def test_sent_by_port(self) -> None:
        """An absent port is not 5060: a retransmission repeats the Via exactly."""
        portless = _with_via(make_request("INVITE"), "SIP/2.0/UDP client.atlanta.example.com;branch=z9hG4bK74bf9")
        self.assertNotEqual(server_key(portless), server_key(make_request("INVITE")))

    def test_branch_case(self) -> None:
        """The branch compares case-sensitively."""
        self.assertNotEqual(
            server_key(make_request("INVITE", branch="z9hG4bKabc")),
            server_key(make_request("INVITE", branch="z9hG4bKABC")),
        )

    def test_bare_cookie(self) -> None:
        """A branch that is only the cookie falls back to RFC 2543 matching."""
        self.assertFalse(server_key(make_request("INVITE", branch=BRANCH_COOKIE)).rfc3261)


class LegacyServerKeyTests(SynchronousTestCase):
    """
    Requests without the magic cookie are matched by the RFC 2543 fields of
    section 17.2.3.
    """

    def _invite(self) -> Request:
        return _with_via(make_request("INVITE"), LEGACY_VIA)

    def test_fields(self) -> None:
        """The key holds Request-URI, From tag, Call-ID, CSeq number and the top Via."""
        key = server_key(self._invite())
        self.assertFalse(key.rfc3261)
        self.assertIsNone(key.branch)
        self.assertEqual(key.method, "INVITE")
        self.assertEqual(key.request_uri, "sip:bob@biloxi.example.com")
        self.assertEqual(key.from_tag, "9fxced76sl")
        self.assertIsNone(key.to_tag)
        self.assertEqual(key.call_id, "3848276298220188511@atlanta.example.com")
        self.assertEqual(key.cseq_number, 314159)

    def test_retransmission(self) -> None:
        """A retransmitted INVITE gets the same key."""
        self.assertEqual(server_key(self._invite()), server_key(self._invite()))

    def test_ack(self) -> None:
        """The ACK (with the To tag of our response) matches the INVITE."""
        ack = _with_via(make_request("ACK", to_tag="8321234356"), LEGACY_VIA)
        self.assertEqual(server_key(ack), server_key(self._invite()))

    def test_via_parameter_order(self) -> None:
        """Via parameters compare in any order, names case-insensitively (section 20.42)."""
        shuffled = _with_via(
            make_request("INVITE"), "SIP/2.0/UDP client.atlanta.example.com:5060;RECEIVED=192.0.2.1;branch=1234"
        )
        self.assertEqual(server_key(shuffled), server_key(self._invite()))

    def test_via_differs(self) -> None:
        """Another top Via is another transaction."""
        other = _with_via(make_request("INVITE"), LEGACY_VIA.replace("1234", "5678"))
        self.assertNotEqual(server_key(other), server_key(self._invite()))

    def test_cseq_differs(self) -> None:
        """Another CSeq number is another transaction."""
        invite = self._invite()
        other = invite.replace(headers=invite.headers.with_replaced("CSeq", "314160 INVITE"))
        self.assertNotEqual(server_key(other), server_key(invite))

    def test_from_tag_differs(self) -> None:
        """Another From tag is another transaction."""
        invite = self._invite()
        other = invite.replace(headers=invite.headers.with_replaced("From", "<sip:alice@atlanta.example.com>;tag=x"))
        self.assertNotEqual(server_key(other), server_key(invite))

    def test_non_invite_to_tag(self) -> None:
        """Outside INVITE/ACK the To tag is part of the key."""
        bye = _with_via(make_request("BYE", to_tag="a"), LEGACY_VIA)
        other = _with_via(make_request("BYE", to_tag="b"), LEGACY_VIA)
        self.assertEqual(server_key(bye).to_tag, "a")
        self.assertNotEqual(server_key(bye), server_key(other))

    def test_cancel_target(self) -> None:
        """A legacy CANCEL finds its legacy INVITE."""
        cancel = _with_via(make_request("CANCEL"), LEGACY_VIA)
        self.assertEqual(cancel_target_key(cancel), server_key(self._invite()))


class ClientKeyTests(SynchronousTestCase):
    """
    Responses match client transactions by branch and CSeq method (RFC 3261
    section 17.1.3).
    """

    def test_response_matches_request(self) -> None:
        """A response gets the key of the client transaction of its request."""
        invite = make_request("INVITE")
        key = client_key(invite)
        self.assertEqual(key, TransactionKey(method="INVITE", branch="z9hG4bK74bf9"))
        self.assertEqual(client_key_for_response(make_response(invite, 180)), key)

    def test_cancel_response(self) -> None:
        """The 200 to a CANCEL (same branch) matches the CANCEL, not the INVITE."""
        cancel = make_request("CANCEL")
        response_key = client_key_for_response(make_response(cancel, 200))
        self.assertEqual(response_key, client_key(cancel))
        self.assertNotEqual(response_key, client_key(make_request("INVITE")))

    def test_sent_by_ignored(self) -> None:
        """Client matching ignores sent-by: the response's Via may carry received/rport."""
        invite = make_request("INVITE")
        response = _response_with_via(
            make_response(invite, 200),
            "SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.1;rport=5062",
        )
        self.assertEqual(client_key_for_response(response), client_key(invite))

    def test_response_without_cookie(self) -> None:
        """A response whose branch lacks the cookie matches no client transaction of ours."""
        response = _response_with_via(make_response(make_request("INVITE"), 200), LEGACY_VIA)
        self.assertIsNone(client_key_for_response(response))

    def test_request_without_cookie(self) -> None:
        """A client transaction must have an RFC 3261 branch (section 8.1.1.7)."""
        self.assertRaises(LocalProtocolError, client_key, make_request("INVITE", branch="1234"))
