"""
Tests for L{sipstack.services.registrar} and L{sipstack.services.server}:
every rule of RFC 3261 section 10.3 (and Path, RFC 3327, and the flow
records of RFC 5626) on the sans-IO core with a fake clock and the memory
store, then the registrar over real loopback sockets (UDP, TCP, TLS), with
authentication, and across a restart on a SQLite file.
"""

from __future__ import annotations

import email.utils
from pathlib import Path
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sipstack.dialog import build_request
from sipstack.hop import FlowKey, Peer, TransportKind
from sipstack.message import Request, Response
from sipstack.message.address import parse_name_address
from sipstack.message.auth import parse_challenge
from sipstack.services.digest import Authenticator, answer_challenge, parse_users, users_line
from sipstack.services.location import MemoryLocationStore, Put, Remove, RemoveAll, StoreClosed
from sipstack.services.registrar import (
    SUPPORTED,
    Answer,
    RegisterUpdate,
    RegistrarCore,
    RegistrarPolicy,
    aor_of,
    canonical_host,
)
from sipstack.stack import SIPStack
from sipstack.tap import ServerConfig, SIPServer, build_server
from sipstack.testing.certs import CertificateAuthority
from tests.stack import make_stack
from tests.transport._helpers import reactor

START = 1_700_000_000.0
TCP_FLOW = FlowKey(TransportKind.TCP, Peer("192.0.2.7", 40000), Peer("192.0.2.1", 5060), 3)
UDP_FLOW = FlowKey(TransportKind.UDP, Peer("192.0.2.7", 5062), Peer("192.0.2.1", 5060))
SECRET = b"0123456789abcdef0123456789abcdef"


def register(
    contacts: tuple[str, ...] = ("<sip:alice@192.0.2.7:5062>",),
    *,
    to: str = "<sip:alice@example.com>",
    uri: str = "sip:example.com",
    call_id: str = "call-1",
    cseq: int = 1,
    headers: tuple[tuple[str, str], ...] = (),
    vias: int = 1,
) -> Request:
    """A REGISTER as a phone sends it, with C{vias} Via fields."""
    via_fields = [("Via", f"SIP/2.0/TCP 192.0.2.{n + 7}:5062;branch=z9hG4bK{n}x{cseq}") for n in range(vias)]
    return build_request(
        "REGISTER",
        uri,
        from_=to,
        to=to,
        call_id=call_id,
        cseq=cseq,
        headers=(*via_fields, *(("Contact", c) for c in contacts), *headers),
    )


def header_values(answer: Answer, name: str) -> list[str]:
    return [value for key, value in answer.headers if key.lower() == name.lower()]


class _CoreCase(SynchronousTestCase):
    """A core on a fake clock, with the memory store to apply its updates."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.store = MemoryLocationStore(self.clock)

    def core(self, authenticator: Authenticator | None = None, **policy: Any) -> RegistrarCore:
        policy.setdefault("domains", frozenset({"example.com"}))
        return RegistrarCore(RegistrarPolicy(**policy), self.clock, authenticator)

    def update(self, core: RegistrarCore, request: Request, **kwargs: Any) -> RegisterUpdate:
        decision = core.decide(request, **kwargs)
        assert isinstance(decision, RegisterUpdate), decision
        return decision

    def apply(self, core: RegistrarCore, request: Request, **kwargs: Any) -> Answer:
        """Decide, apply to the store, answer: what the Twisted registrar does."""
        decision = core.decide(request, **kwargs)
        if isinstance(decision, Answer):
            return decision
        result = self.successResultOf(
            self.store.update(decision.aor, decision.changes, max_bindings=core.policy.max_bindings)
        )
        return core.answer(decision, result)

    def contacts(self, answer: Answer) -> dict[str, int]:
        """The 200's Contacts: URI to expires."""
        found = {}
        for value in header_values(answer, "Contact"):
            address = parse_name_address(value)
            assert address.expires is not None
            found[str(address.uri)] = address.expires
        return found


