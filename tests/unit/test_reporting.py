"""Intervals and summaries every reported number goes through, against textbook values."""
import math

import numpy as np
import pytest

from rldt_train.reporting import format_eval
from rldt_train.reporting import mean_interval
from rldt_train.reporting import summarize
from rldt_train.reporting import t_quantile_975
from rldt_train.reporting import wilson_interval


@pytest.mark.parametrize('df, exact', [(3, 3.1824), (5, 2.5706), (10, 2.2281), (15, 2.1314),
                                       (30, 2.0423), (49, 2.0096), (1000, 1.9623)])
def test_t_quantile_matches_tables(df, exact):
    assert t_quantile_975(df) == pytest.approx(exact, rel=2e-3)


def test_mean_interval_is_the_student_t_interval():
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    low, high = mean_interval(values)
    half = 2.7764 * values.std(ddof=1) / math.sqrt(5)         # t(0.975, 4) = 2.7764
    assert (low, high) == pytest.approx((3.0 - half, 3.0 + half), abs=0.02)
    assert mean_interval(np.array([7.0])) == (float('-inf'), float('inf'))


def test_wilson_interval_known_values_and_edges():
    # 58 of 100: centre (p + z^2/2n) / (1 + z^2/n) = 0.57704, half-width 0.09498.
    low, high = wilson_interval(np.array([1] * 58 + [0] * 42))
    assert (low, high) == pytest.approx((0.48207, 0.67202), abs=1e-4)
    low, high = wilson_interval(np.zeros(50))
    assert low == 0.0 and 0.05 < high < 0.09            # not the degenerate [0, 0]
    assert wilson_interval(np.ones(10))[1] == 1.0


def test_summarize_and_format():
    s = summarize(np.array([10.0, 12.0, 14.0]), np.array([True, False, True]),
                  np.array([100, 90, 80]))
    assert s['episodes'] == 3 and s['return_mean'] == 12.0 and s['return_sd'] == 2.0
    assert s['success_rate'] == pytest.approx(2 / 3)
    assert s['return_ci95'][0] < 12.0 < s['return_ci95'][1]
    assert format_eval(s, 'success').startswith('67% [')
    assert format_eval(s, 'return').endswith('(3 ep)')
    assert 'success_rate' not in summarize(np.array([1.0, 2.0]), None, np.array([1, 1]))
