import math

import pytest
from scipy import stats

from alerts.detectors import DETECTORS, LateWindowError, create
from alerts.stats import betabinom_sf_log10, negbinom_sf_log10, poisson_sf_log10


@pytest.mark.parametrize("x,mean", [(1, 0.5), (5, 2.0), (30, 4.0), (3, 0.01)])
def test_poisson_tail_matches_scipy(x, mean):
    assert poisson_sf_log10(x, mean) == pytest.approx(
        math.log10(stats.poisson.sf(x - 1, mean)), rel=1e-6
    )


@pytest.mark.parametrize("x,mean,d", [(4, 1.0, 0.3), (20, 5.0, 0.1), (2, 0.05, 1.0)])
def test_negbinom_tail_matches_scipy(x, mean, d):
    r = 1 / d
    expected = math.log10(stats.nbinom.sf(x - 1, r, r / (r + mean)))
    assert negbinom_sf_log10(x, mean, d) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("x,n,a,b", [(3, 10, 2.0, 5.0), (15, 40, 3.0, 7.0), (40, 40, 1.0, 9.0)])
def test_betabinom_tail_matches_scipy(x, n, a, b):
    expected = math.log10(stats.betabinom.sf(x - 1, n, a, b))
    assert betabinom_sf_log10(x, n, a, b) == pytest.approx(expected, rel=1e-6)


def test_registry_rejects_unknown_names_and_params():
    with pytest.raises(ValueError, match="unknown detector 'nope'"):
        create("nope")
    with pytest.raises(ValueError, match="no parameter"):
        create("beta_binomial", bogus=1)
    with pytest.raises(ValueError, match="half_life"):
        create("beta_binomial", half_life=0)


def _feed(det, counts, start=0):
    out = []
    for i, (neg, tot) in enumerate(counts, start=start):
        out.append(det.update(i * 300.0, neg, tot))
    return out


@pytest.mark.parametrize("name", ["beta_binomial", "negbinom"])
def test_spike_fires_once_and_resolves(name):
    det = create(name, step_s=300, warmup=10)
    base = [(3, 10), (2, 10), (4, 12), (3, 9)] * 30
    spike = [(14, 16)] * 4
    decisions = _feed(det, base + spike + base[:20])
    started = [i for i, ds in enumerate(decisions) if any(d.started for d in ds)]
    resolved = [i for i, ds in enumerate(decisions) if any(d.resolved for d in ds)]
    assert started == [120]
    assert len(resolved) == 1 and resolved[0] > 123


def test_open_window_updates_fire_once_and_learn_once():
    det = create("negbinom", step_s=300, warmup=5)
    _feed(det, [(1, 1), (0, 0), (2, 2)] * 20)
    ts = 60 * 300.0
    first = det.update(ts, 4, 4)[-1]
    second = det.update(ts, 12, 12)[-1]
    third = det.update(ts, 15, 15)[-1]
    assert [first.started, second.started, third.started].count(True) == 1
    assert third.firing and third.negative == 15


def test_min_volume_gate_blocks_one_vs_zero_but_ratio_fires():
    quiet = [(0, 1)] * 40
    for name in ("beta_binomial", "negbinom", "share_or_volume"):
        det = create(name, step_s=300, warmup=5)
        ds = _feed(det, [*quiet, (1, 1)])
        assert not ds[-1][-1].started
    ratio = create("ratio", step_s=300, warmup=1, threshold_cur=1)
    assert _feed(ratio, [*quiet, (1, 1)])[-1][-1].started


def test_gap_counts_as_empty_windows_and_resolves():
    det = create("negbinom", step_s=300, warmup=5, resolve_after=2)
    _feed(det, [(1, 1)] * 30)
    assert det.update(30 * 300.0, 20, 20)[-1].started
    decisions = det.advance(40 * 300.0)  # ten quiet windows later
    assert [d.resolved for d in decisions] == [True]
    assert not det.firing


