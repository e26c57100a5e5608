"""
Tests for L{sipstack.services.proxy}: the stateful proxy on a L{SIPStack}
in proxy mode, over real loopback sockets, with L{SIPStack} user agents as
phones that register with the registrar and call each other through the
proxy over UDP, TCP and TLS (a certificate made here): calls with
Record-Route (single and double), forking in parallel and in sequence,
CANCEL, errors forwarded and made, loops, Max-Forwards, Proxy-Require,
proxy authentication, Timer C, and a phone behind NAT reached over the
connection it registered on.

Timers are shortened (T1 = 50 ms).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from sipstack.dialog import build_request
from sipstack.hop import Peer, TransportKind
from sipstack.message import SIPURI, Request, Response
from sipstack.message.auth import parse_challenge
from sipstack.services.digest import Authenticator, answer_challenge, parse_users, users_line
from sipstack.services.location import MemoryLocationStore
from sipstack.services.proxy import Proxy, ProxySettings
from sipstack.services.registrar import Registrar, RegistrarPolicy
from sipstack.services.server import build_core
from sipstack.stack import IncomingRequest, RequestResult, SIPStack
from sipstack.tap import ServerConfig, build_server
from sipstack.testing.certs import CertificateAuthority
from tests.stack import Callee, make_stack
from tests.transport._helpers import reactor, wait_for

SECRET = b"0123456789abcdef0123456789abcdef"
_UDP, _TCP, _TLS = TransportKind.UDP, TransportKind.TCP, TransportKind.TLS


@dataclass
class Server:
    """A registrar and proxy for example.com on loopback UDP, TCP and TLS."""

    stack: SIPStack
    proxy: Proxy
    registrar: Registrar
    listeners: dict[TransportKind, Peer]
    ca: CertificateAuthority | None
    certificate: str
    seen: list[Request]

    def route(self, transport: TransportKind) -> str:
        """The Route a phone puts in front of its requests to reach the proxy over C{transport}."""
        peer = self.listeners[transport]
        suffix = "" if transport is _UDP else f";transport={transport.value.lower()}"
        return f"<sip:{peer.host}:{peer.port}{suffix};lr>"


class Phone:
    """A user agent (a L{SIPStack}) registered as C{user}@example.com over C{transport}."""

    def __init__(self, server: Server, stack: SIPStack, user: str, transport: TransportKind) -> None:
        self.server = server
        self.stack = stack
        self.user = user
        self.transport = transport
        self.callee = Callee()
        self.handler: Any = self.callee
        stack.on_request(self.answer)
        self.registered: RequestResult | None = None

    def answer(self, incoming: IncomingRequest) -> Any:
        """The phone's request handler: C{handler}, which a test may replace."""
        return self.handler(incoming)

    async def register(self, contact: str | None = None, q: float | None = None) -> RequestResult:
        if contact is None:
            contact = str(self.stack.contact(self.transport))
        if q is not None:
            contact += f";q={q}"
        aor = f"<sip:{self.user}@example.com>"
        request = build_request(
            "REGISTER",
            "sip:example.com",
            from_=aor,
            to=aor,
            headers=(("Route", self.server.route(self.transport)), ("Contact", contact)),
        )
        result = await self.stack.request(request)
        assert result.status == 200, result.response
        self.registered = result
        return result

    def invite(self, to: str, *, headers: tuple[tuple[str, str], ...] = (), cseq: int = 1) -> Request:
        return build_request(
            "INVITE",
            f"sip:{to}@example.com",
            from_=f"<sip:{self.user}@example.com>",
            to=f"<sip:{to}@example.com>",
            contact=self.stack.contact(self.transport),
            cseq=cseq,
            headers=(("Route", self.server.route(self.transport)), *headers),
            body=b"v=0\r\n",
            content_type="application/sdp",
        )