class AddRefreshRemoveTests(_CoreCase):
    """Bindings are added, refreshed and removed, and the 200 lists them all."""

    def test_add(self) -> None:
        """
        A new contact is bound with the default expiry; the 200 lists it with
        its expiry, and carries a Date and what is supported.
        """
        answer = self.apply(self.core(), register())
        self.assertEqual(answer.status, 200)
        self.assertEqual(self.contacts(answer), {"sip:alice@192.0.2.7:5062": 3600})
        (date,) = header_values(answer, "Date")
        self.assertEqual(email.utils.parsedate_to_datetime(date).timestamp(), START)
        self.assertEqual(header_values(answer, "Supported"), [", ".join(SUPPORTED)])
        self.assertEqual(header_values(answer, "Require"), [])
        (binding,) = self.successResultOf(self.store.lookup("sip:alice@example.com"))
        self.assertEqual(binding.expires_at, START + 3600)
        self.assertEqual((binding.call_id, binding.cseq), ("call-1", 1))

    def test_lists_every_binding_with_remaining_time(self) -> None:
        """The 200 lists all current bindings, each with the seconds it has left."""
        core = self.core()
        self.apply(core, register(("<sip:alice@192.0.2.7>;expires=600",)))
        self.clock.advance(100)
        answer = self.apply(core, register(("<sip:alice@192.0.2.8>",), cseq=2))
        self.assertEqual(self.contacts(answer), {"sip:alice@192.0.2.7": 500, "sip:alice@192.0.2.8": 3600})

    def test_refresh(self) -> None:
        """The same contact with a higher CSeq refreshes its binding: one binding, new expiry."""
        core = self.core()
        self.apply(core, register(headers=(("Expires", "300"),)))
        self.clock.advance(200)
        answer = self.apply(core, register(cseq=2, headers=(("Expires", "300"),)))
        self.assertEqual(self.contacts(answer), {"sip:alice@192.0.2.7:5062": 300})

    def test_remove_one(self) -> None:
        """C{expires=0} on a contact removes its binding and leaves the others."""
        core = self.core()
        self.apply(core, register(("<sip:alice@192.0.2.7>", "<sip:alice@192.0.2.8>")))
        request = register(("<sip:alice@192.0.2.7>;expires=0",), cseq=2)
        decision = self.update(core, request)
        self.assertIsInstance(decision.changes[0], Remove)
        answer = self.apply(core, request)
        self.assertEqual(self.contacts(answer), {"sip:alice@192.0.2.8": 3600})

    def test_fetch(self) -> None:
        """A REGISTER without Contact changes nothing and lists the bindings."""
        core = self.core()
        self.apply(core, register())
        decision = self.update(core, register((), cseq=2))
        self.assertEqual(decision.changes, ())

    def test_wildcard(self) -> None:
        """C{Contact: *} with C{Expires: 0} removes every binding; the 200 lists none."""
        core = self.core()
        self.apply(core, register(("<sip:alice@192.0.2.7>", "<sip:alice@192.0.2.8>")))
        request = register(("*",), cseq=2, headers=(("Expires", "0"),))
        self.assertEqual(self.update(core, request).changes, (RemoveAll("call-1", 2),))
        answer = self.apply(core, request)
        self.assertEqual(answer.status, 200)
        self.assertEqual(header_values(answer, "Contact"), [])
        self.assertEqual(self.successResultOf(self.store.lookup("sip:alice@example.com")), ())

    def test_wildcard_needs_expires_zero(self) -> None:
        """C{Contact: *} without C{Expires: 0}, or beside another contact, gets 400."""
        core = self.core()
        for request in [
            register(("*",)),
            register(("*",), headers=(("Expires", "10"),)),
            register(("*", "<sip:alice@192.0.2.7>"), headers=(("Expires", "0"),)),
        ]:
            decision = core.decide(request)
            assert isinstance(decision, Answer)
            self.assertEqual(decision.status, 400)


