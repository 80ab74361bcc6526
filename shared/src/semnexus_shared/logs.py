"""structlog JSON logging, configured once per process.

Each handled event produces exactly one rich line (the runner writes it) with
the service, request id, tenant, trace id, outcome and latency. Prompt and
answer text never go into a log line; the processor :func:`_drop_content`
removes such keys defensively in case a caller passes them by mistake.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from semnexus_shared.config import LogSettings

# Keys that may carry user content or credentials; never written.
_FORBIDDEN_KEYS = frozenset(
    {"prompt", "messages", "text", "answer", "content", "api_key", "authorization"}
)


def _drop_content(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in _FORBIDDEN_KEYS & event_dict.keys():
        event_dict[key] = "[redacted]"
    return event_dict


def configure_logging(settings: LogSettings, service: str) -> None:
    """Route structlog and stdlib logging to one JSON line per record on stdout."""
    level = logging.getLevelNamesMapping().get(settings.level.upper(), logging.INFO)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.json_lines
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_content,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    # Third-party libraries (faust, aiokafka) log through stdlib: same format.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(level, logging.WARNING))
