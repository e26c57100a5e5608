# -*- test-case-name: tests.services.test_registrar -*-
"""
A registrar: RFC 3261 section 10.3, with Path (RFC 3327) and the flow
records of RFC 5626.

Two parts, so that every rule is tested without sockets:

  - L{RegistrarCore} is sans-IO.  L{RegistrarCore.decide} turns a REGISTER
    into either an L{Answer} (an error, or a challenge) or a
    L{RegisterUpdate}: the changes for the location store
    (L{sipstack.services.location}).  L{RegistrarCore.answer} turns the
    store's L{UpdateResult} into the final answer: the 200 listing every
    current binding, or the error the outcome calls for.
  - L{Registrar} runs the core on a L{SIPStack<sipstack.stack.SIPStack>}:
    it is a request handler (C{stack.on_request(registrar)}, or the
    REGISTER branch of L{sipstack.services.server.ServerCore}), asks the
    store, and answers through the server transaction.  The proxy finds
    bindings with L{Registrar.lookup}.

The steps of section 10.3, in the RFC's order (so that nothing about an
address-of-record is told before the request is authenticated):

  1. the Request-URI names a domain served here, else 403;
  2. every C{Require} option tag is supported (C{path}, C{outbound}), else
     420 with C{Unsupported};
  3. with an L{Authenticator}, the credentials are good, else 401 with one
     challenge per algorithm (C{stale=true} when only the nonce was old);
  4. the authenticated user may register the address-of-record (by default:
     the AOR's user part is the user name), else 403;
  5. the To URI is a C{sip:}/C{sips:} URI of a served domain, else 404; it
     is put in canonical form (L{aor_of});
  6. C{Contact: *} comes with C{Expires: 0}, else 400;
  7. each contact's expiry is its C{expires} parameter, else the C{Expires}
     header, else the default; below the minimum (and under an hour) it is
     refused with 423 and C{Min-Expires}; above the maximum it is shortened.
     The Call-ID/CSeq rules and the all-or-nothing update are the store's
     (L{plan_update}): a REGISTER that is stale or reordered against a
     binding it touches changes nothing and gets 500, as step 7 says ("the
     request MUST fail with a 500 (Server Error) response");
  8. the 200 lists every current binding with its remaining C{expires}, a
     C{Date}, and the C{Path} when the UA said C{Supported: path}.

@see: docs/services.md.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipstack.clock import Clock
from sipstack.errors import InvalidValue, RemoteProtocolError
from sipstack.hop import FlowKey, Peer
from sipstack.message import SIPURI, URI, Request, Response, Wildcard, parse_uri
from sipstack.message.address import NameAddress, parse_name_address_list
from sipstack.services.digest import Authenticator, AuthReason
from sipstack.services.location import (
    Binding,
    Change,
    LocationStore,
    Put,
    Remove,
    RemoveAll,
    UpdateOutcome,
    UpdateResult,
    aor_text,
    key_of,
    normalize_aor,
)
from sipstack.stack import IncomingRequest

__all__ = [
    "SUPPORTED",
    "aor_of",
    "canonical_host",
    "RegistrarPolicy",
    "Answer",
    "RegisterUpdate",
    "RegistrarCore",
    "Registrar",
]

#: The option tags a registrar supports: what C{Require} may name, and what
#: every answer lists in C{Supported}.
SUPPORTED: Final = ("path", "outbound")

#: RFC 3261 section 10.3 step 7: only an interval under an hour may be refused as too brief.
_ONE_HOUR: Final = 3600


def canonical_host(host: str) -> str:
    """
    A host as a registrar compares it: lower case, an IPv6 address in
    brackets and compressed (C{"::1"}, C{"[::1]"} and C{"[0::1]"} all give
    C{"[::1]"}).

    @raise ValueError: not a host name or IP address.
    """
    text = host.strip()
    if ":" in text and not text.startswith("["):
        text = f"[{text}]"
    try:
        uri = parse_uri(f"sip:{text}")
    except InvalidValue as error:
        raise ValueError(f"bad host {host!r}: {error}") from None
    assert isinstance(uri, SIPURI)
    if uri.port is not None:
        raise ValueError(f"bad host {host!r}: a domain has no port")
    return uri.address_of_record().host


def aor_of(uri: URI | str) -> str:
    """
    The address-of-record a registrar keys bindings by (RFC 3261 section
    10.3 step 5): L{normalize_aor} of the URI with the C{sip:} scheme, since
    C{sips:alice@example.com} and C{sip:alice@example.com} name the same
    resource (RFC 5630 section 3.1.1): whether to reach it over TLS is a
    property of each request, not of the registration.

    @raise ValueError: not a C{sip:} or C{sips:} URI.
    """
    if isinstance(uri, str):
        uri = parse_uri(uri)
    if isinstance(uri, SIPURI):
        return aor_text(uri, scheme="sip")
    return normalize_aor(uri)


def _may_register(user: str, aor: SIPURI) -> bool:
    """The default authorization (step 4): a user registers their own address, in any served domain."""
    return aor.user_unescaped == user


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistrarPolicy:
    """
    What a registrar accepts.

    @ivar domains: the domains served, canonical (L{canonical_host}); empty
        means every domain (a registrar for tests and quick starts).
    @ivar local_hosts: further hosts a Request-URI may name (the server's
        own addresses: phones often put the registrar's address there); an
        address-of-record must still be in C{domains}.
    @ivar default_expires: the expiry when the REGISTER gives none.
    @ivar min_expires: shorter non-zero intervals get 423 (RFC 3261 section
        10.3 step 7); at most an hour, as the RFC allows no more.
    @ivar max_expires: longer intervals are shortened to this.
    @ivar max_bindings: the most bindings one address-of-record may have
        (more gets 403); L{None} for no limit.
    @ivar may_register: given the authenticated user and the
        address-of-record, whether the user may change its bindings (step
        4); by default the AOR's user part must be the user name.
    @raise ValueError: the values do not fit together.
    """

    domains: frozenset[str] = frozenset()
    local_hosts: frozenset[str] = frozenset()
    default_expires: int = 3600
    min_expires: int = 60
    max_expires: int = 7200
    max_bindings: int | None = 16
    may_register: Callable[[str, SIPURI], bool] = field(default=_may_register, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "domains", frozenset(canonical_host(host) for host in self.domains))
        object.__setattr__(self, "local_hosts", frozenset(canonical_host(host) for host in self.local_hosts))
        if not 0 <= self.min_expires <= _ONE_HOUR:
            raise ValueError(f"min_expires must be 0 to {_ONE_HOUR}, not {self.min_expires}")
        if self.max_expires < max(1, self.min_expires):
            raise ValueError(f"max_expires ({self.max_expires}) must be positive and at least min_expires")
        if not self.min_expires <= self.default_expires <= self.max_expires or self.default_expires <= 0:
            raise ValueError(f"default_expires ({self.default_expires}) must lie between min_expires and max_expires")
        if self.max_bindings is not None and self.max_bindings < 1:
            raise ValueError("max_bindings must be positive")

    def serves(self, uri: URI) -> bool:
        """Whether a REGISTER with this Request-URI is for this registrar (step 1)."""
        if not isinstance(uri, SIPURI):
            return False
        if not self.domains:
            return True
        host = uri.address_of_record().host
        return host in self.domains or host in self.local_hosts

    def valid_aor(self, uri: SIPURI) -> bool:
        """Whether an address-of-record belongs to a served domain (step 5)."""
        return not self.domains or uri.address_of_record().host in self.domains


@dataclass(frozen=True, slots=True)
class Answer:
    """
    A final answer to a REGISTER: status, reason phrase (L{None} for the
    usual one) and the extra header fields.
    """

    status: int
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class RegisterUpdate:
    """
    What an acceptable REGISTER asks of the location store.

    @ivar aor: the address-of-record (L{aor_of}).
    @ivar changes: the changes, in the order of the Contacts; empty for a
        REGISTER that only asks for the current bindings.
    @ivar outbound: whether the 200 carries C{Require: outbound}: the UA
        registered a flow with C{+sip.instance} and C{reg-id}, supports
        outbound, and the flow is one we keep alive (RFC 5626 section 6).
    @ivar path: the C{Path} values to echo in the 200 (RFC 3327 section
        5.3): the REGISTER's, when it said C{Supported: path}.
    """

    aor: str
    changes: tuple[Change, ...]
    outbound: bool = False
    path: tuple[str, ...] = ()


def _option_tags(request: Request, name: str) -> list[str]:
    try:
        return [tag.strip().lower() for tag in request.headers.values(name) if tag.strip()]
    except InvalidValue:
        raise RemoteProtocolError(f"Bad {name} header") from None


class RegistrarCore:
    """
    The registrar's rules, without I/O (see the module's description).

    @ivar policy: what is accepted.
    @ivar authenticator: checks credentials (step 3), or L{None} to accept
        every request unauthenticated.
    @ivar clock: the source of C{now}: expiry times and the C{Date} header.
    """

    def __init__(self, policy: RegistrarPolicy, clock: Clock, authenticator: Authenticator | None = None) -> None:
        self.policy = policy
        self.clock = clock
        self.authenticator = authenticator
        self._date_second: int | None = None
        self._date_text = ""

    def decide(
        self,
        request: Request,
        *,
        flow: FlowKey | None = None,
        received: Peer | None = None,
    ) -> Answer | RegisterUpdate:
        """
        Check a REGISTER (steps 1 to 7) and say what to do with it: answer
        at once, or apply a L{RegisterUpdate} and then call L{answer}.

        @param flow: the flow it arrived on, remembered in each binding so
            that requests to the UA can go back over its own connection.
        @param received: the address it came from.
        """
        try:
            return self._decide(request, flow, received)
        except RemoteProtocolError as error:
            return Answer(400, error.reason)

    def _decide(self, request: Request, flow: FlowKey | None, received: Peer | None) -> Answer | RegisterUpdate:
        policy = self.policy
        if request.method != "REGISTER":
            return Answer(405, headers=(("Allow", "REGISTER"),))
        # Step 1: a domain of ours.
        if not policy.serves(request.uri):
            return Answer(403, "Domain Not Served Here")
        # Step 2: extensions.
        unsupported = [tag for tag in _option_tags(request, "Require") if tag not in SUPPORTED]
        if unsupported:
            return Answer(420, headers=(("Unsupported", ", ".join(dict.fromkeys(unsupported))),))
        # Step 3: authentication.
        to_uri = request.to.uri
        if self.authenticator is not None:
            result = self.authenticator.check(request, "Authorization")
            if result.reason in (AuthReason.MALFORMED, AuthReason.URI_MISMATCH):
                return Answer(400, f"Bad Credentials ({result.reason.value})")
            if not result.ok or result.user is None:
                challenges = self.authenticator.challenge(stale=result.stale)
                return Answer(401, headers=tuple(("WWW-Authenticate", str(c)) for c in challenges))
            # Step 4: authorization.
            if not isinstance(to_uri, SIPURI) or not policy.may_register(result.user, to_uri):
                return Answer(403, "Not Allowed To Register This Address")
        # Step 5: the address-of-record.
        if not isinstance(to_uri, SIPURI) or not policy.valid_aor(to_uri):
            return Answer(404, "Unknown Address-Of-Record Domain")
        aor = aor_of(to_uri)
        # Steps 6 and 7: the contacts.
        contacts = request.contacts
        call_id, cseq = request.call_id, request.cseq.number
        path = self._path(request)
        supported = _option_tags(request, "Supported")
        echoed = path if "path" in supported else ()
        if isinstance(contacts, Wildcard):
            if request.expires != 0:
                return Answer(400, "Contact * Needs Expires: 0")
            return RegisterUpdate(aor, (RemoveAll(call_id, cseq),), path=echoed)
        outbound_supported = "outbound" in supported
        flows = [contact for contact in contacts if contact.has_param("reg-id") and contact.has_param("+sip.instance")]
        if len(flows) > 1:
            return Answer(400, "More Than One Contact With reg-id")
        outbound = False
        if flows and outbound_supported:
            if not self._first_hop_does_outbound(request, path):
                return Answer(439)
            outbound = bool(path) or (flow is not None and flow.transport.reliable)
        header_expires = request.expires
        now = self.clock.seconds()
        user_agent = request.headers.get("User-Agent")
        changes: list[Change] = []
        for written in contacts:
            contact = written
            if contact.has_param("reg-id") and not (outbound_supported and contact.has_param("+sip.instance")):
                # RFC 5626 section 6: without +sip.instance, or from a UA
                # that does not support outbound, reg-id means nothing.
                contact = contact.without_param("reg-id")
            expires = self._requested_expiry(contact, header_expires)
            if 0 < expires < min(policy.min_expires, _ONE_HOUR):
                return Answer(423, headers=(("Min-Expires", str(policy.min_expires)),))
            expires = min(expires, policy.max_expires)
            try:
                if expires == 0:
                    changes.append(Remove(key_of(contact), call_id, cseq))
                else:
                    binding = Binding.from_contact(
                        aor,
                        contact,
                        now + expires,
                        call_id,
                        cseq,
                        path=path,
                        flow=flow,
                        received=received,
                        user_agent=user_agent,
                    )
                    changes.append(Put(binding))
            except (ValueError, InvalidValue) as error:
                return Answer(400, f"Bad Contact: {error}"[:120])
        return RegisterUpdate(aor, tuple(changes), outbound=outbound, path=echoed)

    def _date(self, now: float) -> str:
        """
        The C{Date} of a 200 (RFC 3261 section 20.17): whole seconds, so
        one formatting serves every REGISTER answered within a second.
        """
        second = math.floor(now)
        if second != self._date_second:
            self._date_second, self._date_text = second, email.utils.formatdate(second, usegmt=True)
        return self._date_text

    @staticmethod
    def _path(request: Request) -> tuple[str, ...]:
        values: list[str] = []
        try:
            for field_value in request.headers.get_all("Path"):
                values.extend(str(address.uri) for address in parse_name_address_list(field_value))
        except InvalidValue as error:
            raise RemoteProtocolError(f"Bad Path header: {error}") from None
        return tuple(values)

    @staticmethod
    def _first_hop_does_outbound(request: Request, path: Sequence[str]) -> bool:
        """
        Whether the hop next to the UA keeps its flow (RFC 5626 section 6):
        with no Path, we are that hop only if the request crossed no proxy
        (one Via); with a Path, the last value, which the first proxy
        added, must carry C{ob}.
        """
        if not path:
            return len(request.vias) == 1
        edge = parse_uri(path[-1])
        return isinstance(edge, SIPURI) and edge.has_param("ob")

    def _requested_expiry(self, contact: NameAddress, header_expires: int | None) -> int:
        """The C{expires} parameter, else the C{Expires} header, else the default (step 7)."""
        try:
            expires = contact.expires
        except InvalidValue:
            # RFC 4475 section 3.1.2.4: a garbled parameter gets the default.
            expires = None
        if expires is None:
            expires = header_expires
        return self.policy.default_expires if expires is None else expires

    def answer(self, update: RegisterUpdate, result: UpdateResult) -> Answer:
        """
        The final answer once the store applied (or refused) C{update}
        (step 8): 200 with every current binding, 500 for a stale or
        reordered REGISTER, 403 for one that would exceed the bindings
        allowed.
        """
        if result.outcome is UpdateOutcome.OUT_OF_ORDER:
            return Answer(500, "Stale Or Reordered REGISTER")
        if result.outcome is UpdateOutcome.TOO_MANY:
            return Answer(403, "Too Many Contacts")
        now = self.clock.seconds()
        headers: list[tuple[str, str]] = [("Contact", str(b.name_address(now))) for b in result.bindings]
        headers.append(("Date", self._date(now)))
        if update.outbound:
            headers.append(("Require", "outbound"))
        headers.append(("Supported", ", ".join(SUPPORTED)))
        headers.extend(("Path", f"<{uri}>") for uri in update.path)
        return Answer(200, headers=tuple(headers))


class Registrar:
    """
    A registrar on a L{SIPStack<sipstack.stack.SIPStack>}: a request handler
    for REGISTER (C{stack.on_request(registrar)}) over a location store.

    @ivar core: the rules (L{RegistrarCore}).
    @ivar store: where bindings are kept.
    """

    _log = Logger()

    def __init__(
        self,
        store: LocationStore,
        clock: Clock,
        policy: RegistrarPolicy | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.store = store
        self.core = RegistrarCore(policy if policy is not None else RegistrarPolicy(), clock, authenticator)

    @property
    def policy(self) -> RegistrarPolicy:
        """What this registrar accepts."""
        return self.core.policy

    def serves(self, request: Request) -> bool:
        """Whether C{request} is a REGISTER for a domain of this registrar (RFC 3261 section 10.3 step 1)."""
        return request.method == "REGISTER" and self.core.policy.serves(request.uri)

    def lookup(self, aor: URI | str) -> Deferred[tuple[Binding, ...]]:
        """
        The current bindings of an address-of-record (a Request-URI, a To
        URI, or text), best first: what a proxy forwards to (RFC 3261
        section 16.5).  Each binding carries its C{path} and the C{flow} it
        was registered over.

        @raise ValueError: not a C{sip:} or C{sips:} URI.
        """
        return self.store.lookup(aor_of(aor))

    def __call__(self, incoming: IncomingRequest) -> Response | Deferred[Response | None]:
        """Answer a REGISTER (the stack's request handler)."""
        decision = self.core.decide(incoming.request, flow=incoming.received.flow, received=incoming.received.source)
        if isinstance(decision, Answer):
            return self._response(incoming, decision)
        update = decision
        store = self.store

        def applied(result: UpdateResult) -> Response | None:
            return self._response(incoming, self.core.answer(update, result))

        def failed(failure: Failure) -> Response | None:
            self._log.failure("The location store failed to update {aor}", failure, aor=update.aor)
            return incoming.response(500, "Location Store Unavailable", headers=(("Retry-After", "5"),))

        if update.changes:
            updating = store.update(update.aor, update.changes, max_bindings=self.core.policy.max_bindings)
        else:
            updating = store.lookup(update.aor).addCallback(lambda found: UpdateResult(UpdateOutcome.APPLIED, found))
        return updating.addCallbacks(applied, failed)

    @staticmethod
    def _response(incoming: IncomingRequest, answer: Answer) -> Response:
        return incoming.response(answer.status, answer.reason, headers=answer.headers)
