"""The ledger's SQLite database: the dedupe set, the aggregates, the announced budgets.

Contract:

- One file under the configured data dir, WAL mode, ``synchronous=FULL`` (a
  committed batch survives power loss, so an offset committed after it never
  points past lost charges).
- :meth:`SqliteLedger.record` charges a batch in ONE transaction:
  ``INSERT OR IGNORE`` of each event id into ``charged`` is the dedupe, and only
  the rows it inserted are added to the ``daily`` aggregates. A crash before
  the commit leaves nothing; a crash after it (before the Kafka offset commit)
  makes the replay a no-op. Duplicates inside one batch are caught the same way.
- ``daily`` holds one :class:`~semnexus_cost_ledger.tally.Tally` per (tenant,
  UTC day, provider, model); reports sum it. ``budget_announced`` holds the
  last budget state announced per tenant.
- Reads (reports, the API) open their own short-lived connection, so they never
  wait for or block the writer (WAL readers see the last committed batch).
- Blocking SQLite calls run in a worker thread (``asyncio.to_thread``) so the
  consumer's event loop keeps serving heartbeats and the HTTP API.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from semnexus_cost_ledger.budgets import Assessment
from semnexus_cost_ledger.errors import LedgerBusyError
from semnexus_cost_ledger.pricing import Charge
from semnexus_cost_ledger.tally import Tally
from semnexus_shared.events import BudgetState

__all__ = ["GROUPS", "ReportRow", "SqliteLedger"]

KEYS = ("tenant_id", "day", "provider", "model")
GROUPS = frozenset(KEYS)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS charged (
    event_id    TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    day         TEXT NOT NULL,
    kind        TEXT NOT NULL,
    cost_micros INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS daily (
    tenant_id TEXT NOT NULL,
    day       TEXT NOT NULL,
    provider  TEXT NOT NULL,
    model     TEXT NOT NULL,
    {", ".join(f"{name} INTEGER NOT NULL DEFAULT 0" for name in Tally.FIELDS)},
    PRIMARY KEY (tenant_id, day, provider, model)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS budget_announced (
    tenant_id    TEXT PRIMARY KEY,
    period       TEXT NOT NULL,
    state        TEXT NOT NULL,
    spent_micros INTEGER NOT NULL
) WITHOUT ROWID;
"""

_UPSERT = (
    f"INSERT INTO daily ({', '.join(KEYS + Tally.FIELDS)}) "  # noqa: S608 - fixed column names
    f"VALUES ({', '.join('?' * (len(KEYS) + len(Tally.FIELDS)))}) "
    f"ON CONFLICT ({', '.join(KEYS)}) DO UPDATE SET "
    + ", ".join(f"{name} = {name} + excluded.{name}" for name in Tally.FIELDS)
)
_SUMS = ", ".join(f"SUM({name})" for name in Tally.FIELDS)


@dataclass(frozen=True, slots=True)
class ReportRow:
    """A sum of aggregate rows, keyed by the grouping columns asked for."""

    key: dict[str, str]
    tally: Tally


class SqliteLedger:
    """The ledger database at ``path`` (created on first use)."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 5.0) -> None:
        self.path = path
        self._timeout = busy_timeout_s
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the writer connection."""
        self._db.close()

    # ── writes (the pipeline's single writer) ────────────────────────────────

    def record_now(self, charges: Sequence[Charge]) -> list[Charge]:
        """Charge a batch in one transaction; return the charges that were new."""
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                new: list[Charge] = []
                for c in charges:
                    cur = db.execute(
                        "INSERT OR IGNORE INTO charged VALUES (?, ?, ?, ?, ?)",
                        (c.event_id, c.tenant_id, c.day.isoformat(), c.kind.value, c.cost_micros),
                    )
                    if cur.rowcount == 1:
                        new.append(c)
                rows: dict[tuple[str, str, str, str], Tally] = defaultdict(Tally)
                for c in new:
                    key = (c.tenant_id, c.day.isoformat(), c.provider, c.model)
                    rows[key] = rows[key] + Tally.of(c)
                db.executemany(_UPSERT, [key + t.values() for key, t in rows.items()])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise LedgerBusyError(f"{self.path}: {exc}") from exc
            raise
        return new

    async def record(self, charges: Sequence[Charge]) -> list[Charge]:
        """:meth:`record_now` off the event loop."""
        return await asyncio.to_thread(self.record_now, charges)

    async def spend(self, periods: Mapping[str, str]) -> dict[str, int]:
        """Micro-USD charged to each tenant in its period (tenant → ``YYYY-MM``)."""

        def query() -> dict[str, int]:
            return {
                tenant: int(
                    self._db.execute(
                        "SELECT COALESCE(SUM(cost_micros), 0) FROM daily "
                        "WHERE tenant_id = ? AND day >= ? AND day <= ?",
                        (tenant, f"{period}-01", f"{period}-31"),
                    ).fetchone()[0]
                )
                for tenant, period in periods.items()
            }

        return await asyncio.to_thread(query)

    async def announced(self) -> dict[str, Assessment]:
        """The last budget state announced per tenant."""
        return await asyncio.to_thread(self.announced_now)

    def announced_now(self) -> dict[str, Assessment]:
        """:meth:`announced`, blocking."""
        rows = self._db.execute(
            "SELECT tenant_id, period, state, spent_micros FROM budget_announced"
        ).fetchall()
        return {t: Assessment(t, p, BudgetState(s), int(m)) for t, p, s, m in rows}

    async def announce(self, assessments: Sequence[Assessment]) -> None:
        """Remember these as the tenants' announced states."""

        def write() -> None:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT OR REPLACE INTO budget_announced VALUES (?, ?, ?, ?)",
                    [(a.tenant_id, a.period, a.state.value, a.spent_micros) for a in assessments],
                )

        await asyncio.to_thread(write)

    # ── reads (reports; any thread) ──────────────────────────────────────────

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=self._timeout)
        try:
            yield conn
        finally:
            conn.close()

    def report(
        self,
        group: Sequence[str] = (),
        *,
        tenant: str | None = None,
        start: date | None = None,
        end: date | None = None,
    ) -> list[ReportRow]:
        """Sums of ``daily`` grouped by ``group`` columns, filtered; ``end`` is inclusive."""
        unknown = set(group) - GROUPS
        if unknown:
            raise ValueError(f"cannot group by {sorted(unknown)}")
        where, args = [], []
        if tenant is not None:
            where.append("tenant_id = ?")
            args.append(tenant)
        if start is not None:
            where.append("day >= ?")
            args.append(start.isoformat())
        if end is not None:
            where.append("day <= ?")
            args.append(end.isoformat())
        cols = ", ".join(group)
        sql = f"SELECT {cols + ', ' if cols else ''}{_SUMS} FROM daily"  # noqa: S608 - whitelisted
        if where:
            sql += " WHERE " + " AND ".join(where)
        if group:
            sql += f" GROUP BY {cols} ORDER BY {cols}"
        with self._reader() as conn:
            rows = conn.execute(sql, args).fetchall()
        n = len(group)
        return [
            ReportRow(dict(zip(group, row[:n], strict=True)), Tally.from_row(row[n:]))
            for row in rows
        ]

    def charged_count(self) -> int:
        """How many distinct usage events have been charged."""
        with self._reader() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM charged").fetchone()[0])

    def announced_report(self) -> dict[str, Assessment]:
        """The announced budget states, from a reader connection."""
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT tenant_id, period, state, spent_micros FROM budget_announced"
            ).fetchall()
        return {t: Assessment(t, p, BudgetState(s), int(m)) for t, p, s, m in rows}
