# -*- test-case-name: tests.services.test_location -*-
"""
The location service: bindings from an address-of-record to the contacts a
registrar accepted for it (RFC 3261 sections 10 and 16.5), and the stores
that keep them.

A store is an interface (L{LocationStore}) whose methods all return
Deferreds, so an in-memory dictionary (L{MemoryLocationStore}), a SQLite file
written from a worker thread (L{sipstack.services.location_sqlite}) and,
later, a network store fit behind it.  The rules of RFC 3261 section 10.3
steps 6 and 7 (which Call-ID and CSeq may change a binding) live in one pure
function, L{plan_update}, that every store runs inside its own atomic
update, so two REGISTERs for one address-of-record cannot interleave between
the check and the write, and every store answers alike.

A binding is identified within its address-of-record by a key
(L{Binding.key}): its C{+sip.instance} and C{reg-id} when it has both (RFC
5626 section 6: one instance may register the same contact over several
flows), else its contact URI in a canonical form (L{contact_key}), since RFC
3261 section 10.3 step 7 matches contacts by URI comparison.

@see: docs/services.md.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Protocol
from urllib.parse import unquote as percent_decode

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipstack.clock import Clock
from sipstack.hop import FlowKey, Peer, TransportKind
from sipstack.message import SIPURI, URI, AbsoluteURI, NameAddress, parse_uri
from sipstack.message.values import Params

__all__ = [
    "normalize_aor",
    "aor_text",
    "contact_key",
    "key_of",
    "flow_to_text",
    "flow_from_text",
    "peer_to_text",
    "peer_from_text",
    "Binding",
    "Put",
    "Remove",
    "RemoveAll",
    "Change",
    "UpdateOutcome",
    "UpdateResult",
    "UpdatePlan",
    "plan_update",
    "order_bindings",
    "StoreClosed",
    "LocationStore",
    "MemoryLocationStore",
    "LocationStoreService",
]

_MAX_CSEQ = 2**31 - 1


def normalize_aor(uri: URI | str) -> str:
    """
    The address-of-record a registrar keys bindings by, as text: the To URI
    of a REGISTER in the canonical form of RFC 3261 section 10.3 step 5
    (L{SIPURI.address_of_record}).

    @raise ValueError: the URI is not a C{sip:} or C{sips:} URI (or, given as
        text, not a URI at all).
    """
    if isinstance(uri, str):
        uri = parse_uri(uri)
    if not isinstance(uri, SIPURI):
        raise ValueError(f"an address-of-record must be a sip: or sips: URI, not {uri.scheme}:")
    return aor_text(uri)


#: A user part that L{SIPURI.address_of_record} leaves as it is: no escape
#: to decode and nothing its re-escaping would change.
_PLAIN_USER = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/]*")
#: A host that L{SIPURI.address_of_record} only lower-cases: not an IPv6
#: reference, and no IPv4 octet with a leading zero to drop.
_PLAIN_HOST = re.compile(r"(?!\[)(?!.*(?:^|\.)0[0-9])[^\[]+", re.DOTALL)


def aor_text(uri: SIPURI, scheme: str | None = None) -> str:
    """
    C{str(uri.address_of_record())}, with C{scheme} in place of the URI's
    when given, without building the intermediate L{SIPURI}: a registrar
    computes this for the To URI and every Contact of every REGISTER, and
    building (and so validating) a URI costs several times more than the
    text.  The common case, a user part with no escapes and a host name or
    IPv4 address without leading zeros, is put together directly; anything
    else (escapes, IPv6, odd addresses) goes the general way, so the result
    is always the same.
    """
    user, host = uri.user, uri.host
    if (user is None or _PLAIN_USER.fullmatch(user)) and _PLAIN_HOST.fullmatch(host):
        userinfo = "" if user is None else user + "@"
        port = "" if uri.port is None else f":{uri.port}"
        return f"{scheme or uri.scheme}:{userinfo}{host.lower()}{port}"
    canonical = uri.address_of_record()
    if scheme is not None and scheme != canonical.scheme:
        canonical = canonical.replace(scheme=scheme)
    return str(canonical)


def contact_key(uri: URI) -> str:
    """
    The canonical form of a contact URI that two contacts share when RFC
    3261 section 19.1.4 calls them equivalent, so that a store can find a
    binding by an exact key (in SQL too) instead of comparing with every
    stored URI.

    The user, host and port are canonical as in an address-of-record; the
    password is kept; parameters and headers are unescaped, lower-cased
    (header values keep their case) and sorted.  One approximation, on the
    safe side: a parameter present in only one URI makes them differ, where
    section 19.1.4 ignores it unless it is C{transport}, C{user}, C{ttl},
    C{method} or C{maddr}; a phone re-registers its contact as it wrote it,
    so this only keeps two bindings where the RFC would keep one.
    """
    if isinstance(uri, AbsoluteURI):
        return json.dumps([uri.scheme, percent_decode(uri.opaque, errors="surrogateescape")])
    params = (
        sorted(
            (_decoded(name).lower(), None if value is None else _decoded(value).lower())
            for name, value in uri.parameters
        )
        if uri.parameters
        else []
    )
    headers = sorted((_decoded(name).lower(), _decoded(value)) for name, value in uri.headers) if uri.headers else []
    password = None if uri.password is None else _decoded(uri.password)
    return _dumps([aor_text(uri), password, params, headers])


#: json.dumps with its default settings, without re-checking them per call.
_dumps = json.JSONEncoder().encode


def _decoded(text: str) -> str:
    return percent_decode(text, errors="surrogateescape") if "%" in text else text


def key_of(contact: NameAddress) -> str:
    """
    The L{Binding.key} a Contact of a REGISTER has: what a L{Remove} names
    for a contact with C{expires=0}.

    @raise ValueError: its C{+sip.instance} or C{reg-id} is malformed.
    """
    instance, reg_id = contact.instance, contact.reg_id
    if instance is not None and reg_id is not None:
        return _dumps(["instance", instance, reg_id])
    return contact_key(contact.uri)


# Flows and peers as text, so that a binding survives any store.


def peer_to_text(peer: Peer) -> str:
    """C{host:port}, with brackets around an IPv6 address."""
    return str(peer)


def peer_from_text(text: str) -> Peer:
    """
    The L{Peer} written by L{peer_to_text}.

    @raise ValueError: not C{host:port}.
    """
    host, colon, port = text.rpartition(":")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"bad peer {text!r}")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"bad peer {text!r}")
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"bad peer {text!r}")
    return Peer(host, int(port))


def flow_to_text(flow: FlowKey) -> str:
    """
    C{TRANSPORT remote local connection}, e.g. C{"TLS 192.0.2.1:5061
    10.0.0.1:5061 42"}: readable in a database shell, and enough to find the
    flow again while the connection lives.
    """
    return f"{flow.transport.value} {peer_to_text(flow.remote)} {peer_to_text(flow.local)} {flow.connection}"


def flow_from_text(text: str) -> FlowKey:
    """
    The L{FlowKey} written by L{flow_to_text}.

    @raise ValueError: not in that form.
    """
    parts = text.split(" ")
    if len(parts) != 4 or not parts[3].isdigit():
        raise ValueError(f"bad flow {text!r}")
    try:
        transport = TransportKind(parts[0])
    except ValueError:
        raise ValueError(f"bad flow {text!r}") from None
    return FlowKey(transport, peer_from_text(parts[1]), peer_from_text(parts[2]), int(parts[3]))


@dataclass(frozen=True, slots=True)
class Binding:
    """
    One contact bound to an address-of-record.

    The constructor checks the contact and its parameters, and derives
    L{q}, L{instance}, L{reg_id} and L{key} from them.

    @ivar aor: the address-of-record, normalized (L{normalize_aor}).
    @ivar contact: the contact URI, as the UA wrote it.
    @ivar expires_at: when the binding expires, in the clock's seconds
        (absolute, so that it means the same after a restart).
    @ivar call_id: the Call-ID of the REGISTER that made or last refreshed
        the binding (RFC 3261 section 10.3 step 7).
    @ivar cseq: that REGISTER's CSeq number.
    @ivar params: the Contact's header parameters as written (C{q},
        C{+sip.instance}, C{reg-id}, feature tags...), without C{expires},
        which L{expires_at} replaces.
    @ivar path: the Path header values of the REGISTER, as URIs in order
        (RFC 3327): the route back to the UA.
    @ivar flow: the flow the REGISTER arrived on, so that requests for the
        UA can go back over its own connection (RFC 5626); after a restart
        the flow is gone but the binding stays.
    @ivar received: the address the REGISTER came from.
    @ivar user_agent: the REGISTER's User-Agent, for operators.
    @ivar q: the C{q} parameter (0 to 1), or L{None}.
    @ivar instance: the C{+sip.instance} parameter, unquoted, or L{None}.
    @ivar reg_id: the C{reg-id} parameter, or L{None}.
    @ivar key: what identifies the binding within its address-of-record.
    @raise ValueError: the contact is not a URI, a parameter is malformed,
        C{params} holds C{expires}, or a field is out of range.
    """

    aor: str
    contact: str
    expires_at: float
    call_id: str
    cseq: int
    params: Params = ()
    path: tuple[str, ...] = ()
    flow: FlowKey | None = None
    received: Peer | None = None
    user_agent: str | None = None
    q: float | None = field(init=False, compare=False)
    instance: str | None = field(init=False, compare=False)
    reg_id: int | None = field(init=False, compare=False)
    key: str = field(init=False, compare=False, repr=False)
    #: The contact, parsed: kept so that the 200 listing it need not parse it again.
    _uri: URI = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._derive(parse_uri(self.contact))

    def _derive(self, uri: URI) -> None:
        """Check the fields, and derive the others from the contact, parsed as C{uri}."""
        if not self.aor:
            raise ValueError("a binding needs an address-of-record")
        if not self.call_id:
            raise ValueError("a binding needs a Call-ID")
        if not 0 <= self.cseq <= _MAX_CSEQ:
            raise ValueError(f"CSeq {self.cseq} out of range")
        if not math.isfinite(self.expires_at):
            raise ValueError("expires_at must be finite")
        address = NameAddress(uri, None, self.params)
        if address.has_param("expires"):
            raise ValueError("a binding's expiry is expires_at, not an expires parameter")
        object.__setattr__(self, "q", address.q)
        object.__setattr__(self, "instance", address.instance)
        object.__setattr__(self, "reg_id", address.reg_id)
        object.__setattr__(self, "key", key_of(address))
        object.__setattr__(self, "_uri", uri)

    @classmethod
    def from_contact(
        cls,
        aor: str,
        contact: NameAddress,
        expires_at: float,
        call_id: str,
        cseq: int,
        *,
        path: Sequence[str] = (),
        flow: FlowKey | None = None,
        received: Peer | None = None,
        user_agent: str | None = None,
    ) -> Binding:
        """
        A binding for a Contact of a REGISTER (its C{expires} dropped).

        The same as the constructor given C{str(contact.uri)}, but with the
        URI already parsed: the registrar makes one binding per Contact of
        every REGISTER, and parsing the text again was a fair part of that.
        """
        binding: Binding = object.__new__(cls)
        values = (
            aor,
            str(contact.uri),
            expires_at,
            call_id,
            cseq,
            contact.without_param("expires").params,
            tuple(path),
            flow,
            received,
            user_agent,
        )
        for name, value in zip(_BINDING_INIT_FIELDS, values, strict=True):
            object.__setattr__(binding, name, value)
        binding._derive(contact.uri)
        return binding

    def remaining(self, now: float) -> int:
        """The seconds left, rounded up, as a registrar reports them."""
        return max(0, math.ceil(self.expires_at - now))

    def name_address(self, now: float) -> NameAddress:
        """The Contact of a 200 to a REGISTER: the contact, its parameters and C{expires}."""
        return NameAddress(self._uri, None, self.params).with_param("expires", str(self.remaining(now)))


#: The fields L{Binding}'s constructor takes, in order (what L{Binding.from_contact} fills in).
_BINDING_INIT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Binding) if f.init)


def order_bindings(bindings: Iterable[Binding]) -> tuple[Binding, ...]:
    """
    Best first: highest C{q} (a binding without one counts as 1.0), then by
    key, so that every store gives the same order.
    """
    return tuple(sorted(bindings, key=lambda b: (-(1.0 if b.q is None else b.q), b.key)))


# Changes: what one REGISTER asks for.


@dataclass(frozen=True, slots=True)
class Put:
    """Add the binding, or refresh the one with the same key."""

    binding: Binding


@dataclass(frozen=True, slots=True)
class Remove:
    """
    Remove the binding with this key, if any (a contact with C{expires=0}).

    @ivar key: the binding's L{Binding.key}.
    @ivar call_id: the REGISTER's Call-ID.
    @ivar cseq: the REGISTER's CSeq number.
    """

    key: str
    call_id: str
    cseq: int


@dataclass(frozen=True, slots=True)
class RemoveAll:
    """Remove every binding of the address-of-record (C{Contact: *}, RFC 3261 section 10.3 step 6)."""

    call_id: str
    cseq: int


Change = Put | Remove | RemoveAll


class UpdateOutcome(enum.Enum):
    """What became of an update."""

    #: Every change was made.
    APPLIED = "applied"
    #: Nothing was changed: a binding the update touches was last set by a
    #: request with the same Call-ID and a CSeq at least as high (RFC 3261
    #: section 10.3 steps 6 and 7: a retransmitted or reordered REGISTER);
    #: the registrar answers with an error (500 is customary).
    OUT_OF_ORDER = "out-of-order"
    #: Nothing was changed: the address-of-record would have more bindings
    #: than allowed.
    TOO_MANY = "too-many"


@dataclass(frozen=True, slots=True)
class UpdateResult:
    """
    The result of L{LocationStore.update}.

    @ivar outcome: whether the update was applied.
    @ivar bindings: the current bindings of the address-of-record after the
        update (before it, when it was refused), best first: what a 200 to
        the REGISTER lists.
    """

    outcome: UpdateOutcome
    bindings: tuple[Binding, ...]

    @property
    def applied(self) -> bool:
        """Whether the update was applied."""
        return self.outcome is UpdateOutcome.APPLIED


@dataclass(frozen=True, slots=True)
class UpdatePlan:
    """
    What a store does to apply an update: L{plan_update}'s answer.

    @ivar result: what the update returns.
    @ivar removed: keys of stored bindings to delete (including expired ones
        swept on the way).
    @ivar written: bindings to insert or replace.
    """

    result: UpdateResult
    removed: tuple[str, ...]
    written: tuple[Binding, ...]


def _in_order(existing: Binding, call_id: str, cseq: int) -> bool:
    # RFC 3261 section 10.3 step 7: another Call-ID always may; the same
    # Call-ID only with a higher CSeq.
    return existing.call_id != call_id or cseq > existing.cseq


def plan_update(
    aor: str, stored: Iterable[Binding], changes: Sequence[Change], now: float, max_bindings: int | None = None
) -> UpdatePlan:
    """
    Decide an update of C{aor}'s bindings, all or nothing.

    Every change is checked against the bindings as they were before the
    update (so a REGISTER naming one contact twice is not out of order with
    itself), then the changes apply in order.  Expired bindings count as
    absent and are swept.  A L{Put} of an already expired binding removes
    it.  C{max_bindings} refuses an update that would leave more bindings
    than that, unless it leaves no more than there were (so lowering the
    limit does not stop refreshes).

    @param stored: the stored bindings of C{aor}, expired ones included.
    @raise ValueError: a L{Put}'s binding belongs to another address-of-record.
    """
    live: dict[str, Binding] = {}
    expired: list[str] = []
    for binding in stored:
        if binding.expires_at > now:
            live[binding.key] = binding
        else:
            expired.append(binding.key)
    for change in changes:
        if isinstance(change, Put):
            if change.binding.aor != aor:
                raise ValueError(f"binding for {change.binding.aor!r} in an update of {aor!r}")
            touched: Iterable[Binding | None] = (live.get(change.binding.key),)
            call_id, cseq = change.binding.call_id, change.binding.cseq
        elif isinstance(change, Remove):
            touched, call_id, cseq = (live.get(change.key),), change.call_id, change.cseq
        else:
            touched, call_id, cseq = live.values(), change.call_id, change.cseq
        if any(existing is not None and not _in_order(existing, call_id, cseq) for existing in touched):
            return UpdatePlan(
                UpdateResult(UpdateOutcome.OUT_OF_ORDER, order_bindings(live.values())), tuple(expired), ()
            )
    state = dict(live)
    for change in changes:
        if isinstance(change, Put):
            if change.binding.expires_at > now:
                state[change.binding.key] = change.binding
            else:
                state.pop(change.binding.key, None)
        elif isinstance(change, Remove):
            state.pop(change.key, None)
        else:
            state.clear()
    if max_bindings is not None and len(state) > max(max_bindings, len(live)):
        return UpdatePlan(UpdateResult(UpdateOutcome.TOO_MANY, order_bindings(live.values())), tuple(expired), ())
    removed = [*expired, *(key for key in live if key not in state)]
    written = tuple(binding for key, binding in state.items() if live.get(key) != binding)
    return UpdatePlan(UpdateResult(UpdateOutcome.APPLIED, order_bindings(state.values())), tuple(removed), written)


class StoreClosed(Exception):
    """The location store was used after L{LocationStore.close}."""


class LocationStore(Protocol):
    """
    Where bindings are kept.  Every method returns a Deferred, so that a
    store may do its work in a thread or over the network; a store applies
    its updates one at a time, in the order they were asked for.
    """

    def lookup(self, aor: str) -> Deferred[tuple[Binding, ...]]:
        """The unexpired bindings of C{aor}, best first (L{order_bindings})."""

    def update(self, aor: str, changes: Sequence[Change], *, max_bindings: int | None = None) -> Deferred[UpdateResult]:
        """
        Apply C{changes} to C{aor}'s bindings atomically, as L{plan_update}
        decides.  A refused update changes nothing and still fires with an
        L{UpdateResult}; the Deferred fails only when the store does.
        """

    def remove_expired(self, now: float) -> Deferred[int]:
        """Delete the bindings expired at C{now}; fires with how many."""

    def count(self) -> Deferred[int]:
        """The number of unexpired bindings, across all addresses-of-record."""

    def close(self) -> Deferred[None]:
        """Finish pending work and release the store; later calls fail with L{StoreClosed}."""


class MemoryLocationStore:
    """
    A L{LocationStore} in a dictionary: fast, and gone with the process.

    @ivar clock: the clock that tells which bindings have expired.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._bindings: dict[str, dict[str, Binding]] = {}
        self._closed = False

    def lookup(self, aor: str) -> Deferred[tuple[Binding, ...]]:
        if self._closed:
            return fail(StoreClosed())
        now = self.clock.seconds()
        return succeed(order_bindings(b for b in self._bindings.get(aor, {}).values() if b.expires_at > now))

    def update(self, aor: str, changes: Sequence[Change], *, max_bindings: int | None = None) -> Deferred[UpdateResult]:
        if self._closed:
            return fail(StoreClosed())
        try:
            bindings = self._bindings.get(aor, {})
            plan = plan_update(aor, bindings.values(), changes, self.clock.seconds(), max_bindings)
        except Exception:
            return fail()
        if plan.removed or plan.written:
            bindings = self._bindings.setdefault(aor, bindings)
            for key in plan.removed:
                del bindings[key]
            for binding in plan.written:
                bindings[binding.key] = binding
            if not bindings:
                del self._bindings[aor]
        return succeed(plan.result)

    def remove_expired(self, now: float) -> Deferred[int]:
        if self._closed:
            return fail(StoreClosed())
        removed = 0
        for aor in list(self._bindings):
            bindings = self._bindings[aor]
            for key in [key for key, binding in bindings.items() if binding.expires_at <= now]:
                del bindings[key]
                removed += 1
            if not bindings:
                del self._bindings[aor]
        return succeed(removed)

    def count(self) -> Deferred[int]:
        if self._closed:
            return fail(StoreClosed())
        now = self.clock.seconds()
        return succeed(sum(1 for bindings in self._bindings.values() for b in bindings.values() if b.expires_at > now))

    def close(self) -> Deferred[None]:
        self._closed = True
        return succeed(None)


class LocationStoreService(Service):
    """
    Runs a store's housekeeping while the application runs: deletes expired
    bindings every C{interval} seconds (lookups already hide them; this
    frees their space), and closes the store when the service stops.
    """

    _log = Logger()

    def __init__(self, store: LocationStore, clock: Clock, interval: float = 60.0) -> None:
        self.store = store
        self.clock = clock
        self.interval = interval
        self._loop: LoopingCall | None = None

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]  # unannotated in Twisted 26.10
        loop = self._loop = LoopingCall(self._sweep)
        loop.clock = self.clock  # type: ignore[assignment]  # Clock is the IReactorTime subset LoopingCall uses
        loop.start(self.interval, now=True).addErrback(
            lambda failure: self._log.failure("location store sweeping stopped", failure)
        )

    def _sweep(self) -> Deferred[None]:
        def swept(count: int) -> None:
            if count:
                self._log.debug("removed {count} expired bindings", count=count)

        def failed(failure: Failure) -> None:
            self._log.failure("removing expired bindings failed", failure)

        return self.store.remove_expired(self.clock.seconds()).addCallbacks(swept, failed)

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]  # unannotated in Twisted 26.10
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        return self.store.close()
