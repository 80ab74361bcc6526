"""The stream runner: the one consume → decode → handle → encode → produce → commit loop.

Public names:

- :class:`Pipeline`: a service stage (sources, handler, route table, codec);
  its ``process`` is the loop body, shared by every bus.
- :class:`~semnexus_shared.stream.kafka.FaustBus`: runs pipelines as faust-streaming
  agents on Kafka (its own module, so in-memory tests never import faust).
- :class:`MemoryBus`: the same contract in memory, for pipeline tests.
- :class:`Inbound`, :class:`Record`, :class:`Route`, :class:`Emit`,
  :class:`Reject`, :func:`for_each`: what handlers see and return.
"""

from semnexus_shared.stream._memory import MemoryBus
from semnexus_shared.stream._model import (
    Emit,
    Inbound,
    OutRecord,
    Producer,
    Record,
    Reject,
    Route,
    for_each,
)
from semnexus_shared.stream._pipeline import (
    BatchHandler,
    EventCodec,
    Outcomes,
    Pipeline,
    RetryPolicy,
)

__all__ = [
    "BatchHandler",
    "Emit",
    "EventCodec",
    "Inbound",
    "MemoryBus",
    "OutRecord",
    "Outcomes",
    "Pipeline",
    "Producer",
    "Record",
    "Reject",
    "RetryPolicy",
    "Route",
    "for_each",
]
