"""
Shared pieces of the transport tests over real sockets: raw clients that
collect bytes, a bounded poller, message builders, and layers that close
themselves when the test ends.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet import reactor as _global_reactor
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import DatagramProtocol, Protocol, connectionDone
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from sipstack.config import Limits
from sipstack.hop import Peer
from sipstack.message import Request, parse_datagram
from sipstack.message.envelope import Received
from sipstack.testing.certs import IssuedCertificate
from sipstack.transport.layer import TransportLayer

reactor: Any = _global_reactor
_clock: IReactorTime = _global_reactor

#: The longest any single wait in these tests may take.
WAIT = 3.0


def ipv6_available() -> bool:
    """Whether this machine can bind the IPv6 loopback address."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


#: The skip reason for IPv6 test classes, or L{None} when IPv6 works.
NO_IPV6 = None if ipv6_available() else "IPv6 loopback is not available"


async def sleep(seconds: float) -> None:
    """Let the reactor run for C{seconds}."""
    await deferLater(_clock, seconds)


async def wait_for(condition: Callable[[], object], what: str, timeout: float = WAIT) -> None:
    """
    Poll C{condition} until it is true, failing the test after C{timeout}
    seconds.
    """
    deadline = _clock.seconds() + timeout
    while not condition():
        if _clock.seconds() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await sleep(0.005)


async def stays_false(condition: Callable[[], object], what: str, duration: float = 0.3) -> None:
    """
    Fail if C{condition} becomes true within C{duration} seconds: the check
    that something does I{not} happen.
    """
    deadline = _clock.seconds() + duration
    while _clock.seconds() < deadline:
        if condition():
            raise AssertionError(f"unexpectedly: {what}")
        await sleep(0.01)


_counter = itertools.count(1)


def request_bytes(
    *,
    method: str = "OPTIONS",
    via_host: str = "placeholder.invalid",
    via_port: int | None = None,
    transport: str = "UDP",
    rport: bool = True,
    branch: str | None = None,
    body: bytes = b"",
    extra: Iterable[str] = (),
    content_length: bool = True,
) -> bytes:
    """
    A valid request, as bytes; its Via names C{via_host:via_port} and a fresh
    branch.
    """
    number = next(_counter)
    host = f"[{via_host}]" if ":" in via_host else via_host
    sent_by = host if via_port is None else f"{host}:{via_port}"
    lines = [
        f"{method} sip:bob@example.com SIP/2.0",
        f"Via: SIP/2.0/{transport} {sent_by};branch={branch or f'z9hG4bKtest{number}'}{';rport' if rport else ''}",
        "Max-Forwards: 70",
        f"From: <sip:alice@example.com>;tag=a{number}",
        "To: <sip:bob@example.com>",
        f"Call-ID: call{number}@example.com",
        f"CSeq: {number} {method}",
        *extra,
    ]
    if body:
        lines.append("Content-Type: text/plain")
    if content_length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def make_request(*, size: int = 0, **kwargs: Any) -> Request:
    """
    A request to give a layer to send (its Via is rewritten on the way out);
    with C{size}, a body pads it to about that many bytes.
    """
    if size:
        kwargs["body"] = b"x" * max(0, size - len(request_bytes(**kwargs)) - 40)
    message = parse_datagram(request_bytes(**kwargs))
    assert isinstance(message, Request)
    return message


class Inbox:
    """
    An C{on_received} callback that keeps every L{Received}.
    """

    def __init__(self) -> None:
        self.messages: list[Received] = []

    def __call__(self, received: Received) -> None:
        self.messages.append(received)

    async def wait(self, count: int = 1, timeout: float = WAIT) -> Received:
        """Wait until C{count} messages arrived; return the last of them."""
        await wait_for(lambda: len(self.messages) >= count, f"{count} message(s)", timeout)
        return self.messages[count - 1]


def make_layer(
    testcase: TestCase,
    inbox: Callable[[Received], None] | None = None,
    **kwargs: Any,
) -> TransportLayer:
    """
    A L{TransportLayer} on the global reactor, closed when the test ends.
    """
    layer = TransportLayer(reactor, inbox if inbox is not None else Inbox(), **kwargs)
    testcase.addCleanup(layer.close)
    return layer


