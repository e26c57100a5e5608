"""
Tests for L{sipstack.services.location} and
L{sipstack.services.location_sqlite}: one contract, run against the memory
store and against a SQLite file in a temporary directory; what only SQLite
promises (persistence across a restart or a kill, WAL, a versioned schema,
a reactor that never waits for the disk); and a Hypothesis state machine that
drives both stores with the same random operations and finds them alike.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import Clock, deferLater
from twisted.internet.threads import blockingCallFromThread, deferToThread
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sipstack.hop import FlowKey, Peer, TransportKind
from sipstack.message import SIPURI, parse_uri
from sipstack.message.address import parse_name_address
from sipstack.services.location import (
    Binding,
    Change,
    LocationStore,
    LocationStoreService,
    MemoryLocationStore,
    Put,
    Remove,
    RemoveAll,
    StoreClosed,
    UpdateOutcome,
    aor_text,
    contact_key,
    flow_from_text,
    flow_to_text,
    key_of,
    normalize_aor,
    peer_from_text,
)
from sipstack.services.location_sqlite import SCHEMA_VERSION, SchemaError, SQLiteLocationStore
from tests.transport._helpers import reactor

ALICE = "sip:alice@example.com"
BOB = "sip:bob@example.com"
START = 1000.0

if TYPE_CHECKING:
    _Base = TestCase
else:
    _Base = object


def binding(
    contact: str = "sip:alice@192.0.2.1:5060",
    *,
    aor: str = ALICE,
    expires_at: float = START + 3600,
    call_id: str = "call-1",
    cseq: int = 1,
    **fields: Any,
) -> Binding:
    """A binding with test defaults."""
    return Binding(aor, contact, expires_at, call_id, cseq, **fields)


class ValueTests(SynchronousTestCase):
    """
    The values a store keeps: bindings, their keys, flows and peers as text.
    """

    def test_normalize_aor(self) -> None:
        """An AOR is the To URI in canonical form; only sip: and sips: URIs are AORs."""
        self.assertEqual(normalize_aor("sip:%61lice@EXAMPLE.com;transport=tcp"), "sip:alice@example.com")
        self.assertEqual(normalize_aor(parse_uri("sips:bob@example.com:5061")), "sips:bob@example.com:5061")
        self.assertRaises(ValueError, normalize_aor, "tel:+15551234")

    def test_derived_fields(self) -> None:
        """q, +sip.instance and reg-id come from the Contact parameters."""
        bound = binding(params=(("q", "0.7"), ("+sip.instance", '"<urn:uuid:00000000-0000-0000-0000-000000000001>"')))
        self.assertEqual(
            (bound.q, bound.instance, bound.reg_id), (0.7, "<urn:uuid:00000000-0000-0000-0000-000000000001>", None)
        )
        self.assertIsNone(binding().q)

    def test_invalid(self) -> None:
        """A binding checks its contact, parameters and numbers."""
        self.assertRaises(ValueError, binding, "not a uri")
        self.assertRaises(ValueError, binding, params=(("q", "2"),))
        self.assertRaises(ValueError, binding, params=(("reg-id", "0"),))
        self.assertRaises(ValueError, binding, params=(("expires", "60"),))
        self.assertRaises(ValueError, binding, cseq=-1)
        self.assertRaises(ValueError, binding, cseq=2**31)
        self.assertRaises(ValueError, binding, call_id="")
        self.assertRaises(ValueError, binding, aor="")
        self.assertRaises(ValueError, binding, expires_at=float("nan"))

    @given(
        st.sampled_from(["sip", "sips", "SIP"]),
        st.one_of(st.none(), st.lists(st.sampled_from(["a", "B", "7", "-", "!", "%61", "%2f", "%25", "#", ";", "+"]))),
        st.sampled_from(
            [
                "Example.COM",
                "host.example",
                "192.0.2.1",
                "010.0.0.1",
                "1.02.3.4",
                "[::1]",
                "[2001:DB8:0::1]",
                "a.01b.example",
            ]
        ),
        st.one_of(st.none(), st.integers(1, 65535)),
        st.sampled_from(["", ";transport=TCP", ";lr"]),
    )
    def test_aor_text(self, scheme: str, user: list[str] | None, host: str, port: int | None, params: str) -> None:
        """aor_text gives the text of address_of_record (and its sip: form) without building it."""
        userinfo = "" if user is None else "".join(user) + "@"
        assume(user is None or user)
        text = f"{scheme}:{userinfo}{host}{'' if port is None else f':{port}'}{params}"
        try:
            uri = parse_uri(text)
        except ValueError:
            assume(False)
            raise
        assert isinstance(uri, SIPURI)
        canonical = uri.address_of_record()
        self.assertEqual(aor_text(uri), str(canonical), text)
        self.assertEqual(aor_text(uri, scheme="sip"), str(canonical.replace(scheme="sip")), text)
        self.assertEqual(normalize_aor(uri), str(canonical), text)

    @given(
        st.sampled_from(["sip:alice@192.0.2.1:5070;transport=TCP", "SIP:%41lice@Host.Example", "tel:+15551234"]),
        st.sampled_from(["", ";q=0.5", ';+sip.instance="<urn:uuid:1>";reg-id=2', ";expires=60;Q=1"]),
    )
    def test_from_contact_as_constructor(self, uri: str, params: str) -> None:
        """Binding.from_contact makes the binding the constructor makes from the contact's text."""
        contact = parse_name_address(f"<{uri}>{params}")
        made = Binding.from_contact(ALICE, contact, 100.0, "call", 7, path=["sip:edge.example;lr"], user_agent="ua")
        expected = Binding(
            ALICE,
            str(contact.uri),
            100.0,
            "call",
            7,
            contact.without_param("expires").params,
            ("sip:edge.example;lr",),
            user_agent="ua",
        )
        self.assertEqual(made, expected)
        self.assertEqual(
            (made.q, made.instance, made.reg_id, made.key),
            (expected.q, expected.instance, expected.reg_id, expected.key),
        )
        self.assertEqual(str(made.name_address(40.0)), str(expected.name_address(40.0)))

    def test_contact_key_equivalence(self) -> None:
        """Contacts that RFC 3261 section 19.1.4 calls equivalent share a key; different ones do not."""
        same = ["sip:alice@Host.Example:5060;transport=TCP", "sip:%61lice@host.example:5060;transport=tcp"]
        self.assertEqual(len({contact_key(parse_uri(text)) for text in same}), 1)
        different = [
            "sip:alice@host.example:5060",
            "sip:alice@host.example",
            "sip:ALICE@host.example:5060",
            "sips:alice@host.example:5060",
            "sip:alice@host.example:5060;transport=udp",
        ]
        self.assertEqual(len({contact_key(parse_uri(text)) for text in different}), len(different))

    def test_instance_key(self) -> None:
        """With +sip.instance and reg-id, the key is theirs, whatever the contact URI (RFC 5626)."""
        params = (("+sip.instance", '"<urn:uuid:1>"'), ("reg-id", "1"))
        first = binding("sip:alice@192.0.2.1", params=params)
        moved = binding("sip:alice@198.51.100.7:6000", params=params)
        second_flow = binding("sip:alice@192.0.2.1", params=(params[0], ("reg-id", "2")))
        self.assertEqual(first.key, moved.key)
        self.assertNotEqual(first.key, second_flow.key)
        contact = parse_name_address('<sip:alice@192.0.2.1>;+sip.instance="<urn:uuid:1>";reg-id=1;expires=0')
        self.assertEqual(key_of(contact), first.key)

    def test_from_contact(self) -> None:
        """A Contact's expires gives way to expires_at; name_address() writes the time left, rounded up."""
        contact = parse_name_address("<sip:alice@192.0.2.1>;expires=60;q=0.5")
        bound = Binding.from_contact(ALICE, contact, START + 60, "c", 3, path=["sip:edge.example;lr"])
        self.assertEqual(bound.params, (("q", "0.5"),))
        self.assertEqual(bound.path, ("sip:edge.example;lr",))
        self.assertEqual(str(bound.name_address(START + 0.5)), "<sip:alice@192.0.2.1>;q=0.5;expires=60")
        self.assertEqual(bound.remaining(START + 61), 0)

    def test_flow_text(self) -> None:
        """Flows and peers survive being written as text, IPv6 included."""
        for flow in (
            FlowKey(TransportKind.TLS, Peer("2001:db8::1", 5061), Peer("::1", 40000), 17),
            FlowKey(TransportKind.UDP, Peer("192.0.2.1", 5060), Peer("0.0.0.0", 5060)),
        ):
            self.assertEqual(flow_from_text(flow_to_text(flow)), flow)
        self.assertEqual(
            flow_to_text(FlowKey(TransportKind.TCP, Peer("::1", 1), Peer("::1", 2), 3)), "TCP [::1]:1 [::1]:2 3"
        )
        for bad in (
            "TCP [::1]:1 [::1]:2",
            "XYZ 1.2.3.4:1 1.2.3.4:2 0",
            "TCP ::1:1 [::1]:2 0",
            "UDP 1.2.3.4:99999 1.2.3.4:1 0",
        ):
            self.assertRaises(ValueError, flow_from_text, bad)
        self.assertRaises(ValueError, peer_from_text, "[::1:5060")


