"""
Tests for L{sipstack.services.proxy_core}: each decision of RFC 3261 section
16 on message text (validation, loops and spirals, route preprocessing with
a strict-routing previous hop, targets from bindings, forwarding with single
and double Record-Route, q-value groups, the response context with its best
response, 401/407 merging, 6xx, 2xx and CANCEL, stateless forwarding), a
call flow in the style of RFC 3261 section 24.2, and a Hypothesis property
of the response context over any sequence of branch responses.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipstack.hop import FlowKey, Peer, TransportKind
from sipstack.message import SIPURI, NameAddress, Request, Response, build_response, parse_datagram, parse_uri
from sipstack.message.auth import parse_challenge
from sipstack.routing.via import BRANCH_COOKIE
from sipstack.services.digest import Authenticator, answer_challenge, parse_users, users_line
from sipstack.services.location import Binding
from sipstack.services.proxy_core import (
    DROP,
    BranchState,
    CancelBranches,
    ForUs,
    ForwardResponse,
    ForwardTo,
    Interface,
    LookUp,
    ProxyIdentity,
    ResponseContext,
    StartBranches,
    Target,
    answer_cancel,
    check_request,
    choose_best,
    decode_flow_token,
    encode_flow_token,
    flow_of_route,
    forward_request,
    forward_statelessly,
    forward_stray_response,
    group_by_q,
    is_looped,
    is_proxy_branch,
    preprocess,
    proxy_branch,
    route_request,
    stateless_branch,
    targets_from_bindings,
)
from sipstack.services.proxy_core._responses import Action

IDENTITY = ProxyIdentity(domains=frozenset({"atlanta.com"}), hosts=frozenset({"proxy.atlanta.com", "192.0.2.10"}))
UDP_SIDE = Interface(TransportKind.UDP, "192.0.2.10", 5060, tls_port=5061)
TCP_SIDE = Interface(TransportKind.TCP, "192.0.2.10", 5060, tls_port=5061)
TLS_SIDE = Interface(TransportKind.TLS, "192.0.2.10", 5061, tls_port=5061)
#: The sides of a proxy whose TLS certificate names proxy.atlanta.com.
NAMED_UDP_SIDE = Interface(TransportKind.UDP, "192.0.2.10", 5060, tls_port=5061, tls_name="proxy.atlanta.com")
NAMED_TLS_SIDE = Interface(TransportKind.TLS, "192.0.2.10", 5061, tls_port=5061, tls_name="proxy.atlanta.com")

ALICE_VIA = "SIP/2.0/UDP 192.0.2.101:5060;branch=z9hG4bK74bf9;received=192.0.2.101;rport=5060"


def parse(text: str) -> Request | Response:
    """A message from test text (LF line ends become CRLF)."""
    data = text.lstrip("\n").replace("\n", "\r\n").encode()
    message = parse_datagram(data)
    assert message is not None
    return message


def request(
    uri: str = "sip:bob@biloxi.com",
    *,
    method: str = "INVITE",
    extra: str = "",
    via: str = ALICE_VIA,
    max_forwards: str | None = "70",
    from_: str = "Alice <sip:alice@atlanta.com>;tag=9fxced76sl",
    to: str = "Bob <sip:bob@biloxi.com>",
    cseq: int = 1,
) -> Request:
    """A request in the style of RFC 3261 section 24.2, with C{extra} header lines."""
    forwards = "" if max_forwards is None else f"Max-Forwards: {max_forwards}\n"
    text = f"""
{method} {uri} SIP/2.0
Via: {via}
{forwards}From: {from_}
To: {to}
Call-ID: 3848276298220188511@atlanta.example.com
CSeq: {cseq} {method}
Contact: <sip:alice@192.0.2.101>
{extra}Content-Length: 0

"""
    message = parse(text)
    assert isinstance(message, Request)
    return message


def response_to(forwarded: Request, status: int, *, extra: Sequence[tuple[str, str]] = ()) -> Response:
    """A response a downstream element sends to our copy (our Via on top)."""
    return build_response(forwarded, status, to_tag="b0b", headers=extra)


def binding(contact: str, *, q: str | None = None, path: tuple[str, ...] = (), flow: FlowKey | None = None) -> Binding:
    params = () if q is None else (("q", q),)
    return Binding("sip:bob@atlanta.com", contact, 2e9, "reg-1", 1, params, path, flow)


BOB_FLOW = FlowKey(TransportKind.TCP, Peer("192.0.2.4", 49152), Peer("192.0.2.10", 5060), 7)
BOB_TLS_FLOW = FlowKey(TransportKind.TLS, Peer("192.0.2.4", 49153), Peer("192.0.2.10", 5061), 8)


def route_values(message: Request | Response, name: str = "Route") -> list[str]:
    return [str(address.uri) for address in (message.routes if name == "Route" else message.record_routes)]


class PurityTests(SynchronousTestCase):
    """The core is pure: importing it loads no Twisted and no I/O library."""

    def test_no_twisted(self) -> None:
        code = (
            "import sys, sipstack.services.proxy_core; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'twisted', 'OpenSSL', 'dns', 'zope'}))"
        )
        output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        self.assertEqual(output.strip(), "[]")


class ValidationTests(SynchronousTestCase):
    """Section 16.3."""

    def test_valid(self) -> None:
        """A well-formed request in a supported scheme passes every check."""
        self.assertIsNone(check_request(request(), IDENTITY))

    def test_unsupported_scheme(self) -> None:
        """A C{tel:} Request-URI, which the proxy cannot route, gets 416."""
        answer = check_request(request("tel:+15555550100"), IDENTITY)
        assert isinstance(answer, Response)
        self.assertEqual(answer.status, 416)
        self.assertIsNone(check_request(request("tel:+15555550100"), IDENTITY, schemes=frozenset({"sip", "tel"})))

    def test_max_forwards_zero(self) -> None:
        """Max-Forwards 0 gets 483; 1 passes."""
        answer = check_request(request(max_forwards="0"), IDENTITY)
        assert isinstance(answer, Response)
        self.assertEqual((answer.status, answer.reason), (483, "Too Many Hops"))
        self.assertIsNone(check_request(request(max_forwards="1"), IDENTITY))

    def test_options_max_forwards_zero(self) -> None:
        """An OPTIONS with Max-Forwards 0 is answered by the proxy as a UAS: 200 with Allow."""
        answer = check_request(request(method="OPTIONS", max_forwards="0"), IDENTITY, supported=frozenset({"path"}))
        assert isinstance(answer, Response)
        self.assertEqual(answer.status, 200)
        self.assertIn("INVITE", answer.headers.get("Allow") or "")
        self.assertEqual(answer.headers.get("Supported"), "path")

    def test_ack_is_never_answered(self) -> None:
        """An ACK that fails a check is dropped, not answered."""
        self.assertIs(check_request(request(method="ACK", max_forwards="0"), IDENTITY), DROP)
        self.assertIsNone(check_request(request(method="ACK"), IDENTITY))

    def test_proxy_require(self) -> None:
        """Unsupported Proxy-Require options get 420 with Unsupported listing exactly them."""
        extra = "Proxy-Require: foo, path\nProxy-Require: bar\n"
        answer = check_request(request(extra=extra), IDENTITY, supported=frozenset({"path"}))
        assert isinstance(answer, Response)
        self.assertEqual(answer.status, 420)
        self.assertEqual(answer.headers.get("Unsupported"), "foo, bar")
        self.assertIsNone(
            check_request(request(extra="Proxy-Require: Path\n"), IDENTITY, supported=frozenset({"path"}))
        )

    def test_bad_via_is_400(self) -> None:
        """A malformed lower Via, read for loop detection, gets 400."""
        bad = request(extra="", via=f"{ALICE_VIA}, SIP/2.0/UDP ;;;")
        answer = check_request(bad, IDENTITY)
        assert isinstance(answer, Response)
        self.assertEqual(answer.status, 400)


class AuthenticationTests(SynchronousTestCase):
    """Section 16.3 step 6 with the digest authenticator."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        users = parse_users(users_line("alice", "atlanta.com", "wonderland"))
        self.authenticator = Authenticator(users, "atlanta.com", self.clock, b"s" * 32)

    def check(self, req: Request) -> Response | None:
        answer = check_request(req, IDENTITY, authenticator=self.authenticator)
        assert answer is not DROP
        return answer

    def credentials(self, challenge_text: str, password: str) -> str:
        challenge = parse_challenge(challenge_text)
        return str(answer_challenge(challenge, "INVITE", "sip:bob@biloxi.com", "alice", password))

    def test_challenge(self) -> None:
        """A request from our domain without credentials gets 407 with one challenge per algorithm."""
        answer = self.check(request())
        assert answer is not None
        self.assertEqual(answer.status, 407)
        challenges = [parse_challenge(value) for value in answer.headers.get_all("Proxy-Authenticate")]
        self.assertEqual([c.algorithm for c in challenges], ["SHA-256", "MD5"])
        self.assertEqual({c.realm for c in challenges}, {"atlanta.com"})

    def test_good_credentials(self) -> None:
        """Right credentials pass; wrong ones are challenged again."""
        answer = self.check(request())
        assert answer is not None
        challenge = answer.headers.get_all("Proxy-Authenticate")[0]
        good = request(extra=f"Proxy-Authorization: {self.credentials(challenge, 'wonderland')}\n")
        self.assertIsNone(self.check(good))
        bad = request(extra=f"Proxy-Authorization: {self.credentials(challenge, 'guess')}\n")
        refused = self.check(bad)
        assert refused is not None
        self.assertEqual(refused.status, 407)

    def test_malformed_credentials(self) -> None:
        """Credentials for our realm that lack parameters get 400."""
        answer = self.check(request(extra='Proxy-Authorization: Digest realm="atlanta.com", username="alice"\n'))
        assert answer is not None
        self.assertEqual(answer.status, 400)

    def test_not_challenged(self) -> None:
        """Requests from other domains, within dialogs, ACK and CANCEL are not challenged."""
        self.assertIsNone(self.check(request(from_="<sip:carol@chicago.com>;tag=1")))
        self.assertIsNone(self.check(request(to="<sip:bob@biloxi.com>;tag=314159")))
        self.assertIsNone(check_request(request(method="CANCEL"), IDENTITY, authenticator=self.authenticator))
        self.assertIsNone(check_request(request(method="ACK"), IDENTITY, authenticator=self.authenticator))

    def test_own_rule(self) -> None:
        """C{challenged} replaces the rule: here a request from another domain is challenged too."""
        foreign = request(from_="<sip:carol@chicago.com>;tag=1")
        answer = check_request(foreign, IDENTITY, authenticator=self.authenticator, challenged=lambda r, i: True)
        assert isinstance(answer, Response)
        self.assertEqual(answer.status, 407)
        self.assertIsNone(
            check_request(request(), IDENTITY, authenticator=self.authenticator, challenged=lambda r, i: False)
        )


