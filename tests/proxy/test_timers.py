"""The timer wheel's slot walk (no sockets)."""

from __future__ import annotations

from hotswap.proxy.timers import TimerWheel, due_slots, now


def test_after_a_quiet_period_only_the_slots_that_exist_are_walked() -> None:
    slots: dict[int, set[object]] = {1_000_000: set(), 1_000_005: set(), 2_000_000: set()}
    walked = list(due_slots(slots, 10, 1_000_010))  # a quiet gap of a million ticks
    assert walked == [1_000_000, 1_000_005]
    normal: dict[int, set[object]] = {11: set(), 12: set(), 40: set()}
    assert list(due_slots(normal, 10, 12)) == [11, 12]  # a normal tick: the range


class _Conn:
    timer_slot = 0
    expired = 0

    def expire(self) -> None:
        self.expired += 1


def test_sooner_moves_a_deadline_earlier_never_later() -> None:
    wheel = TimerWheel()
    conn = _Conn()
    start = now()
    wheel.sooner(conn, start + 10.0)  # no deadline yet: set
    ten = conn.timer_slot
    assert ten
    wheel.sooner(conn, start + 60.0)  # later: kept at 10 s
    assert conn.timer_slot == ten
    wheel.sooner(conn, start + 1.0)  # sooner: moved
    assert 0 < conn.timer_slot < ten
    wheel.clear(conn)
    assert conn.timer_slot == 0
