"""Fixtures for the serde tests: the repo's schema registry and a codec over it."""

from __future__ import annotations

import pytest

from semnexus_shared.serde import Codec, SchemaRegistry


@pytest.fixture(scope="session")
def registry() -> SchemaRegistry:
    """Every schema under the repo's schemas/, loaded once."""
    return SchemaRegistry.load()


@pytest.fixture(scope="session")
def codec(registry: SchemaRegistry) -> Codec:
    """A codec bound to every event type."""
    return Codec(registry)