class _ProxyCase(TestCase):
    async def server(
        self, *, authenticator: bool = False, settings: ProxySettings | None = None, users: str = ""
    ) -> Server:
        ca = CertificateAuthority.generate()
        issued = ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"])
        directory = Path(self.mktemp())
        directory.mkdir(parents=True)
        (directory / "cert.pem").write_bytes(issued.fullchain_pem)
        (directory / "key.pem").write_bytes(issued.key_pem)
        certificate = f":certKey={directory / 'cert.pem'}:privateKey={directory / 'key.pem'}"
        stack = make_stack(self, proxy=True, trust_root=ca.cert_pem)
        store = MemoryLocationStore(reactor)
        policy = RegistrarPolicy(domains=frozenset({"example.com"}), local_hosts=frozenset({"127.0.0.1"}))
        registrar = Registrar(store, reactor, policy)
        auth = None
        if authenticator:
            auth = Authenticator(parse_users(users), "example.com", reactor, SECRET)
        proxy = Proxy(stack, registrar, authenticator=auth, settings=settings)
        core = build_core(stack, registrar, proxy)
        proxy.install(core)
        seen: list[Request] = []
        handler = stack._handler
        assert handler is not None

        def recording(incoming: IncomingRequest) -> Any:
            seen.append(incoming.request)
            return handler(incoming)

        stack.on_request(recording)
        listeners = {
            _UDP: await stack.listen("udp:0:interface=127.0.0.1"),
            _TCP: await stack.listen("tcp:0:interface=127.0.0.1"),
            _TLS: await stack.listen(f"tls:0:interface=127.0.0.1{certificate}"),
        }
        return Server(stack, proxy, registrar, listeners, ca, certificate, seen)

    async def phone(self, server: Server, user: str, transport: TransportKind, *, listen: bool = True) -> Phone:
        stack = make_stack(self, trust_root=server.ca.cert_pem if server.ca is not None else None)
        if listen:
            options = server.certificate if transport is _TLS else ""
            await stack.listen(f"{transport.value.lower()}:0:interface=127.0.0.1{options}")
        return Phone(server, stack, user, transport)

    async def call(self, a: Phone, b: Phone) -> RequestResult:
        """A calls B (answering 200): the INVITE's result, once B got the ACK."""
        ringing: list[int] = []
        result = await a.stack.request(a.invite(b.user), on_provisional=lambda r: ringing.append(r.status))
        self.assertEqual(result.status, 200)
        self.assertIn(180, ringing)
        ack = await b.callee.of("INVITE")[0].acked
        assert ack is not None
        self.assertEqual(ack.method, "ACK")
        return result


