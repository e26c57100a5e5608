"""
Tests for L{sipstack.tap} and the C{twistd sip} plugin: option parsing from
the command line and a TOML file (the command line wins), the server it
builds started on ephemeral ports and stopped cleanly, and the plugin found
by a separate Python process.
"""

from __future__ import annotations

import gc
import os
import socket
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from twisted.internet.error import CannotListenError
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sipstack.config import TLSPolicy
from sipstack.dialog import build_request
from sipstack.hop import TransportKind
from sipstack.services.digest import users_line
from sipstack.services.location import StoreClosed
from sipstack.tap import DEFAULT_LISTEN, GC_THRESHOLDS, Options, build_server, makeService, tune_gc
from tests.stack import make_stack
from tests.transport._helpers import reactor

ROOT = Path(__file__).resolve().parent.parent


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


class OptionsTests(SynchronousTestCase):
    """The command line, the configuration file, and their defaults."""

    def test_defaults(self) -> None:
        """No options: loopback UDP/TCP 5060 and TLS 5061, SQLite in ./var, any domain, no authentication."""
        config = parse().config
        self.assertEqual(config.listen, DEFAULT_LISTEN)
        self.assertEqual(
            config.listen,
            ("udp:5060:interface=127.0.0.1", "tcp:5060:interface=127.0.0.1", "tls:5061:interface=127.0.0.1"),
        )
        self.assertEqual(config.location, os.path.join("sqlite:var", "location.sqlite3"))
        self.assertEqual(config.data_dir, "var")
        self.assertEqual(config.domains, ())
        self.assertIsNone(config.users)
        self.assertIsNone(config.certificate)
        self.assertEqual(config.tls_policy, TLSPolicy.OPPORTUNISTIC)
        policy = config.policy
        self.assertEqual(
            (policy.default_expires, policy.min_expires, policy.max_expires, policy.max_bindings), (3600, 60, 7200, 16)
        )

    def test_repeatable(self) -> None:
        """--listen and --domain repeat; the domains are made canonical."""
        config = parse(
            "--listen", "udp:5070", "-l", "tcp:5070:interface=::1", "--domain", "Example.COM", "--domain", "::1"
        ).config
        self.assertEqual(config.listen, ("udp:5070", "tcp:5070:interface=::1"))
        self.assertEqual(config.domains, ("example.com", "[::1]"))
        self.assertEqual(config.policy.domains, frozenset({"example.com", "[::1]"}))
        self.assertIn("[::1]", config.policy.local_hosts)
        self.assertEqual(config.realm, "example.com")
        self.assertEqual(config.server_name, "example.com")

    def test_values(self) -> None:
        """Every single-valued option reaches the configuration."""
        config = parse(
            "--data-dir",
            "/srv/sip",
            "--location",
            "memory",
            "--tls-policy",
            "STRICT",
            "--certificate",
            "c.pem",
            "--private-key",
            "k.pem",
            "--default-expires",
            "600",
            "--min-expires",
            "30",
            "--max-expires",
            "900",
            "--max-bindings",
            "3",
            "--grace",
            "1.5",
            "--realm",
            "r",
        ).config
        self.assertEqual(
            (config.data_dir, config.location, config.tls_policy), ("/srv/sip", "memory", TLSPolicy.STRICT)
        )
        self.assertEqual(
            (config.certificate, config.private_key, config.grace, config.realm), ("c.pem", "k.pem", 1.5, "r")
        )
        policy = config.policy
        self.assertEqual(
            (policy.default_expires, policy.min_expires, policy.max_expires, policy.max_bindings), (600, 30, 900, 3)
        )
        self.assertEqual(parse("--data-dir", "/srv/sip").config.location, "sqlite:/srv/sip/location.sqlite3")

    def test_bad_values(self) -> None:
        """Bad values are usage errors that name the option."""
        for argv, word in [
            (["--listen", "sctp:5060"], "--listen"),
            (["--listen", "udp:http"], "--listen"),
            (["--domain", "exa mple.com"], "--domain"),
            (["--tls-policy", "sometimes"], "--tls-policy"),
            (["--location", "redis://localhost"], "redis"),
            (["--location", "postgres:x"], "location"),
            (["--min-expires", "soon"], "--min-expires"),
            (["--max-bindings", "1.5"], "--max-bindings"),
            (["--min-expires", "100", "--default-expires", "50"], "default_expires"),
            (["--private-key", "k.pem"], "--certificate"),
            (["--users", "/nonexistent/users"], "--users"),
            (["--digest-algorithms", "SHA-512"], "--digest-algorithms"),
            (["--digest-algorithms", "MD5,MD5"], "--digest-algorithms"),
        ]:
            with self.assertRaises(usage.UsageError, msg=argv) as caught:
                parse(*argv)
            self.assertIn(word, str(caught.exception), argv)

    def test_users(self) -> None:
        """A users file turns authentication on; the realm comes from its only realm."""
        users = Path(self.mktemp())
        users.write_text(users_line("alice", "sip.example", "pw") + "\n")
        config = parse("--users", str(users)).config
        assert config.users is not None
        self.assertEqual((len(config.users), config.realm), (1, "sip.example"))
        with self.assertRaises(usage.UsageError):
            parse("--users", str(users), "--realm", "other.example")
        users.write_text(users_line("alice", "a.example", "pw") + "\n" + users_line("bob", "b.example", "pw") + "\n")
        with self.assertRaises(usage.UsageError) as caught:
            parse("--users", str(users))
        self.assertIn("--realm", str(caught.exception))
        self.assertEqual(parse("--users", str(users), "--domain", "b.example").config.realm, "b.example")

    def test_digest_algorithms(self) -> None:
        """
        SHA-256 then MD5 are offered by default; C{--digest-algorithms MD5}
        serves phones that read only the first challenge and know only MD5,
        and the challenges the server sends follow the order given.
        """
        self.assertEqual(parse().config.digest_algorithms, ("SHA-256", "MD5"))
        users = Path(self.mktemp())
        users.write_text(users_line("alice", "example.com", "pw") + "\n")
        for option, offered in [("md5", ["MD5"]), ("MD5,SHA-256", ["MD5", "SHA-256"])]:
            options = parse(
                "--data-dir", self.mktemp(), "--location", "memory", "--users", str(users), "--listen", "udp:0",
                "--digest-algorithms", option,
            )  # fmt: skip
            server = build_server(options.config, reactor)
            authenticator = server.registrar.core.authenticator
            assert authenticator is not None
            self.assertEqual([challenge.algorithm for challenge in authenticator.challenge()], offered)

    def write_config(self, text: str) -> Path:
        directory = Path(self.mktemp())
        directory.mkdir(parents=True)
        path = directory / "sip.toml"
        path.write_text(textwrap.dedent(text))
        return path

    def test_config_file(self) -> None:
        """Every option can come from the TOML file; relative paths are relative to the file."""
        path = self.write_config(
            """
            listen = ["udp:5080:interface=127.0.0.1", "tls:5081"]
            domain = ["example.com", "example.org"]
            data-dir = "data"
            location = "sqlite:db/location.sqlite3"
            tls-policy = "rfc3263"
            certificate = "/etc/ssl/sip.pem"
            private_key = "key.pem"
            realm = "example.org"
            default-expires = 1200
            min-expires = 120
            max-expires = 2400
            max-bindings = 4
            grace = 2
            """
        )
        base = path.parent.resolve()
        config = parse("--config", str(path)).config
        self.assertEqual(config.listen, ("udp:5080:interface=127.0.0.1", "tls:5081"))
        self.assertEqual(config.domains, ("example.com", "example.org"))
        self.assertEqual(config.data_dir, str(base / "data"))
        self.assertEqual(config.location, f"sqlite:{base / 'db' / 'location.sqlite3'}")
        self.assertEqual(config.tls_policy, TLSPolicy.RFC3263)
        self.assertEqual((config.certificate, config.private_key), ("/etc/ssl/sip.pem", str(base / "key.pem")))
        self.assertEqual((config.realm, config.grace), ("example.org", 2.0))
        policy = config.policy
        self.assertEqual(
            (policy.default_expires, policy.min_expires, policy.max_expires, policy.max_bindings), (1200, 120, 2400, 4)
        )

    def test_command_line_wins(self) -> None:
        """The command line overrides the file, option by option; a repeated option replaces the file's list."""
        path = self.write_config(
            """
            listen = ["udp:5080"]
            domain = ["example.com"]
            max-expires = 2400
            tls-policy = "off"
            """
        )
        config = parse("--listen", "tcp:5090", "--max-expires", "1800", "--config", str(path)).config
        self.assertEqual(config.listen, ("tcp:5090",))
        self.assertEqual(config.domains, ("example.com",))
        self.assertEqual(config.policy.max_expires, 1800)
        self.assertEqual(config.tls_policy, TLSPolicy.OFF)

    def test_bad_config_file(self) -> None:
        """An unreadable file, bad TOML, an unknown option or a value of the wrong type are usage errors."""
        cases = [
            ("listen = 'udp:5060'\n", "list"),
            ("port = 5060\n", "unknown option"),
            ("min-expires = 'soon'\n", "number"),
            ("realm = 5\n", "string"),
            ("listen = [\n", "sip.toml"),
        ]
        for text, word in cases:
            with self.assertRaises(usage.UsageError) as caught:
                parse("--config", str(self.write_config(text)))
            self.assertIn(word, str(caught.exception), text)
        with self.assertRaises(usage.UsageError):
            parse("--config", "/nonexistent/sip.toml")

    def test_help(self) -> None:
        """The help names every option, the defaults and the configuration file."""
        text = str(Options())
        for word in [
            "--listen",
            "--domain",
            "--data-dir",
            "--users",
            "--location",
            "--tls-policy",
            "--certificate",
            "--private-key",
            "--config",
            "udp:5060",
            "tls:5061",
            "TOML",
            "sqlite:",
        ]:
            self.assertIn(word, text)


