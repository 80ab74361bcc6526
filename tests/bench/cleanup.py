"""What a benchmark run leaves behind on the shared local stack, removed at its end.

Every run works on its own topic prefix and Milvus collection. Left there, the
collections stay loaded in the Milvus server (each with its channels and
segments), so later runs measured a busier server than the first.
"""

from __future__ import annotations

import contextlib

from semnexus_shared.config import KafkaSettings


def drop_collection(uri: str, name: str) -> None:
    """Remove a run's collection from the Milvus server, if it was created."""
    from pymilvus import MilvusClient  # noqa: PLC0415  (heavy; only at the end)

    with contextlib.suppress(Exception):
        client = MilvusClient(uri=uri, timeout=10)
        if client.has_collection(name):
            client.drop_collection(name)


async def delete_topics(kafka: KafkaSettings, prefix: str) -> None:
    """Delete a run's topics (they are the run's alone); failures are ignored."""
    from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415

    with contextlib.suppress(Exception):
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.servers)
        await admin.start()
        try:
            names = [t for t in await admin.list_topics() if t.startswith(prefix)]
            if names:
                await admin.delete_topics(names)
        finally:
            await admin.close()