def test_cooldown_pages_one_event_once():
    det = create("negbinom", step_s=300, warmup=5, resolve_after=1, cooldown=5, accumulate=False)
    _feed(det, [(1, 1)] * 30)
    flicker = [(20, 20), (0, 0), (20, 20), (0, 0), (20, 20)]
    ds = _feed(det, flicker, start=30)
    assert sum(d.started for step in ds for d in step) == 1


def test_late_window_raises():
    det = create("beta_binomial", step_s=300)
    det.update(600.0, 1, 5)
    with pytest.raises(LateWindowError):
        det.update(300.0, 1, 5)


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_state_roundtrip_gives_identical_decisions(name):
    seasonal = name in ("negbinom", "share_or_volume")
    params = {"seasonality": "hour_of_day"} if seasonal else {}
    series = [((i * 7) % 5, 10 + i % 3) for i in range(200)] + [(12, 13)] * 3 + [(2, 10)] * 20
    a = create(name, step_s=300, warmup=5, **params)
    _feed(a, series[:150])
    b = create(name, step_s=300, warmup=5, **params)
    b.load_state(a.state_dict())
    assert _feed(a, series[150:], 150) == _feed(b, series[150:], 150)


def test_state_of_other_detector_is_refused():
    with pytest.raises(ValueError, match="belongs to detector"):
        create("ratio").load_state(create("negbinom").state_dict())


def test_seasonal_baseline_learns_the_busy_hour():
    det = create("negbinom", step_s=3600, seasonality="hour_of_day", warmup=24)
    for day in range(14):
        for hour in range(24):
            det.update((day * 24 + hour) * 3600.0, 30 if hour == 14 else 2, 30)
    busy = det.update((14 * 24 + 14) * 3600.0, 30, 30)[-1]
    assert not busy.started and busy.baseline > 15


def _sparse(name, pattern):
    det = create(name, step_s=3600, warmup=24, half_life=168)
    for i in range(300):
        det.update(i * 3600.0, *pattern(i))
    return det


def test_share_test_needs_no_volume_gate_on_tiny_windows():
    # one or two articles an hour, one in ten negative: four of four is a real signal
    det = _sparse("beta_binomial", lambda i: (int(i % 10 == 0), 1 + i % 2))
    assert det.update(300 * 3600.0, 4, 4)[-1].started
    det = _sparse("beta_binomial", lambda i: (int(i % 10 == 0), 1 + i % 2))
    assert not det.update(300 * 3600.0, 2, 2)[-1].started


def test_share_or_volume_catches_a_volume_burst_at_the_usual_share():
    usual = lambda i: (int(i % 2 == 0), 2)  # noqa: E731 - a share of 0.25
    assert not _sparse("beta_binomial", usual).update(300 * 3600.0, 6, 24)[-1].started
    burst = _sparse("share_or_volume", usual).update(300 * 3600.0, 6, 24)[-1]
    assert burst.started and burst.observed == 6 and burst.baseline < 1
    share = _sparse("share_or_volume", usual).update(300 * 3600.0, 2, 2)[-1]
    assert not share.started  # two of two at a 25% share: not enough on either side


def test_a_first_window_far_from_the_prior_does_not_mask_a_spike():
    # The prior share is 0.3; the stream opens with 0 of 17 negative, then runs near 0.17.
    # That first residual measures the prior's error, not the spread between windows.
    det = create("beta_binomial", step_s=2, warmup=4, half_life=100, cooldown=20)
    calm = [(0, 17)] + [(k, 32) for k in (5, 5, 8, 3, 5, 10, 5, 5, 8, 3, 5)]
    for i, (negative, total) in enumerate(calm):
        assert not det.update(i * 2.0, negative, total)[-1].started
    assert det.update(len(calm) * 2.0, 18, 32)[-1].started


def _market_detector():
    """The detector the default market-wide rule gets, built as the engine builds it."""
    from alerts.config import AlertsSettings
    from finpulse.contracts import Scope

    rule = next(r for r in AlertsSettings().rules if r.scope == Scope.GLOBAL)
    return create(rule.detector, step_s=rule.step, **rule.params)


