"""
The README's quick start: C{make run} starts the registrar and proxy.

The test asks make for the command C{make run} runs (C{make -n}, with the
virtual environment's stamp taken as up to date so nothing is installed),
adds C{--listen} options through C{ARGS} so that it does not depend on
ports 5060 and 5061 being free, and runs that command in an empty
directory: the server starts with the embedded defaults otherwise (SQLite
and a self-signed certificate made in C{./var}), answers an OPTIONS and
REGISTERs from a L{SIPStack} phone over UDP, TCP and TLS, and stops
cleanly on SIGINT (Ctrl-C).  Every wait is bounded.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
from pathlib import Path
from unittest import SkipTest

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from sipstack.dialog import build_request
from sipstack.hop import SecurityState, TransportKind
from sipstack.message import Request
from tests.interop._sipp import free_port
from tests.stack import make_stack
from tests.transport._helpers import reactor

ROOT = Path(__file__).resolve().parent.parent
MAKE = shutil.which("make")
#: Starting twistd imports Twisted and sipstack: seconds on a loaded machine.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


class Twistd(ProcessProtocol):
    """
    The server process: C{listening} fires once it logged every listener
    open, C{ended} with its exit code and signal; C{output} is everything
    it wrote.
    """

    def __init__(self, listeners: int) -> None:
        self.listeners = listeners
        self.output = b""
        self.listening: Deferred[None] = Deferred()
        self.ended: Deferred[tuple[int | None, int | None]] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data
        if not self.listening.called and self.output.count(b"] Listening on ") >= self.listeners:
            self.listening.callback(None)

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        if not self.listening.called:
            self.listening.errback(RuntimeError("twistd ended before listening:\n" + self.text()))
        error = reason.value
        if isinstance(error, ProcessDone | ProcessTerminated):
            self.ended.callback((error.exitCode, error.signal))
        else:
            self.ended.callback((None, None))

    def text(self) -> str:
        return self.output.decode(errors="replace")[-4000:]


async def make_run_command(*args: str) -> list[str]:
    """The command C{make run ARGS=...} runs, split into arguments, its program made absolute."""
    assert MAKE is not None
    out, err, code = await getProcessOutputAndValue(
        MAKE,
        ["-s", "-n", "-o", ".venv/.installed-stamp", "run", "ARGS=" + shlex.join(args)],
        env=dict(os.environ),
        path=str(ROOT),
    )
    assert code == 0, (out + err).decode(errors="replace")
    (line,) = [line for line in out.decode().splitlines() if line.strip()]
    argv = shlex.split(line)
    program = Path(argv[0])
    argv[0] = str(program if program.is_absolute() else ROOT / program)
    return argv


class QuickStartTests(TestCase):
    """C{make run} starts a working server."""

    if MAKE is None:
        skip = "make is not installed"
    timeout = 90

    async def test_make_run(self) -> None:
        """
        The command is C{twistd -n --pidfile= sip} with C{ARGS} after it; run
        in an empty directory it makes C{var/} with the certificate and the
        location database, answers OPTIONS with 200, takes REGISTERs over
        UDP, TCP and TLS (encrypted, not authenticated: the certificate is
        self-signed), and on SIGINT shuts down and exits 0.
        """
        port, tls_port = free_port(), free_port()
        listen = (
            f"udp:{port}:interface=127.0.0.1",
            f"tcp:{port}:interface=127.0.0.1",
            f"tls:{tls_port}:interface=127.0.0.1",
        )
        argv = await make_run_command(*(word for each in listen for word in ("--listen", each)))
        self.assertEqual(argv[1:5], ["-n", "--pidfile=", "sip", "--listen"])
        self.assertEqual(Path(argv[0]).name, "twistd", argv)
        if not os.access(argv[0], os.X_OK):
            raise SkipTest(f"{argv[0]} is missing: run make run once to set up the virtual environment")

        workdir = Path(self.mktemp()).resolve()
        workdir.mkdir(parents=True)
        twistd = Twistd(listeners=len(listen))
        process = reactor.spawnProcess(twistd, argv[0], argv, env=dict(os.environ), path=str(workdir))

        def kill() -> None:
            if not twistd.ended.called:
                process.signalProcess("KILL")

        self.addCleanup(kill)
        await twistd.listening.addTimeout(START_TIMEOUT, reactor)
        self.assertTrue((workdir / "var" / "localhost.cert.pem").is_file(), twistd.text())
        self.assertTrue((workdir / "var" / "location.sqlite3").is_file(), twistd.text())

        phone = make_stack(self)
        await phone.listen("udp:0:interface=127.0.0.1")
        await phone.listen("tcp:0:interface=127.0.0.1")
        var = workdir / "var"
        await phone.listen(
            f"tls:0:interface=127.0.0.1:certKey={var / 'localhost.cert.pem'}:privateKey={var / 'localhost.key.pem'}"
        )
        options = build_request("OPTIONS", f"sip:127.0.0.1:{port}", from_="<sip:alice@127.0.0.1>", to="<sip:127.0.0.1>")
        answered = await phone.request(options)
        self.assertEqual(answered.status, 200, twistd.text())
        self.assertIn("REGISTER", answered.response.headers.get("Allow") or "")

        for user, kind, uri in (
            ("alice", TransportKind.UDP, f"sip:127.0.0.1:{port}"),
            ("bob", TransportKind.TCP, f"sip:127.0.0.1:{port};transport=tcp"),
            ("carol", TransportKind.TLS, f"sip:127.0.0.1:{tls_port};transport=tls"),
        ):
            result = await phone.request(self.register(user, uri, str(phone.contact(kind))))
            self.assertEqual(result.status, 200, twistd.text())
            self.assertEqual(len(result.response.headers.get_all("Contact")), 1)
            assert result.security is not None
            expected = SecurityState.TLS_UNAUTHENTICATED if kind is TransportKind.TLS else SecurityState.CLEARTEXT
            self.assertEqual(result.security.state, expected)

        process.signalProcess("INT")
        ended = await twistd.ended.addTimeout(STOP_TIMEOUT, reactor)
        # twistd stops its services, then ends by the signal that stopped it
        # (so a shell sees 130), or exits 0.
        self.assertIn(ended, ((0, None), (None, signal.SIGINT)), twistd.text())
        self.assertIn("Received SIGINT, shutting down.", twistd.text())
        self.assertIn("Server Shut Down.", twistd.text())
        self.assertNotIn(b"Traceback", twistd.output)

    @staticmethod
    def register(user: str, uri: str, contact: str) -> Request:
        aor = f"<sip:{user}@127.0.0.1>"
        return build_request("REGISTER", uri, from_=aor, to=aor, contact=contact)
