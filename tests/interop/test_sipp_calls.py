"""
Calls through the C{twistd sip} server (L{sipstack.tap.build_server},
started in the test process on ephemeral loopback ports, with the
defaults otherwise: every domain, no authentication):

  - SIPp places calls (INVITE, 100, 180, 200, ACK, BYE, 200) through the
    proxy to a SIPp answerer that registered as a user first, over UDP and
    over TCP, with no failed call on either side; both scenarios check that
    the proxy record-routed, and the server counts the INVITEs and BYEs it
    proxied;
  - SIPp calling a user nobody registered gets 404;
  - two of our own phones (L{SIPStack}) register over TLS with a server
    whose certificate a test CA issued, and call each other through the
    proxy, every hop C{tls-authenticated}.

SIPp runs as child processes (L{run_sipp}), bounded in calls and time, so
the reactor keeps serving them.
"""

from __future__ import annotations

import socket
from collections import Counter
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from sipstack.dialog import build_request
from sipstack.hop import Peer, SecurityState, TransportKind
from sipstack.stack import IncomingRequest, RequestResult, SIPStack
from sipstack.tap import Options, SIPServer, build_server
from sipstack.testing.certs import CertificateAuthority
from tests.interop._sipp import NO_SIPP, SippRun, free_port, run_sipp
from tests.stack import Callee, make_stack
from tests.transport._helpers import reactor

#: Calls each transport places: enough to overlap, few enough to stay quick.
CALLS = 50
#: New calls a second.
RATE = 100


def options(*argv: str) -> Options:
    parsed = Options()
    parsed.parseOptions(list(argv))
    return parsed


async def start_server(testcase: TestCase, *extra: str) -> tuple[SIPServer, list[Peer]]:
    """
    The server on C{extra} listeners (UDP and TCP on 127.0.0.1 if none),
    its location store in memory; stopped when the test ends.
    """
    listen = extra or ("--listen", "udp:0:interface=127.0.0.1", "--listen", "tcp:0:interface=127.0.0.1")
    config = options("--data-dir", testcase.mktemp(), "--location", "memory", "--grace", "0.5", *listen).config
    server = build_server(config, reactor)
    server.privilegedStartService()
    server.startService()
    testcase.addCleanup(lambda: server.stopService() if server.running else None)
    return server, await server.listening.ready


def count_proxied(server: SIPServer) -> Counter[str]:
    """Count, by method, the requests the server hands its proxy (everything but REGISTER)."""
    seen: Counter[str] = Counter()
    proxy = server.core.proxy

    def counting(incoming: IncomingRequest) -> Any:
        seen[incoming.request.method] += 1
        return proxy(incoming)

    server.core.proxy = counting
    return seen


def bound(port: int, kind: int) -> bool:
    """Whether something holds 127.0.0.1:C{port} for C{kind} (C{SOCK_DGRAM} or C{SOCK_STREAM})."""
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


async def until_bound(port: int, kind: int, running: Deferred[SippRun]) -> None:
    """
    Wait until SIPp, started in the background, holds C{port}: it has no
    other way to say that it is ready.  Bounded: five seconds, or SIPp
    ending first.
    """
    for _ in range(250):
        if bound(port, kind) or running.called:
            return
        await deferLater(reactor, 0.02, lambda: None)
    raise AssertionError(f"SIPp did not bind port {port} within 5 s")


class SippCallTests(TestCase):
    """SIPp calls SIPp through the proxy."""

    skip = NO_SIPP
    #: SIPp bounds each run to 30 s; a stuck run fails here.
    timeout = 90

    def assert_calls(self, run: SippRun, calls: int, side: str) -> None:
        self.assertEqual(run.code, 0, f"{side}: {run.describe()}")
        self.assertEqual(run.counter("SuccessfulCall(C)"), calls, f"{side}: {run.describe()}")
        self.assertEqual(run.counter("FailedCall(C)"), 0, f"{side}: {run.describe()}")

    async def calls(self, transport: str) -> None:
        """
        The callee (user C{callee-<transport>}) registers from the port its
        answerer then listens on, so the proxy reaches the answerer by the
        binding's flow (UDP: the address the REGISTER came from) or, once the
        registering connection closed, its Contact (TCP); the caller places
        L{CALLS} calls to C{sip:callee-<transport>@<server>:<port>}.
        """
        server, (udp, tcp) = await start_server(self)
        proxied = count_proxied(server)
        udp_run = transport == "u1"
        target, kind = (udp, socket.SOCK_DGRAM) if udp_run else (tcp, socket.SOCK_STREAM)
        user = f"callee-{transport}"
        port = free_port()
        registered = await run_sipp(
            self, target, "register-contact.xml", transport, calls=1, rate=1, port=port, extra=["-s", user]
        )
        self.assert_calls(registered, 1, "register")
        (binding,) = await server.registrar.lookup(f"sip:{user}@127.0.0.1")
        self.assertEqual(binding.contact, f"sip:{user}@127.0.0.1:{port};transport={'UDP' if udp_run else 'TCP'}")

        answering = Deferred.fromCoroutine(
            run_sipp(self, None, "uas-answer.xml", transport, calls=CALLS, rate=RATE, port=port, extra=["-s", user])
        )
        await until_bound(port, kind, answering)
        calling = await run_sipp(self, target, "uac-call.xml", transport, calls=CALLS, rate=RATE, extra=["-s", user])
        answered = await answering
        self.assert_calls(calling, CALLS, "caller")
        self.assert_calls(answered, CALLS, "callee")
        # Every INVITE and BYE went through the proxy once (retransmissions
        # are absorbed by the server transactions); ACKs of 2xx are stray
        # to the stack and forwarded without reaching the handler.
        self.assertEqual((proxied["INVITE"], proxied["BYE"]), (CALLS, CALLS), proxied)

    async def test_udp(self) -> None:
        """Over UDP: every call completes on both sides, through the proxy, record-routed."""
        await self.calls("u1")

    async def test_tcp(self) -> None:
        """Over TCP (one connection from the caller, one to the callee): the same."""
        await self.calls("t1")

    async def test_unregistered(self) -> None:
        """A call to a user nobody registered gets 404, over UDP and TCP; SIPp acknowledges it."""
        server, (udp, tcp) = await start_server(self)
        proxied = count_proxied(server)
        for target, transport in ((udp, "u1"), (tcp, "t1")):
            run = await run_sipp(
                self, target, "uac-unregistered.xml", transport, calls=5, rate=50, extra=["-s", "nobody"]
            )
            self.assert_calls(run, 5, transport)
            self.assertEqual(run.counter("Retransmissions(C)"), 0, run.describe())
        self.assertEqual(proxied["INVITE"], 10)