class _Contract(_Base):
    """
    What every L{LocationStore} does.  Subclasses provide C{make_store()};
    C{self.clock} is the store's clock.
    """

    clock: Clock

    def make_store(self) -> LocationStore:
        raise NotImplementedError

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.store = self.make_store()

    async def put(self, *bindings: Binding, aor: str = ALICE, **kwargs: Any) -> UpdateOutcome:
        result = await self.store.update(aor, [Put(b) for b in bindings], **kwargs)
        return result.outcome

    async def contacts(self, aor: str = ALICE) -> list[str]:
        return [b.contact for b in await self.store.lookup(aor)]

    async def test_add(self) -> None:
        """An added binding is looked up and counted; the result lists the bindings."""
        self.assertEqual(await self.store.lookup(ALICE), ())
        added = binding()
        result = await self.store.update(ALICE, [Put(added)])
        self.assertEqual((result.outcome, result.applied, result.bindings), (UpdateOutcome.APPLIED, True, (added,)))
        self.assertEqual(await self.store.lookup(ALICE), (added,))
        self.assertEqual(await self.store.lookup(BOB), ())
        self.assertEqual(await self.store.count(), 1)

    async def test_refresh(self) -> None:
        """A later CSeq of the same Call-ID, or any CSeq of another Call-ID, refreshes an equivalent contact."""
        await self.put(binding("sip:alice@192.0.2.1:5060;transport=udp", cseq=2))
        same_cseq = binding("sip:alice@192.0.2.1:5060;transport=UDP", cseq=2, expires_at=START + 7200)
        self.assertEqual(await self.put(same_cseq), UpdateOutcome.OUT_OF_ORDER)
        later = binding("sip:alice@192.0.2.1:5060;transport=UDP", cseq=3, expires_at=START + 7200)
        self.assertEqual(await self.put(later), UpdateOutcome.APPLIED)
        self.assertEqual(await self.store.lookup(ALICE), (later,))
        other_call = binding("sip:alice@192.0.2.1:5060;transport=udp", call_id="call-2", cseq=1, expires_at=START + 10)
        self.assertEqual(await self.put(other_call), UpdateOutcome.APPLIED)
        self.assertEqual(await self.store.lookup(ALICE), (other_call,))
        self.assertEqual(await self.store.count(), 1)

    async def test_same_contact_refreshed(self) -> None:
        """Refreshing replaces the binding: one binding, the new expiry, the new CSeq."""
        await self.put(binding(expires_at=START + 60))
        newer = binding(cseq=5, expires_at=START + 600, user_agent="phone/2")
        self.assertEqual(await self.put(newer), UpdateOutcome.APPLIED)
        self.assertEqual(await self.store.lookup(ALICE), (newer,))

    async def test_out_of_order(self) -> None:
        """
        The same Call-ID with a CSeq not higher changes nothing, even
        alongside a good change (RFC 3261 section 10.3 step 7).
        """
        first = binding(cseq=5)
        await self.put(first)
        for cseq in (5, 4):
            result = await self.store.update(
                ALICE, [Put(binding("sip:alice@198.51.100.1", cseq=cseq)), Put(binding(cseq=cseq))]
            )
            self.assertEqual((result.outcome, result.bindings), (UpdateOutcome.OUT_OF_ORDER, (first,)))
        result = await self.store.update(ALICE, [Remove(first.key, "call-1", 5)])
        self.assertEqual(result.outcome, UpdateOutcome.OUT_OF_ORDER)
        self.assertEqual(await self.store.lookup(ALICE), (first,))

    async def test_one_request_twice(self) -> None:
        """One REGISTER naming the same contact twice is not out of order with itself."""
        result = await self.store.update(ALICE, [Put(binding(expires_at=START + 5)), Put(binding())])
        self.assertEqual((result.outcome, result.bindings), (UpdateOutcome.APPLIED, (binding(),)))

    async def test_remove_one(self) -> None:
        """Remove deletes one binding and leaves the others; removing an unknown key does nothing."""
        one, two = binding("sip:alice@192.0.2.1"), binding("sip:alice@192.0.2.2")
        await self.put(one, two)
        result = await self.store.update(ALICE, [Remove(one.key, "call-1", 2)])
        self.assertEqual((result.outcome, result.bindings), (UpdateOutcome.APPLIED, (two,)))
        result = await self.store.update(ALICE, [Remove(one.key, "call-1", 3)])
        self.assertEqual((result.outcome, result.bindings), (UpdateOutcome.APPLIED, (two,)))
        self.assertEqual(await self.store.lookup(ALICE), (two,))

    async def test_remove_all(self) -> None:
        """RemoveAll (Contact: *) empties the AOR, under the same ordering rule (RFC 3261 10.3 step 6)."""
        await self.put(binding("sip:alice@192.0.2.1", cseq=3), binding("sip:alice@192.0.2.2", call_id="call-2", cseq=9))
        await self.put(binding(aor=BOB, contact="sip:bob@192.0.2.3"), aor=BOB)
        result = await self.store.update(ALICE, [RemoveAll("call-2", 9)])
        self.assertEqual(result.outcome, UpdateOutcome.OUT_OF_ORDER)
        self.assertEqual(len(await self.store.lookup(ALICE)), 2)
        result = await self.store.update(ALICE, [RemoveAll("call-2", 10)])
        self.assertEqual((result.outcome, result.bindings), (UpdateOutcome.APPLIED, ()))
        self.assertEqual(await self.store.lookup(ALICE), ())
        self.assertEqual(await self.contacts(BOB), ["sip:bob@192.0.2.3"])
        self.assertEqual(await self.store.count(), 1)

    async def test_expiry(self) -> None:
        """Expired bindings vanish from lookups and counts, are swept by remove_expired, and block nothing."""
        short, long = binding("sip:alice@192.0.2.1", expires_at=START + 10), binding("sip:alice@192.0.2.2")
        await self.put(short, long)
        await self.put(binding(aor=BOB, contact="sip:bob@192.0.2.3", expires_at=START + 20), aor=BOB)
        self.clock.advance(10)
        self.assertEqual(await self.store.lookup(ALICE), (long,))
        self.assertEqual(await self.store.count(), 2)
        self.assertEqual(await self.store.remove_expired(self.clock.seconds() + 10), 2)
        self.assertEqual(await self.store.remove_expired(self.clock.seconds() + 10), 0)
        self.assertEqual(await self.store.count(), 1)
        # An expired binding does not make a lower CSeq out of order.
        self.clock.advance(3600)
        self.assertEqual(await self.put(binding(cseq=1, expires_at=START + 9000)), UpdateOutcome.APPLIED)

    async def test_put_expired(self) -> None:
        """Putting an already expired binding removes the one with its key."""
        await self.put(binding())
        self.assertEqual(await self.put(binding(cseq=2, expires_at=START)), UpdateOutcome.APPLIED)
        self.assertEqual(await self.store.lookup(ALICE), ())

    async def test_q_ordering(self) -> None:
        """Lookups list the highest q first; no q counts as 1.0."""
        await self.put(
            binding("sip:a@192.0.2.1", params=(("q", "0.1"),)),
            binding("sip:a@192.0.2.2"),
            binding("sip:a@192.0.2.3", params=(("q", "0.5"),)),
            binding("sip:a@192.0.2.4", params=(("q", "1.0"),)),
            binding("sip:a@192.0.2.5", params=(("q", "0"),)),
        )
        qs = [b.q for b in await self.store.lookup(ALICE)]
        self.assertEqual(sorted(qs[:2], key=repr), [1.0, None])
        self.assertEqual(qs[2:], [0.5, 0.1, 0.0])

    async def test_round_trip(self) -> None:
        """Every field comes back: Path, flow, received address, user agent, parameters."""
        full = binding(
            "sips:alice@[2001:db8::5]:5061;transport=tls;ob",
            params=(
                ("q", "0.25"),
                ("+sip.instance", '"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>"'),
                ("reg-id", "2"),
                ("video", None),
            ),
            path=("<sip:edge1.example;lr;ob>", "<sip:edge2.example;lr>"),
            flow=FlowKey(TransportKind.TLS, Peer("2001:db8::5", 49152), Peer("2001:db8::1", 5061), 42),
            received=Peer("2001:db8::5", 49152),
            user_agent='Phone "X" 1.0, \u00e9dition',
            expires_at=START + 1234.5678,
        )
        await self.put(full)
        (found,) = await self.store.lookup(ALICE)
        self.assertEqual(found, full)
        self.assertEqual(
            (found.q, found.instance, found.reg_id, found.key), (full.q, full.instance, full.reg_id, full.key)
        )
        self.assertEqual(found.flow, full.flow)
        self.assertEqual(found.path, full.path)
        self.assertEqual(found.expires_at, START + 1234.5678)

    async def test_instance_reg_id(self) -> None:
        """One instance over two flows keeps two bindings; a new contact for one flow replaces it (RFC 5626)."""
        instance = ("+sip.instance", '"<urn:uuid:1>"')
        flow1 = binding("sip:alice@192.0.2.1;ob", params=(instance, ("reg-id", "1")))
        flow2 = binding("sip:alice@192.0.2.1;ob", params=(instance, ("reg-id", "2")))
        await self.put(flow1, flow2)
        self.assertEqual(len(await self.store.lookup(ALICE)), 2)
        moved = binding("sip:alice@203.0.113.9:7000;ob", params=(instance, ("reg-id", "1")), cseq=2)
        await self.put(moved)
        found = await self.store.lookup(ALICE)
        self.assertEqual(sorted(b.contact for b in found), ["sip:alice@192.0.2.1;ob", "sip:alice@203.0.113.9:7000;ob"])
        self.assertEqual({b.reg_id for b in found}, {1, 2})

    async def test_max_bindings(self) -> None:
        """An update that would exceed the limit changes nothing; refreshes at the limit still work."""
        await self.put(binding("sip:a@192.0.2.1"), binding("sip:a@192.0.2.2"), max_bindings=2)
        self.assertEqual(await self.put(binding("sip:a@192.0.2.3", cseq=2), max_bindings=2), UpdateOutcome.TOO_MANY)
        self.assertEqual(len(await self.store.lookup(ALICE)), 2)
        self.assertEqual(await self.put(binding("sip:a@192.0.2.1", cseq=3), max_bindings=2), UpdateOutcome.APPLIED)
        # Lowering the limit below what is bound does not stop refreshes.
        self.assertEqual(await self.put(binding("sip:a@192.0.2.2", cseq=4), max_bindings=1), UpdateOutcome.APPLIED)
        replaced = await self.store.update(
            ALICE,
            [Remove(binding("sip:a@192.0.2.1").key, "call-1", 5), Put(binding("sip:a@192.0.2.3", cseq=5))],
            max_bindings=2,
        )
        self.assertEqual(replaced.outcome, UpdateOutcome.APPLIED)

    async def test_concurrent_updates_serialized(self) -> None:
        """Updates asked for together apply one after another, in order, each seeing the last."""
        refreshes = [
            self.store.update(ALICE, [Put(binding(cseq=cseq, expires_at=START + cseq))]) for cseq in range(1, 21)
        ]
        limited = [
            self.store.update(BOB, [Put(binding(f"sip:bob@192.0.2.{n}", aor=BOB, call_id=f"c{n}"))], max_bindings=5)
            for n in range(1, 11)
        ]
        results = await gatherResults([*refreshes, *limited])
        self.assertEqual([r.outcome for r in results[:20]], [UpdateOutcome.APPLIED] * 20)
        self.assertEqual([len(r.bindings) for r in results[:20]], [1] * 20)
        self.assertEqual([r.bindings[0].cseq for r in results[:20]], list(range(1, 21)))
        self.assertEqual([r.outcome for r in results[20:]], [UpdateOutcome.APPLIED] * 5 + [UpdateOutcome.TOO_MANY] * 5)
        self.assertEqual(sorted(await self.contacts(BOB)), sorted(f"sip:bob@192.0.2.{n}" for n in range(1, 6)))
        (final,) = await self.store.lookup(ALICE)
        self.assertEqual(final.cseq, 20)

    async def test_failed_update_isolated(self) -> None:
        """An update that fails (a binding of another AOR) changes nothing, and the updates around it apply."""
        first = self.store.update(ALICE, [Put(binding("sip:alice@192.0.2.1"))])
        bad = self.store.update(ALICE, [Put(binding("sip:alice@192.0.2.2")), Put(binding(aor=BOB))])
        last = self.store.update(ALICE, [Put(binding("sip:alice@192.0.2.3"))])
        self.assertTrue((await first).applied)
        with self.assertRaises(ValueError):
            await bad
        self.assertTrue((await last).applied)
        self.assertEqual(sorted(await self.contacts()), ["sip:alice@192.0.2.1", "sip:alice@192.0.2.3"])

    async def test_closed(self) -> None:
        """After close, every operation fails with StoreClosed; closing twice is fine."""
        await self.put(binding())
        await self.store.close()
        await self.store.close()
        for operation in (
            lambda: self.store.lookup(ALICE),
            lambda: self.store.update(ALICE, []),
            self.store.count,
            lambda: self.store.remove_expired(START),
        ):
            with self.assertRaises(StoreClosed):
                await operation()


