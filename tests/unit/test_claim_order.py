"""Each replica's order for a claim's ids, and when a skipped ('busy') post is claimed again."""

from __future__ import annotations

import uuid

from scheduler_daemon.engine.claim_order import BUSY_RETRY_CAP, BUSY_RETRY_SECONDS, BusyRetry, ClaimOrder
from scheduler_daemon.engine.timers import Armed
from scheduler_daemon.models import Verdict


def test_replicas_send_a_batch_in_orders_of_their_own() -> None:
    batch = [Armed(uuid.uuid4(), 0.0, 1) for _ in range(1000)]
    a, b = ClaimOrder("run-1@replica-a").sort(batch), ClaimOrder("run-2@replica-b").sort(batch)
    assert sorted(a) == sorted(b) == sorted(batch)
    assert a == ClaimOrder("run-1@replica-a").sort(reversed(batch)), "an order is the replica's, not the input's"
    # Two independent permutations: the first tenth of each shares about a tenth of its posts.
    assert len(set(a[:100]) & set(b[:100])) < 40


def test_sequential_ids_are_spread_too() -> None:
    batch = [Armed(uuid.UUID(int=n), 0.0, 1) for n in range(1000)]
    a, b = ClaimOrder("a").sort(batch), ClaimOrder("b").sort(batch)
    assert len(set(a[:100]) & set(b[:100])) < 40


def test_a_busy_post_is_claimed_again_after_a_delay_that_doubles_while_it_stays_busy() -> None:
    retry, post, other = BusyRetry(), uuid.uuid4(), uuid.uuid4()
    delays = []
    for _ in range(8):
        retry.answered([post, other], [Verdict(post, 1, None)])
        delays.append(retry.delay(post))
    assert delays[:3] == [BUSY_RETRY_SECONDS, 2 * BUSY_RETRY_SECONDS, 4 * BUSY_RETRY_SECONDS]
    assert delays[-1] == BUSY_RETRY_CAP and delays == sorted(delays)
    retry.answered([post], [])  # claimed, or found taken: forgotten
    retry.answered([post], [Verdict(post, 1, None)])
    assert retry.delay(post) == BUSY_RETRY_SECONDS


def test_a_parked_post_comes_back_when_its_delay_has_passed_and_not_before() -> None:
    retry, first, second = BusyRetry(), Armed(uuid.uuid4(), 50.0, 1), Armed(uuid.uuid4(), 50.0, 2)
    retry.answered([first.id], [Verdict(first.id, 1, None)])
    retry.answered([second.id], [Verdict(second.id, 2, None)])
    retry.answered([second.id], [Verdict(second.id, 2, None)])  # busy twice: twice the delay
    retry.park(first, 10.0)
    retry.park(second, 10.0)
    assert retry.next_at() == 10.0 + BUSY_RETRY_SECONDS
    assert retry.release(10.0 + BUSY_RETRY_SECONDS / 2) == []
    assert retry.release(10.0 + BUSY_RETRY_SECONDS) == [first]
    assert retry.next_at() == 10.0 + 2 * BUSY_RETRY_SECONDS
    assert retry.release(100.0) == [second] and retry.next_at() is None