class ExpiryTests(_CoreCase):
    """Where the expiry comes from, and its bounds (RFC 3261 section 10.3 step 7)."""

    def expiry(self, core: RegistrarCore, request: Request) -> float:
        (change,) = self.update(core, request).changes
        assert isinstance(change, Put)
        return change.binding.expires_at - START

    def test_parameter_over_header_over_default(self) -> None:
        """The contact's parameter wins over the Expires header, which wins over the default."""
        core = self.core(default_expires=1800)
        self.assertEqual(
            self.expiry(core, register(("<sip:a@192.0.2.7>;expires=120",), headers=(("Expires", "900"),))), 120
        )
        self.assertEqual(self.expiry(core, register(headers=(("Expires", "900"),))), 900)
        self.assertEqual(self.expiry(core, register()), 1800)

    def test_per_contact(self) -> None:
        """Each contact has its own expiry; the header covers those without a parameter."""
        changes = self.update(
            self.core(), register(("<sip:a@192.0.2.7>;expires=120", "<sip:a@192.0.2.8>"), headers=(("Expires", "900"),))
        ).changes
        self.assertEqual([c.binding.expires_at - START for c in changes if isinstance(c, Put)], [120, 900])

    def test_garbled_parameter_gets_default(self) -> None:
        """A malformed C{expires} parameter is as if absent (RFC 4475 section 3.1.2.4)."""
        self.assertEqual(self.expiry(self.core(), register(("<sip:a@192.0.2.7>;expires=soon",))), 3600)

    def test_malformed_header(self) -> None:
        """A malformed C{Expires} header gets 400."""
        decision = self.core().decide(register(headers=(("Expires", "soon"),)))
        assert isinstance(decision, Answer)
        self.assertEqual(decision.status, 400)

    def test_too_brief(self) -> None:
        """A non-zero expiry under the minimum gets 423 with C{Min-Expires}; nothing changes."""
        answer = self.apply(self.core(min_expires=60), register(("<sip:a@192.0.2.7>;expires=30",)))
        self.assertEqual(answer.status, 423)
        self.assertEqual(header_values(answer, "Min-Expires"), ["60"])
        self.assertEqual(self.successResultOf(self.store.count()), 0)

    def test_zero_is_not_too_brief(self) -> None:
        """Expiry 0 is a removal, never 423."""
        decision = self.core(min_expires=60).decide(register(("<sip:a@192.0.2.7>;expires=0",)))
        self.assertIsInstance(decision, RegisterUpdate)

    def test_minimum_at_most_an_hour(self) -> None:
        """RFC 3261 lets a registrar refuse only intervals under an hour as too brief."""
        self.assertRaises(ValueError, RegistrarPolicy, min_expires=3601, default_expires=4000, max_expires=9000)
        self.assertRaises(ValueError, RegistrarPolicy, min_expires=100, default_expires=50)
        self.assertRaises(ValueError, RegistrarPolicy, max_expires=30, min_expires=60)

    def test_maximum_clamps(self) -> None:
        """A longer expiry is shortened to the maximum, and the 200 says so."""
        core = self.core(max_expires=7200)
        self.assertEqual(self.expiry(core, register(headers=(("Expires", "86400"),))), 7200)
        answer = self.apply(core, register(headers=(("Expires", "86400"),)))
        self.assertEqual(self.contacts(answer), {"sip:alice@192.0.2.7:5062": 7200})


class DomainTests(_CoreCase):
    """Steps 1 and 5: the Request-URI and the address-of-record."""

    def status(self, core: RegistrarCore, request: Request) -> int:
        decision = core.decide(request)
        return 0 if isinstance(decision, RegisterUpdate) else decision.status

    def test_foreign_request_uri(self) -> None:
        """A REGISTER for a domain not served here gets 403."""
        self.assertEqual(self.status(self.core(), register(uri="sip:other.example")), 403)

    def test_local_host_request_uri(self) -> None:
        """The server's own address may be the Request-URI; the AOR must still be in a served domain."""
        core = self.core(local_hosts=frozenset({"192.0.2.1"}))
        self.assertEqual(self.status(core, register(uri="sip:192.0.2.1:5060")), 0)
        self.assertEqual(self.status(core, register(uri="sip:192.0.2.1", to="<sip:alice@192.0.2.1>")), 404)

    def test_foreign_aor(self) -> None:
        """An address-of-record of another domain, or not a SIP URI, gets 404."""
        core = self.core()
        self.assertEqual(self.status(core, register(to="<sip:alice@other.example>")), 404)
        self.assertEqual(self.status(core, register(to="<tel:+15551234>")), 404)

    def test_case_and_ipv6(self) -> None:
        """Domains compare case-insensitively, and IPv6 addresses in any notation."""
        core = self.core(domains=frozenset({"Example.COM", "::1"}))
        self.assertEqual(self.status(core, register(uri="sip:EXAMPLE.com")), 0)
        self.assertEqual(self.status(core, register(uri="sip:[0::1]", to="<sip:alice@[::1]>")), 0)
        self.assertEqual(canonical_host("[0:0::1]"), "[::1]")
        self.assertRaises(ValueError, canonical_host, "example.com:5060")

    def test_open_registrar(self) -> None:
        """With no domains configured, every domain is accepted."""
        core = self.core(domains=frozenset())
        self.assertEqual(self.status(core, register(uri="sip:any.example", to="<sip:bob@any.example>")), 0)

    def test_aor_normalized(self) -> None:
        """The To URI is made canonical: parameters dropped, escapes undone, host lower case, sips as sip."""
        decision = self.update(self.core(), register(to="<sips:%61lice@EXAMPLE.com;user=phone>"))
        self.assertEqual(decision.aor, "sip:alice@example.com")
        self.assertEqual(aor_of("sips:alice@Example.com"), "sip:alice@example.com")
        self.assertRaises(ValueError, aor_of, "tel:+1555")

    def test_not_register(self) -> None:
        """The core answers nothing but REGISTER (405)."""
        request = build_request("OPTIONS", "sip:example.com", from_="<sip:a@example.com>", to="<sip:example.com>")
        decision = self.core().decide(request)
        assert isinstance(decision, Answer)
        self.assertEqual(decision.status, 405)