class MemoryStoreTests(_Contract, TestCase):
    """The contract, for L{MemoryLocationStore}."""

    def make_store(self) -> LocationStore:
        return MemoryLocationStore(self.clock)


def _temporary_directory(testcase: TestCase) -> Path:
    directory = tempfile.TemporaryDirectory(prefix="sipstack-location-")
    testcase.addCleanup(directory.cleanup)
    return Path(directory.name)


def _open(testcase: TestCase, path: Path, clock: Clock | None) -> SQLiteLocationStore:
    store = SQLiteLocationStore(path, reactor, clock=clock)
    testcase.addCleanup(store.close)
    return store


class SQLiteStoreTests(_Contract, TestCase):
    """The contract, for L{SQLiteLocationStore}, and what only a file can do."""

    def make_store(self) -> LocationStore:
        self.path = _temporary_directory(self) / "location.sqlite"
        return _open(self, self.path, self.clock)

    async def test_survives_reopen(self) -> None:
        """Closing and opening the same file gives back every binding, with all its fields."""
        stored = [
            binding(
                f"sip:user{n}@192.0.2.{n}:5060",
                aor=f"sip:user{n % 7}@example.com",
                cseq=n,
                params=(("q", f"0.{n % 10}"),),
                path=(f"<sip:edge{n}.example;lr>",),
                flow=FlowKey(TransportKind.TCP, Peer(f"192.0.2.{n}", 40000 + n), Peer("192.0.2.254", 5060), n),
                received=Peer(f"192.0.2.{n}", 40000 + n),
                user_agent=f"phone {n}",
            )
            for n in range(1, 51)
        ]
        aors = sorted({b.aor for b in stored})
        for aor in aors:
            await self.put(*[b for b in stored if b.aor == aor], aor=aor)
        before = {aor: await self.store.lookup(aor) for aor in aors}
        await self.store.close()
        reopened = _open(self, self.path, self.clock)
        after = {aor: await reopened.lookup(aor) for aor in aors}
        self.assertEqual(after, before)
        self.assertEqual(sorted(b.contact for bs in after.values() for b in bs), sorted(b.contact for b in stored))
        self.assertEqual(await reopened.count(), 50)

    async def test_wal_and_schema_version(self) -> None:
        """The file is in WAL mode and carries its schema version."""
        await self.put(binding())
        with sqlite3.connect(self.path) as connection:
            self.assertEqual(connection.execute("PRAGMA journal_mode").fetchone()[0], "wal")
            self.assertEqual(connection.execute("PRAGMA user_version").fetchone()[0], SCHEMA_VERSION)
            self.assertEqual(
                connection.execute("SELECT contact FROM binding").fetchall(), [("sip:alice@192.0.2.1:5060",)]
            )
        connection.close()

    async def test_newer_schema_refused(self) -> None:
        """A file written by a newer schema is refused, and left alone."""
        path = _temporary_directory(self) / "newer.sqlite"
        connection = sqlite3.connect(path)
        connection.execute("PRAGMA user_version=99")
        connection.close()
        store = _open(self, path, self.clock)
        with self.assertRaises(SchemaError):
            await store.ready
        with self.assertRaises(SchemaError):
            await store.lookup(ALICE)
        connection = sqlite3.connect(path)
        self.assertEqual(connection.execute("PRAGMA user_version").fetchone()[0], 99)
        connection.close()

    async def test_unopenable(self) -> None:
        """A path that cannot be opened fails each operation, not the reactor."""
        store = _open(self, _temporary_directory(self) / "missing" / "location.sqlite", self.clock)
        with self.assertRaises(sqlite3.OperationalError):
            await store.ready
        with self.assertRaises(sqlite3.OperationalError):
            await store.count()

    async def test_reactor_not_blocked(self) -> None:
        """
        While another connection holds the write lock, an update waits in the
        worker thread and the reactor keeps running; the update completes
        once the lock is released.
        """
        await self.store.count()  # the file exists, with its schema
        blocker = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(blocker.close)
        blocker.execute("BEGIN IMMEDIATE")
        update = self.store.update(ALICE, [Put(binding())])
        ticks = 0
        for _ in range(5):
            await deferLater(reactor, 0.01, lambda: None)
            ticks += 1
        self.assertEqual(ticks, 5)
        self.assertFalse(update.called)
        blocker.execute("COMMIT")
        self.assertTrue((await update).applied)

    async def test_survives_kill(self) -> None:
        """A process killed (SIGKILL) right after its updates fired loses none of them."""
        path = _temporary_directory(self) / "killed.sqlite"
        script = textwrap.dedent(
            """
            import os, signal, sys, time
            from twisted.internet import reactor
            from twisted.internet.defer import gatherResults
            from sipstack.services.location import Binding, Put
            from sipstack.services.location_sqlite import SQLiteLocationStore

            store = SQLiteLocationStore(sys.argv[1], reactor)
            expires = time.time() + 3600
            def put(n):
                aor = f"sip:u{n}@example.com"
                return store.update(aor, [Put(Binding(aor, f"sip:u{n}@192.0.2.{n}", expires, "c", 1))])

            updates = [put(n) for n in range(1, 101)]

            def written(results):
                assert all(result.applied for result in results)
                print("written", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)

            gatherResults(updates).addCallbacks(written, lambda failure: (failure.printTraceback(), os._exit(3)))
            reactor.run()
            """
        )
        child = _Child()
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent.parent)}
        reactor.spawnProcess(child, sys.executable, [sys.executable, "-c", script, str(path)], env=env)
        await child.ended
        self.assertIn(b"written", child.output, child.output)
        assert child.reason is not None
        self.assertEqual(getattr(child.reason.value, "signal", None), signal.SIGKILL, child.output)
        store = _open(self, path, None)
        self.assertEqual(await store.count(), 100)
        found = await store.lookup("sip:u42@example.com")
        self.assertEqual([b.contact for b in found], ["sip:u42@192.0.2.42"])


