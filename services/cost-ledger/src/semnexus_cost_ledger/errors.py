"""The cost-ledger's exceptions, all rooted in :class:`~semnexus_shared.errors.SemNexusError`.

::

    SemNexusError
    ├── TransientError
    │   └── LedgerBusyError        the SQLite file is locked past its timeout:
    │                              the runner retries the batch (dedupe makes
    │                              the retry safe), then crashes uncommitted
    └── LedgerError                the ledger cannot start or run; crashes the
        ├── PriceTableError        the price file is missing, malformed, uses a
        │                          float for money, or has overlapping versions
        └── BudgetConfigError      a budget is malformed (downgrade with no alias)

A usage event for a model the price table does not know is not an error: it
is charged 0 and counted as ``unpriced`` (see :mod:`semnexus_cost_ledger.pricing`).
"""

from __future__ import annotations

from semnexus_shared.errors import SemNexusError, TransientError

__all__ = ["BudgetConfigError", "LedgerBusyError", "LedgerError", "PriceTableError"]


class LedgerError(SemNexusError):
    """The ledger cannot start or continue; the process stops."""


class PriceTableError(LedgerError):
    """The price table file is invalid."""


class BudgetConfigError(LedgerError):
    """A tenant budget is invalid."""


class LedgerBusyError(TransientError):
    """The ledger database stayed locked; the batch is retried."""