class ExtensionTests(_CoreCase):
    """Step 2: Require."""

    def test_unsupported(self) -> None:
        """An unknown option tag in Require gets 420 naming it (and only the unknown ones)."""
        decision = self.core().decide(register(headers=(("Require", "path, gruu"), ("Require", "foo"))))
        assert isinstance(decision, Answer)
        self.assertEqual(decision.status, 420)
        self.assertEqual(header_values(decision, "Unsupported"), ["gruu, foo"])

    def test_supported(self) -> None:
        """C{Require: path, outbound} is accepted."""
        self.update(self.core(), register(headers=(("Require", "path, outbound"),)))


class OrderTests(_CoreCase):
    """Step 7's Call-ID and CSeq rules, through the store."""

    def test_stale_cseq(self) -> None:
        """The same Call-ID with a CSeq not higher gets 500 and changes nothing."""
        core = self.core()
        self.apply(core, register(cseq=5, headers=(("Expires", "600"),)))
        for cseq in (5, 4):
            answer = self.apply(core, register(cseq=cseq, headers=(("Expires", "60"),)))
            self.assertEqual(answer.status, 500)
        (binding,) = self.successResultOf(self.store.lookup("sip:alice@example.com"))
        self.assertEqual((binding.cseq, binding.expires_at), (5, START + 600))

    def test_stale_removal(self) -> None:
        """A reordered removal (lower CSeq) does not remove."""
        core = self.core()
        self.apply(core, register(cseq=5))
        answer = self.apply(core, register(("*",), cseq=4, headers=(("Expires", "0"),)))
        self.assertEqual(answer.status, 500)
        self.assertEqual(self.successResultOf(self.store.count()), 1)

    def test_other_call_id(self) -> None:
        """Another Call-ID may update a binding whatever its CSeq (a rebooted phone)."""
        core = self.core()
        self.apply(core, register(cseq=5))
        answer = self.apply(core, register(cseq=1, call_id="call-2"))
        self.assertEqual(answer.status, 200)
        (binding,) = self.successResultOf(self.store.lookup("sip:alice@example.com"))
        self.assertEqual(binding.call_id, "call-2")

    def test_too_many(self) -> None:
        """More bindings than allowed gets 403; nothing is added."""
        core = self.core(max_bindings=2)
        answer = self.apply(core, register(("<sip:a@192.0.2.7>", "<sip:a@192.0.2.8>", "<sip:a@192.0.2.9>")))
        self.assertEqual(answer.status, 403)
        self.assertEqual(self.successResultOf(self.store.count()), 0)


class ContactTests(_CoreCase):
    """What a binding keeps of its Contact and of the REGISTER."""

    def test_q_order(self) -> None:
        """Bindings keep their q and the 200 lists them best first."""
        answer = self.apply(self.core(), register(("<sip:a@192.0.2.7>;q=0.1", "<sip:a@192.0.2.8>;q=0.9")))
        listed = [parse_name_address(value) for value in header_values(answer, "Contact")]
        self.assertEqual([(str(a.uri), a.q) for a in listed], [("sip:a@192.0.2.8", 0.9), ("sip:a@192.0.2.7", 0.1)])

    def test_bad_q(self) -> None:
        """A malformed q gets 400."""
        decision = self.core().decide(register(("<sip:a@192.0.2.7>;q=2",)))
        assert isinstance(decision, Answer)
        self.assertEqual(decision.status, 400)

    def test_malformed_contact(self) -> None:
        """A Contact that does not parse gets 400."""
        decision = self.core().decide(register(("<sip:a@192.0.2.7",)))
        assert isinstance(decision, Answer)
        self.assertEqual(decision.status, 400)

    def test_flow_and_source_recorded(self) -> None:
        """The flow, the source address and the User-Agent are kept in the binding."""
        request = register(headers=(("User-Agent", "Phone/1.0"),))
        self.apply(self.core(), request, flow=UDP_FLOW, received=UDP_FLOW.remote)
        (binding,) = self.successResultOf(self.store.lookup("sip:alice@example.com"))
        self.assertEqual((binding.flow, binding.received, binding.user_agent), (UDP_FLOW, UDP_FLOW.remote, "Phone/1.0"))

    def test_path_stored_and_echoed(self) -> None:
        """Path is stored in order; the 200 echoes it only when the UA supports path (RFC 3327)."""
        path = (("Path", "<sip:edge.example;lr>"), ("Path", "<sip:core.example;lr>"))
        core = self.core()
        answer = self.apply(core, register(headers=path))
        (binding,) = self.successResultOf(self.store.lookup("sip:alice@example.com"))
        self.assertEqual(binding.path, ("sip:edge.example;lr", "sip:core.example;lr"))
        self.assertEqual(header_values(answer, "Path"), [])
        answer = self.apply(core, register(cseq=2, headers=(*path, ("Supported", "path"))))
        self.assertEqual(header_values(answer, "Path"), ["<sip:edge.example;lr>", "<sip:core.example;lr>"])


