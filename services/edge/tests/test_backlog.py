"""The per-browser backlog: partials give way, finals wait, order holds."""

from __future__ import annotations

import asyncio

import pytest

from livetranslate.edge.backlog import Backlog, Frame


def partial(seq: int) -> Frame:
    return Frame(seq=seq, text=f"p{seq}", droppable=True)


def final(seq: int) -> Frame:
    return Frame(seq=seq, text=f"f{seq}", droppable=False)


async def drain(backlog: Backlog) -> list[int]:
    return [(await backlog.get()).seq for _ in range(len(backlog))]


async def test_frames_come_out_in_the_order_they_went_in() -> None:
    backlog = Backlog(max_frames=4)
    for frame in (final(1), partial(2), final(3)):
        await backlog.put(frame)

    assert await drain(backlog) == [1, 2, 3]


async def test_a_full_backlog_evicts_its_oldest_partial_for_a_final() -> None:
    backlog = Backlog(max_frames=3)
    for frame in (partial(1), final(2), partial(3)):
        await backlog.put(frame)

    await backlog.put(final(4))

    assert await drain(backlog) == [2, 3, 4]
    assert backlog.dropped == 1


async def test_a_newer_partial_replaces_an_older_one_when_full() -> None:
    backlog = Backlog(max_frames=2)
    for frame in (partial(1), final(2), partial(3)):
        await backlog.put(frame)

    assert await drain(backlog) == [2, 3]


async def test_a_partial_is_refused_when_the_backlog_is_full_of_finals() -> None:
    backlog = Backlog(max_frames=2)
    for frame in (final(1), final(2), partial(3)):
        await backlog.put(frame)

    assert await drain(backlog) == [1, 2]
    assert backlog.dropped == 1


async def test_a_final_waits_for_room_instead_of_being_dropped() -> None:
    backlog = Backlog(max_frames=1)
    await backlog.put(final(1))
    waiting = asyncio.create_task(backlog.put(final(2)))
    await asyncio.sleep(0.01)
    assert not waiting.done()

    assert (await backlog.get()).seq == 1
    await asyncio.wait_for(waiting, 1)
    assert (await backlog.get()).seq == 2


def test_a_backlog_needs_room() -> None:
    with pytest.raises(ValueError, match="at least one frame"):
        Backlog(max_frames=0)


async def test_every_dropped_partial_is_reported() -> None:
    reported = []
    backlog = Backlog(max_frames=1, on_drop=lambda: reported.append(1))
    for frame in (partial(1), partial(2), final(3), partial(4)):
        await backlog.put(frame)

    assert len(reported) == backlog.dropped == 3
    assert await drain(backlog) == [3]


async def test_closing_releases_a_waiting_final_and_lets_later_frames_go() -> None:
    backlog = Backlog(max_frames=1)
    await backlog.put(final(1))
    waiting = asyncio.create_task(backlog.put(final(2)))
    await asyncio.sleep(0.01)

    backlog.close()

    await asyncio.wait_for(waiting, 1)
    assert backlog.offer(final(3))
    assert len(backlog) == 0