class LoopTests(SynchronousTestCase):
    """Section 16.3 step 4 with the branch of section 16.6 step 8."""

    def came_back(self, forwarded: Request, *, uri: str | None = None, route: str | None = None) -> Request:
        """C{forwarded} as another proxy sends it back to us, maybe changed."""
        via = f"SIP/2.0/UDP 198.51.100.7:5060;branch={BRANCH_COOKIE}other;received=198.51.100.7"
        headers = forwarded.headers.with_added("Via", via, first=True)
        if route is not None:
            headers = headers.with_added("Route", route)
        back = forwarded.replace(headers=headers)
        if uri is not None:
            back = back.replace(uri=parse_uri(uri))
        return back

    def forwarded(self, received: Request) -> Request:
        return forward_request(received, Target(received.uri), received=received, inbound=UDP_SIDE).request

    def test_loop(self) -> None:
        """A request we forwarded that comes back unchanged is a loop: 482."""
        received = request()
        back = self.came_back(self.forwarded(received))
        self.assertTrue(is_looped(back, IDENTITY))
        answer = check_request(back, IDENTITY)
        assert isinstance(answer, Response)
        self.assertEqual(answer.status, 482)
        self.assertIsNone(check_request(back, IDENTITY, loop_detection=False))

    def test_spiral_new_request_uri(self) -> None:
        """The same request back with another Request-URI spirals: processing goes on."""
        back = self.came_back(self.forwarded(request()), uri="sip:bob@192.0.2.4")
        self.assertFalse(is_looped(back, IDENTITY))
        self.assertIsNone(check_request(back, IDENTITY))

    def test_spiral_new_route(self) -> None:
        """A changed Route also makes a spiral, not a loop."""
        back = self.came_back(self.forwarded(request()), route="<sip:p2.biloxi.com;lr>")
        self.assertFalse(is_looped(back, IDENTITY))

    def test_not_our_via(self) -> None:
        """Our branch form under another sent-by is not ours: no loop."""
        forwarded = self.forwarded(request())
        other = ProxyIdentity(domains=IDENTITY.domains, hosts=frozenset({"proxy.biloxi.com"}))
        self.assertFalse(is_looped(self.came_back(forwarded), other))

    def test_fresh_request(self) -> None:
        """A request that never passed here is no loop."""
        self.assertFalse(is_looped(request(), IDENTITY))

    def test_branch_forms(self) -> None:
        """Stateful branches are unique and carry the loop key; stateless ones are repeatable."""
        received = request()
        one, two = proxy_branch(received), proxy_branch(received)
        self.assertNotEqual(one, two)
        self.assertEqual(one.split(".")[1], two.split(".")[1])
        self.assertTrue(one.startswith(BRANCH_COOKIE) and is_proxy_branch(one))
        self.assertEqual(stateless_branch(received), stateless_branch(request()))
        self.assertTrue(is_proxy_branch(stateless_branch(received)))
        self.assertFalse(is_proxy_branch(f"{BRANCH_COOKIE}0123456789abcdef"))
        self.assertFalse(is_proxy_branch(None))


