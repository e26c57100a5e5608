# -*- test-case-name: tests.services.test_registrar -*-
"""
The pieces a SIP server is assembled from (L{sipstack.tap} assembles them
for C{twistd sip}):

  - L{ServerCore}, the stack's request handler: a REGISTER for a domain of
    the registrar goes to the L{Registrar}, everything else to its C{proxy}
    attribute.  Until a proxy is plugged in, L{no_proxy} answers: 200 to an
    OPTIONS for the server itself, 403 to a REGISTER for a domain served
    elsewhere, 501 to the rest.
  - L{SIPStackService}, a Twisted service that opens the stack's listeners
    when it starts (in C{privilegedStartService}, so that a port that
    cannot be bound stops C{twistd} at once, before it drops privileges)
    and closes the stack gracefully when it stops.
  - L{OrderedMultiService}, which stops its children one after another, last
    added first: the stack finishes its transactions before the location
    store they write to is closed.
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, FirstError, gatherResults
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipstack.hop import Peer
from sipstack.message import SIPURI, Response
from sipstack.services.registrar import SUPPORTED, Registrar
from sipstack.stack import IncomingRequest, RequestHandler, SIPStack

__all__ = ["ALLOW", "no_proxy", "ServerCore", "build_core", "SIPStackService", "OrderedMultiService"]

#: The methods the server itself answers (in C{Allow}).
ALLOW = "REGISTER, OPTIONS"


def no_proxy(incoming: IncomingRequest) -> Response:
    """
    The stand-in for a proxy: 200 to an OPTIONS addressed to the server
    itself (a keep-alive or capability query, RFC 3261 section 11), 403 to
    a REGISTER for a domain not served here (a registrar that cannot
    forward it, section 10.3 step 1), and 501 to everything else.
    """
    request = incoming.request
    if request.method == "OPTIONS" and isinstance(request.uri, SIPURI) and request.uri.user is None:
        return incoming.response(
            200, headers=(("Allow", ALLOW), ("Supported", ", ".join(SUPPORTED)), ("Accept", "application/sdp"))
        )
    if request.method == "REGISTER":
        return incoming.response(403, "Domain Not Served Here")
    return incoming.response(501, "Proxying Not Available", headers=(("Allow", ALLOW),))


class ServerCore:
    """
    The request handler of a registrar and proxy: REGISTER requests the
    registrar serves go to it, every other request to L{proxy}.

    @ivar registrar: the registrar.
    @ivar proxy: the handler of everything else; L{no_proxy} until a proxy
        replaces it (C{core.proxy = proxy}).
    """

    def __init__(self, registrar: Registrar, proxy: RequestHandler = no_proxy) -> None:
        self.registrar = registrar
        self.proxy = proxy

    def __call__(self, incoming: IncomingRequest) -> Response | Deferred[Response | None] | None:
        if self.registrar.serves(incoming.request):
            return self.registrar(incoming)
        return self.proxy(incoming)


def build_core(stack: SIPStack, registrar: Registrar, proxy: RequestHandler | None = None) -> ServerCore:
    """
    Make the L{ServerCore} of C{registrar} (and C{proxy}, or L{no_proxy})
    and install it as C{stack}'s request handler.
    """
    core = ServerCore(registrar, no_proxy if proxy is None else proxy)
    stack.on_request(core)
    return core


class SIPStackService(Service):
    """
    Runs a L{SIPStack}: listens when started, closes gracefully when
    stopped.

    @ivar stack: the stack.
    @ivar listen: the listener descriptions (C{udp:5060:interface=...}).
    @ivar grace: seconds the stack may take to finish its transactions
        when stopped (L{SIPStack.close}).
    @ivar ready: fires with the bound addresses, in the order of C{listen},
        once every listener is open, or fails with the first error.
    """

    _log = Logger()

    def __init__(self, stack: SIPStack, listen: Sequence[str], *, grace: float = 8.0) -> None:
        self.stack = stack
        self.listen = tuple(listen)
        self.grace = grace
        self.ready: Deferred[list[Peer]] = Deferred()
        self._listening: Deferred[list[Peer]] | None = None

    def privilegedStartService(self) -> None:
        """
        Open the listeners.  A failure known at once (a port in use, a bad
        certificate file) is raised, so that C{twistd} reports it and exits.
        """
        super().privilegedStartService()  # type: ignore[no-untyped-call]  # unannotated in Twisted 26.10
        self._open()

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]  # unannotated in Twisted 26.10
        self._open()

    def _open(self) -> None:
        if self._listening is not None:
            return
        failures: list[BaseException] = []
        listening = self._listening = gatherResults([self.stack.listen(d) for d in self.listen], consumeErrors=True)

        def opened(peers: list[Peer]) -> list[Peer]:
            for description, peer in zip(self.listen, peers, strict=True):
                shown = description.split(":certKey=")[0]
                self._log.info("Listening on {description} ({peer})", description=shown, peer=str(peer))
            return peers

        def failed(failure: Failure) -> None:
            cause = failure.value.subFailure if isinstance(failure.value, FirstError) else failure
            failures.append(cause.value if cause.value is not None else RuntimeError(str(cause)))
            self.ready.errback(cause)

        listening.addCallback(opened).addCallbacks(self.ready.callback, failed)
        if failures:
            raise failures[0]

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]  # unannotated in Twisted 26.10
        return self.stack.close(self.grace)


class OrderedMultiService(MultiService):
    """
    A L{MultiService} that stops its children one at a time, the last added
    first, each once the previous one has stopped: what runs on top of
    another service stops before it.
    """

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)  # type: ignore[no-untyped-call]  # unannotated in Twisted 26.10
        return Deferred.fromCoroutine(self._stop_children())

    async def _stop_children(self) -> None:
        for service in reversed(list(self)):
            try:
                await _maybe_deferred(service.stopService())
            except Exception:
                Logger().failure("Stopping {service} failed", service=service)


async def _maybe_deferred(result: object) -> None:
    if isinstance(result, Deferred):
        await result
