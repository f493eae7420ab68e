"""Clamp, delta cap, watchdog timing and e-stop latch of rldt_ros.safety."""
import numpy as np
import pytest

from rldt_ros.safety import CommandFilter
from rldt_ros.safety import EStop
from rldt_ros.safety import Mode
from rldt_ros.safety import Watchdog
from rldt_ros.safety import chunk_is_finite


def test_non_finite_chunks_are_rejected_whole():
    chunk = np.zeros((4, 3))
    assert chunk_is_finite(chunk)
    chunk[2, 1] = np.nan
    assert not chunk_is_finite(chunk)
    chunk[2, 1] = np.inf
    assert not chunk_is_finite(chunk)


def test_clamp_to_joint_limits_then_cap_delta():
    f = CommandFilter([-1.0, -1.0], [1.0, 1.0], max_delta_per_tick=0.1)
    np.testing.assert_allclose(f.apply(np.array([5.0, -5.0]), None), [1.0, -1.0])
    np.testing.assert_allclose(f.apply(np.array([0.0, 0.0]), np.array([1.0, -1.0])), [0.9, -0.9])
    np.testing.assert_allclose(f.apply(np.array([0.95, -0.85]), np.array([0.9, -0.9])),
                               [0.95, -0.85])
    assert f.clamped == 1 and f.rate_limited == 1


def test_capped_command_stays_within_limits():
    f = CommandFilter([0.0], [1.0], max_delta_per_tick=0.3)
    last = np.array([0.9])
    for _ in range(5):
        last = f.apply(np.array([7.0]), last)
        assert 0.0 <= last[0] <= 1.0


@pytest.mark.parametrize('cap', [0.0, -0.1, float('nan')])
def test_bad_delta_cap_is_refused(cap):
    with pytest.raises(ValueError, match='max_delta_per_tick'):
        CommandFilter([0.0], [1.0], cap)


def test_inverted_limits_are_refused():
    with pytest.raises(ValueError, match='low <= high'):
        CommandFilter([1.0], [0.0], 0.1)


def test_watchdog_holds_for_the_grace_period_then_stops_then_recovers():
    w = Watchdog(grace_s=0.5)
    assert w.update(0.0, healthy=False, have_last=False) == Mode.STOP  # nothing sent yet
    assert w.update(1.0, healthy=True, have_last=True) == Mode.RUN
    assert w.update(2.0, healthy=False, have_last=True) == Mode.HOLD
    assert w.update(2.5, healthy=False, have_last=True) == Mode.HOLD
    assert w.update(2.51, healthy=False, have_last=True) == Mode.STOP
    assert w.update(3.0, healthy=True, have_last=True) == Mode.RUN
    assert w.update(3.1, healthy=False, have_last=True) == Mode.HOLD  # a new grace period


def test_estop_latches_until_reset():
    e = EStop()
    e.trigger('operator')
    assert e.engaged and e.reason == 'operator'
    e.reset()
    assert not e.engaged