class PreprocessTests(SynchronousTestCase):
    """Section 16.4."""

    def test_strict_routing_previous_hop(self) -> None:
        """
        A strict router put our Record-Route URI in the Request-URI and the
        remote target last in the Route: the Request-URI becomes that last
        value, which is removed.
        """
        received = request(
            "sip:192.0.2.10;lr",
            method="BYE",
            to="Bob <sip:bob@biloxi.com>;tag=314159",
            extra="Route: <sip:p2.biloxi.com;lr>, <sip:bob@192.0.2.4>\n",
        )
        processed = preprocess(received, IDENTITY, UDP_SIDE)
        self.assertEqual(str(processed.uri), "sip:bob@192.0.2.4")
        self.assertEqual(route_values(processed), ["sip:p2.biloxi.com;lr"])
        self.assertEqual(route_request(processed, IDENTITY), ForwardTo(Target(processed.uri)))

    def test_top_route_naming_us(self) -> None:
        """A top Route naming us is removed; one naming another proxy stays."""
        received = request(extra="Route: <sip:proxy.atlanta.com;lr>, <sip:p2.biloxi.com;lr>\n")
        processed = preprocess(received, IDENTITY, UDP_SIDE)
        self.assertEqual(route_values(processed), ["sip:p2.biloxi.com;lr"])
        self.assertEqual(str(processed.uri), "sip:bob@biloxi.com")
        untouched = request(extra="Route: <sip:p2.biloxi.com;lr>\n")
        self.assertEqual(route_values(preprocess(untouched, IDENTITY, UDP_SIDE)), ["sip:p2.biloxi.com;lr"])

    def test_double_record_route_values_removed(self) -> None:
        """Both of our double Record-Route values, now Route values, are removed (RFC 5658)."""
        received = request(
            extra="Route: <sip:192.0.2.10:5060;transport=tcp;lr>\nRoute: <sip:192.0.2.10;lr>, <sip:p2.biloxi.com;lr>\n"
        )
        processed = preprocess(received, IDENTITY, TCP_SIDE)
        self.assertEqual(route_values(processed), ["sip:p2.biloxi.com;lr"])

    def test_tls_name_routes_are_ours(self) -> None:
        """
        The Route values an in-dialog request brings back from our TLS-side
        Record-Route (a name our certificate names, with our TLS port) are
        ours and removed; the same name on a port we do not listen on is not.
        """
        invite = request("sips:bob@atlanta.com")
        target = Target(parse_uri("sip:bob@192.0.2.5"), flow=BOB_TLS_FLOW)
        forward = forward_request(invite, target, received=invite, inbound=NAMED_TLS_SIDE)
        recorded = route_values(forward.request, "Record-Route")
        # Bob's route set is the Record-Route in order, Alice's reversed.
        for route_set in (recorded, recorded[::-1]):
            values = ", ".join(f"<{uri}>" for uri in [*route_set, "sip:p2.biloxi.com;lr"])
            bye = request(
                "sip:bob@192.0.2.5", method="BYE", to="<sips:bob@atlanta.com>;tag=b0b", extra=f"Route: {values}\n"
            )
            processed = preprocess(bye, IDENTITY, NAMED_TLS_SIDE)
            self.assertEqual(route_values(processed), ["sip:p2.biloxi.com;lr"], route_set)
        explicit = request(extra="Route: <sips:PROXY.atlanta.com:5061;lr>\n")
        self.assertNotIn("Route", preprocess(explicit, IDENTITY, NAMED_TLS_SIDE).headers)
        elsewhere = request(extra="Route: <sips:proxy.atlanta.com:5071;lr>\n")
        self.assertEqual(
            route_values(preprocess(elsewhere, IDENTITY, NAMED_TLS_SIDE)), ["sips:proxy.atlanta.com:5071;lr"]
        )

    def test_all_routes_ours(self) -> None:
        """When every Route names us, the Route header goes."""
        received = request(extra="Route: <sip:atlanta.com;lr>\n")
        processed = preprocess(received, IDENTITY, UDP_SIDE)
        self.assertNotIn("Route", processed.headers)

    def test_other_port_is_not_us(self) -> None:
        """A Route to our host on a port we do not listen on is not ours."""
        received = request(extra="Route: <sip:192.0.2.10:5080;lr>\n")
        self.assertEqual(route_values(preprocess(received, IDENTITY, UDP_SIDE)), ["sip:192.0.2.10:5080;lr"])

    def test_maddr(self) -> None:
        """A maddr naming us, on the transport and port the URI implies, is stripped with its port and transport."""
        received = request("sip:bob@atlanta.com:5060;maddr=192.0.2.10;transport=udp")
        processed = preprocess(received, IDENTITY, UDP_SIDE)
        self.assertEqual(str(processed.uri), "sip:bob@atlanta.com")
        self.assertEqual(route_request(processed, IDENTITY), LookUp("sip:bob@atlanta.com"))
        over_tcp = preprocess(received, IDENTITY, TCP_SIDE)
        self.assertEqual(over_tcp.uri, received.uri)
        self.assertIsInstance(route_request(over_tcp, IDENTITY), ForwardTo)


class TargetTests(SynchronousTestCase):
    """Section 16.5."""

    def test_foreign_domain(self) -> None:
        """A Request-URI in a domain we do not serve is the only target."""
        self.assertEqual(route_request(request(), IDENTITY), ForwardTo(Target(parse_uri("sip:bob@biloxi.com"))))

    def test_our_domain(self) -> None:
        """A Request-URI in our domain is looked up by its address-of-record, C{sips:} as C{sip:}."""
        self.assertEqual(
            route_request(request("sip:Bob@ATLANTA.com;user=phone"), IDENTITY), LookUp("sip:Bob@atlanta.com")
        )
        self.assertEqual(route_request(request("sips:bob@atlanta.com"), IDENTITY), LookUp("sip:bob@atlanta.com"))

    def test_for_us(self) -> None:
        """A Request-URI naming the proxy or its domain without a user is for the proxy."""
        self.assertEqual(route_request(request("sip:proxy.atlanta.com", method="OPTIONS"), IDENTITY), ForUs())
        self.assertEqual(route_request(request("sip:atlanta.com", method="OPTIONS"), IDENTITY), ForUs())

    def test_loose_route_left(self) -> None:
        """With a Route left after preprocessing, the Request-URI is not retargeted."""
        received = request("sip:bob@atlanta.com", extra="Route: <sip:p2.biloxi.com;lr>\n")
        self.assertEqual(route_request(received, IDENTITY), ForwardTo(Target(received.uri)))

    def test_not_sip(self) -> None:
        """A C{tel:} Request-URI let through the checks has no route: 404."""
        answer = route_request(request("tel:+15555550100"), IDENTITY)
        assert isinstance(answer, Response)
        self.assertEqual(answer.status, 404)

    def test_no_binding(self) -> None:
        """No binding: 404 for an unknown user, 480 for a known one."""
        req = request("sip:bob@atlanta.com")
        unknown = targets_from_bindings(req, [], user_known=False)
        known = targets_from_bindings(req, [], user_known=True)
        assert isinstance(unknown, Response) and isinstance(known, Response)
        self.assertEqual((unknown.status, known.status), (404, 480))

    def test_bindings(self) -> None:
        """Each binding is a target with its q-value, its Path as URIs and its flow."""
        req = request("sip:bob@atlanta.com")
        found = targets_from_bindings(
            req,
            [
                binding("sip:bob@192.0.2.4;transport=tcp", q="0.5", flow=BOB_FLOW),
                binding("sip:bob@198.51.100.9", path=("<sip:edge.atlanta.com;lr>",)),
            ],
            user_known=False,
        )
        assert isinstance(found, tuple)
        self.assertEqual(
            found,
            (
                Target(parse_uri("sip:bob@192.0.2.4;transport=tcp"), 0.5, (), BOB_FLOW),
                Target(parse_uri("sip:bob@198.51.100.9"), None, (parse_uri("sip:edge.atlanta.com;lr"),), None),  # type: ignore[arg-type]
            ),
        )

    def test_udp_flow_or_contact(self) -> None:
        """
        A UDP binding is reached at its Contact when the Contact names the
        address the REGISTER came from (whatever the port: third-party
        registration), and over the REGISTER's source when NAT is evident
        (the Contact names another address) or the UA uses outbound.
        """
        req = request("sip:bob@atlanta.com")
        udp = FlowKey(TransportKind.UDP, Peer("192.0.2.4", 49152), Peer("192.0.2.10", 5060))
        outbound = Binding(
            "sip:bob@atlanta.com",
            "sip:bob@192.0.2.4:5070",
            2e9,
            "reg-1",
            1,
            (("+sip.instance", '"<urn:uuid:00000000-0000-0000-0000-000000000001>"'), ("reg-id", "1")),
            (),
            udp,
        )
        found = targets_from_bindings(
            req,
            [binding("sip:bob@192.0.2.4:5070", flow=udp), binding("sip:bob@10.0.0.7:5060", flow=udp), outbound],
            user_known=False,
        )
        assert isinstance(found, tuple)
        self.assertEqual([target.flow for target in found], [None, udp, udp])
        self.assertEqual([target.flow_only for target in found], [False, True, True])

    def test_sips_request(self) -> None:
        """A C{sips:} request reaches C{sips:} contacts and C{sip:} ones registered over TLS; else 480."""
        req = request("sips:bob@atlanta.com")
        found = targets_from_bindings(
            req,
            [binding("sip:bob@192.0.2.4"), binding("sip:bob@192.0.2.5", flow=BOB_TLS_FLOW), binding("sips:bob@b.net")],
            user_known=False,
        )
        assert isinstance(found, tuple)
        self.assertEqual([str(t.uri) for t in found], ["sip:bob@192.0.2.5", "sips:bob@b.net"])
        none = targets_from_bindings(req, [binding("sip:bob@192.0.2.4", flow=BOB_FLOW)], user_known=False)
        assert isinstance(none, Response)
        self.assertEqual(none.status, 480)

    def test_groups(self) -> None:
        """Targets group by q-value, highest first (none counts as 1.0), in order within a group."""
        a, b, c, d = (
            Target(parse_uri(f"sip:{n}@192.0.2.4"), q) for n, q in zip("abcd", (0.5, None, 0.5, 1.0), strict=True)
        )
        self.assertEqual(group_by_q([a, b, c, d]), ((b, d), (a, c)))
        self.assertEqual(group_by_q([]), ())