class CallTests(_ProxyCase):
    """A calls B through the proxy."""

    async def test_udp_call(self) -> None:
        """
        INVITE/180/200/ACK/BYE between two UDP phones: one Record-Route
        (both sides on one interface), and the BYE traverses the proxy.
        """
        server = await self.server()
        a, b = await self.phone(server, "alice", _UDP), await self.phone(server, "bob", _UDP)
        await a.register()
        await b.register()
        result = await self.call(a, b)
        invite = b.callee.of("INVITE")[0].request
        udp = server.listeners[_UDP]
        self.assertEqual([str(r.uri) for r in invite.record_routes], [f"sip:127.0.0.1:{udp.port};lr"])
        self.assertEqual(len(invite.vias), 2)
        self.assertEqual(invite.max_forwards, 69)
        assert result.dialog is not None
        self.assertEqual([str(r.uri) for r in result.dialog.route_set], [f"sip:127.0.0.1:{udp.port};lr"])
        bye = await a.stack.request(result.dialog.create_request("BYE"))
        self.assertEqual(bye.status, 200)
        (received_bye,) = b.callee.of("BYE")
        self.assertEqual(received_bye.request.vias[0].port, udp.port)
        self.assertEqual([r.method for r in server.seen], ["REGISTER", "REGISTER", "INVITE", "BYE"])

    async def test_tcp_call(self) -> None:
        """Over TCP the proxy reaches B on the connection B registered on."""
        server = await self.server()
        a, b = await self.phone(server, "alice", _TCP), await self.phone(server, "bob", _TCP)
        await a.register()
        registration = await b.register()
        result = await self.call(a, b)
        incoming = b.callee.of("INVITE")[0]
        self.assertEqual(incoming.received.flow, registration.flow)
        self.assertEqual(len(incoming.request.record_routes), 1)
        assert result.dialog is not None
        bye = await b.stack.request(incoming.dialog.create_request("BYE")) if incoming.dialog else None
        assert bye is not None
        self.assertEqual(bye.status, 200)
        self.assertEqual(len(a.callee.of("BYE")), 1)

    async def test_double_record_route(self) -> None:
        """
        A on UDP, B on TLS: the proxy record-routes twice (RFC 5658), each
        side reaching it on its own transport; B's BYE goes to the TLS side.
        """
        server = await self.server()
        a, b = await self.phone(server, "alice", _UDP), await self.phone(server, "bob", _TLS)
        await a.register()
        registration = await b.register()
        assert registration.security is not None and registration.security.encrypted
        result = await self.call(a, b)
        incoming = b.callee.of("INVITE")[0]
        self.assertEqual(incoming.received.flow, registration.flow)
        udp, tls = server.listeners[_UDP], server.listeners[_TLS]
        expected = [f"sip:127.0.0.1:{tls.port};transport=tls;lr", f"sip:127.0.0.1:{udp.port};lr"]
        self.assertEqual([str(r.uri) for r in incoming.request.record_routes], expected)
        assert result.dialog is not None and incoming.dialog is not None
        self.assertEqual([str(r.uri) for r in result.dialog.route_set], expected[::-1])
        bye = await b.stack.request(incoming.dialog.create_request("BYE"))
        self.assertEqual(bye.status, 200)
        assert bye.security is not None
        self.assertTrue(bye.security.encrypted)
        (received_bye,) = a.callee.of("BYE")
        self.assertEqual(received_bye.received.flow.transport, _UDP)
        self.assertEqual(received_bye.request.vias[0].port, udp.port)

    async def test_busy(self) -> None:
        """B's 486 reaches A (without the proxy's Via), and the proxy ACKs it itself."""
        server = await self.server()
        a, b = await self.phone(server, "alice", _UDP), await self.phone(server, "bob", _UDP)
        await a.register()
        await b.register()
        b.handler = lambda incoming: incoming.response(486)
        result = await a.stack.request(a.invite("bob"))
        self.assertEqual(result.status, 486)
        self.assertEqual(len(result.response.vias), 1)

    async def test_nat_flow(self) -> None:
        """
        B registers over TCP with a contact nobody can reach (behind a NAT):
        the INVITE still reaches it, over the connection it registered on.
        """
        server = await self.server()
        a = await self.phone(server, "alice", _UDP)
        b = await self.phone(server, "bob", _TCP, listen=False)
        await a.register()
        registration = await b.register("<sip:bob@192.0.2.1:5060;transport=tcp>")
        b.handler = lambda incoming: incoming.response(486)
        result = await a.stack.request(a.invite("bob"))
        self.assertEqual(result.status, 486)
        (incoming,) = [each for each in server.seen if each.method == "INVITE"]
        self.assertEqual(str(incoming.uri), "sip:bob@example.com")
        self.assertEqual(b.stack._layer.flows.keys(), {registration.flow})

    async def nat_call(self) -> tuple[Server, Phone, Phone, RequestResult, IncomingRequest]:
        """A (UDP) calls B, registered over TCP from behind a NAT: the dialog, from both ends."""
        server = await self.server()
        a = await self.phone(server, "alice", _UDP)
        b = await self.phone(server, "bob", _TCP, listen=False)
        await a.register()
        registration = await b.register("<sip:bob@192.0.2.1:5060;transport=tcp>")
        result = await self.call(a, b)
        incoming = b.callee.of("INVITE")[0]
        self.assertEqual(incoming.received.flow, registration.flow)
        token, plain = incoming.request.record_routes
        assert isinstance(token.uri, SIPURI) and isinstance(plain.uri, SIPURI)
        self.assertIsNotNone(token.uri.user)
        self.assertTrue(token.uri.has_param("ob"))
        self.assertIsNone(plain.uri.user)
        assert result.dialog is not None and incoming.dialog is not None
        return server, a, b, result, incoming

    async def test_nat_flow_bye_from_caller(self) -> None:
        """
        A hangs up: the BYE's Route carries the flow token of B's side
        (RFC 5626 section 5.3), so it reaches B over the connection B
        registered on, not at the unreachable Contact.
        """
        _, a, b, result, _ = await self.nat_call()
        assert result.dialog is not None and b.registered is not None
        bye = await a.stack.request(result.dialog.create_request("BYE"))
        self.assertEqual(bye.status, 200)
        (received_bye,) = b.callee.of("BYE")
        self.assertEqual(received_bye.received.flow, b.registered.flow)

    async def test_nat_flow_bye_from_callee(self) -> None:
        """B hangs up over its own flow: the token names that flow, so the BYE is routed to A as usual."""
        _, a, b, _, incoming = await self.nat_call()
        assert incoming.dialog is not None
        bye = await b.stack.request(incoming.dialog.create_request("BYE"))
        self.assertEqual(bye.status, 200)
        self.assertEqual(len(a.callee.of("BYE")), 1)

    async def test_nat_flow_gone(self) -> None:
        """The flow the token names has closed: A's BYE gets 430 Flow Failed."""
        server, a, b, result, _ = await self.nat_call()
        assert result.dialog is not None and b.registered is not None
        flow = b.registered.flow
        assert flow is not None
        stream = b.stack._layer.stream(flow)
        assert stream is not None
        stream.close()
        # A is on UDP: B's connection was the proxy's only one.
        await wait_for(lambda: not server.stack.flows, "the flow to close")
        bye = await a.stack.request(result.dialog.create_request("BYE"))
        self.assertEqual(bye.status, 430)
        self.assertEqual(b.callee.of("BYE"), [])