class TLSCallTests(TestCase):
    """
    Our own phones call each other over TLS through the server, whose TLS
    listener has a certificate a test CA issued for C{localhost}; the
    phones trust that CA and reach the server as C{sips:localhost}.
    """

    async def call(self) -> tuple[SIPServer, Peer, SIPStack, RequestResult, Callee]:
        """
        Alice and Bob register over TLS (C{sip:USER@localhost}, each
        REGISTER C{tls-authenticated}), then Alice calls C{sips:bob@localhost}
        and Bob answers: the server, its TLS address, the INVITE's result
        Alice's stack and Bob's callee.
        """
        ca = CertificateAuthority.generate()
        issued = ca.issue("localhost", dns=["localhost"], ips=["127.0.0.1"])
        directory = Path(self.mktemp())
        directory.mkdir(parents=True)
        cert, key = directory / "cert.pem", directory / "key.pem"
        cert.write_bytes(issued.fullchain_pem)
        key.write_bytes(issued.key_pem)
        server, (tls,) = await start_server(
            self, "--listen", "tls:0:interface=127.0.0.1", "--certificate", str(cert), "--private-key", str(key)
        )
        phones = []
        for user in ("alice", "bob"):
            stack = make_stack(self, trust_root=ca.cert_pem)
            await stack.listen(f"tls:0:interface=127.0.0.1:certKey={cert}:privateKey={key}")
            aor = f"<sip:{user}@localhost>"
            register = build_request(
                "REGISTER", f"sips:localhost:{tls.port}", from_=aor, to=aor, contact=stack.contact(TransportKind.TLS)
            )
            registered = await stack.request(register)
            self.assertEqual(registered.status, 200, registered.error)
            self.assert_authenticated(registered)
            phones.append(stack)
        alice, bob = phones
        callee = Callee()
        bob.on_request(callee)
        invite = build_request(
            "INVITE",
            "sips:bob@localhost",
            from_="<sips:alice@localhost>",
            to="<sips:bob@localhost>",
            contact=alice.contact(TransportKind.TLS),
            headers=(("Route", f"<sips:localhost:{tls.port};lr>"),),
            body=b"v=0\r\n",
            content_type="application/sdp",
        )
        result = await alice.request(invite)
        self.assertEqual(result.status, 200, result.error)
        return server, tls, alice, result, callee

    async def test_tls_call(self) -> None:
        """
        The INVITE is C{tls-authenticated} on Alice's side, reaches Bob over
        TLS, record-routed twice by the proxy's TLS side (Bob's contact is a
        C{sip:} URI reached over TLS, Alice's side is C{sips:}; RFC 5658),
        both times as C{localhost}, the name its certificate names, so
        that the phones can authenticate it for in-dialog requests
        (RFC 5922).
        """
        server, tls, _, result, callee = await self.call()
        self.assert_authenticated(result)
        (incoming,) = callee.of("INVITE")
        self.assertEqual(incoming.received.flow.transport, TransportKind.TLS)
        self.assertEqual(
            [str(value.uri) for value in incoming.request.record_routes],
            [f"sip:localhost:{tls.port};transport=tls;lr", f"sips:localhost:{tls.port};lr"],
        )
        self.assertEqual(await server.store.count(), 2)

    async def test_tls_in_dialog(self) -> None:
        """
        Alice's ACK and BYE follow the route set to the proxy (C{sips:} at
        the name its certificate names), C{tls-authenticated}, which knows
        that Route as its own and passes them on to Bob.
        """
        _, _, alice, result, callee = await self.call()
        assert result.dialog is not None
        bye = await alice.request(result.dialog.create_request("BYE"))
        self.assertEqual(bye.status, 200, bye.error)
        self.assert_authenticated(bye)
        self.assertEqual(len(callee.of("BYE")), 1)
        self.assertIsNotNone(await callee.of("INVITE")[0].acked)

    def assert_authenticated(self, result: RequestResult) -> None:
        assert result.security is not None, result
        self.assertEqual(result.security.state, SecurityState.TLS_AUTHENTICATED)