class ForwardingTests(SynchronousTestCase):
    """Section 16.6."""

    def forward(self, received: Request, target: str | Target | None = None, **kwargs: object) -> Request:
        processed = preprocess(received, IDENTITY, kwargs.pop("inbound", UDP_SIDE))  # type: ignore[arg-type]
        if target is None:
            chosen = Target(processed.uri)
        elif isinstance(target, str):
            chosen = Target(parse_uri(target))
        else:
            chosen = target
        return forward_request(processed, chosen, received=received, inbound=UDP_SIDE, **kwargs).request  # type: ignore[arg-type]

    def test_copy(self) -> None:
        """Request-URI, Max-Forwards, our Via on top with the branch, Content-Length; the rest as it was."""
        received = request("sip:bob@atlanta.com")
        forward = forward_request(
            received,
            Target(parse_uri("sip:bob@192.0.2.4;method=INVITE?subject=hi")),
            received=received,
            inbound=UDP_SIDE,
        )
        copy = forward.request
        self.assertEqual(str(copy.uri), "sip:bob@192.0.2.4")
        self.assertEqual(copy.max_forwards, 69)
        self.assertEqual(len(copy.vias), 2)
        self.assertEqual(copy.top_via.branch, forward.branch)
        self.assertEqual((copy.top_via.host, copy.top_via.port), ("192.0.2.10", 5060))
        self.assertEqual(str(copy.vias[1]), ALICE_VIA)
        self.assertEqual(copy.content_length, 0)
        self.assertEqual(copy.call_id, received.call_id)
        self.assertEqual(copy.from_, received.from_)
        self.assertEqual(str(forward.next_hop), "sip:bob@192.0.2.4")

    def test_max_forwards_added(self) -> None:
        """A request without Max-Forwards is forwarded with 70."""
        self.assertEqual(self.forward(request(max_forwards=None)).max_forwards, 70)

    def test_record_route(self) -> None:
        """An INVITE is record-routed with our URI and lr, above the existing values."""
        copy = self.forward(request(extra="Record-Route: <sip:p1.example.net;lr>\n"))
        self.assertEqual(route_values(copy, "Record-Route"), ["sip:192.0.2.10;lr", "sip:p1.example.net;lr"])

    def test_no_record_route(self) -> None:
        """A MESSAGE, an in-dialog request, or record_route=False is not record-routed."""
        self.assertEqual(self.forward(request(method="MESSAGE")).record_routes, [])
        self.assertEqual(self.forward(request(to="<sip:bob@biloxi.com>;tag=1")).record_routes, [])
        self.assertEqual(self.forward(request(), record_route=False).record_routes, [])

    def test_double_record_route(self) -> None:
        """Leaving on another transport, the copy carries two Record-Route values: outbound side first (RFC 5658)."""
        received = request(extra="Record-Route: <sip:p1.example.net;lr>\n")
        forward = forward_request(received, Target(received.uri), received=received, inbound=UDP_SIDE)
        self.assertEqual(forward.request_for(UDP_SIDE), forward.request)
        over_tcp = forward.request_for(TCP_SIDE)
        self.assertEqual(
            route_values(over_tcp, "Record-Route"),
            ["sip:192.0.2.10;transport=tcp;lr", "sip:192.0.2.10;lr", "sip:p1.example.net;lr"],
        )
        over_tls = forward.request_for(TLS_SIDE)
        self.assertEqual(
            route_values(over_tls, "Record-Route")[:2],
            ["sip:192.0.2.10;transport=tls;lr", "sip:192.0.2.10;lr"],
        )
        other_address = Interface(TransportKind.UDP, "[2001:db8::10]", 5060)
        self.assertEqual(route_values(forward.request_for(other_address), "Record-Route")[0], "sip:[2001:db8::10];lr")
        self.assertEqual(over_tcp.vias, forward.request.vias)

    def test_tls_hint(self) -> None:
        """With the hint on, non-TLS sides carry x-sipstack-tls-port; the TLS side does not."""
        received = request()
        forward = forward_request(received, Target(received.uri), received=received, inbound=UDP_SIDE, tls_hint=True)
        self.assertEqual(
            route_values(forward.request_for(TLS_SIDE), "Record-Route"),
            ["sip:192.0.2.10;transport=tls;lr", "sip:192.0.2.10;x-sipstack-tls-port=5061;lr"],
        )

    def test_sips(self) -> None:
        """A C{sips:} request over TLS is record-routed with a C{sips:} URI on the TLS port."""
        received = request("sips:bob@biloxi.com")
        forward = forward_request(received, Target(received.uri), received=received, inbound=TLS_SIDE)
        self.assertEqual(route_values(forward.request, "Record-Route"), ["sips:192.0.2.10;lr"])

    def test_tls_to_sip_must_record_route(self) -> None:
        """Received over TLS and leaving without C{sips:}, the request is record-routed anyway (16.6 step 4)."""
        received = request()
        forward = forward_request(
            received, Target(received.uri), received=received, inbound=TLS_SIDE, record_route=False
        )
        self.assertEqual(route_values(forward.request, "Record-Route"), ["sip:192.0.2.10;transport=tls;lr"])

    def test_sips_to_sip_contact_over_tls_flow(self) -> None:
        """A C{sips:} request to a C{sip:} contact: one C{sips:} value for upstream, one C{sip:} for downstream."""
        received = request("sips:bob@atlanta.com")
        target = Target(parse_uri("sip:bob@192.0.2.5"), flow=BOB_TLS_FLOW)
        forward = forward_request(received, target, received=received, inbound=TLS_SIDE)
        self.assertEqual(
            route_values(forward.request, "Record-Route"),
            ["sip:192.0.2.10;transport=tls;lr", "sips:192.0.2.10;lr"],
        )
        self.assertEqual(forward.flow, BOB_TLS_FLOW)

    def test_tls_name(self) -> None:
        """
        With a TLS name, the URIs that lead to our TLS listener (C{sips:},
        C{transport=tls}) name it rather than the address, so that a peer
        can authenticate us for them (RFC 5922); the others keep the address.
        """
        received = request("sips:bob@atlanta.com")
        target = Target(parse_uri("sip:bob@192.0.2.5"), flow=BOB_TLS_FLOW)
        forward = forward_request(received, target, received=received, inbound=NAMED_TLS_SIDE)
        self.assertEqual(
            route_values(forward.request, "Record-Route"),
            ["sip:proxy.atlanta.com;transport=tls;lr", "sips:proxy.atlanta.com;lr"],
        )
        plain = request()
        forward = forward_request(plain, Target(plain.uri), received=plain, inbound=NAMED_UDP_SIDE)
        self.assertEqual(route_values(forward.request, "Record-Route"), ["sip:192.0.2.10;lr"])
        self.assertEqual(
            route_values(forward.request_for(NAMED_TLS_SIDE), "Record-Route"),
            ["sip:proxy.atlanta.com;transport=tls;lr", "sip:192.0.2.10;lr"],
        )
        self.assertEqual(forward.request.vias[0].host, "192.0.2.10")
        secure_over_udp = forward_request(received, Target(received.uri), received=received, inbound=NAMED_UDP_SIDE)
        self.assertEqual(route_values(secure_over_udp.request, "Record-Route"), ["sips:proxy.atlanta.com;lr"])
        other_port = Interface(TransportKind.TLS, "192.0.2.10", 5071, tls_port=5071, tls_name="proxy.atlanta.com")
        self.assertEqual(other_port.record_route_uri(secure=True), parse_uri("sips:proxy.atlanta.com:5071;lr"))
        no_tls = Interface(TransportKind.UDP, "192.0.2.10", 5060, tls_name="proxy.atlanta.com")
        self.assertEqual(no_tls.record_route_uri(secure=False), parse_uri("sip:192.0.2.10;lr"))

    def test_path(self) -> None:
        """A binding's Path becomes the first Route values (RFC 3327)."""
        received = request("sip:bob@atlanta.com", extra="Route: <sip:proxy.atlanta.com;lr>\n")
        near, edge = parse_uri("sip:p2.atlanta.com;lr"), parse_uri("sip:edge.atlanta.com;lr;ob")
        assert isinstance(near, SIPURI) and isinstance(edge, SIPURI)
        copy = self.forward(received, Target(parse_uri("sip:bob@10.0.0.4"), path=(near, edge)))
        self.assertEqual(route_values(copy), ["sip:p2.atlanta.com;lr", "sip:edge.atlanta.com;lr;ob"])
        self.assertEqual(str(copy.uri), "sip:bob@10.0.0.4")

    def test_outbound_proxy(self) -> None:
        """A configured outbound proxy is pushed as a loose-routing Route, except for a target with a flow."""
        proxy = parse_uri("sip:out.atlanta.com")
        assert isinstance(proxy, SIPURI)
        copy = self.forward(request(), outbound_proxy=proxy)
        self.assertEqual(route_values(copy), ["sip:out.atlanta.com;lr"])
        flowing = self.forward(request(), Target(parse_uri("sip:bob@192.0.2.4"), flow=BOB_FLOW), outbound_proxy=proxy)
        self.assertEqual(flowing.routes, [])

    def test_strict_router_next_hop(self) -> None:
        """A top Route without lr: its URI becomes the Request-URI and the Request-URI goes last (16.6 step 6)."""
        copy = self.forward(
            request(to="<sip:bob@biloxi.com>;tag=9", extra="Route: <sip:old.biloxi.com>, <sip:p3.net;lr>\n")
        )
        self.assertEqual(str(copy.uri), "sip:old.biloxi.com")
        self.assertEqual(route_values(copy), ["sip:p3.net;lr", "sip:bob@biloxi.com"])


