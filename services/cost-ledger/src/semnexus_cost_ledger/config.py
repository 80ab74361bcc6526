"""The cost-ledger's settings: the shared sections plus prices, budgets, storage and HTTP.

Built once in ``main()`` (or by the CLI) and passed down. Environment examples::

    SEMNEXUS_DATA_DIR=/var/lib/semnexus/cost-ledger
    SEMNEXUS_PRICES_FILE=infra/prices.yaml
    SEMNEXUS_BUDGETS_FILE=budgets.yaml
    SEMNEXUS_BUDGETS='{"acme": {"monthly_usd": "500", "action": "downgrade",
                                "downgrade_alias": "chat-economy"}}'
    SEMNEXUS_HTTP__PORT=8700

A budgets file is a YAML mapping ``{tenant: {monthly_usd, warn_fraction, action,
downgrade_alias}}``; the special tenant ``"*"`` is the default for tenants not
listed. Entries in ``budgets`` override the file's.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from semnexus_cost_ledger.budgets import TenantBudget
from semnexus_cost_ledger.errors import BudgetConfigError
from semnexus_shared.config import ServiceSettings

__all__ = ["HttpSettings", "LedgerSettings"]

DEFAULT_TENANT = "*"
LEDGER_BATCH_LINGER_S = 0.05


class HttpSettings(BaseModel):
    """Where the report API and page listen."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8700, ge=0, le=65535)


class LedgerSettings(ServiceSettings):
    """Settings of one cost-ledger process."""

    service_name: str = "cost-ledger"
    data_dir: Path = Path(".stack/data/cost-ledger")
    prices_file: Path = Path("infra/prices.yaml")
    budgets_file: Path | None = None
    budgets: dict[str, TenantBudget] = Field(default_factory=dict)
    max_batch: int = Field(default=500, ge=1)

    # Budgets tolerate 50 ms; bigger batches amortise the per-batch fsync (measured: 5 ms
    # linger ~4k events/s, 50 ms ~5.5k/s on 2 cores).
    default_batch_linger_s: ClassVar[float | None] = LEDGER_BATCH_LINGER_S

    http: HttpSettings = Field(default_factory=HttpSettings)

    @property
    def database(self) -> Path:
        """The live ledger database file."""
        return self.data_dir / "ledger.sqlite"

    def all_budgets(self) -> dict[str, TenantBudget]:
        """Budgets from the file, overridden by ``budgets``; ``"*"`` is the default."""
        merged: dict[str, TenantBudget] = {}
        if self.budgets_file is not None:
            try:
                document = yaml.safe_load(self.budgets_file.read_text(encoding="utf-8")) or {}
                merged = {str(t): TenantBudget.model_validate(b) for t, b in dict(document).items()}
            except (OSError, yaml.YAMLError, ValidationError, TypeError, ValueError) as exc:
                raise BudgetConfigError(f"budgets file {self.budgets_file}: {exc}") from exc
        merged.update(self.budgets)
        return merged