class ForkingTests(_ProxyCase):
    """Two contacts for one address-of-record."""

    async def test_parallel(self) -> None:
        """Equal q: both ring; the first 2xx wins and the other branch gets CANCEL (then 487)."""
        server = await self.server()
        a = await self.phone(server, "alice", _UDP)
        b1, b2 = await self.phone(server, "bob", _UDP), await self.phone(server, "bob", _TCP)
        await a.register()
        await b1.register()
        await b2.register()
        b1.callee.delay = 0.1
        b2.callee.delay = None
        result = await self.call(a, b1)
        self.assertEqual(result.response.to.tag, b1.callee.of("INVITE")[0].to_tag)
        (ringing,) = b2.callee.of("INVITE")
        await ringing.cancelled
        self.assertEqual(ringing.final.status if ringing.final else None, 487)

    async def test_sequential(self) -> None:
        """q=1.0 first; its 486 starts the q=0.5 group, whose 200 goes to A."""
        server = await self.server()
        a = await self.phone(server, "alice", _UDP)
        b1, b2 = await self.phone(server, "bob", _UDP), await self.phone(server, "bob", _UDP)
        await a.register()
        await b1.register(q=1.0)
        await b2.register(q=0.5)
        started: list[str] = []

        def busy(incoming: IncomingRequest) -> Response:
            started.append("b1")
            self.assertEqual(b2.callee.of("INVITE"), [])
            return incoming.response(486)

        b1.handler = busy
        result = await self.call(a, b2)
        self.assertEqual(started, ["b1"])
        self.assertEqual(result.response.to.tag, b2.callee.of("INVITE")[0].to_tag)


class CancelTests(_ProxyCase):
    async def test_cancel_before_answer(self) -> None:
        """A cancels after the 180: 200 to the CANCEL, 487 to the INVITE, and B got a CANCEL."""
        server = await self.server()
        a, b = await self.phone(server, "alice", _UDP), await self.phone(server, "bob", _TCP)
        await a.register()
        await b.register()
        b.callee.delay = None
        invite = a.invite("bob")
        ringing: Deferred[None] = Deferred()
        pending = a.stack.request(invite, on_provisional=lambda r: None if ringing.called else ringing.callback(None))
        await ringing
        cancelled = await a.stack.cancel(invite)
        assert cancelled is not None
        self.assertEqual(cancelled.status, 200)
        result = await pending
        self.assertEqual(result.status, 487)
        await b.callee.of("INVITE")[0].cancelled

    async def test_timer_c(self) -> None:
        """A branch that rings for longer than Timer C is cancelled; A gets the 487."""
        server = await self.server(settings=ProxySettings(timer_c=0.3))
        a, b = await self.phone(server, "alice", _UDP), await self.phone(server, "bob", _UDP)
        await a.register()
        await b.register()
        b.callee.delay = None
        result = await a.stack.request(a.invite("bob"))
        self.assertEqual(result.status, 487)
        self.assertTrue(b.callee.of("INVITE")[0].cancelled.called)


