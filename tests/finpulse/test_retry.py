import random

import pytest

from finpulse.retry import Backoff, backoff_s


def test_delays_double_up_to_the_cap():
    assert [backoff_s(n, 0.5, 4.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff_s(10, 0.5) == 512.0  # no cap: a caller bounds the attempts instead


def test_full_jitter_is_bounded_and_spread():
    rng = random.Random(1)
    delays = [backoff_s(a, 0.5, 4.0, jitter=1.0, rng=rng) for a in range(10) for _ in range(20)]
    assert all(0 <= d <= 4.0 for d in delays)
    assert len(set(delays)) > 100


def test_partial_jitter_takes_at_most_its_share_off():
    rng = random.Random(2)
    delays = [backoff_s(3, 1.0, 30.0, jitter=0.5, rng=rng) for _ in range(200)]
    assert all(4.0 <= d <= 8.0 for d in delays)
    assert min(delays) < 4.5 and max(delays) > 7.5


def test_an_outage_of_any_length_keeps_the_cap():
    """Thousands of failures (hours of outage at a 30 s cap) must not overflow the float."""
    assert backoff_s(5000, 0.5, 30.0) == 30.0
    b = Backoff(0.5, 30.0, jitter=0.0)
    b.attempt = 5000
    assert b.next() == 30.0


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="share of the delay"):
        backoff_s(1, 1.0, jitter=1.5)
    with pytest.raises(ValueError, match="0 < initial_s <= max_s"):
        Backoff(5.0, 1.0)
