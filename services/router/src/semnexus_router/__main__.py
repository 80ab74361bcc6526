"""Entry point: ``python -m semnexus_router`` (or ``semnexus-router``).

Builds :class:`RouterSettings` from the environment, loads the alias catalog
from the providers file, checks that every provider it can route to has a
topic, and runs the router until stopped. Exit status 2 when the catalog is
unusable.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from semnexus_router.app import build
from semnexus_router.config import RouterSettings, load_catalog
from semnexus_router.errors import CatalogError
from semnexus_shared.service import run_service


def _now() -> datetime:
    return datetime.now(UTC)


def main() -> None:
    """Run the router."""
    settings = RouterSettings()
    try:
        catalog = load_catalog(settings.providers_file)
    except CatalogError as exc:
        print(f"semnexus-router: {exc}", file=sys.stderr)
        sys.exit(2)
    missing = sorted(set(catalog.providers) - set(settings.topics.providers))
    if missing:
        print(
            f"semnexus-router: providers {missing} have no topic; "
            "add them to SEMNEXUS_TOPICS__PROVIDERS",
            file=sys.stderr,
        )
        sys.exit(2)
    run_service(settings, lambda ctx: build(ctx, settings, catalog, _now))


if __name__ == "__main__":
    main()
