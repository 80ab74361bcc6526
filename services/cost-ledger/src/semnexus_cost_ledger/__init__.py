"""SemNexus cost-ledger: charges each usage event once, keeps per-tenant spend, announces budgets.

Consumes ``usage`` (UsageRecorded), produces ``budget`` (BudgetChanged, key
tenant_id), serves reports over HTTP (``/api/spend``, ``/api/tenants``, ``/``)
and on the command line (``semnexus ledger report|rebuild``).
"""

from semnexus_cost_ledger.budgets import TenantBudget
from semnexus_cost_ledger.config import LedgerSettings
from semnexus_cost_ledger.handlers import Ledger
from semnexus_cost_ledger.pricing import Charge, PriceTable, charge
from semnexus_cost_ledger.store import SqliteLedger
from semnexus_cost_ledger.tally import Tally

__all__ = [
    "Charge",
    "Ledger",
    "LedgerSettings",
    "PriceTable",
    "SqliteLedger",
    "Tally",
    "TenantBudget",
    "charge",
]
