"""The slot budget: every way a slot is taken or freed, with real threads waiting on it."""

from __future__ import annotations

import threading

from morag_fleet.agent.slotbudget import SlotBudget


def test_a_poll_reserves_then_hands_over_or_gives_back() -> None:
    budget = SlotBudget(2)
    assert budget.reserve(timeout=0) and budget.polling
    budget.hand_over()  # the poll claimed a job: the slot stays taken
    assert not budget.polling and budget.free == 1
    assert budget.reserve(timeout=0)
    budget.give_back()  # the poll brought nothing
    assert not budget.polling and budget.free == 1
    budget.release()  # the job is done
    assert budget.free == 2


def test_no_reservation_past_the_budget_until_a_job_ends() -> None:
    budget = SlotBudget(1)
    assert budget.reserve(timeout=0)
    budget.hand_over()
    assert not budget.reserve(timeout=0.05)
    waiter_got: list[bool] = []
    waiter = threading.Thread(target=lambda: waiter_got.append(budget.reserve(timeout=10)))
    waiter.start()
    budget.release()  # a waiting poller wakes at once
    waiter.join(timeout=10)
    assert waiter_got == [True] and budget.polling


def test_jobs_taken_back_at_start_overdraw_and_hold_claims_back() -> None:
    budget = SlotBudget(1)
    budget.take()
    budget.take()  # two interrupted jobs on a one-slot agent
    assert budget.free == -1
    budget.release()
    assert not budget.reserve(timeout=0.05)  # still one job more than slots
    budget.release()
    assert budget.reserve(timeout=0)