class _Child(ProcessProtocol):
    """A child process: its output, and how it ended."""

    def __init__(self) -> None:
        self.output = b""
        self.ended: Deferred[None] = Deferred()
        self.reason: Failure | None = None

    def outReceived(self, data: bytes) -> None:
        self.output += data

    def errReceived(self, data: bytes) -> None:
        self.output += data

    def processEnded(self, reason: Failure) -> None:
        self.reason = reason
        self.ended.callback(None)


class ServiceTests(TestCase):
    """L{LocationStoreService} sweeps expired bindings while it runs and closes the store when it stops."""

    async def test_sweeps_and_closes(self) -> None:
        clock = Clock()
        clock.advance(START)
        store = MemoryLocationStore(clock)
        swept: list[int] = []
        original = store.remove_expired

        def record(count: int) -> int:
            swept.append(count)
            return count

        def remove_expired(now: float) -> Deferred[int]:
            return original(now).addCallback(record)

        store.remove_expired = remove_expired  # type: ignore[method-assign]
        await store.update(ALICE, [Put(binding(expires_at=START + 30)), Put(binding("sip:alice@192.0.2.9"))])
        service = LocationStoreService(store, clock, interval=60)
        service.startService()
        self.assertEqual(swept, [0])
        clock.advance(60)
        self.assertEqual(swept, [0, 1])
        self.assertEqual(await store.count(), 1)
        await service.stopService()
        clock.advance(60)
        self.assertEqual(swept, [0, 1])
        with self.assertRaises(StoreClosed):
            await store.lookup(ALICE)