SECRET = b"flow-token-secret-of-the-proxy!!"


def _flows() -> st.SearchStrategy[FlowKey]:
    hosts = st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str))
    peers = st.builds(Peer, hosts, st.integers(0, 65535))
    return st.builds(FlowKey, st.sampled_from(list(TransportKind)), peers, peers, st.integers(0, 2**40))


class FlowTokenTests(SynchronousTestCase):
    """Flow tokens in Record-Route (RFC 5626 section 5.3)."""

    @given(_flows())
    def test_round_trip(self, flow: FlowKey) -> None:
        """A token names its flow again, and is a valid URI user part as it stands."""
        token = encode_flow_token(flow, SECRET)
        self.assertEqual(decode_flow_token(token, SECRET), flow)
        uri = parse_uri(f"sip:{token}@192.0.2.10;lr")
        assert isinstance(uri, SIPURI)
        self.assertEqual(uri.user, token)

    def test_tampered(self) -> None:
        """A changed token, one made with another secret, or garbage names no flow."""
        token = encode_flow_token(BOB_FLOW, SECRET)
        other = encode_flow_token(BOB_TLS_FLOW, SECRET)
        for changed in (
            token[:-1] + ("A" if token[-1] != "A" else "B"),
            ("A" if token[0] != "A" else "B") + token[1:],
            token[:16] + other[16:],
            encode_flow_token(BOB_FLOW, b"another secret"),
            "bob",
            "!!",
            "",
        ):
            self.assertIsNone(decode_flow_token(changed, SECRET), changed)

    def test_record_route_on_flow_side(self) -> None:
        """
        A target reached over its flow: the Record-Route URI of the side the
        request leaves on carries the token and C{ob}; the other side's does
        not; a target without a flow gets none.
        """
        received = request("sip:bob@atlanta.com")
        target = Target(parse_uri("sip:bob@10.0.0.4;transport=tcp"), flow=BOB_FLOW, flow_only=True)
        forward = forward_request(received, target, received=received, inbound=UDP_SIDE, flow_secret=SECRET)
        token = encode_flow_token(BOB_FLOW, SECRET)
        self.assertEqual(forward.flow_token, token)
        self.assertEqual(
            route_values(forward.request_for(TCP_SIDE), "Record-Route"),
            [f"sip:{token}@192.0.2.10;transport=tcp;lr;ob", "sip:192.0.2.10;lr"],
        )
        self.assertEqual(route_values(forward.request, "Record-Route"), [f"sip:{token}@192.0.2.10;lr;ob"])
        plain = forward_request(received, Target(parse_uri("sip:bob@10.0.0.4")), received=received, inbound=UDP_SIDE)
        self.assertEqual(
            route_values(plain.request_for(TCP_SIDE), "Record-Route")[0], "sip:192.0.2.10;transport=tcp;lr"
        )
        no_secret = forward_request(received, target, received=received, inbound=UDP_SIDE)
        self.assertIsNone(no_secret.flow_token)
        reachable = Target(target.uri, flow=BOB_FLOW)
        direct = forward_request(received, reachable, received=received, inbound=UDP_SIDE, flow_secret=SECRET)
        self.assertIsNone(direct.flow_token)

    def test_flow_only(self) -> None:
        """
        Only a UA behind NAT (Contact at another address than the flow's
        source) or registered with outbound gets C{flow_only}, hence a token.
        """
        outbound = Binding(
            "sip:bob@atlanta.com",
            "sip:bob@192.0.2.4;transport=tcp",
            2e9,
            "r",
            1,
            (("reg-id", "1"), ("+sip.instance", '"<urn:uuid:00000000-0000-0000-0000-000000000001>"')),
            (),
            BOB_FLOW,
        )
        targets = targets_from_bindings(
            request("sip:bob@atlanta.com"),
            [
                binding("sip:bob@10.0.0.7;transport=tcp", flow=BOB_FLOW),
                binding("sip:bob@192.0.2.4;transport=tcp", flow=BOB_FLOW),
                binding("sip:bob@10.0.0.8"),
                outbound,
            ],
            user_known=True,
        )
        assert isinstance(targets, tuple)
        self.assertEqual([t.flow_only for t in targets], [True, False, False, True])

    def test_flow_of_route(self) -> None:
        """
        The token is read from our Route values at the top (those
        preprocessing removes); a tampered one, or one in a Route of
        another element, counts as none.
        """
        token = encode_flow_token(BOB_FLOW, SECRET)
        bye = request(method="BYE", to="<sip:bob@biloxi.com>;tag=b", extra=f"Route: <sip:{token}@192.0.2.10;lr;ob>\n")
        self.assertEqual(flow_of_route(bye, IDENTITY, SECRET), BOB_FLOW)
        self.assertEqual(route_values(preprocess(bye, IDENTITY, TCP_SIDE)), [])
        double = request(extra=f"Route: <sip:192.0.2.10;lr>, <sip:{token}@192.0.2.10;transport=tcp;lr;ob>\n")
        self.assertEqual(flow_of_route(double, IDENTITY, SECRET), BOB_FLOW)
        tampered = request(extra=f"Route: <sip:{token[:-2]}@192.0.2.10;lr;ob>\n")
        self.assertIsNone(flow_of_route(tampered, IDENTITY, SECRET))
        elsewhere = request(extra=f"Route: <sip:p1.net;lr>, <sip:{token}@192.0.2.10;lr;ob>\n")
        self.assertIsNone(flow_of_route(elsewhere, IDENTITY, SECRET))
        self.assertIsNone(flow_of_route(request(), IDENTITY, SECRET))


