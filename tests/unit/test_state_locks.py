"""Locks in the state database: one holder, takeover only of a stale holder, and only by one contender."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from stratus.state import Holder, Locks, default_url, open_database


@pytest.fixture
def locks(tmp_path: Path) -> Locks:
    return Locks(open_database(default_url(tmp_path / ".stratus")))


def never(_: Holder) -> bool:
    return False


def always(_: Holder) -> bool:
    return True


def test_a_held_lock_is_refused_to_others_and_released_only_by_its_owner(locks: Locks) -> None:
    assert locks.try_acquire("run:p", "a", never) == (True, None)
    taken, holder = locks.try_acquire("run:p", "b", never)
    assert not taken
    assert holder is not None
    assert holder.owner == "a"
    locks.release("run:p", "b")  # not b's to release
    assert locks.try_acquire("run:p", "b", never)[0] is False
    locks.release("run:p", "a")
    assert locks.try_acquire("run:p", "b", never) == (True, None)


def test_a_stale_holder_is_taken_over_and_can_no_longer_renew(locks: Locks) -> None:
    locks.try_acquire("run:p", "dead", never)
    taken, previous = locks.try_acquire("run:p", "new", always)
    assert taken
    assert previous is not None
    assert previous.owner == "dead"
    assert not locks.renew("run:p", "dead")
    assert locks.renew("run:p", "new")
    locks.release("run:p", "dead")  # the old holder's release must not free the new holder's lock
    holder = locks.holder("run:p")
    assert holder is not None
    assert holder.owner == "new"


def test_a_holder_that_renews_while_judged_stale_keeps_its_lock(locks: Locks) -> None:
    locks.try_acquire("run:p", "slow", never)

    def renews_meanwhile(holder: Holder) -> bool:
        locks.renew("run:p", "slow")  # it was alive after all: the version moves on under the contender
        return True

    assert locks.try_acquire("run:p", "eager", renews_meanwhile)[0] is False
    holder = locks.holder("run:p")
    assert holder is not None
    assert holder.owner == "slow"


def test_of_many_contenders_exactly_one_wins(locks: Locks) -> None:
    locks.try_acquire("run:p", "dead", never)
    won: list[str] = []
    barrier = threading.Barrier(8)

    def contend(name: str) -> None:
        barrier.wait()
        if locks.try_acquire("run:p", name, lambda h: h.owner == "dead")[0]:
            won.append(name)

    threads = [threading.Thread(target=contend, args=(f"c{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1, won
    holder = locks.holder("run:p")
    assert holder is not None
    assert holder.owner == won[0]
