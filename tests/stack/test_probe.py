"""
Tests for L{sipstack.stack.probe} and the C{sipstack probe} command: a real
DNS server and real SIP servers on loopback, certificates made here.
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from sipstack.config import Limits, TLSPolicy
from sipstack.message.uri import parse_sip_uri
from sipstack.stack.probe import ProbeReport, probe, report_as_dict
from sipstack.testing.certs import CertificateAuthority
from sipstack.testing.dns import ZoneServer, serve_zone
from sipstack.transport.dns import DNSResolver
from tests.stack import Callee, make_stack
from tests.transport._helpers import description, reactor, write_pem_files

ROOT = Path(__file__).resolve().parent.parent.parent

#: Short timeouts: everything here is on loopback.
QUICK = Limits(connect_timeout=2.0, handshake_timeout=1.0)


def _loopback() -> str:
    """A loopback address of its own, so that servers on fixed ports (5060, 5061) never clash between tests."""
    return f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(2, 254)}"


class ProbeTests(TestCase):
    """
    L{probe} plans and connects exactly as the stack does and reports each
    step.
    """

    def setUp(self) -> None:
        self.ca = CertificateAuthority.generate()
        self.host = _loopback()

    async def _server(
        self, *, tls: bool = True, tcp: bool = True, tls_port: int = 0, tcp_port: int = 0
    ) -> dict[str, int]:
        """A SIP stack answering 200 on C{self.host}; the ports it got."""
        stack = make_stack(self)
        stack.on_request(Callee())
        ports: dict[str, int] = {}
        if tls:
            options = write_pem_files(self, self.ca.issue("example.test", sip_uris=["sip:example.test"]))
            ports["tls"] = (await stack.listen(description("tls", self.host, tls_port, options))).port
        if tcp:
            ports["tcp"] = (await stack.listen(description("tcp", self.host, tcp_port))).port
        return ports

    def _zone(self, records: str) -> ZoneServer:
        server = serve_zone(reactor, "example.test", records)
        self.addCleanup(server.stop)
        return server

    async def _probe(self, uri: str, zone: ZoneServer, **kwargs: object) -> ProbeReport:
        resolver = DNSResolver(reactor, [zone.nameserver], timeout=1.0)
        return await probe(
            reactor,
            parse_sip_uri(uri),
            resolver,
            limits=QUICK,
            trust_root=self.ca.cert_pem,
            options_timeout=2.0,
            **kwargs,  # type: ignore[arg-type]  # keyword arguments of probe()
        )

    async def test_tls_by_naptr(self) -> None:
        """
        A domain that publishes SIPS+D2T is reached over TLS, authenticated
        for the domain; the report lists the lookups, the plan, one
        successful attempt with the certificate, and the OPTIONS answer.
        """
        ports = await self._server()
        zone = self._zone(
            f"""
            @          NAPTR 10 50 "s" "SIPS+D2T" "" _sips._tcp
            @          NAPTR 20 50 "s" "SIP+D2T" "" _sip._tcp
            _sips._tcp SRV   0 1 {ports["tls"]} sip
            _sip._tcp  SRV   0 1 {ports["tcp"]} sip
            sip        A     {self.host}
            """
        )
        report = await self._probe("sip:example.test", zone)
        result = report_as_dict(report)
        self.assertTrue(report.succeeded)
        self.assertEqual(result["security"], "tls-authenticated")
        self.assertEqual(result["authenticated_identity"], "example.test")
        self.assertEqual(result["transport"], "TLS")
        self.assertIsNone(result["fallback_reason"])
        self.assertEqual(result["lookups"][0]["type"], "NAPTR")
        self.assertIn("_sips._tcp.example.test", " ".join(result["lookups"][0]["answers"]))
        self.assertEqual(result["plan"][0]["transport"], "TLS")
        self.assertEqual(result["plan"][0]["port"], ports["tls"])
        [attempt] = result["attempts"]
        self.assertEqual((attempt["transport"], attempt["outcome"]), ("TLS", "connected"))
        self.assertTrue(attempt["certificate"]["matched"])
        self.assertTrue(attempt["certificate"]["chain_verified"])
        self.assertIn("URI:sip:example.test", attempt["certificate"]["alt_names"])
        self.assertEqual(result["options"]["status"], 200)

    async def test_fallback_to_tcp(self) -> None:
        """
        With no SRV records and the TLS port 5061 closed, the probe on 5061
        fails by refusal and TCP on 5060 is used: the report says so and
        names the reason.
        """
        await self._server(tls=False, tcp_port=5060)
        zone = self._zone(f"@ A {self.host}")
        report = await self._probe("sip:example.test", zone)
        result = report_as_dict(report)
        self.assertTrue(report.succeeded)
        self.assertEqual(result["security"], "cleartext")
        self.assertEqual(
            [(attempt["transport"], attempt["port"], attempt["outcome"]) for attempt in result["attempts"]],
            [("TLS", 5061, "refused"), ("TCP", 5060, "connected")],
        )
        self.assertIsNotNone(result["fallback_reason"])
        self.assertEqual(result["options"]["status"], 200)

    async def test_strict_never_falls_back(self) -> None:
        """
        A C{sips:} URI whose server presents a certificate for another name
        fails: no TCP attempt, no UDP fallback, the certificate shown.
        """
        stack = make_stack(self)
        stack.on_request(Callee())
        options = write_pem_files(self, self.ca.issue("other.test", sip_uris=["sip:other.test"]))
        await stack.listen(description("tls", self.host, 5061, options))
        await stack.listen(description("tcp", self.host, 5060))
        zone = self._zone(f"@ A {self.host}")
        report = await self._probe("sips:example.test", zone)
        result = report_as_dict(report)
        self.assertFalse(report.succeeded)
        self.assertEqual(result["policy"], TLSPolicy.STRICT.value)
        self.assertTrue(result["attempts"])
        self.assertTrue(all(attempt["transport"] == "TLS" for attempt in result["attempts"]))
        self.assertEqual(result["attempts"][0]["outcome"], "certificate-mismatch")
        self.assertFalse(result["attempts"][0]["certificate"]["matched"])
        self.assertIsNone(result["udp_fallback"])
        self.assertIsNotNone(result["connect_error"])

    async def test_unknown_domain(self) -> None:
        """A name with no records is a planning error, with the lookups that found nothing."""
        zone = self._zone(f"@ A {self.host}")
        report = await self._probe("sip:nothing.example.test", zone)
        self.assertFalse(report.succeeded)
        self.assertIsNotNone(report.planning_error)
        assert report.plan is not None
        self.assertTrue(report.plan.lookups)
        self.assertIsNone(report.connection)


class ProbeCommandTests(TestCase):
    """
    C{python -m sipstack probe}, run as a process against servers of this
    test.
    """

    async def _run(self, *arguments: str) -> tuple[str, int]:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ("-m", "sipstack", "probe", *arguments), env=env, path=str(ROOT), reactor=reactor
        )
        return out.decode() + err.decode(), code

    async def test_table_and_json(self) -> None:
        """
        The table names the DNS answers, the plan, the attempt, the
        certificate and the security state; C{--json} gives the same data;
        the exit status is 0.
        """
        ca = CertificateAuthority.generate()
        host = _loopback()
        stack = make_stack(self)
        stack.on_request(Callee())
        options = write_pem_files(self, ca.issue("example.test", sip_uris=["sip:example.test"]))
        port = (await stack.listen(description("tls", host, 0, options))).port
        zone = serve_zone(reactor, "example.test", [f"_sips._tcp SRV 0 1 {port} sip", f"sip A {host}"])
        self.addCleanup(zone.stop)
        ca_file = Path(self.mktemp())
        ca_file.write_bytes(ca.cert_pem)
        common = ("sip:example.test", "--nameserver", f"{zone.host}:{zone.port}", "--ca-file", str(ca_file))

        text, code = await self._run(*common, "--timeout", "2")
        self.assertEqual(code, 0, text)
        for expected in ("_sips._tcp.example.test", f"sip.example.test:{port}", "connected", "tls-authenticated"):
            self.assertIn(expected, text)
        self.assertIn("a client may show a lock", text)
        self.assertIn("OPTIONS: 200", text)

        output, code = await self._run(*common, "--json", "--timeout", "2")
        self.assertEqual(code, 0, output)
        result = json.loads(output)
        self.assertEqual(result["security"], "tls-authenticated")
        self.assertEqual(result["attempts"][0]["address"], host)

    async def test_failure_exit_status(self) -> None:
        """A domain that cannot be reached exits with status 1 and says why."""
        zone = serve_zone(reactor, "example.test", [f"@ A {_loopback()}"])
        self.addCleanup(zone.stop)
        text, code = await self._run(
            "sip:example.test", "--nameserver", f"{zone.host}:{zone.port}", "--timeout", "1", "--no-options"
        )
        self.assertEqual(code, 1, text)
        self.assertIn("refused", text)
        self.assertIn("no stream connection", text)

    async def test_bad_uri(self) -> None:
        """A URI that is not SIP is refused with status 2."""
        text, code = await self._run("mailto:someone@example.test")
        self.assertEqual(code, 2, text)