class OutboundTests(_CoreCase):
    """RFC 5626: +sip.instance and reg-id."""

    INSTANCE = '"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"'
    CONTACT = f"<sip:alice@192.0.2.7:40000;transport=tcp;ob>;+sip.instance={INSTANCE};reg-id=1"

    def test_outbound_over_tcp(self) -> None:
        """A UA supporting outbound, registering a flow over TCP directly, gets Require: outbound."""
        request = register((self.CONTACT,), headers=(("Supported", "outbound, path"),))
        answer = self.apply(self.core(), request, flow=TCP_FLOW, received=TCP_FLOW.remote)
        self.assertEqual(header_values(answer, "Require"), ["outbound"])
        (binding,) = self.successResultOf(self.store.lookup("sip:alice@example.com"))
        self.assertEqual((binding.reg_id, binding.instance, binding.flow), (1, self.INSTANCE.strip('"'), TCP_FLOW))

    def test_new_flow_replaces(self) -> None:
        """The same instance and reg-id over a new flow replaces the binding (one per flow)."""
        core = self.core()
        supported = (("Supported", "outbound"),)
        self.apply(core, register((self.CONTACT,), headers=supported), flow=TCP_FLOW)
        other = FlowKey(TransportKind.TCP, Peer("192.0.2.7", 40001), TCP_FLOW.local, 4)
        contact = self.CONTACT.replace("40000", "40001")
        self.apply(core, register((contact,), call_id="call-2", headers=supported), flow=other)
        (binding,) = self.successResultOf(self.store.lookup("sip:alice@example.com"))
        self.assertEqual(binding.flow, other)

    def test_udp_recorded_without_require(self) -> None:
        """Over UDP (no keep-alive answered here) the flow is recorded but outbound not promised."""
        request = register((self.CONTACT,), headers=(("Supported", "outbound"),))
        answer = self.apply(self.core(), request, flow=UDP_FLOW)
        self.assertEqual(answer.status, 200)
        self.assertEqual(header_values(answer, "Require"), [])
        (binding,) = self.successResultOf(self.store.lookup("sip:alice@example.com"))
        self.assertEqual(binding.reg_id, 1)

    def test_reg_id_ignored_without_support(self) -> None:
        """Without C{Supported: outbound}, reg-id is ignored (the binding is keyed by its URI)."""
        answer = self.apply(self.core(), register((self.CONTACT,)), flow=TCP_FLOW)
        self.assertEqual(header_values(answer, "Require"), [])
        (binding,) = self.successResultOf(self.store.lookup("sip:alice@example.com"))
        self.assertIsNone(binding.reg_id)

    def test_two_reg_ids(self) -> None:
        """Two Contacts with reg-id get 400."""
        second = self.CONTACT.replace("reg-id=1", "reg-id=2").replace("40000", "40002")
        decision = self.core().decide(register((self.CONTACT, second), headers=(("Supported", "outbound"),)))
        assert isinstance(decision, Answer)
        self.assertEqual(decision.status, 400)

    def test_first_hop_without_outbound(self) -> None:
        """Through a proxy that added no Path, or a Path without ob, outbound gets 439."""
        core = self.core()
        for request in [
            register((self.CONTACT,), vias=2, headers=(("Supported", "outbound"),)),
            register((self.CONTACT,), vias=2, headers=(("Supported", "outbound"), ("Path", "<sip:edge.example;lr>"))),
        ]:
            decision = core.decide(request, flow=TCP_FLOW)
            assert isinstance(decision, Answer)
            self.assertEqual(decision.status, 439)

    def test_edge_proxy_with_ob(self) -> None:
        """An edge proxy whose Path carries ob keeps the flow: Require: outbound."""
        headers = (("Supported", "outbound"), ("Path", "<sip:core.example;lr>, <sip:edge.example;lr;ob>"))
        decision = self.update(self.core(), register((self.CONTACT,), vias=3, headers=headers), flow=UDP_FLOW)
        self.assertTrue(decision.outbound)


