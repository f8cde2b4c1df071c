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