def fast_limits(**changes: Any) -> Limits:
    """Limits whose timeouts suit tests: long unless a test shortens one."""
    values: dict[str, Any] = {
        "idle_timeout": 30.0,
        "partial_message_timeout": 30.0,
        "handshake_timeout": 30.0,
        "connect_timeout": 2.0,
    }
    values.update(changes)
    return Limits(**values)


class RawStreamClient(Protocol):
    """
    A TCP client that sends what it is told and keeps what it receives.

    @ivar received: the bytes received, unless C{keep} was turned off.
    @ivar byte_count: how many bytes were received.
    @ivar lost: fires (with L{None}) when the connection is gone.
    """

    def __init__(self) -> None:
        self.received = b""
        self.byte_count = 0
        self.keep = True
        self.reason: Failure | None = None
        self.lost: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.byte_count += len(data)
        if self.keep:
            self.received += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.reason = reason
        self.lost.callback(None)

    @property
    def local(self) -> Peer:
        """This end's address."""
        assert self.transport is not None
        address = self.transport.getHost()
        assert isinstance(address, IPv4Address | IPv6Address)
        return Peer(address.host, address.port)

    @property
    def closed(self) -> bool:
        """Whether the connection is gone."""
        return self.lost.called

    def send(self, data: bytes) -> None:
        """Write C{data}."""
        assert self.transport is not None
        self.transport.write(data)


async def connect_raw(testcase: TestCase, peer: Peer) -> RawStreamClient:
    """
    Connect a L{RawStreamClient} to C{peer}; it is aborted when the test
    ends, if still connected.
    """
    endpoint_class = TCP6ClientEndpoint if ":" in peer.host else TCP4ClientEndpoint
    client = RawStreamClient()
    await connectProtocol(endpoint_class(reactor, peer.host, peer.port, timeout=2), client)

    async def disconnect() -> None:
        if not client.closed:
            assert client.transport is not None
            client.transport.abortConnection()  # type: ignore[attr-defined]  # ITCPTransport
            await client.lost

    testcase.addCleanup(lambda: Deferred.fromCoroutine(disconnect()))
    return client


class RawDatagramSocket(DatagramProtocol):
    """
    A UDP socket that sends what it is told and keeps what it receives.
    """

    def __init__(self) -> None:
        self.received: list[tuple[bytes, Peer]] = []
        self.local: Peer | None = None

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.received.append((datagram, Peer(addr[0], addr[1])))

    def send(self, data: bytes, peer: Peer) -> None:
        """Send one datagram to C{peer}."""
        assert self.transport is not None
        self.transport.write(data, (peer.host, peer.port))


def listen_raw_udp(testcase: TestCase, host: str) -> RawDatagramSocket:
    """A L{RawDatagramSocket} bound to C{host}, closed when the test ends."""
    raw = RawDatagramSocket()
    port = reactor.listenUDP(0, raw, interface=host)
    address = port.getHost()
    raw.local = Peer(address.host, address.port)
    testcase.addCleanup(port.stopListening)
    return raw


def write_pem_files(testcase: TestCase, issued: IssuedCertificate, extra_pem: bytes | None = None) -> dict[str, str]:
    """
    Write a certificate and its key to a temporary directory; return the
    listener description options naming them (C{certKey}, C{privateKey},
    and C{caCerts} when C{extra_pem} is given).
    """
    directory = Path(testcase.mktemp())
    directory.mkdir(parents=True)
    cert = directory / "cert.pem"
    key = directory / "key.pem"
    cert.write_bytes(issued.fullchain_pem)
    key.write_bytes(issued.key_pem)
    options = {"certKey": str(cert), "privateKey": str(key)}
    if extra_pem is not None:
        ca = directory / "ca.pem"
        ca.write_bytes(extra_pem)
        options["caCerts"] = str(ca)
    return options


def description(kind: str, host: str, port: int = 0, options: dict[str, str] | None = None) -> str:
    """A listener description for C{kind} on C{host} (IPv6 written bracketed)."""
    interface = f"[{host}]" if ":" in host else host
    text = f"{kind}:{port}:interface={interface}"
    for key, value in (options or {}).items():
        text += f":{key}={value}"
    return text


if TYPE_CHECKING:
    MixinBase = TestCase
else:
    MixinBase = object