class AuthenticationTests(_CoreCase):
    """Steps 3 and 4 with digest authentication."""

    def setUp(self) -> None:
        super().setUp()
        users = parse_users(
            "\n".join([users_line("alice", "example.com", "secret"), users_line("bob", "example.com", "pw")])
        )
        self.authenticator = Authenticator(users, "example.com", self.clock, SECRET)

    def challenged(self, request: Request) -> Answer:
        decision = self.core(self.authenticator).decide(request)
        assert isinstance(decision, Answer)
        self.assertEqual(decision.status, 401)
        return decision

    def with_credentials(self, request: Request, user: str, password: str, challenge: Answer) -> Request:
        first = parse_challenge(header_values(challenge, "WWW-Authenticate")[0])
        credentials = answer_challenge(first, "REGISTER", str(request.uri), user, password)
        return request.replace(headers=request.headers.with_added("Authorization", str(credentials)))

    def test_challenge(self) -> None:
        """No credentials: 401 with a SHA-256 and an MD5 challenge, qop=auth."""
        answer = self.challenged(register())
        challenges = [parse_challenge(value) for value in header_values(answer, "WWW-Authenticate")]
        self.assertEqual([c.algorithm for c in challenges], ["SHA-256", "MD5"])
        self.assertTrue(all(c.realm == "example.com" and "auth" in c.qop_options for c in challenges))

    def test_authenticated(self) -> None:
        """Good credentials for one's own address register."""
        request = register(cseq=2)
        answer = self.apply(
            self.core(self.authenticator), self.with_credentials(request, "alice", "secret", self.challenged(request))
        )
        self.assertEqual(answer.status, 200)

    def test_wrong_password(self) -> None:
        """A wrong password is challenged again."""
        request = register()
        self.challenged(self.with_credentials(request, "alice", "wrong", self.challenged(request)))

    def test_other_users_address(self) -> None:
        """An authenticated user may not register another user's address: 403."""
        request = register(to="<sip:alice@example.com>")
        decision = self.core(self.authenticator).decide(
            self.with_credentials(request, "bob", "pw", self.challenged(request))
        )
        assert isinstance(decision, Answer)
        self.assertEqual(decision.status, 403)

    def test_authentication_before_aor(self) -> None:
        """An unauthenticated REGISTER for a foreign AOR is challenged, not told 404."""
        self.challenged(register(to="<sip:alice@other.example>"))

    def test_stale(self) -> None:
        """A good digest over an expired nonce gets a challenge with stale=true."""
        request = register()
        signed = self.with_credentials(request, "alice", "secret", self.challenged(request))
        self.clock.advance(3600)
        answer = self.challenged(signed)
        self.assertTrue(parse_challenge(header_values(answer, "WWW-Authenticate")[0]).stale)

    def test_malformed_credentials(self) -> None:
        """Credentials missing their response get 400."""
        request = register(headers=(("Authorization", 'Digest username="alice", realm="example.com"'),))
        decision = self.core(self.authenticator).decide(request)
        assert isinstance(decision, Answer)
        self.assertEqual(decision.status, 400)


# Over real sockets


def server_config(testcase: TestCase, **kwargs: Any) -> ServerConfig:
    data_dir = Path(testcase.mktemp())
    kwargs.setdefault("listen", ("udp:0:interface=127.0.0.1", "tcp:0:interface=127.0.0.1"))
    kwargs.setdefault("location", "memory")
    kwargs.setdefault(
        "policy", RegistrarPolicy(domains=frozenset({"example.com"}), local_hosts=frozenset({"127.0.0.1"}))
    )
    return ServerConfig(data_dir=str(data_dir), domains=("example.com",), grace=0.0, **kwargs)


async def start(testcase: TestCase, config: ServerConfig) -> tuple[SIPServer, list[Peer]]:
    """Start a server on ephemeral ports; stopped when the test ends."""
    server = build_server(config, reactor)
    server.privilegedStartService()
    server.startService()
    testcase.addCleanup(lambda: server.stopService() if server.running else None)
    peers = await server.listening.ready
    return server, peers