class ResponseContextTests(SynchronousTestCase):
    """Sections 16.7, 16.8 and 16.10."""

    def setUp(self) -> None:
        self.received = request("sip:bob@atlanta.com")
        self.copy = forward_request(
            self.received, Target(self.received.uri), received=self.received, inbound=UDP_SIDE
        ).request

    def target(self, name: str, q: float | None = None) -> Target:
        return Target(parse_uri(f"sip:{name}@192.0.2.4"), q)

    def context(self, *groups: Sequence[str], method: str = "INVITE") -> ResponseContext:
        received = self.received if method == "INVITE" else request("sip:bob@atlanta.com", method=method)
        return ResponseContext(received, [[self.target(name) for name in group] for group in groups], to_tag="px")

    def respond(
        self, context: ResponseContext, branch: int, status: int, **kwargs: Sequence[tuple[str, str]]
    ) -> list[Action]:
        return context.on_response(branch, response_to(self.copy, status, **kwargs))

    def forwarded(self, actions: list[Action]) -> list[int]:
        return [action.response.status for action in actions if isinstance(action, ForwardResponse)]

    def test_parallel_start(self) -> None:
        """The first q-group is started whole."""
        context = self.context(["a", "b"], ["c"])
        [start] = context.start()
        assert isinstance(start, StartBranches)
        self.assertEqual([b.index for b in start.branches], [0, 1])
        self.assertEqual(context.state(2), BranchState.WAITING)
        self.assertEqual(context.start(), [])

    def test_provisional(self) -> None:
        """100 is never forwarded; 180 is, without our Via."""
        context = self.context(["a"])
        context.start()
        self.assertEqual(self.respond(context, 0, 100), [])
        [action] = self.respond(context, 0, 180)
        assert isinstance(action, ForwardResponse)
        self.assertFalse(action.final)
        self.assertEqual([str(v) for v in action.response.vias], [ALICE_VIA])
        self.assertEqual(context.state(0), BranchState.PROCEEDING)

    def test_2xx_at_once_and_later_2xx(self) -> None:
        """A 2xx is forwarded at once and cancels the others; a later 2xx is forwarded too; a 487 is not."""
        context = self.context(["a", "b", "c"], ["d"])
        context.start()
        self.respond(context, 1, 180)
        actions = self.respond(context, 0, 200)
        self.assertEqual(self.forwarded(actions), [200])
        cancels = [a for a in actions if isinstance(a, CancelBranches)]
        self.assertEqual([[b.index for b in c.branches] for c in cancels], [[1, 2]])
        self.assertEqual(context.state(3), BranchState.SKIPPED)
        self.assertEqual(self.forwarded(self.respond(context, 1, 200)), [200])
        self.assertEqual(self.respond(context, 1, 200), [ForwardResponse(upstream(response_to(self.copy, 200)))])
        self.assertEqual(self.respond(context, 2, 183), [])
        self.assertEqual(self.respond(context, 2, 487), [])
        self.assertTrue(context.finished)
        assert context.final_sent is not None
        self.assertEqual(context.final_sent.status, 200)

    def test_non_invite_one_final(self) -> None:
        """For a MESSAGE forked in parallel, only the first final response goes upstream."""
        context = self.context(["a", "b"], method="MESSAGE")
        context.start()
        actions = self.respond(context, 0, 202)
        self.assertEqual(self.forwarded(actions), [202])
        self.assertFalse([a for a in actions if isinstance(a, CancelBranches)])
        self.assertEqual(self.respond(context, 1, 200), [])

    def test_sequential_groups(self) -> None:
        """The next q-group starts when every branch of the current one failed; its 2xx goes up."""
        context = self.context(["a", "b"], ["c"])
        context.start()
        self.assertEqual(self.respond(context, 0, 486), [])
        [start] = self.respond(context, 1, 404)
        assert isinstance(start, StartBranches)
        self.assertEqual([b.index for b in start.branches], [2])
        self.assertEqual(self.forwarded(self.respond(context, 2, 200)), [200])

    def test_all_groups_fail(self) -> None:
        """When the last group fails, the best of all final responses goes up, once."""
        context = self.context(["a"], ["b"])
        context.start()
        self.respond(context, 0, 404)
        self.assertEqual(self.forwarded(self.respond(context, 1, 486)), [404])
        self.assertTrue(context.finished)

    def test_6xx(self) -> None:
        """A 6xx cancels the pending branches, starts no group, and wins once the others answered."""
        context = self.context(["a", "b"], ["c"])
        context.start()
        self.respond(context, 1, 180)
        actions = self.respond(context, 0, 603)
        self.assertEqual(self.forwarded(actions), [])
        self.assertEqual([[b.index for b in a.branches] for a in actions if isinstance(a, CancelBranches)], [[1]])
        self.assertEqual(context.state(2), BranchState.SKIPPED)
        self.assertEqual(self.forwarded(self.respond(context, 1, 487)), [603])

    def test_6xx_then_2xx(self) -> None:
        """A 2xx that arrives after a 6xx, before the final response, is still forwarded, and the 6xx never is."""
        context = self.context(["a", "b"])
        context.start()
        self.respond(context, 0, 600)
        self.assertEqual(self.forwarded(self.respond(context, 1, 200)), [200])
        self.assertTrue(context.finished)

    def test_401_407_merged(self) -> None:
        """The chosen 401/407 carries every challenge of the other 401 and 407 responses."""
        context = self.context(["a", "b", "c"])
        context.start()
        self.respond(context, 0, 486)
        self.respond(context, 1, 407, extra=[("Proxy-Authenticate", 'Digest realm="b.net", nonce="1"')])
        actions = self.respond(
            context,
            2,
            401,
            extra=[("WWW-Authenticate", 'Digest realm="c.net", nonce="2"'), ("WWW-Authenticate", 'Digest realm="c2"')],
        )
        [best] = [a.response for a in actions if isinstance(a, ForwardResponse)]
        self.assertEqual(best.status, 407)
        self.assertEqual(best.headers.get_all("Proxy-Authenticate"), ['Digest realm="b.net", nonce="1"'])
        self.assertEqual(
            best.headers.get_all("WWW-Authenticate"), ['Digest realm="c.net", nonce="2"', 'Digest realm="c2"']
        )
        self.assertEqual([str(v) for v in best.vias], [ALICE_VIA])

    def test_timeout_and_transport_error(self) -> None:
        """A timeout counts as 408 and a transport error as 503, which goes up as 500."""
        context = self.context(["a", "b"])
        context.start()
        self.assertEqual(context.on_transport_error(0), [])
        self.assertEqual(self.forwarded(context.on_timeout(1)), [408])
        context = self.context(["a"])
        context.start()
        [action] = context.on_transport_error(0)
        assert isinstance(action, ForwardResponse)
        self.assertEqual(action.response.status, 500)
        self.assertEqual(action.response.to.tag, "px")

    def test_timer_c(self) -> None:
        """Timer C cancels a branch with a provisional response, and ends one without as a 408."""
        context = self.context(["a", "b"])
        context.start()
        self.respond(context, 0, 180)
        [cancel] = context.on_timer_c(0)
        assert isinstance(cancel, CancelBranches)
        self.assertEqual([b.index for b in cancel.branches], [0])
        self.assertEqual(context.on_timer_c(1), [])
        self.assertEqual(context.state(1), BranchState.COMPLETED)
        self.assertEqual(self.forwarded(self.respond(context, 0, 487)), [487])

    def test_cancel(self) -> None:
        """A CANCEL for the context gets 200, cancels the pending branches and starts no more; the 487 goes up."""
        context = self.context(["a", "b"], ["c"])
        context.start()
        self.respond(context, 0, 180)
        self.respond(context, 1, 486)
        cancel = request("sip:bob@atlanta.com", method="CANCEL")
        answer = answer_cancel(cancel, context)
        assert answer is not None
        self.assertEqual((answer.response.status, answer.response.to.tag), (200, "px"))
        self.assertEqual(
            [[b.index for b in a.branches] for a in answer.actions if isinstance(a, CancelBranches)], [[0]]
        )
        self.assertEqual(context.state(2), BranchState.SKIPPED)
        self.assertEqual(self.forwarded(self.respond(context, 0, 487)), [487])
        self.assertIsNone(answer_cancel(cancel, None))
        self.assertEqual(context.cancel(), [])

    def test_ignored(self) -> None:
        """Responses on branches not started, or after their final non-2xx response, are ignored."""
        context = self.context(["a"], ["b"])
        context.start()
        self.assertEqual(self.respond(context, 1, 200), [])
        self.respond(context, 0, 486)
        self.assertEqual(self.respond(context, 0, 200), [])
        self.assertRaises(ValueError, context.state, 5)
        self.assertRaises(ValueError, ResponseContext, self.received, [[]])


