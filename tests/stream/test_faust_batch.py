"""The faust bus's micro-batch: it waits for a first event, then fills or lingers.

No broker here: the batch is driven with stand-in events (what faust hands an
agent) and a stand-in pipeline that records each batch it processes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from semnexus_shared.stream.kafka import _Batch


def event(offset: int) -> SimpleNamespace:
    message = SimpleNamespace(
        topic="t", partition=0, offset=offset, key=b"k", value=b"v", headers=(), timestamp=1.0
    )
    return SimpleNamespace(message=message)


@dataclass
class Recorder:
    name: str = "p"
    batches: list[list[int]] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)
    crashed: list[str] = field(default_factory=list)
    hold: asyncio.Event | None = None
    fail: bool = False
    # Offsets whose decision is deferred: their batch calls on_waiting, then waits for `park`.
    deferred: frozenset[int] = frozenset()
    park: asyncio.Event = field(default_factory=asyncio.Event)

    async def process(self, records: list[Any], _producer: object, on_waiting: Any = None) -> None:
        self.batches.append([r.offset for r in records])
        if self.hold is not None:
            await self.hold.wait()
        if self.deferred.intersection(r.offset for r in records):
            on_waiting()
            await self.park.wait()
        if self.fail:
            raise RuntimeError("boom")

    async def ack(self, e: Any) -> bool:
        self.acked.append(e.message.offset)
        return True

    def crash(self, reason: str) -> None:  # the real one never returns
        self.crashed.append(reason)


def batch_of(recorder: Recorder, hold: float = 0.0) -> _Batch:
    return _Batch(recorder, None, recorder.crash, recorder.ack, hold)  # type: ignore[arg-type]


async def test_a_lone_event_is_processed_after_the_linger_and_not_before() -> None:
    recorder = Recorder()
    batch = batch_of(recorder)
    await batch.add(event(0), most=10, linger=0.05)
    await asyncio.sleep(0.01)
    assert recorder.batches == []
    await asyncio.sleep(0.08)
    assert recorder.batches == [[0]]
    assert recorder.acked == [0]


async def test_a_full_batch_goes_at_once_and_disarms_its_timer() -> None:
    recorder = Recorder()
    batch = batch_of(recorder)
    for n in range(3):
        await batch.add(event(n), most=3, linger=0.05)
    assert recorder.batches == [[0, 1, 2]]
    assert recorder.acked == [0, 1, 2]
    await asyncio.sleep(0.08)
    assert recorder.batches == [[0, 1, 2]]  # the timer of event 0 did not fire an empty flush


async def test_events_are_acked_only_after_their_batch_was_processed() -> None:
    recorder = Recorder(hold=asyncio.Event())
    batch = batch_of(recorder)
    await batch.add(event(0), most=10, linger=0.01)
    await asyncio.sleep(0.03)
    assert recorder.batches == [[0]]
    assert recorder.acked == []
    # Events arriving while a batch is processed wait for the next one.
    await batch.add(event(1), most=10, linger=0.01)
    await batch.add(event(2), most=10, linger=0.01)
    await asyncio.sleep(0.03)
    assert recorder.batches == [[0]]
    recorder.hold.set()
    await asyncio.sleep(0.05)
    assert recorder.batches == [[0], [1, 2]]
    assert recorder.acked == [0, 1, 2]


async def test_a_full_batch_waits_for_the_batch_in_process() -> None:
    recorder = Recorder(hold=asyncio.Event())
    batch = batch_of(recorder)
    await batch.add(event(0), most=2, linger=0.01)
    await asyncio.sleep(0.03)
    await batch.add(event(1), most=2, linger=0.01)
    adding = asyncio.ensure_future(batch.add(event(2), most=2, linger=0.01))
    await asyncio.sleep(0.03)
    assert not adding.done()  # back-pressure: the agent takes no more events
    recorder.hold.set()
    await asyncio.wait_for(adding, 1)
    assert recorder.batches == [[0], [1, 2]]


@pytest.mark.parametrize("most", [1, 5])
async def test_a_failing_batch_crashes_and_acks_nothing(most: int) -> None:
    recorder = Recorder(fail=True)
    batch = batch_of(recorder)
    await batch.add(event(0), most=most, linger=0.01)
    await asyncio.sleep(0.05)
    assert recorder.acked == []
    assert len(recorder.crashed) == 1
    assert "RuntimeError: boom" in recorder.crashed[0]


async def test_a_batch_left_waiting_for_deferred_decisions_lets_the_next_one_run() -> None:
    recorder = Recorder(deferred=frozenset({0}))
    batch = batch_of(recorder)
    await batch.add(event(0), most=10, linger=0.01)
    await asyncio.sleep(0.03)
    # Event 0's batch waits for its twin's answer; the agent's next batch goes meanwhile.
    await batch.add(event(1), most=10, linger=0.01)
    await batch.add(event(2), most=10, linger=0.01)
    await asyncio.sleep(0.05)
    assert recorder.batches == [[0], [1, 2]]
    assert recorder.acked == [1, 2]  # offset 0 stays unacknowledged: no commit past it
    recorder.park.set()
    await asyncio.sleep(0.03)
    assert recorder.acked == [1, 2, 0]
    assert recorder.crashed == []


async def test_a_waiting_batch_keeps_the_turn_for_its_hold_then_passes_it() -> None:
    recorder = Recorder(deferred=frozenset({0}))
    batch = batch_of(recorder, hold=0.3)
    await batch.add(event(0), most=10, linger=0.01)
    await batch.add(event(1), most=10, linger=0.01)  # lands in event 0's batch
    await asyncio.sleep(0.03)
    await batch.add(event(2), most=10, linger=0.01)
    await asyncio.sleep(0.06)
    assert recorder.batches == [[0, 1]]  # still held: event 2 waits its turn
    await asyncio.sleep(0.35)
    assert recorder.batches == [[0, 1], [2]]  # the hold ran out, the turn passed
    assert recorder.acked == [2]
    recorder.park.set()
    await asyncio.sleep(0.03)
    assert recorder.acked == [2, 0, 1]


async def test_an_answer_within_the_hold_finishes_the_batch_in_its_own_turn() -> None:
    recorder = Recorder(deferred=frozenset({0}))
    batch = batch_of(recorder, hold=0.5)
    await batch.add(event(0), most=10, linger=0.01)
    await asyncio.sleep(0.03)
    await batch.add(event(1), most=10, linger=0.01)
    await asyncio.sleep(0.03)
    assert recorder.batches == [[0]]
    recorder.park.set()  # the twin's answer comes while the batch holds the turn
    await asyncio.sleep(0.05)
    assert recorder.batches == [[0], [1]]
    assert recorder.acked == [0, 1]


async def test_a_waiting_batch_that_fails_later_still_crashes_and_acks_nothing() -> None:
    recorder = Recorder(deferred=frozenset({0}), fail=True)
    batch = batch_of(recorder)
    await batch.add(event(0), most=10, linger=0.01)
    await asyncio.sleep(0.03)
    assert recorder.crashed == []
    recorder.park.set()
    await asyncio.sleep(0.03)
    assert recorder.acked == []
    assert len(recorder.crashed) == 1
    assert "RuntimeError: boom" in recorder.crashed[0]
