"""Entry point: ``semnexus-cost-ledger`` / ``python -m semnexus_cost_ledger``."""

from __future__ import annotations

from semnexus_cost_ledger.app import build_for
from semnexus_cost_ledger.config import LedgerSettings
from semnexus_cost_ledger.pricing import PriceTable
from semnexus_cost_ledger.store import SqliteLedger
from semnexus_shared.service import run_service


def main() -> None:
    """Build settings, the price table and the database, then run the service."""
    settings = LedgerSettings()
    prices = PriceTable.load(settings.prices_file)
    store = SqliteLedger(settings.database)
    run_service(settings, build_for(settings, store, prices))


if __name__ == "__main__":
    main()
