"""Control slots counted on the sim clock (rldt_ros/sim_time.py): which /clock updates are
slots, whatever rate the clock comes at, and what a skipped period or a restart does."""
import pytest

from rldt_ros.sim_time import SimTimeSlots

MS = 1_000_000


def slots_at(times_ms, period_ms=50):
    slots = SimTimeSlots(period_ms * MS)
    return [t for t in times_ms if slots.due(t * MS)]


def test_a_clock_at_the_control_rate_makes_every_update_a_slot():
    assert slots_at([50, 100, 150, 200]) == [50, 100, 150, 200]


def test_a_faster_clock_gives_one_slot_per_period_from_its_first_update():
    # a 1 kHz clock (Gazebo) and 20 Hz control
    assert slots_at(range(7, 160)) == [7, 57, 107, 157]


def test_a_clock_that_skips_periods_gives_one_slot_on_the_original_phase():
    assert slots_at([50, 100, 260, 300, 310, 350]) == [50, 100, 260, 300, 350]


def test_a_clock_that_goes_back_re_phases_the_slots():
    # a restarted simulator: time starts again near zero
    assert slots_at([900, 950, 1000, 20, 45, 70, 120]) == [900, 950, 1000, 20, 70, 120]


def test_the_same_time_twice_is_one_slot():
    assert slots_at([50, 50, 100, 100]) == [50, 100]


def test_a_slot_served_from_a_state_ahead_of_the_clock_is_not_served_again():
    slots = SimTimeSlots(50 * MS)
    assert slots.due(100 * MS)
    slots.served_through(150 * MS)  # the state stamped 150 came before the clock did
    assert not slots.due(150 * MS)
    assert slots.due(200 * MS)
    slots.served_through(180 * MS)  # a slot already counted: nothing more to consume
    assert slots.due(250 * MS)


def test_the_period_must_be_positive():
    with pytest.raises(ValueError, match='positive'):
        SimTimeSlots(0)
