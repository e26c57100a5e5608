"""
SIPp registering with the C{twistd sip} server (L{sipstack.tap.build_server},
the service C{makeService} returns) started in the test process on
ephemeral loopback ports: many distinct users over UDP and over TCP, every
binding then found in the location store, the bindings kept across a
restart, and digest authentication with right and wrong passwords.

SIPp runs as a child process (C{getProcessOutputAndValue}), so the reactor
keeps serving it; each run is bounded in calls, rate and time.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from twisted.trial.unittest import TestCase

from sipstack.hop import Peer, TransportKind
from sipstack.services.digest import Authenticator, load_users, users_line
from sipstack.tap import Options, SIPServer, build_server
from tests.interop._sipp import NO_SIPP, SippRun, run_sipp
from tests.transport._helpers import reactor

#: Distinct users each transport registers.
USERS = 200
#: New REGISTERs a second: quick, and well within what one process serves on a loaded machine.
RATE = 400
REALM = "interop.example"


def options(*argv: str) -> Options:
    parsed = Options()
    parsed.parseOptions(list(argv))
    return parsed


class _ServerTestCase(TestCase):
    """Starts the real server; stops it when the test ends."""

    skip = NO_SIPP
    #: SIPp bounds itself to 30 s; a stuck run fails here.
    timeout = 90

    async def start(self, data_dir: Path, *extra: str) -> tuple[SIPServer, Peer, Peer]:
        """The server with a UDP and a TCP listener on 127.0.0.1 and C{extra} options; its two addresses."""
        config = options(
            "--data-dir",
            str(data_dir),
            "--listen",
            "udp:0:interface=127.0.0.1",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--grace",
            "0.5",
            *extra,
        ).config
        server = build_server(config, reactor)
        server.privilegedStartService()
        server.startService()
        self.addCleanup(lambda: server.stopService() if server.running else None)
        udp, tcp = await server.listening.ready
        return server, udp, tcp

    def assert_all_succeeded(self, run: SippRun, calls: int) -> None:
        self.assertEqual(run.code, 0, run.describe())
        self.assertEqual(run.counter("SuccessfulCall(C)"), calls, run.describe())
        self.assertEqual(run.counter("FailedCall(C)"), 0, run.describe())


class RegisterTests(_ServerTestCase):
    """SIPp registers many users; every binding is stored as sent."""

    async def register_all(self, transport: str, kind: TransportKind) -> tuple[SIPServer, Path, str]:
        data_dir = Path(self.mktemp())
        server, udp, tcp = await self.start(data_dir)
        prefix = f"{kind.value.lower()}user"
        target = udp if kind is TransportKind.UDP else tcp
        run = await run_sipp(
            self, target, "register.xml", transport, calls=USERS, rate=RATE, extra=["-key", "user_prefix", prefix]
        )
        self.assert_all_succeeded(run, USERS)
        self.assertEqual(await server.store.count(), USERS)
        for number in range(1, USERS + 1):
            user = f"{prefix}{number}"
            bindings = await server.registrar.lookup(f"sip:{user}@127.0.0.1")
            self.assertEqual(len(bindings), 1, user)
            (binding,) = bindings
            self.assertTrue(binding.contact.startswith(f"sip:{user}@127.0.0.1:"), binding.contact)
            self.assertTrue(binding.contact.endswith(f";transport={kind.value}"), binding.contact)
            self.assertEqual(binding.aor, f"sip:{user}@127.0.0.1")
            self.assertEqual(binding.user_agent, "sipstack-interop")
            assert binding.flow is not None
            self.assertEqual(binding.flow.transport, kind)
            self.assertEqual(binding.flow.local, target)
            self.assertGreater(binding.expires_at, reactor.seconds() + 590)
        return server, data_dir, prefix

    async def test_udp(self) -> None:
        """
        Over UDP: every REGISTER gets its 200 (SIPp's exit status and
        statistics), and every user's binding is in the SQLite store; a
        server started again on the same data directory still has them all.
        """
        server, data_dir, prefix = await self.register_all("u1", TransportKind.UDP)
        await server.stopService()
        again, _, _ = await self.start(data_dir)
        self.assertEqual(await again.store.count(), USERS)
        (binding,) = await again.registrar.lookup(f"sip:{prefix}{USERS}@127.0.0.1")
        self.assertTrue(binding.contact.startswith(f"sip:{prefix}{USERS}@127.0.0.1:"))

    async def test_tcp(self) -> None:
        """Over TCP (SIPp's single connection): every REGISTER gets its 200 and every binding is stored."""
        await self.register_all("t1", TransportKind.TCP)


class DigestTests(_ServerTestCase):
    """
    SIPp answers the registrar's digest challenge.  SIPp 3.6.1 reads only
    the first C{WWW-Authenticate} and knows only MD5, so the server under
    test offers MD5 alone (an old phone's view of the RFC 8760 server).
    """

    async def start_with_users(self) -> tuple[SIPServer, Peer, Peer]:
        users_file = Path(self.mktemp())
        users_file.write_text(
            "".join(users_line(name, REALM, f"{name}-secret") + "\n" for name in ("alice", "bob", "carol"))
        )
        server, udp, tcp = await self.start(Path(self.mktemp()), "--users", str(users_file))
        authenticator = server.registrar.core.authenticator
        assert authenticator is not None
        self.assertEqual(authenticator.realm, REALM)
        server.registrar.core.authenticator = Authenticator(
            load_users(str(users_file)), REALM, reactor, secrets.token_bytes(32), algorithms=("MD5",)
        )
        return server, udp, tcp

    async def test_good_password(self) -> None:
        """
        Each REGISTER is challenged with 401 and the answer with the right
        password gets 200, over UDP and TCP; the users' bindings are stored.
        """
        server, udp, tcp = await self.start_with_users()
        for user, target, transport in (("alice", udp, "u1"), ("bob", tcp, "t1")):
            run = await run_sipp(
                self,
                target,
                "register-auth.xml",
                transport,
                calls=10,
                rate=50,
                extra=["-s", user, "-au", user, "-ap", f"{user}-secret"],
            )
            self.assert_all_succeeded(run, 10)
            bindings = await server.registrar.lookup(f"sip:{user}@127.0.0.1")
            # Each call is a new Call-ID refreshing the same contact.
            self.assertEqual(len(bindings), 1, user)
            self.assertTrue(bindings[0].contact.startswith(f"sip:{user}@127.0.0.1:"))
        self.assertEqual(await server.store.count(), 2)

    async def test_wrong_password(self) -> None:
        """
        The answer with a wrong password is challenged again (401), and so
        is one for a user the file does not hold: nothing is registered.
        """
        server, udp, _ = await self.start_with_users()
        for user, password in (("carol", "not-carols"), ("mallory", "guess")):
            run = await run_sipp(
                self,
                udp,
                "register-bad-auth.xml",
                "u1",
                calls=5,
                rate=50,
                extra=["-s", user, "-au", user, "-ap", password],
            )
            self.assert_all_succeeded(run, 5)
        self.assertEqual(await server.store.count(), 0)
        self.assertEqual(await server.registrar.lookup("sip:carol@127.0.0.1"), ())