def upstream(response: Response) -> Response:
    return response.replace(headers=response.headers.without_first_value("Via"))


class BestResponseTests(SynchronousTestCase):
    """Section 16.7 step 6 over many combinations."""

    CASES: Sequence[tuple[Sequence[int], int]] = (
        ((), 408),
        ((486,), 486),
        ((486, 404), 486),
        ((404, 486), 404),
        ((404, 302), 302),
        ((302, 603), 603),
        ((500, 600, 603), 600),
        ((486, 415), 415),
        ((484, 486), 484),
        ((420, 401), 401),
        ((408, 486), 486),
        ((487, 408), 487),
        ((487, 480), 480),
        ((503,), 500),
        ((503, 503), 500),
        ((503, 504), 504),
        ((500, 486), 486),
        ((503, 486), 486),
        ((408,), 408),
        ((301, 302), 301),
        ((480, 407, 401), 407),
    )

    def test_combinations(self) -> None:
        received = request()
        for statuses, expected in self.CASES:
            responses = [build_response(received, status, to_tag="t") for status in statuses]
            self.assertEqual(choose_best(responses, received).status, expected, statuses)

    def test_cancelled(self) -> None:
        """After an upstream CANCEL a 487 wins over other 3xx-5xx responses, not over a 6xx."""
        received = request()
        for statuses, expected in (((486, 487), 487), ((302, 487), 487), ((603, 487), 603), ((486,), 486)):
            responses = [build_response(received, status, to_tag="t") for status in statuses]
            self.assertEqual(choose_best(responses, received, cancelled=True).status, expected, statuses)


class StatelessTests(SynchronousTestCase):
    """Sections 16.10 and 16.11."""

    def test_ack_for_2xx(self) -> None:
        """An ACK of a 2xx is forwarded with our Route removed, a repeatable branch and no Record-Route."""
        ack = request(
            "sip:bob@192.0.2.4",
            method="ACK",
            to="<sip:bob@biloxi.com>;tag=b0b",
            extra="Route: <sip:192.0.2.10;lr>\n",
        )
        processed = preprocess(ack, IDENTITY, UDP_SIDE)
        forward = forward_statelessly(processed, received=ack, inbound=UDP_SIDE)
        self.assertEqual(forward.branch, stateless_branch(ack))
        self.assertEqual(forward.request.top_via.branch, forward.branch)
        self.assertEqual(forward.request.routes, [])
        self.assertEqual(forward.request.record_routes, [])
        self.assertEqual(forward.request.max_forwards, 69)
        self.assertEqual(forward_statelessly(processed, received=ack, inbound=UDP_SIDE).request, forward.request)

    def test_cancel_follows_invite(self) -> None:
        """A stateless CANCEL gets the branch its INVITE got statelessly; another transaction does not."""
        invite = request()
        cancel = request(method="CANCEL")
        self.assertEqual(stateless_branch(invite), stateless_branch(cancel))
        other = request(via="SIP/2.0/UDP 192.0.2.101:5060;branch=z9hG4bKnew")
        self.assertNotEqual(stateless_branch(other), stateless_branch(invite))
        old = request(via="SIP/2.0/UDP 192.0.2.101:5060;branch=1234")
        self.assertEqual(
            stateless_branch(old), stateless_branch(request(via="SIP/2.0/UDP 192.0.2.101:5060;branch=1234"))
        )
        self.assertNotEqual(
            stateless_branch(old), stateless_branch(request(via="SIP/2.0/UDP 192.0.2.101:5060;branch=1234", cseq=2))
        )
        forward = forward_statelessly(cancel, received=cancel, inbound=UDP_SIDE)
        self.assertEqual(forward.request.method, "CANCEL")
        self.assertEqual(forward.request.record_routes, [])

    def test_stray_response(self) -> None:
        """A stray response with our Via on top is forwarded without it; any other is dropped."""
        received = request()
        copy = forward_request(received, Target(received.uri), received=received, inbound=UDP_SIDE).request
        reply = response_to(copy, 200)
        forwarded = forward_stray_response(reply, IDENTITY)
        assert forwarded is not None
        self.assertEqual([str(v) for v in forwarded.vias], [ALICE_VIA])
        self.assertIsNone(forward_stray_response(response_to(received, 200), IDENTITY))
        own = request(via=f"SIP/2.0/UDP 192.0.2.10:5060;branch={BRANCH_COOKIE}0123456789abcdef")
        self.assertIsNone(forward_stray_response(response_to(own, 200), IDENTITY))
        ours_alone = request(via=f"SIP/2.0/UDP 192.0.2.10:5060;branch={stateless_branch(received)}")
        self.assertIsNone(forward_stray_response(response_to(ours_alone, 200), IDENTITY))


