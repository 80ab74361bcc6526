"""How a service process starts: what it builds is frozen out of the collector before it runs."""

from __future__ import annotations

import gc
from typing import Any, NoReturn

import pytest

from semnexus_shared import service
from semnexus_shared.config import ServiceSettings
from semnexus_shared.service import ServiceContext, Wiring
from semnexus_shared.stream import kafka


class _Ran(Exception):
    pass


def test_what_build_made_is_frozen_before_the_bus_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[object] = []
    seen: dict[str, Any] = {}

    def build(_context: ServiceContext) -> Wiring:
        made.append({"a model's": ["weights"]})
        return Wiring(pipelines=[])

    def run(_bus: kafka.FaustBus, loglevel: str = "warning") -> NoReturn:
        seen["frozen"] = gc.get_freeze_count()
        # get_objects() walks the collected generations only, not the frozen one.
        seen["still collected"] = any(o is made[0] for o in gc.get_objects())
        raise _Ran

    monkeypatch.setattr(kafka.FaustBus, "run", run)
    monkeypatch.setattr(service, "configure_logging", lambda *_: None)
    monkeypatch.setattr(service, "configure_tracing", lambda *_: None)
    monkeypatch.setattr(service, "configure_metrics", lambda *_: None)
    try:
        with pytest.raises(_Ran):
            service.run_service(ServiceSettings(), build)
    finally:
        gc.unfreeze()
    assert seen["frozen"] > 0
    assert seen["still collected"] is False
