"""Entry point: ``python -m semnexus_provider_worker`` (or ``semnexus-provider-worker``).

Builds :class:`WorkerSettings` from the environment, loads the providers it
serves from the providers file (keys from the variables the file names), and
runs the worker until stopped. Exit status 2 when the providers file is
unusable.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

from semnexus_provider_worker.app import build
from semnexus_provider_worker.config import WorkerSettings, load_providers
from semnexus_provider_worker.errors import CatalogError
from semnexus_shared.service import run_service


def _now() -> datetime:
    return datetime.now(UTC)


def main() -> None:
    """Run the provider-worker."""
    settings = WorkerSettings()
    try:
        providers = load_providers(settings.providers_file, os.environ, settings.served())
    except CatalogError as exc:
        print(f"semnexus-provider-worker: {exc}", file=sys.stderr)
        sys.exit(2)
    run_service(settings, lambda ctx: build(ctx, settings, providers, _now))


if __name__ == "__main__":
    main()
