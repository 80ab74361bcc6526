"""Settings of the router, and the model-alias catalog it routes by.

Contract: :class:`RouterSettings` is built once in ``main()`` from
``SEMNEXUS_*`` variables (``SEMNEXUS_PROVIDERS_FILE``,
``SEMNEXUS_DEFAULT_DEADLINE_S``, ``SEMNEXUS_REPLY_TOPICS_ALLOWED='["app.replies"]'`` …).
:func:`load_catalog` reads the ``aliases`` section of the providers file (the
``providers`` section's details are the provider-worker's; only their names
matter here): each alias is an ordered chain of ``provider:model`` entries
and may name a cheaper ``downgrade`` alias. Every chain entry must name a
declared provider and every downgrade a declared alias, or loading fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from semnexus_router.errors import CatalogError
from semnexus_shared.config import ServiceSettings

__all__ = ["Alias", "Catalog", "ChainEntry", "RouterSettings", "load_catalog"]


@dataclass(frozen=True, slots=True)
class ChainEntry:
    """One step of a chain: a provider and the model to ask it for."""

    provider: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"

    @classmethod
    def parse(cls, text: str) -> ChainEntry:
        """Read ``provider:model`` (the model may itself contain colons)."""
        provider, sep, model = text.partition(":")
        if not sep or not provider or not model:
            raise ValueError(f"chain entry {text!r} is not provider:model")
        return cls(provider, model)


class Alias(BaseModel):
    """A model alias: its provider chain and an optional cheaper alias."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chain: tuple[str, ...] = Field(min_length=1)
    downgrade: str | None = None

    @field_validator("chain")
    @classmethod
    def _entries_parse(cls, chain: tuple[str, ...]) -> tuple[str, ...]:
        for entry in chain:
            ChainEntry.parse(entry)
        return chain

    def entries(self) -> tuple[ChainEntry, ...]:
        """The chain, parsed."""
        return tuple(ChainEntry.parse(e) for e in self.chain)


class Catalog(BaseModel):
    """Every alias, and the names of the providers they may use."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    providers: tuple[str, ...]
    aliases: dict[str, Alias]


class RouterSettings(ServiceSettings):
    """Everything the router process is configured with."""

    service_name: str = "router"
    providers_file: Path = Path("infra/providers.yaml")
    # Deadline given to requests that carry none.
    default_deadline_s: float = Field(default=60.0, gt=0)
    reply_topics_allowed: tuple[str, ...] = ()
    # A tenant whose budget is at warning uses its alias's downgrade chain.
    prefer_cheaper_on_warning: bool = True
    # Retry hint when every provider is out and none said until when.
    unavailable_retry_ms: int = Field(default=5000, ge=0)
    concurrency: int = Field(default=16, ge=1)


def load_catalog(path: Path) -> Catalog:
    """The alias catalog of the providers file; raises :class:`CatalogError`."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        providers = data.get("providers") or {}
        catalog = Catalog.model_validate(
            {"providers": tuple(providers), "aliases": data.get("aliases") or {}}
        )
    except (OSError, ValueError, AttributeError, ValidationError, yaml.YAMLError) as exc:
        raise CatalogError(f"cannot load providers file {path}: {exc}") from exc
    for name, alias in catalog.aliases.items():
        unknown = [e.provider for e in alias.entries() if e.provider not in catalog.providers]
        if unknown:
            raise CatalogError(f"alias {name!r} names undeclared provider(s) {unknown}")
        if alias.downgrade is not None and alias.downgrade not in catalog.aliases:
            raise CatalogError(f"alias {name!r} downgrades to unknown alias {alias.downgrade!r}")
    return catalog
