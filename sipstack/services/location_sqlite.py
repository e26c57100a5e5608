# -*- test-case-name: tests.services.test_location -*-
"""
A L{LocationStore} in a SQLite file: the default store, so that bindings
survive a restart.

SQLite blocks while it reads and writes, so all of its work runs in one
dedicated worker thread (a L{ThreadPool} of exactly one thread) and the
reactor only queues jobs and receives results.  One thread means one
connection used by one thread at a time (so it is opened with
C{check_same_thread=False} without risk) and updates applied in the order
they were asked for, one after another, each inside the write transaction:
two REGISTERs for the same address-of-record cannot interleave between
reading the bindings and writing them.

Jobs that queue up while the worker is busy run together in one transaction,
as if each were inside its own savepoint (one failing job undoes only
itself), and commit once: under load the cost of a commit is shared by the
whole batch.
The database is in WAL mode with C{synchronous=NORMAL}: a committed update
survives the process being killed; a power failure may lose the last
commits but never corrupts the file.

The schema version is SQLite's C{user_version}; a file written by a newer
schema is refused rather than misread.  The binding key
(L{sipstack.services.location.Binding.key}) is stored, so a change to how
keys are computed is a schema change.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from sipstack.clock import Clock
from sipstack.services.location import (
    Binding,
    Change,
    StoreClosed,
    UpdateResult,
    flow_from_text,
    flow_to_text,
    order_bindings,
    peer_from_text,
    peer_to_text,
    plan_update,
)

__all__ = ["SQLiteLocationStore", "SchemaError", "SCHEMA_VERSION"]

#: The schema this module writes (SQLite's C{PRAGMA user_version}).
SCHEMA_VERSION = 1

#: The statements that bring a file from the version of their key to the next.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    0: (
        """
        CREATE TABLE binding (
            aor TEXT NOT NULL,
            key TEXT NOT NULL,
            contact TEXT NOT NULL,
            params TEXT NOT NULL,
            expires_at REAL NOT NULL,
            call_id TEXT NOT NULL,
            cseq INTEGER NOT NULL,
            path TEXT NOT NULL,
            flow TEXT,
            received TEXT,
            user_agent TEXT,
            PRIMARY KEY (aor, key)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX binding_expiry ON binding (expires_at)",
    ),
}

_COLUMNS = "aor, key, contact, params, expires_at, call_id, cseq, path, flow, received, user_agent"
#: The most jobs one transaction runs.
_BATCH = 256

_T = TypeVar("_T")
_Job = Callable[[sqlite3.Connection], Any]
_Row = tuple[Any, ...]


class SchemaError(Exception):
    """The database file was written by a newer version of the schema."""


def _to_row(binding: Binding) -> _Row:
    return (
        binding.aor,
        binding.key,
        binding.contact,
        json.dumps(binding.params),
        binding.expires_at,
        binding.call_id,
        binding.cseq,
        json.dumps(binding.path),
        None if binding.flow is None else flow_to_text(binding.flow),
        None if binding.received is None else peer_to_text(binding.received),
        binding.user_agent,
    )


def _from_row(row: _Row) -> Binding:
    aor, _key, contact, params, expires_at, call_id, cseq, path, flow, received, user_agent = row
    return Binding(
        aor,
        contact,
        expires_at,
        call_id,
        cseq,
        tuple((name, value) for name, value in json.loads(params)),
        tuple(json.loads(path)),
        None if flow is None else flow_from_text(flow),
        None if received is None else peer_from_text(received),
        user_agent,
    )