def phone_register(
    client: SIPStack,
    target: str,
    *,
    cseq: int = 1,
    call_id: str = "e2e-1",
    contacts: tuple[str, ...] | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> Request:
    if contacts is None:
        contacts = (str(client.contact(TransportKind.UDP, default=None) or client.contact(TransportKind.TCP)),)
    return build_request(
        "REGISTER",
        target,
        from_="<sip:alice@example.com>",
        to="<sip:alice@example.com>",
        call_id=call_id,
        cseq=cseq,
        headers=(*(("Contact", c) for c in contacts), *headers),
    )


def listed(response: Response) -> dict[str, int | None]:
    contacts = response.contacts
    assert isinstance(contacts, list)
    return {str(c.uri): c.expires for c in contacts}


class EndToEndTests(TestCase):
    """A phone (a SIPStack) registers with the server over loopback."""

    async def test_udp_lifecycle(self) -> None:
        """Register, refresh, 423, remove one, then * over UDP; the registrar's lookup follows."""
        server, (udp, _) = await start(self, server_config(self))
        phone = make_stack(self)
        await phone.listen("udp:0:interface=127.0.0.1")
        target = f"sip:127.0.0.1:{udp.port}"
        result = await phone.request(phone_register(phone, target, headers=(("Expires", "600"),)))
        self.assertEqual(result.status, 200)
        (contact,) = listed(result.response)
        self.assertEqual(listed(result.response), {contact: 600})
        self.assertIsNotNone(result.response.headers.get("Date"))
        (binding,) = await server.registrar.lookup("sips:alice@EXAMPLE.com")
        assert binding.flow is not None
        self.assertEqual(binding.flow.transport, TransportKind.UDP)
        self.assertEqual(binding.received, binding.flow.remote)

        refreshed = await phone.request(phone_register(phone, target, cseq=2, headers=(("Expires", "900"),)))
        self.assertEqual(listed(refreshed.response), {contact: 900})

        brief = await phone.request(phone_register(phone, target, cseq=3, headers=(("Expires", "5"),)))
        self.assertEqual((brief.status, brief.response.headers.get("Min-Expires")), (423, "60"))

        two = await phone.request(phone_register(phone, target, cseq=4, contacts=("<sip:alice@192.0.2.50>",)))
        self.assertEqual(set(listed(two.response)), {contact, "sip:alice@192.0.2.50"})
        removed = await phone.request(phone_register(phone, target, cseq=5, contacts=(f"{contact};expires=0",)))
        self.assertEqual(set(listed(removed.response)), {"sip:alice@192.0.2.50"})

        # The binding of 192.0.2.50 was set with CSeq 4: a CSeq 4 for it again is stale.
        stale = await phone.request(phone_register(phone, target, cseq=4, contacts=("<sip:alice@192.0.2.50>",)))
        self.assertEqual(stale.status, 500)

        cleared = await phone.request(
            phone_register(phone, target, cseq=6, contacts=("*",), headers=(("Expires", "0"),))
        )
        self.assertEqual((cleared.status, listed(cleared.response)), (200, {}))
        self.assertEqual(await server.registrar.lookup("sip:alice@example.com"), ())

    async def test_tcp_outbound(self) -> None:
        """Over TCP, an outbound registration is answered with Require: outbound and keeps the connection's flow."""
        server, (_, tcp) = await start(self, server_config(self))
        phone = make_stack(self)
        await phone.listen("tcp:0:interface=127.0.0.1")
        contact = f'{phone.contact(TransportKind.TCP)};+sip.instance="<urn:uuid:1>";reg-id=1'
        request = phone_register(
            phone,
            f"sip:127.0.0.1:{tcp.port};transport=tcp",
            contacts=(contact,),
            headers=(("Supported", "outbound, path"),),
        )
        result = await phone.request(request)
        self.assertEqual(result.status, 200)
        self.assertEqual(result.response.headers.get("Require"), "outbound")
        (binding,) = await server.registrar.lookup("sip:alice@example.com")
        assert binding.flow is not None
        self.assertEqual((binding.flow.transport, binding.reg_id), (TransportKind.TCP, 1))
        self.assertIn(binding.flow, server.stack._layer.flows)

    async def test_tls(self) -> None:
        """A phone registers over TLS to a server with a certificate made here."""
        ca = CertificateAuthority.generate()
        issued = ca.issue("localhost", dns=["localhost"], sip_uris=["sip:localhost"])
        directory = Path(self.mktemp())
        directory.mkdir(parents=True)
        (directory / "cert.pem").write_bytes(issued.fullchain_pem)
        (directory / "key.pem").write_bytes(issued.key_pem)
        config = server_config(
            self,
            listen=("tls:0:interface=127.0.0.1",),
            certificate=str(directory / "cert.pem"),
            private_key=str(directory / "key.pem"),
            policy=RegistrarPolicy(domains=frozenset({"example.com"}), local_hosts=frozenset({"localhost"})),
        )
        server, (tls,) = await start(self, config)
        phone = make_stack(self, trust_root=ca.cert_pem)
        await phone.listen(
            f"tls:0:interface=127.0.0.1:certKey={directory / 'cert.pem'}:privateKey={directory / 'key.pem'}"
        )
        request = phone_register(phone, f"sips:localhost:{tls.port}", contacts=(str(phone.contact(TransportKind.TLS)),))
        result = await phone.request(request)
        self.assertEqual(result.status, 200)
        assert result.security is not None
        self.assertTrue(result.security.authenticated)
        (binding,) = await server.registrar.lookup("sip:alice@example.com")
        assert binding.flow is not None
        self.assertEqual(binding.flow.transport, TransportKind.TLS)

    async def test_authentication(self) -> None:
        """401, then the same REGISTER with credentials is accepted."""
        users = parse_users(users_line("alice", "example.com", "secret"))
        server, (udp, _) = await start(self, server_config(self, users=users, realm="example.com"))
        phone = make_stack(self)
        await phone.listen("udp:0:interface=127.0.0.1")
        target = f"sip:127.0.0.1:{udp.port}"
        first = await phone.request(phone_register(phone, target))
        self.assertEqual(first.status, 401)
        challenge = parse_challenge(first.response.headers.get_all("WWW-Authenticate")[0])
        credentials = answer_challenge(challenge, "REGISTER", target, "alice", "secret")
        second = await phone.request(
            phone_register(phone, target, cseq=2, headers=(("Authorization", str(credentials)),))
        )
        self.assertEqual(second.status, 200)
        self.assertEqual(len(await server.registrar.lookup("sip:alice@example.com")), 1)
        wrong = answer_challenge(challenge, "REGISTER", target, "alice", "guess", nc=2)
        third = await phone.request(phone_register(phone, target, cseq=3, headers=(("Authorization", str(wrong)),)))
        self.assertEqual(third.status, 401)

    async def test_other_requests(self) -> None:
        """OPTIONS to the server gets 200, an INVITE for nobody registered 404 (the proxy), a foreign REGISTER 403."""
        server, (udp, _) = await start(self, server_config(self))
        phone = make_stack(self)
        await phone.listen("udp:0:interface=127.0.0.1")
        options = build_request(
            "OPTIONS", f"sip:127.0.0.1:{udp.port}", from_="<sip:alice@example.com>", to="<sip:127.0.0.1>"
        )
        result = await phone.request(options)
        self.assertEqual(result.status, 200)
        self.assertIn("REGISTER", result.response.headers.get("Allow") or "")
        invite = build_request(
            "INVITE",
            f"sip:bob@127.0.0.1:{udp.port}",
            from_="<sip:alice@example.com>",
            to="<sip:bob@example.com>",
            contact=phone.contact(),
        )
        self.assertEqual((await phone.request(invite)).status, 404)
        foreign_target = build_request(
            "REGISTER", f"sip:127.0.0.1:{udp.port}", from_="<sip:a@other.example>", to="<sip:a@other.example>"
        )
        self.assertEqual((await phone.request(foreign_target)).status, 404)
        elsewhere = build_request(
            "REGISTER", "sip:other.example", from_="<sip:a@other.example>", to="<sip:a@other.example>"
        )
        self.assertEqual(
            (
                await phone.request(
                    elsewhere.replace(headers=elsewhere.headers.with_added("Route", f"<sip:127.0.0.1:{udp.port};lr>"))
                )
            ).status,
            403,
        )
        server.core.proxy = lambda incoming: incoming.response(486)
        options = build_request(
            "OPTIONS", f"sip:bob@127.0.0.1:{udp.port}", from_="<sip:a@example.com>", to="<sip:bob@example.com>"
        )
        self.assertEqual((await phone.request(options)).status, 486)

    async def test_restart_keeps_bindings(self) -> None:
        """Bindings written to SQLite are all there after the server stops and a new one starts on the file."""
        database = Path(self.mktemp()) / "location.sqlite3"
        config = server_config(self, location=f"sqlite:{database}")
        server, (udp, _) = await start(self, config)
        phone = make_stack(self)
        await phone.listen("udp:0:interface=127.0.0.1")
        target = f"sip:127.0.0.1:{udp.port}"
        contacts = tuple(f"<sip:alice@192.0.2.{n}>;q=0.{n}" for n in range(1, 6))
        result = await phone.request(
            phone_register(phone, target, contacts=contacts, headers=(("Path", "<sip:edge.example;lr>"),))
        )
        self.assertEqual(result.status, 200)
        before = await server.registrar.lookup("sip:alice@example.com")
        await server.stopService()
        self.assertFailure(server.store.lookup("sip:alice@example.com"), StoreClosed)
        await self.assertFailure(server.store.lookup("sip:alice@example.com"), StoreClosed)

        again, _ = await start(self, config)
        after = await again.registrar.lookup("sip:alice@example.com")
        self.assertEqual(len(after), 5)
        self.assertEqual(after, before)
        self.assertEqual([b.contact for b in after], [f"sip:alice@192.0.2.{n}" for n in range(5, 0, -1)])
        self.assertEqual(after[0].path, ("sip:edge.example;lr",))
