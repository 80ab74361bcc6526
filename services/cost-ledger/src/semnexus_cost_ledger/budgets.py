"""Monthly tenant budgets and the state a tenant's spend puts it in.

Contract:

- A :class:`TenantBudget` is a monthly amount in USD (decimal string), a
  warning fraction, and what the router does at the limit: ``downgrade`` to a
  named cheaper model alias, or ``reject``. Tenants without a budget are never
  assessed and never announced.
- The period is the UTC calendar month (``YYYY-MM``) of the usage events'
  ``created_at``; spend is the sum of ``cost_micros`` in that month.
- :func:`assess` maps spend to a :class:`~semnexus_shared.events.BudgetState`:
  ``exceeded`` at or above the budget, ``warning`` at or above the fraction,
  else ``ok``. The action is the configured one only when exceeded; the
  downgrade alias is always included when configured, so the router can
  prefer it for a tenant that is near its budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from semnexus_shared.events import BudgetAction, BudgetChanged, BudgetState, derive_event_id

__all__ = ["Assessment", "TenantBudget", "assess", "period_of"]


def _decimal_text(value: object) -> object:
    if isinstance(value, float):
        raise ValueError(  # noqa: TRY004 - pydantic turns only ValueError into a validation error
            f"amount {value!r} is a float; write it as a string, e.g. '100.00'"
        )
    return str(value) if isinstance(value, int) else value


class TenantBudget(BaseModel):
    """One tenant's monthly budget and what happens when it is spent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    monthly_usd: Annotated[Decimal, BeforeValidator(_decimal_text), Field(gt=0)]
    warn_fraction: Annotated[Decimal, BeforeValidator(_decimal_text), Field(gt=0, le=1)] = Decimal(
        "0.8"
    )
    action: Literal["downgrade", "reject"] = "reject"
    downgrade_alias: str | None = None

    @model_validator(mode="after")
    def _downgrade_needs_alias(self) -> Self:
        if self.action == "downgrade" and not self.downgrade_alias:
            raise ValueError("action 'downgrade' needs a downgrade_alias")
        return self

    @property
    def budget_micros(self) -> int:
        """The monthly amount in integer micro-USD."""
        return int(self.monthly_usd * 1_000_000)


def period_of(at: datetime) -> str:
    """The budget period (UTC month, ``YYYY-MM``) of an instant."""
    return f"{at.year:04d}-{at.month:02d}"


@dataclass(frozen=True, slots=True)
class Assessment:
    """A tenant's budget state in one period, as last announced or newly computed."""

    tenant_id: str
    period: str
    state: BudgetState
    spent_micros: int

    def changed_from(self, previous: Assessment | None) -> bool:
        """True when this must be announced: a new state or a new period."""
        if previous is None:
            return True
        return (self.period, self.state) != (previous.period, previous.state)

    def event(self, budget: TenantBudget) -> BudgetChanged:
        """The BudgetChanged the router follows; same inputs, same event id."""
        exceeded = self.state is BudgetState.EXCEEDED
        return BudgetChanged(
            event_id=derive_event_id("budget", self.tenant_id, self.period, self.state.value),
            tenant_id=self.tenant_id,
            period=self.period,
            spent_micros=self.spent_micros,
            budget_micros=budget.budget_micros,
            state=self.state,
            action=BudgetAction(budget.action) if exceeded else BudgetAction.NONE,
            downgrade_alias=budget.downgrade_alias,
        )


def assess(tenant_id: str, period: str, spent_micros: int, budget: TenantBudget) -> Assessment:
    """Where ``spent_micros`` puts the tenant against its budget."""
    limit = budget.budget_micros
    if spent_micros >= limit:
        state = BudgetState.EXCEEDED
    elif spent_micros >= budget.warn_fraction * limit:
        state = BudgetState.WARNING
    else:
        state = BudgetState.OK
    return Assessment(tenant_id, period, state, spent_micros)