class GarbageCollectionTests(SynchronousTestCase):
    """C{--gc}: the collector settings of the server process."""

    def test_values(self) -> None:
        """tuned (the default), default (CPython's), or three thresholds."""
        self.assertEqual(parse().config.gc_thresholds, GC_THRESHOLDS)
        self.assertEqual(parse("--gc", "tuned").config.gc_thresholds, GC_THRESHOLDS)
        self.assertIsNone(parse("--gc", "default").config.gc_thresholds)
        self.assertEqual(parse("--gc", "7000,10,10").config.gc_thresholds, (7000, 10, 10))
        for bad in ("fast", "1,2", "0,1,1", "a,b,c"):
            with self.assertRaises(usage.UsageError, msg=bad):
                parse("--gc", bad)

    def test_tune(self) -> None:
        """L{tune_gc} sets the thresholds now and freezes what start-up made once the reactor runs."""
        before = gc.get_threshold()
        self.addCleanup(gc.set_threshold, *before)
        self.addCleanup(gc.unfreeze)
        started: list[Callable[[], None]] = []

        class Reactor:
            def callWhenRunning(self, function: Callable[[], None]) -> None:
                started.append(function)

        tune_gc(None, Reactor())
        self.assertEqual((gc.get_threshold(), started), (before, []))
        tune_gc((12345, 6, 7), Reactor())
        self.assertEqual(gc.get_threshold(), (12345, 6, 7))
        frozen = gc.get_freeze_count()
        (freeze,) = started
        freeze()
        self.assertGreater(gc.get_freeze_count(), frozen)