@pytest.mark.parametrize("history", [2, 4, 8])
def test_cold_market_key_pages_a_jump_from_5_to_44_percent_within_2_windows(history):
    # A market key with a few windows of history at ~5% negative (32 articles a window),
    # then the share jumps to ~44% (14 of 32) and stays there: the warm-up must not hide it.
    det = _market_detector()
    calm = [1, 2, 2, 1, 2, 1, 2, 2][:history]
    for i, negative in enumerate(calm):
        assert not det.update(i * 300.0, negative, 32)[-1].started
    starts = [det.update((history + j) * 300.0, 14, 32)[-1].started for j in range(8)]
    assert any(starts[:2]), starts
    assert det.firing and sum(starts) == 1  # one page, still firing while the shift lasts


def test_a_brand_new_key_is_judged_against_a_wide_prior():
    # No history: 12 of 32 negative is near the prior share (0.3); only the obvious pages.
    assert not _market_detector().update(0.0, 12, 32)[-1].started
    assert _market_detector().update(0.0, 30, 32)[-1].started


def test_a_sustained_shift_keeps_firing_until_it_is_the_new_normal():
    # 30% negative, then 60% for two days: one alert that fires through the first day
    # (the episode is not learned) and resolves once the shift has become the baseline.
    det = create("beta_binomial", step_s=300, half_life=288, new_normal_s=86_400)
    for i in range(600):
        det.update(i * 300.0, 9 + i % 3, 32)
    decisions = [det.update((600 + j) * 300.0, 19, 32)[-1] for j in range(576)]
    assert [j for j, d in enumerate(decisions) if d.started] == [1]  # 2nd window: CUSUM
    assert all(d.firing for d in decisions[1:289])
    assert not decisions[-1].firing


def test_range_detector_budget_and_scales():
    det = create("range", step_s=300, false_alarms_per_day=0.1, sustained_s=3600)
    assert det.horizon == 2880 and det.scales == [1, 12] and det.warmup == 288
    with pytest.raises(ValueError, match="step_s"):
        create("range")


def _bursty(n, seed=3):
    """Heavy-tailed bursty counts (a tweet-volume-like key), deterministic."""
    import random

    rng = random.Random(seed)
    return [int(rng.paretovariate(1.8) * 3) for _ in range(n)]


def test_range_detector_false_starts_follow_the_budget_on_heavy_tailed_counts():
    # Pareto counts: the negative-binomial tail is far off there, the conformal range is not.
    counts = _bursty(288 * 40)
    rates = {}
    for budget in (0.1, 0.5):
        det = create("range", step_s=300, false_alarms_per_day=budget)
        starts = sum(det.update(i * 300.0, c, c)[-1].started for i, c in enumerate(counts))
        rates[budget] = starts / 39  # days after the first day's warm-up
    assert rates[0.1] <= 0.2 and rates[0.1] < rates[0.5] <= 1.0


def test_range_detector_pages_a_new_burst_and_a_sustained_rise():
    calm = [40 if i % 36 == 0 else 1 for i in range(288 * 3)]  # quiet, a 40 every 3 hours

    def fed():
        det = create("range", step_s=300)
        assert not any(det.update(i * 300.0, c, c)[-1].started for i, c in enumerate(calm))
        return det

    assert fed().update(len(calm) * 300.0, 60, 60)[-1].started  # a burst beyond the range
    # A rise no single window shows (30 < 40) but its two hours do: paged on its 2nd window.
    det = fed()
    rise = [det.update((len(calm) + j) * 300.0, 30, 30)[-1].started for j in range(6)]
    assert rise == [False, True, False, False, False, False]


def test_range_detector_holds_an_episode_out_of_its_range():
    det = create("range", step_s=300, false_alarms_per_day=1.0, cooldown=1)
    for i in range(600):
        det.update(i * 300.0, 10 + i % 5, 20)
    first = det.update(600 * 300.0, 40, 50)[-1]
    # While firing, the episode's windows do not widen the range it is judged against.
    later = [det.update((601 + j) * 300.0, 40, 50)[-1] for j in range(20)]
    assert first.started and all(d.firing and d.score >= det.threshold for d in later)