# The state machine: both stores, the same operations, the same answers.

_AORS = st.sampled_from([ALICE, BOB])
_CONTACTS = st.sampled_from(
    [
        "sip:alice@192.0.2.1:5060",
        "sip:alice@192.0.2.1:5060;transport=UDP",
        "sip:alice@192.0.2.1:5060;transport=udp",
        "sip:%61lice@192.0.2.1:5060;transport=udp",
        "sip:bob@[2001:db8::1]",
        "sips:bob@example.net",
    ]
)
_PARAMS = st.lists(
    st.sampled_from(
        [
            ("q", "0.5"),
            ("q", "1"),
            ("q", "0.001"),
            ("+sip.instance", '"<urn:uuid:1>"'),
            ("reg-id", "1"),
            ("reg-id", "2"),
            ("video", None),
        ]
    ),
    max_size=3,
    unique_by=lambda param: param[0],
).map(tuple)
_CALL_IDS = st.sampled_from(["call-1", "call-2"])
_CSEQS = st.integers(1, 6)
_FLOWS = st.none() | st.builds(
    FlowKey,
    st.sampled_from(list(TransportKind)),
    st.builds(Peer, st.sampled_from(["192.0.2.1", "2001:db8::1"]), st.integers(1, 65535)),
    st.builds(Peer, st.just("192.0.2.254"), st.just(5060)),
    st.integers(0, 10),
)