def _connect(path: str) -> sqlite3.Connection:
    """Open the file (creating or migrating the schema); runs in the worker."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        (mode,) = connection.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode.lower() != "wal":
            raise sqlite3.OperationalError(f"{path}: cannot use WAL mode (journal mode is {mode})")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA busy_timeout=5000")
        connection.execute("BEGIN IMMEDIATE")
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise SchemaError(f"{path}: schema version {version} is newer than this sipstack's {SCHEMA_VERSION}")
        for step in range(version, SCHEMA_VERSION):
            for statement in _MIGRATIONS[step]:
                connection.execute(statement)
        connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        connection.close()
        raise
    return connection


class SQLiteLocationStore:
    """
    A L{LocationStore} in a SQLite file, worked on by one thread of its own.

    @ivar path: the database file.
    @ivar clock: the clock that tells which bindings have expired.
    @ivar ready: fires when the file is open and its schema current, or
        fails if it cannot be opened; operations may be queued before.
    """

    def __init__(self, path: str | os.PathLike[str], reactor: Any, *, clock: Clock | None = None) -> None:
        """
        @param path: the database file, created if missing.
        @param reactor: provides C{IReactorFromThreads} and
            C{IReactorCore}: results come back through it, and a shutdown
            trigger closes the store if the application did not.
        @param clock: the clock for expiry; the reactor by default.
        """
        self.path = os.fspath(path)
        self.clock: Clock = reactor if clock is None else clock
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name=f"sipstack-location {self.path}")
        self._pool.start()
        self._connection: sqlite3.Connection | None = None  # touched only by the worker
        self._queue: list[tuple[_Job, Deferred[Any]]] = []
        self._busy = False
        self._closed = False
        self._idle_waiters: list[Deferred[None]] = []
        self._close_waiters: list[Deferred[None]] | None = None
        self._close_outcome: Failure | bool | None = None
        self._trigger: Any = reactor.addSystemEventTrigger("before", "shutdown", self._shutdown)
        self.ready: Deferred[None] = self._submit(lambda connection: None)

    # The LocationStore interface

    def lookup(self, aor: str) -> Deferred[tuple[Binding, ...]]:
        now = self.clock.seconds()

        def job(connection: sqlite3.Connection) -> tuple[Binding, ...]:
            rows = connection.execute(
                f"SELECT {_COLUMNS} FROM binding WHERE aor = ? AND expires_at > ?", (aor, now)
            ).fetchall()
            return order_bindings(_from_row(row) for row in rows)

        return self._submit(job)

    def update(self, aor: str, changes: Sequence[Change], *, max_bindings: int | None = None) -> Deferred[UpdateResult]:
        now = self.clock.seconds()
        changes = tuple(changes)

        def job(connection: sqlite3.Connection) -> UpdateResult:
            rows = connection.execute(f"SELECT {_COLUMNS} FROM binding WHERE aor = ?", (aor,)).fetchall()
            plan = plan_update(aor, [_from_row(row) for row in rows], changes, now, max_bindings)
            if plan.removed:
                connection.executemany(
                    "DELETE FROM binding WHERE aor = ? AND key = ?", [(aor, key) for key in plan.removed]
                )
            if plan.written:
                connection.executemany(
                    f"INSERT OR REPLACE INTO binding ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [_to_row(binding) for binding in plan.written],
                )
            return plan.result

        return self._submit(job)

    def remove_expired(self, now: float) -> Deferred[int]:
        def job(connection: sqlite3.Connection) -> int:
            return connection.execute("DELETE FROM binding WHERE expires_at <= ?", (now,)).rowcount

        return self._submit(job)

    def count(self) -> Deferred[int]:
        now = self.clock.seconds()

        def job(connection: sqlite3.Connection) -> int:
            (count,) = connection.execute("SELECT COUNT(*) FROM binding WHERE expires_at > ?", (now,)).fetchone()
            return int(count)

        return self._submit(job)

    def close(self) -> Deferred[None]:
        """
        Refuse new work, finish what is queued, close the file and stop the
        worker thread.  Fires once all of that is done (each caller gets its
        own Deferred).
        """
        if self._close_outcome is not None:
            return fail(self._close_outcome) if isinstance(self._close_outcome, Failure) else succeed(None)
        waiter: Deferred[None] = Deferred()
        if self._close_waiters is not None:
            self._close_waiters.append(waiter)
            return waiter
        self._close_waiters = [waiter]
        self._closed = True
        if self._trigger is not None:
            self._reactor.removeSystemEventTrigger(self._trigger)
            self._trigger = None
        self._when_idle().addCallback(lambda _: deferToThreadPool(self._reactor, self._pool, self._disconnect)).addBoth(
            self._stopped
        )
        return waiter

    # The worker queue

    def _submit(self, job: Callable[[sqlite3.Connection], _T]) -> Deferred[_T]:
        if self._closed:
            return fail(StoreClosed())
        result: Deferred[_T] = Deferred()
        self._queue.append((job, result))
        if not self._busy:
            self._next_batch()
        return result

    def _next_batch(self) -> None:
        batch, self._queue = self._queue[:_BATCH], self._queue[_BATCH:]
        self._busy = True
        deferToThreadPool(self._reactor, self._pool, self._run, [job for job, _ in batch]).addBoth(
            self._delivered, [result for _, result in batch]
        )

    def _delivered(self, outcome: list[tuple[bool, Any]] | Failure, results: list[Deferred[Any]]) -> None:
        self._busy = False
        if self._queue:
            self._next_batch()
        else:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                waiter.callback(None)
        if isinstance(outcome, Failure):
            for result in results:
                result.errback(outcome)
            return
        for result, (ok, value) in zip(results, outcome, strict=True):
            if ok:
                result.callback(value)
            else:
                result.errback(value)

    def _when_idle(self) -> Deferred[None]:
        waiter: Deferred[None] = Deferred()
        if self._busy or self._queue:
            self._idle_waiters.append(waiter)
        else:
            waiter.callback(None)
        return waiter

    def _run(self, jobs: list[_Job]) -> list[tuple[bool, Any]]:
        """
        Run a batch in one transaction; in the worker thread.

        Jobs nearly never fail, so the batch first runs without a savepoint
        per job (two statements a job saved).  If one does fail, the whole
        transaction is rolled back and the batch runs again with each job
        in a savepoint, so that the failure undoes only its own job: the
        jobs read and write nothing but the database, so running them again
        from the same state gives the same results.
        """
        connection = self._connection
        if connection is None:
            connection = self._connection = _connect(self.path)
        outcomes = self._transaction(connection, jobs, savepoints=False)
        if outcomes is None:
            outcomes = self._transaction(connection, jobs, savepoints=True)
        assert outcomes is not None
        return outcomes

    @staticmethod
    def _transaction(
        connection: sqlite3.Connection, jobs: list[_Job], *, savepoints: bool
    ) -> list[tuple[bool, Any]] | None:
        """
        Run C{jobs} in one transaction and commit it.  Without savepoints, a
        failing job rolls everything back and the answer is L{None}.
        """
        outcomes: list[tuple[bool, Any]] = []
        connection.execute("BEGIN IMMEDIATE")
        try:
            for job in jobs:
                if savepoints:
                    connection.execute("SAVEPOINT job")
                try:
                    value = job(connection)
                except Exception:
                    if not savepoints:
                        connection.execute("ROLLBACK")
                        return None
                    connection.execute("ROLLBACK TO job")
                    connection.execute("RELEASE job")
                    outcomes.append((False, Failure()))  # type: ignore[no-untyped-call]  # unannotated in Twisted 26.10
                else:
                    if savepoints:
                        connection.execute("RELEASE job")
                    outcomes.append((True, value))
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return outcomes

    def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _stopped(self, outcome: object) -> None:
        self._pool.stop()
        self._close_outcome = outcome if isinstance(outcome, Failure) else True
        waiters, self._close_waiters = self._close_waiters or [], []
        for waiter in waiters:
            if isinstance(outcome, Failure):
                waiter.errback(outcome)
            else:
                waiter.callback(None)

    def _shutdown(self) -> Deferred[None]:
        # The reactor is stopping: the trigger is firing, so it must not be removed.
        self._trigger = None
        return self.close()
