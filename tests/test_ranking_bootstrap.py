"""`ranking.bootstrap_margin`: one ranker's Kendall-tau margin over another, with a bootstrap
interval over the architectures."""

import numpy as np
import pytest

from supernet import ranking


def _noisy(truth, scale, seed):
    return truth + scale * np.random.default_rng(seed).standard_normal(len(truth))


def test_a_clearly_better_ranker_has_an_interval_above_zero():
    truth = np.random.default_rng(0).standard_normal(80)
    good, bad = _noisy(truth, 0.1, 1), _noisy(truth, 3.0, 2)
    out = ranking.bootstrap_margin(good, bad, truth, samples=300)
    assert out["margin"] == pytest.approx(ranking.kendall_tau(good, truth) - ranking.kendall_tau(bad, truth))
    assert 0 < out["low"] < out["margin"] < out["high"] and out["fraction_above"] == 1.0
    assert out == ranking.bootstrap_margin(good, bad, truth, samples=300)   # the seed fixes the resamples


def test_equal_rankers_have_an_interval_around_zero():
    truth = np.random.default_rng(0).standard_normal(60)
    a, b = _noisy(truth, 1.0, 1), _noisy(truth, 1.0, 2)
    out = ranking.bootstrap_margin(a, b, truth, samples=300)
    assert out["low"] < 0 < out["high"] and 0.05 < out["fraction_above"] < 0.95
    same = ranking.bootstrap_margin(a, a, truth, samples=50)
    assert same["margin"] == same["low"] == same["high"] == 0.0


def test_bad_inputs_are_errors():
    with pytest.raises(ValueError, match="aligned 1-D arrays"):
        ranking.bootstrap_margin(np.zeros(5), np.zeros(4), np.arange(5.0))
    with pytest.raises(ValueError, match="level must lie in"):
        ranking.bootstrap_margin(np.arange(5.0), np.arange(5.0), np.arange(5.0), level=95)