class ErrorTests(_ProxyCase):
    async def test_nobody_registered(self) -> None:
        """An unknown user gets 404; a user the users file knows, with no binding, 480."""
        users = users_line("alice", "example.com", "secret") + "\n" + users_line("carol", "example.com", "pw")
        server = await self.server(authenticator=True, users=users)
        a = await self.phone(server, "alice", _UDP)
        invite = a.invite("nobody")
        first = await a.stack.request(invite)
        self.assertEqual(first.status, 407)
        challenge = parse_challenge(first.response.headers.get_all("Proxy-Authenticate")[0])
        credentials = answer_challenge(challenge, "INVITE", "sip:nobody@example.com", "alice", "secret")
        retry = a.invite("nobody", cseq=2, headers=(("Proxy-Authorization", str(credentials)),))
        self.assertEqual((await a.stack.request(retry)).status, 404)
        credentials = answer_challenge(challenge, "INVITE", "sip:carol@example.com", "alice", "secret", nc=2)
        carol = a.invite("carol", cseq=3, headers=(("Proxy-Authorization", str(credentials)),))
        self.assertEqual((await a.stack.request(carol)).status, 480)

    async def test_authentication(self) -> None:
        """With authentication on: 407, then the INVITE with credentials gets through to B."""
        users = users_line("alice", "example.com", "secret")
        server = await self.server(authenticator=True, users=users)
        a, b = await self.phone(server, "alice", _UDP), await self.phone(server, "bob", _UDP)
        await a.register()
        await b.register()
        first = await a.stack.request(a.invite("bob"))
        self.assertEqual(first.status, 407)
        self.assertEqual(b.callee.of("INVITE"), [])
        challenge = parse_challenge(first.response.headers.get_all("Proxy-Authenticate")[0])
        credentials = answer_challenge(challenge, "INVITE", "sip:bob@example.com", "alice", "wrong")
        wrong = await a.stack.request(a.invite("bob", headers=(("Proxy-Authorization", str(credentials)),)))
        self.assertEqual(wrong.status, 407)
        credentials = answer_challenge(challenge, "INVITE", "sip:bob@example.com", "alice", "secret", nc=2)
        invite = a.invite("bob", headers=(("Proxy-Authorization", str(credentials)),))
        result = await a.stack.request(invite)
        self.assertEqual(result.status, 200)
        await b.callee.of("INVITE")[0].acked

    async def test_loop(self) -> None:
        """
        B registered the proxy itself as its contact, then went away: the
        request spirals once (a new Request-URI), then loops, and A gets 482.
        """
        server = await self.server()
        a, b = await self.phone(server, "alice", _UDP), await self.phone(server, "bob", _TCP, listen=False)
        await a.register()
        udp = server.listeners[_UDP]
        registration = await b.register(f"<sip:bob@127.0.0.1:{udp.port}>")
        await b.stack.close(0.0)
        assert registration.flow is not None
        local = registration.flow.local
        await wait_for(lambda: not any(f.remote == local for f in server.stack.flows), "the proxy to see B gone")
        result = await a.stack.request(a.invite("bob"))
        self.assertEqual(result.status, 482)
        invites = [each for each in server.seen if each.method == "INVITE"]
        self.assertEqual(len(invites), 3)

    async def test_max_forwards(self) -> None:
        """Max-Forwards 0: 483, and nothing reaches B."""
        server = await self.server()
        a, b = await self.phone(server, "alice", _UDP), await self.phone(server, "bob", _UDP)
        await a.register()
        await b.register()
        invite = a.invite("bob")
        invite = invite.replace(headers=invite.headers.with_replaced("Max-Forwards", "0"))
        self.assertEqual((await a.stack.request(invite)).status, 483)
        self.assertEqual(b.callee.of("INVITE"), [])

    async def test_proxy_require(self) -> None:
        """An option the proxy does not support in Proxy-Require: 420 naming it."""
        server = await self.server()
        a, b = await self.phone(server, "alice", _UDP), await self.phone(server, "bob", _UDP)
        await a.register()
        await b.register()
        result = await a.stack.request(a.invite("bob", headers=(("Proxy-Require", "foo"),)))
        self.assertEqual((result.status, result.response.headers.get("Unsupported")), (420, "foo"))

    async def test_options_to_proxy(self) -> None:
        """OPTIONS to the proxy itself is answered by it."""
        server = await self.server()
        a = await self.phone(server, "alice", _UDP)
        udp = server.listeners[_UDP]
        options = build_request("OPTIONS", f"sip:127.0.0.1:{udp.port}", from_="<sip:a@example.com>", to="<sip:x>")
        result = await a.stack.request(options)
        self.assertEqual(result.status, 200)
        self.assertIn("INVITE", result.response.headers.get("Allow") or "")