class CallFlowTests(SynchronousTestCase):
    """
    A call through the proxy in the style of RFC 3261 section 24.2, with
    both users in our domain: Alice over UDP, Bob registered over TCP.
    """

    def test_call(self) -> None:
        # F1: Alice's INVITE for bob@atlanta.com.
        invite = request("sip:bob@atlanta.com", to="Bob <sip:bob@atlanta.com>")
        self.assertIsNone(check_request(invite, IDENTITY))
        processed = preprocess(invite, IDENTITY, UDP_SIDE)
        lookup = route_request(processed, IDENTITY)
        self.assertEqual(lookup, LookUp("sip:bob@atlanta.com"))
        targets = targets_from_bindings(
            processed, [binding("sip:bob@192.0.2.4;transport=tcp", flow=BOB_FLOW)], user_known=True
        )
        assert isinstance(targets, tuple)
        context = ResponseContext(invite, group_by_q(targets), to_tag="px")
        [start] = context.start()
        assert isinstance(start, StartBranches)
        [branch] = start.branches
        forward = forward_request(processed, branch.target, received=invite, inbound=UDP_SIDE)
        self.assertEqual(forward.flow, BOB_FLOW)
        # F2: the INVITE leaves over Bob's TCP flow: double Record-Route.
        sent = forward.request_for(TCP_SIDE)
        self.assertEqual(str(sent.uri), "sip:bob@192.0.2.4;transport=tcp")
        self.assertEqual(route_values(sent, "Record-Route"), ["sip:192.0.2.10;transport=tcp;lr", "sip:192.0.2.10;lr"])
        # F3-F6: 100 absorbed, 180 and 200 (with Bob's copy of the Record-Route) go up.
        rr = [("Record-Route", value) for value in sent.headers.get_all("Record-Route")]
        self.assertEqual(context.on_response(branch, build_response(sent, 100)), [])
        [ringing] = context.on_response(branch, build_response(sent, 180, to_tag="b0b", headers=rr))
        [ok] = context.on_response(branch, build_response(sent, 200, to_tag="b0b", headers=rr))
        assert isinstance(ringing, ForwardResponse) and isinstance(ok, ForwardResponse)
        self.assertEqual(ok.response.status, 200)
        self.assertEqual([str(v) for v in ok.response.vias], [ALICE_VIA])
        self.assertEqual(ok.response.record_routes, sent.record_routes)
        self.assertTrue(context.finished)
        # F7: Alice's ACK, routed by her route set (the reverse of the Record-Route): our UDP-side value first.
        alice_routes = ", ".join(str(NameAddress(a.uri)) for a in reversed(ok.response.record_routes))
        ack = request(
            "sip:bob@192.0.2.4;transport=tcp",
            method="ACK",
            to="Bob <sip:bob@atlanta.com>;tag=b0b",
            extra=f"Route: {alice_routes}\n",
            via="SIP/2.0/UDP 192.0.2.101:5060;branch=z9hG4bKack1;received=192.0.2.101",
        )
        self.assertIsNone(check_request(ack, IDENTITY))
        processed_ack = preprocess(ack, IDENTITY, UDP_SIDE)
        self.assertEqual(processed_ack.routes, [])
        self.assertEqual(route_request(processed_ack, IDENTITY), ForwardTo(Target(processed_ack.uri)))
        relayed = forward_statelessly(processed_ack, received=ack, inbound=UDP_SIDE).request
        self.assertEqual(str(relayed.uri), "sip:bob@192.0.2.4;transport=tcp")
        # F10: Bob's BYE, routed by his route set (the Record-Route in order): our TCP-side value first.
        bob_routes = ", ".join(str(NameAddress(a.uri)) for a in sent.record_routes)
        bye = request(
            "sip:alice@192.0.2.101",
            method="BYE",
            from_="Bob <sip:bob@atlanta.com>;tag=b0b",
            to="Alice <sip:alice@atlanta.com>;tag=9fxced76sl",
            extra=f"Route: {bob_routes}\n",
            via="SIP/2.0/TCP 192.0.2.4:49152;branch=z9hG4bKbye1;received=192.0.2.4",
            cseq=231,
        )
        self.assertIsNone(check_request(bye, IDENTITY))
        processed_bye = preprocess(bye, IDENTITY, TCP_SIDE)
        self.assertEqual(processed_bye.routes, [])
        target = route_request(processed_bye, IDENTITY)
        assert isinstance(target, ForwardTo)
        bye_forward = forward_request(processed_bye, target.target, received=bye, inbound=TCP_SIDE)
        self.assertEqual(bye_forward.request.record_routes, [])
        self.assertEqual(str(bye_forward.request.uri), "sip:alice@192.0.2.101")
        bye_context = ResponseContext(bye, [[target.target]])
        bye_context.start()
        [done] = bye_context.on_response(0, build_response(bye_forward.request, 200))
        assert isinstance(done, ForwardResponse)
        self.assertEqual(done.response.top_via.branch, "z9hG4bKbye1")


# The property: any legal sequence of branch responses.

_STATUSES = st.sampled_from([100, 180, 183, 200, 202, 302, 401, 404, 407, 408, 486, 487, 500, 503, 600, 603])


class ResponseContextPropertyTests(SynchronousTestCase):
    """
    For any sequence of branch responses, L{ResponseContext} forwards at
    most one final non-2xx response, and only once every started branch
    ended (all groups tried, or a 6xx, or a CANCEL); nothing after it;
    every 2xx to an INVITE; never a 100; and in the end exactly one first
    final response.
    """

    @given(
        sizes=st.lists(st.integers(1, 3), min_size=1, max_size=3),
        method=st.sampled_from(["INVITE", "MESSAGE"]),
        data=st.data(),
    )
    def test_any_sequence(self, sizes: list[int], method: str, data: st.DataObject) -> None:
        received = request("sip:bob@atlanta.com", method=method)
        copy = forward_request(received, Target(received.uri), received=received, inbound=UDP_SIDE).request
        groups = [[Target(parse_uri(f"sip:u{g}{i}@192.0.2.4")) for i in range(size)] for g, size in enumerate(sizes)]
        context = ResponseContext(received, groups)
        events: list[tuple[str, list[Action], bool]] = []
        fed_2xx = 0
        stopped = False  # a 6xx came or the request was cancelled

        def step(label: str, actions: list[Action]) -> None:
            # Snapshot, as each final non-2xx goes up: is every started branch over, and was every group tried?
            states = [context.state(i) for i in range(len(context.branches))]
            ended = all(state not in (BranchState.CALLING, BranchState.PROCEEDING) for state in states)
            tried_all = BranchState.SKIPPED not in states or stopped
            events.append((label, actions, ended and tried_all))

        step("start", context.start())
        live_states = (BranchState.CALLING, BranchState.PROCEEDING, BranchState.ACCEPTED)
        for _ in range(data.draw(st.integers(0, 25))):
            live = [i for i in range(len(context.branches)) if context.state(i) in live_states]
            if not live:
                break
            index = data.draw(st.sampled_from(live))
            if data.draw(st.integers(0, 9)) == 0:
                stopped = stopped or context.final_sent is None
                step("cancel", context.cancel())
                continue
            status = data.draw(_STATUSES)
            if context.state(index) is BranchState.ACCEPTED and not 200 <= status < 300:
                status = 200
            if 200 <= status < 300:
                fed_2xx += 1
            stopped = stopped or status >= 600
            step(f"{index}:{status}", context.on_response(index, response_to(copy, status)))
        # Every branch still pending ends with a final response.
        while context.pending:
            index = context.pending[0].index
            status = data.draw(st.sampled_from([200, 486, 603, 487]))
            if status == 200:
                fed_2xx += 1
            stopped = stopped or status >= 600
            step(f"{index}:{status}", context.on_response(index, response_to(copy, status)))

        forwarded = [
            (a.response.status, done) for _, actions, done in events for a in actions if isinstance(a, ForwardResponse)
        ]
        statuses = [status for status, _ in forwarded]
        self.assertNotIn(100, statuses)
        finals_non_2xx = [i for i, status in enumerate(statuses) if status >= 300]
        self.assertLessEqual(len(finals_non_2xx), 1)
        if finals_non_2xx:
            [position] = finals_non_2xx
            self.assertEqual(position, len(statuses) - 1, "nothing after a final non-2xx")
            self.assertFalse([s for s in statuses if 200 <= s < 300], "no final non-2xx after a 2xx")
            self.assertTrue(forwarded[position][1], "a final non-2xx only once every branch ended")
        if method == "INVITE":
            self.assertEqual(len([s for s in statuses if 200 <= s < 300]), fed_2xx, "every 2xx goes up")
        else:
            self.assertEqual(len([s for s in statuses if s >= 200]), 1, "one final response")
        self.assertTrue(context.finished)
        first_final = next(s for s in statuses if s >= 200)
        assert context.final_sent is not None
        self.assertEqual(context.final_sent.status, first_final)
