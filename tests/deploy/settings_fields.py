"""Which service settings an environment variable name reaches.

pydantic-settings ignores unknown ``SEMNEXUS_`` variables (``extra="ignore"``),
so a misspelt name in a ConfigMap or in docker-compose.yml would be dropped
without a word. :func:`unknown_variables` resolves each name through the
service's settings model (``SEMNEXUS_`` prefix, ``__`` nesting, case-insensitive)
and returns the ones that reach no field. :data:`SETTINGS` maps each service
(the ``app.kubernetes.io/component`` label) to its settings class.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel

from semnexus_cache_lookup.config import Settings as CacheLookupSettings
from semnexus_cost_ledger.config import LedgerSettings
from semnexus_provider_worker.config import WorkerSettings
from semnexus_router.config import RouterSettings
from semnexus_shared.config import ServiceSettings

PREFIX = "SEMNEXUS_"

SETTINGS: dict[str, type[ServiceSettings]] = {
    "cache-lookup": CacheLookupSettings,
    "router": RouterSettings,
    "provider-worker": WorkerSettings,
    "cost-ledger": LedgerSettings,
    # topics-init runs `semnexus topics apply`, which builds the shared settings
    "topics-init": ServiceSettings,
}


def reaches_field(model: type[BaseModel], name: str) -> bool:
    """True when ``SEMNEXUS_A__B`` names field ``a.b`` of ``model``."""
    current: type[BaseModel] | None = model
    for part in name.removeprefix(PREFIX).lower().split("__"):
        if current is None or part not in current.model_fields:
            return False
        annotation = current.model_fields[part].annotation
        current = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )
    return True


def unknown_variables(model: type[BaseModel], names: Iterable[str]) -> list[str]:
    """The ``SEMNEXUS_`` names among ``names`` that reach no field of ``model``."""
    return sorted(n for n in names if n.startswith(PREFIX) and not reaches_field(model, n))
