"""Delta cap anchored on the measured arm, clamp, reading checks, watchdog latch and e-stop of
rldt_ros.safety."""
import numpy as np
import pytest

from rldt_ros.safety import check_max_delta
from rldt_ros.safety import chunk_is_finite
from rldt_ros.safety import CommandFilter
from rldt_ros.safety import EStop
from rldt_ros.safety import Mode
from rldt_ros.safety import ReadingCheck
from rldt_ros.safety import Watchdog


def test_non_finite_chunks_are_rejected_whole():
    chunk = np.zeros((4, 3))
    assert chunk_is_finite(chunk)
    chunk[2, 1] = np.nan
    assert not chunk_is_finite(chunk)
    chunk[2, 1] = np.inf
    assert not chunk_is_finite(chunk)


def test_first_command_is_capped_from_the_measured_position_then_ramps():
    f = CommandFilter([-3.0, -3.0], [3.0, 3.0], max_delta_per_tick=0.1)
    measured = np.array([0.5, -0.4])
    first = f.apply(np.array([0.0, 0.0]), measured)
    np.testing.assert_allclose(first, [0.4, -0.3])
    # Later ticks ramp from the last command; `measured` no longer matters.
    np.testing.assert_allclose(f.apply(np.array([0.0, 0.0]), np.array([9.0, 9.0])), [0.3, -0.2])
    assert f.rate_limited == 2


def test_restart_anchors_on_the_measured_position_again():
    f = CommandFilter([-3.0], [3.0], max_delta_per_tick=0.1)
    last = np.array([0.0])
    for _ in range(10):
        last = f.apply(np.array([1.0]), np.array([0.0]))
    np.testing.assert_allclose(last, [1.0])
    f.restart()  # e.g. after a stale-data stop: the arm stayed at 0.3, not at our 1.0
    np.testing.assert_allclose(f.apply(np.array([1.0]), np.array([0.3])), [0.4])


def test_clamp_to_joint_limits_keeps_capped_commands_inside():
    f = CommandFilter([0.0], [1.0], max_delta_per_tick=0.3)
    assert f.apply(np.array([7.0]), np.array([0.9]))[0] == 1.0
    assert f.clamped == 1
    # A measured anchor slightly outside the limits still yields a command inside them.
    f.restart()
    assert f.apply(np.array([1.5]), np.array([1.04]))[0] == 1.0


def test_preview_filters_upcoming_points_without_moving_the_anchor():
    f = CommandFilter([-1.0], [1.0], max_delta_per_tick=0.1)
    f.apply(np.array([0.0]), np.array([0.0]))
    points = f.preview([np.array([0.5]), np.array([5.0]), np.array([-0.2])])
    np.testing.assert_allclose(np.concatenate(points), [0.1, 0.2, 0.1])
    np.testing.assert_allclose(f.last, [0.0])


@pytest.mark.parametrize('cap', [0.0, -0.1, float('nan'), 1.5, 100.0])
def test_bad_delta_cap_is_refused(cap):
    with pytest.raises(ValueError, match='max_delta_per_tick'):
        CommandFilter([0.0], [1.0], cap)
    with pytest.raises(ValueError, match='max_delta_per_tick'):
        check_max_delta(cap)


def test_inverted_limits_are_refused():
    with pytest.raises(ValueError, match='low <= high'):
        CommandFilter([1.0], [0.0], 0.1)


@pytest.mark.parametrize('positions, velocities, words', [
    ([0.0, 10.0], None, ['elbow', 'outside']),
    ([1e30, 0.0], None, ['shoulder', 'outside']),
    ([0.0, 1e308], None, ['elbow']),
    ([0.0, 0.0], [0.0, -50.0], ['elbow', 'velocity']),
    ([float('nan'), 0.0], None, ['shoulder', 'not a number']),
])
def test_implausible_readings_name_the_joint(positions, velocities, words):
    check = ReadingCheck(['shoulder', 'elbow'], [-2.0, -2.0], [2.0, 2.0], margin=0.05,
                         max_velocity=10.0)
    problem = check.problem(np.array(positions),
                            None if velocities is None else np.array(velocities))
    assert problem is not None and all(w in problem for w in words), problem


def test_readings_within_the_margin_are_plausible():
    check = ReadingCheck(['a'], [-1.0], [1.0], margin=0.05, max_velocity=10.0)
    assert check.problem(np.array([1.04]), np.array([9.9])) is None
    assert check.problem(np.array([1.06]), None) is not None


def test_watchdog_holds_then_stops_and_stays_stopped_until_rearmed():
    w = Watchdog(grace_s=0.5)
    assert w.update(0.0, healthy=False, have_last=False) == Mode.STOP  # nothing sent yet
    assert not w.latched  # waiting for the first data is not a fault
    assert w.update(1.0, healthy=True, have_last=True) == Mode.RUN
    assert w.update(2.0, healthy=False, have_last=True) == Mode.HOLD
    assert w.update(2.5, healthy=False, have_last=True) == Mode.HOLD
    assert w.update(2.51, healthy=False, have_last=True) == Mode.STOP
    assert w.latched
    assert w.update(3.0, healthy=True, have_last=False) == Mode.STOP  # data back: still stopped
    assert w.update(9.0, healthy=True, have_last=False) == Mode.STOP
    w.rearm()
    assert w.update(9.1, healthy=True, have_last=False) == Mode.RUN
    assert w.update(9.2, healthy=False, have_last=True) == Mode.HOLD  # a new grace period


def test_watchdog_auto_resume_restarts_when_data_is_healthy():
    w = Watchdog(grace_s=0.0, auto_resume=True)
    assert w.update(0.0, healthy=True, have_last=False) == Mode.RUN
    assert w.update(0.1, healthy=False, have_last=True) == Mode.HOLD
    assert w.update(0.2, healthy=False, have_last=True) == Mode.STOP
    assert w.update(0.3, healthy=True, have_last=False) == Mode.RUN


def test_estop_latches_until_reset():
    e = EStop()
    e.trigger('operator')
    assert e.engaged and e.reason == 'operator'
    e.reset()
    assert not e.engaged
