"""The OK/WARN/ERROR rule of the policy node's /diagnostics, and rolling percentiles."""
import math

import numpy as np
import pytest

from rldt_ros import diagnostics


def test_stopped_after_running_is_an_error_naming_the_stale_topic():
    level, message = diagnostics.health('stop', True, None, [], ['front'])
    assert level == diagnostics.ERROR and 'front' in message


def test_not_started_yet_is_only_a_warning():
    assert diagnostics.health('stop', False, None, [], ['state'])[0] == diagnostics.WARN


def test_estop_and_observation_problems_are_errors_even_while_running():
    assert diagnostics.health('run', True, 'operator', [], [])[0] == diagnostics.ERROR
    level, message = diagnostics.health('run', True, None, ["lacks joint(s) ['elbow']"], [])
    assert level == diagnostics.ERROR and 'elbow' in message


def test_hold_warns_and_run_is_ok():
    assert diagnostics.health('hold', True, None, [], [])[0] == diagnostics.WARN
    assert diagnostics.health('run', True, None, [], []) == (diagnostics.OK, 'running')


def test_window_percentiles_cover_the_last_span_only():
    now = [0.0]
    w = diagnostics.Window(span_s=9.95, clock=lambda: now[0])
    assert math.isnan(w.percentiles()['p50'])
    for v in range(1000):  # one sample every 0.1 s: the last 100 are within 9.95 s
        now[0] = v * 0.1
        w.add(float(v))
    expected = np.percentile(np.arange(900, 1000), [50, 99])
    assert [w.percentiles()['p50'], w.percentiles()['p99']] == pytest.approx(expected)
    now[0] += 60.0  # nothing for a minute: an old spike must not speak for now
    assert math.isnan(w.percentiles()['p99'])


def test_window_keeps_at_most_size_samples():
    w = diagnostics.Window(span_s=1e9, size=100)
    for v in range(1000):
        w.add(float(v))
    assert w.percentiles()['p50'] == np.percentile(np.arange(900, 1000), 50)


def test_stopped_after_a_fault_says_how_to_rearm():
    level, message = diagnostics.health('stop', True, None, [], [], rearm_needed=True)
    assert level == diagnostics.ERROR and '~/rearm' in message and 'healthy again' in message


def test_flatten_names_nested_values_by_group():
    assert diagnostics.flatten({'mode': 'run', 'sampler_ms': {'p50': 0.2}}) == {
        'mode': 'run', 'sampler_ms.p50': '0.2'}


def test_running_under_a_warning_is_warn_naming_it_but_errors_still_win():
    level, message = diagnostics.health('run', True, None, [], [], warnings=['trained with 0.1'])
    assert level == diagnostics.WARN and message == 'running; trained with 0.1'
    assert diagnostics.health('stop', True, None, [], ['state'],
                              warnings=['trained with 0.1'])[0] == diagnostics.ERROR