class StrayTests(_ProxyCase):
    async def test_stray_response_forwarded(self) -> None:
        """A response for our Via that no transaction knows goes upstream statelessly, by the next Via."""
        server = await self.server()
        a = await self.phone(server, "alice", _UDP)
        seen: list[Response] = []
        a.stack.on_stray(lambda received: seen.append(received.message))  # type: ignore[arg-type]
        udp = server.listeners[_UDP]
        a_udp = a.stack.listeners[0][1]
        text = (
            "SIP/2.0 200 OK\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{udp.port};branch=z9hG4bKs{'0' * 24}\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{a_udp.port};branch=z9hG4bKupstream;received=127.0.0.1;rport={a_udp.port}\r\n"
            "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n"
            "Call-ID: stray\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        b = make_stack(self)
        await b.listen("udp:0:interface=127.0.0.1")
        b._layer._udp[0].send(text, udp)
        await wait_for(lambda: seen, "the stray 200 at A")
        self.assertEqual(len(seen[0].vias), 1)
        self.assertEqual(seen[0].top_via.branch, "z9hG4bKupstream")


class ServerTests(TestCase):
    async def test_twistd_server_calls(self) -> None:
        """
        The server C{twistd sip} builds (every domain served, no
        authentication) runs the proxy: two phones register, then call.
        """
        config = ServerConfig(
            listen=("udp:0:interface=127.0.0.1", "tcp:0:interface=127.0.0.1"),
            data_dir=self.mktemp(),
            location="memory",
            grace=0.0,
        )
        server = build_server(config, reactor)
        server.privilegedStartService()
        server.startService()
        self.addCleanup(lambda: server.stopService() if server.running else None)
        udp, tcp = await server.listening.ready
        assert server.proxy is not None and server.core.proxy is server.proxy
        running = Server(server.stack, server.proxy, server.registrar, {_UDP: udp, _TCP: tcp}, None, "", [])
        a, b = await self.phone(running, "alice", _UDP), await self.phone(running, "bob", _TCP)
        await a.register()
        await b.register()
        result = await a.stack.request(a.invite("bob"))
        self.assertEqual(result.status, 200)
        await b.callee.of("INVITE")[0].acked
        assert result.dialog is not None
        self.assertEqual((await a.stack.request(result.dialog.create_request("BYE"))).status, 200)

    async def phone(self, server: Server, user: str, transport: TransportKind) -> Phone:
        stack = make_stack(self)
        await stack.listen(f"{transport.value.lower()}:0:interface=127.0.0.1")
        return Phone(server, stack, user, transport)


class TLSNameTests(TestCase):
    """
    The name the proxy record-routes on its TLS side
    (L{ProxySettings.tls_name}) is one of its hosts, and C{twistd sip}
    takes it from its TLS certificate.
    """

    def tls_name(self, *, listen: tuple[str, ...], **config: Any) -> str | None:
        """The TLS name of the proxy C{twistd sip} builds (not started) with C{config}."""
        built = ServerConfig(listen=listen, data_dir=self.mktemp(), location="memory", grace=0.0, **config)
        server = build_server(built, reactor)
        assert server.proxy is not None
        name = server.proxy.settings.tls_name
        if name is not None:
            self.assertIn(name, server.proxy.identity.hosts)
        return name

    def test_hosts(self) -> None:
        """The configured name, canonical, names the proxy; a bad one is refused."""
        stack = make_stack(self, proxy=True)
        registrar = Registrar(MemoryLocationStore(reactor), reactor, RegistrarPolicy())
        proxy = Proxy(stack, registrar, settings=ProxySettings(tls_name="Proxy.Example.COM."))
        self.assertIn("proxy.example.com", proxy.identity.hosts)
        self.assertNotIn("proxy.example.com", Proxy(stack, registrar).identity.hosts)
        self.assertRaises(ValueError, Proxy, stack, registrar, settings=ProxySettings(tls_name="a b"))

    def test_from_certificate(self) -> None:
        """
        The generated certificate names the first domain (else C{localhost});
        a given one, the served domain it names, else its first identity;
        without a TLS listener there is no name.
        """
        tls = ("udp:0:interface=127.0.0.1", "tls:0:interface=127.0.0.1")
        self.assertEqual(self.tls_name(listen=tls), "localhost")
        self.assertEqual(self.tls_name(listen=tls, domains=("example.com", "example.org")), "example.com")
        self.assertIsNone(self.tls_name(listen=tls[:1]))
        ca = CertificateAuthority.generate()
        issued = ca.issue("sip.example.net", dns=["sip.example.net", "example.org"], ips=["127.0.0.1"])
        path = Path(self.mktemp())
        path.write_bytes(issued.fullchain_pem + issued.key_pem)
        self.assertEqual(self.tls_name(listen=tls, certificate=str(path)), "sip.example.net")
        served = ("example.com", "example.org")
        self.assertEqual(self.tls_name(listen=tls, certificate=str(path), domains=served), "example.org")