def _call(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Run C{function} in the reactor thread and wait for its result (a Deferred's too)."""
    return blockingCallFromThread(reactor, function, *args, **kwargs)


class StoreComparison(RuleBasedStateMachine):
    """
    Random updates, expiries and restarts applied to a SQLite store and a
    memory store, which must answer every operation alike.  Runs in a
    thread; each operation runs in the reactor thread.
    """

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.TemporaryDirectory(prefix="sipstack-location-")
        self.path = Path(self.directory.name) / "location.sqlite"
        self.clock = Clock()
        _call(self.clock.advance, START)
        self.memory = MemoryLocationStore(self.clock)
        self.sqlite: SQLiteLocationStore = _call(SQLiteLocationStore, self.path, reactor, clock=self.clock)
        _call(lambda: self.sqlite.ready)

    def both(self, operation: Any) -> Any:
        memory = _call(lambda: operation(self.memory))
        sqlite = _call(lambda: operation(self.sqlite))
        assert memory == sqlite, (memory, sqlite)
        return memory

    def update(self, aor: str, changes: list[Change], max_bindings: int | None) -> None:
        self.both(lambda store: store.update(aor, changes, max_bindings=max_bindings))

    @rule(
        aor=_AORS,
        contacts=st.lists(st.tuples(_CONTACTS, _PARAMS, st.integers(-10, 120)), min_size=1, max_size=3),
        call_id=_CALL_IDS,
        cseq=_CSEQS,
        path=st.lists(st.sampled_from(["<sip:edge.example;lr>", "<sip:[2001:db8::9];lr>"]), max_size=2).map(tuple),
        flow=_FLOWS,
        max_bindings=st.none() | st.integers(1, 4),
    )
    def put(  # noqa: PLR0917  # Hypothesis passes the drawn values by keyword
        self,
        aor: str,
        contacts: list[tuple[str, tuple[tuple[str, str | None], ...], int]],
        call_id: str,
        cseq: int,
        path: tuple[str, ...],
        flow: FlowKey | None,
        max_bindings: int | None,
    ) -> None:
        now = self.clock.seconds()
        changes: list[Change] = [
            Put(Binding(aor, contact, now + expires, call_id, cseq, params, path, flow, None, "ua"))
            for contact, params, expires in contacts
        ]
        self.update(aor, changes, max_bindings)

    @rule(aor=_AORS, contact=_CONTACTS, params=_PARAMS, call_id=_CALL_IDS, cseq=_CSEQS)
    def remove(
        self, aor: str, contact: str, params: tuple[tuple[str, str | None], ...], call_id: str, cseq: int
    ) -> None:
        key = Binding(aor, contact, 0, "x", 0, params).key
        self.update(aor, [Remove(key, call_id, cseq)], None)

    @rule(aor=_AORS, call_id=_CALL_IDS, cseq=_CSEQS)
    def remove_all(self, aor: str, call_id: str, cseq: int) -> None:
        self.update(aor, [RemoveAll(call_id, cseq)], None)

    @rule(seconds=st.integers(0, 90))
    def advance(self, seconds: int) -> None:
        _call(self.clock.advance, seconds)

    @rule(ahead=st.integers(-30, 30))
    def remove_expired(self, ahead: int) -> None:
        self.both(lambda store: store.remove_expired(self.clock.seconds() + ahead))

    @rule()
    def restart(self) -> None:
        _call(self.sqlite.close)
        self.sqlite = _call(SQLiteLocationStore, self.path, reactor, clock=self.clock)

    @invariant()
    def same_bindings(self) -> None:
        now = self.clock.seconds()
        for aor in (ALICE, BOB):
            bindings = self.both(lambda store, aor=aor: store.lookup(aor))
            assert all(b.expires_at > now and b.aor == aor for b in bindings)
            assert len({b.key for b in bindings}) == len(bindings)
            qs = [1.0 if b.q is None else b.q for b in bindings]
            assert qs == sorted(qs, reverse=True)
        self.both(lambda store: store.count())

    def teardown(self) -> None:
        _call(self.sqlite.close)
        self.directory.cleanup()


class StoreComparisonTests(TestCase):
    """The SQLite store behaves as the memory store under random operations, restarts included."""

    def test_same_answers(self) -> Deferred[None]:
        return deferToThread(run_state_machine_as_test, StoreComparison, settings=settings(stateful_step_count=20))