class ServiceTests(TestCase):
    """makeService builds a server that starts, answers and stops."""

    async def test_start_and_stop(self) -> None:
        """
        On ephemeral ports with the defaults otherwise: a self-signed
        certificate is made in the data directory, a phone registers over
        TLS, and stopping the service closes the sockets and the store.
        """
        data_dir = Path(self.mktemp())
        options = parse(
            "--data-dir",
            str(data_dir),
            "--listen",
            "udp:0:interface=127.0.0.1",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--listen",
            "tls:0:interface=127.0.0.1",
        )
        server = makeService(options)
        self.assertTrue((data_dir / "localhost.cert.pem").is_file())
        server.privilegedStartService()
        server.startService()
        self.addCleanup(lambda: server.stopService() if server.running else None)
        udp, tcp, tls = await server.listening.ready
        self.assertEqual(await server.store.count(), 0)
        self.assertTrue((data_dir / "location.sqlite3").is_file())
        phone = make_stack(self)
        await phone.listen(
            "tls:0:interface=127.0.0.1:certKey="
            + str(data_dir / "localhost.cert.pem")
            + ":privateKey="
            + str(data_dir / "localhost.key.pem")
        )
        register = build_request(
            "REGISTER",
            f"sip:127.0.0.1:{tls.port};transport=tls",
            from_="<sip:alice@localhost>",
            to="<sip:alice@localhost>",
            contact=phone.contact(TransportKind.TLS),
        )
        result = await phone.request(register)
        self.assertEqual(result.status, 200)
        assert result.security is not None
        self.assertTrue(result.security.encrypted)
        self.assertEqual(len(await server.registrar.lookup("sip:alice@localhost")), 1)
        await server.stopService()
        await self.assertFailure(server.store.count(), StoreClosed)
        for port in (udp.port, tcp.port):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM if port == udp.port else socket.SOCK_STREAM) as probe:
                probe.bind(("127.0.0.1", port))

    async def test_port_in_use(self) -> None:
        """A port that cannot be bound fails the start at once (twistd then exits with the error)."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            options = parse(
                "--data-dir", self.mktemp(), "--location", "memory", "--listen", f"tcp:{port}:interface=127.0.0.1"
            )
            server = build_server(options.config, reactor)
            self.assertRaises(CannotListenError, server.privilegedStartService)
            await self.assertFailure(server.listening.ready, CannotListenError)
            await server.stopService()

    def test_nonce_secret_kept(self) -> None:
        """With users, a nonce secret is made once in the data directory (0600) and reused."""
        data_dir = Path(self.mktemp())
        users = Path(self.mktemp())
        users.write_text(users_line("alice", "example.com", "pw") + "\n")
        options = parse("--data-dir", str(data_dir), "--location", "memory", "--users", str(users), "--listen", "udp:0")
        first = build_server(options.config, reactor)
        secret = (data_dir / "digest-secret").read_bytes()
        self.assertEqual(len(secret), 32)
        self.assertEqual((data_dir / "digest-secret").stat().st_mode & 0o777, 0o600)
        build_server(options.config, reactor)
        self.assertEqual((data_dir / "digest-secret").read_bytes(), secret)
        assert first.registrar.core.authenticator is not None
        self.assertEqual(first.registrar.core.authenticator.realm, "example.com")


class PluginTests(TestCase):
    """The plugin is found by Twisted in a separate process."""

    def test_no_init(self) -> None:
        """twisted/plugins has no __init__.py: it extends Twisted's own package."""
        self.assertTrue((ROOT / "twisted" / "plugins" / "sipstack_plugin.py").is_file())
        self.assertFalse((ROOT / "twisted" / "plugins" / "__init__.py").exists())

    async def test_lazy(self) -> None:
        """Listing the plugins imports nothing of sipstack."""
        code = (
            "import sys\n"
            "from twisted.plugin import getPlugins\n"
            "from twisted.application.service import IServiceMaker\n"
            "names = [p.tapname for p in getPlugins(IServiceMaker)]\n"
            "print('sip' in names, any(m.startswith('sipstack') for m in sys.modules))\n"
        )
        out, err, code_ = await getProcessOutputAndValue(
            sys.executable, ["-c", code], env=dict(os.environ), path=self.mktemp_dir()
        )
        self.assertEqual((code_, out.split()), (0, [b"True", b"False"]), err)

    def mktemp_dir(self) -> str:
        directory = Path(self.mktemp())
        directory.mkdir(parents=True)
        return str(directory)

    async def test_help_from_anywhere(self) -> None:
        """
        C{python -m twisted sip --help}, run outside the source tree, finds
        the installed plugin and prints the help.
        """
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ["-m", "twisted", "sip", "--help"], env=dict(os.environ), path=self.mktemp_dir()
        )
        self.assertEqual(code, 0, err)
        self.assertIn(b"--listen", out)
        self.assertIn(b"sip [options]", out)

    async def test_twistd(self) -> None:
        """C{twistd -n sip --help} works too (the installed script)."""
        twistd = Path(sys.executable).parent / "twistd"
        if not twistd.exists():
            raise self.skipTest("no twistd script next to this Python")
        out, err, code = await getProcessOutputAndValue(
            sys.executable, [str(twistd), "-n", "sip", "--help"], env=dict(os.environ), path=self.mktemp_dir()
        )
        self.assertEqual(code, 0, err)
        self.assertIn(b"--domain", out)
